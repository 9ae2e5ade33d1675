"""The Q&A card on the watch page and the Q&A panel on the moderate page,
in a real browser against a real livehub.

Each viewer may ask one question a minute, so every question below comes from
a different viewer (upvoting through the similar-question offer asks nothing).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from playwright.async_api import FloatRect, Locator, Page, expect

if TYPE_CHECKING:  # the fixture's class; not imported at run time (two conftest modules)
    from conftest import Web

WAIT_MS = 10_000
PHONE: dict[str, Any] = {
    "viewport": {"width": 390, "height": 844},
    "is_mobile": True,
    "has_touch": True,
}


# ---------------------------------------------------------------- helpers


async def connected(page: Page) -> None:
    """Wait until the page's LiveClient has its welcome."""
    await expect(page.locator("#conn-state")).to_have_attribute(
        "data-state", "connected", timeout=WAIT_MS
    )
    await page.wait_for_function(
        "() => window.livehub && window.livehub.client && window.livehub.client.you"
        " && window.livehub.client.you.viewer_id",
        timeout=WAIT_MS,
    )


async def join(page: Page, web: Web, room: str, name: str) -> None:
    """Open the watch page, answer the name prompt, wait for the welcome, open the Q&A card."""
    await web.answer_name(page, room, name)
    await connected(page)
    toggle = page.locator(".qa-card .qa-toggle")
    await expect(toggle).to_have_attribute("aria-expanded", "false", timeout=WAIT_MS)
    await toggle.click()
    await expect(toggle).to_have_attribute("aria-expanded", "true")
    await expect(page.locator(".qa-card .qa-input")).to_be_visible()


async def moderate(web: Web, created: dict[str, Any]) -> Page:
    page = await web.page("moderator", viewport={"width": 1300, "height": 900})
    room = created["room"]["id"]
    await page.goto(web.url(f"/moderate/{room}#token={created['moderator_token']}"))
    await connected(page)
    await expect(page.locator(".qa-panel")).to_be_visible(timeout=WAIT_MS)
    return page


async def ask(page: Page, text: str, *, anonymous: bool = False) -> None:
    """Type a question and press Ask (the caller waits for what follows)."""
    await page.locator(".qa-input").fill(text)
    box = page.locator(".qa-anonymous")
    await (box.check() if anonymous else box.uncheck())
    await page.locator(".qa-submit").click()


def item(page: Page, text: str) -> Locator:
    """A question in the viewer card's list."""
    return page.locator(".qa-list .qa-item").filter(has=page.locator(".qa-text", has_text=text))


def board_row(mod: Page, text: str) -> Locator:
    return mod.locator(".qa-board .qa-admin-item").filter(
        has=mod.locator(".qa-text", has_text=text)
    )


def queue_row(mod: Page, text: str) -> Locator:
    return mod.locator(".qa-queue .qa-admin-item").filter(
        has=mod.locator(".qa-text", has_text=text)
    )


def has_class(name: str) -> re.Pattern[str]:
    """Matches a class attribute that contains `name`."""
    return re.compile(rf"(^|\s){re.escape(name)}(\s|$)")


def inside(inner: FloatRect, outer: FloatRect) -> bool:
    return (
        inner["x"] >= outer["x"] - 0.5
        and inner["y"] >= outer["y"] - 0.5
        and inner["x"] + inner["width"] <= outer["x"] + outer["width"] + 0.5
        and inner["y"] + inner["height"] <= outer["y"] + outer["height"] + 0.5
    )


# ---------------------------------------------------------------- tests


async def test_ask_similar_upvote_highlight_answer(web: Web) -> None:
    created = await web.server.create_room()
    room = created["room"]["id"]
    mod = await moderate(web, created)
    ann = await web.page("ann", viewport={"width": 1200, "height": 800})
    bob = await web.page("bob", **PHONE)
    await join(ann, web, room, "Ann")
    await join(bob, web, room, "Bob")
    await expect(bob.locator(".qa-list .qa-item")).to_have_count(0)
    await expect(bob.locator(".qa-count")).to_have_text("0")

    # Ann asks; her page shows it as her own, Bob's with her name
    question = "How do I reset my password?"
    await ask(ann, question)
    await expect(ann.locator("#status")).to_have_text("Your question is in.", timeout=WAIT_MS)
    await expect(ann.locator(".qa-input")).to_have_value("")
    mine = item(ann, question)
    await expect(mine).to_have_count(1, timeout=WAIT_MS)
    await expect(mine).to_have_class(has_class("is-own"))
    await expect(mine.locator(".qa-author")).to_have_text("You")
    await expect(mine.locator(".qa-vote")).to_be_disabled()  # no upvoting one's own question
    theirs = item(bob, question)
    await expect(theirs).to_be_visible(timeout=WAIT_MS)
    await expect(theirs.locator(".qa-author")).to_have_text("Ann")
    await expect(theirs.locator(".qa-vote-count")).to_have_text("0")
    await expect(theirs.locator(".qa-vote")).to_have_attribute("aria-pressed", "false")
    await expect(bob.locator(".qa-count")).to_have_text("1")
    row = board_row(mod, question)
    await expect(row).to_have_count(1, timeout=WAIT_MS)
    await expect(row.locator(".chat-name")).to_have_text("Ann")
    await expect(row.locator(".qa-admin-votes")).to_have_text("▲ 0")

    # Bob asks nearly the same: offered the existing one instead, and upvotes it
    await ask(bob, "how can i reset the password")
    offer = bob.locator(".qa-similar")
    await expect(offer).to_be_visible(timeout=WAIT_MS)
    await expect(offer.locator(".qa-similar-title")).to_have_text(
        "Similar questions were already asked. Upvote one instead?"
    )
    offered = offer.locator(".qa-similar-item")
    await expect(offered).to_have_count(1)
    await expect(offered.locator(".qa-text")).to_have_text(question)
    await expect(offered.locator(".qa-similar-up .qa-vote-count")).to_have_text("0")
    await offered.locator(".qa-similar-up").click()
    await expect(offer).to_be_hidden(timeout=WAIT_MS)
    await expect(bob.locator("#status")).to_have_text("Upvoted.")
    await expect(bob.locator(".qa-input")).to_have_value("")
    await expect(theirs.locator(".qa-vote-count")).to_have_text("1", timeout=WAIT_MS)
    await expect(theirs.locator(".qa-vote")).to_have_attribute("aria-pressed", "true")
    await expect(mine.locator(".qa-vote-count")).to_have_text("1", timeout=WAIT_MS)
    await expect(row.locator(".qa-admin-votes")).to_have_text("▲ 1", timeout=WAIT_MS)
    # the near-duplicate was not asked
    for page in (ann, bob):
        await expect(page.locator(".qa-list .qa-item")).to_have_count(1)
    await expect(mod.locator(".qa-board .qa-admin-item")).to_have_count(1)

    # the moderator puts it on screen: a banner over the video on every viewer page
    await row.locator(".qa-highlight-btn").click()
    await expect(mod.locator("#status")).to_have_text("Shown on every screen.", timeout=WAIT_MS)
    await expect(row.locator(".qa-highlight-btn")).to_have_attribute("aria-pressed", "true")
    await expect(row.locator(".qa-highlight-btn")).to_have_text("Take off screen")
    for page, author in ((ann, "You"), (bob, "Ann")):
        banner = page.locator("#stage .qa-highlight")
        await expect(banner).to_be_visible(timeout=WAIT_MS)
        await expect(banner.locator(".qa-highlight-text")).to_have_text(question)
        await expect(banner.locator(".qa-highlight-meta")).to_have_text(author)
        await expect(banner.locator(".qa-highlight-label")).to_have_text("Question")
        stage_box = await page.locator("#stage").bounding_box()
        banner_box = await banner.bounding_box()
        assert stage_box and banner_box and inside(banner_box, stage_box), (banner_box, stage_box)
        await expect(item(page, question).locator(".qa-pill-highlight")).to_have_text("On screen")

    # answered: the badge on every page, and no more "Answered" button for staff
    await expect(bob.locator(".qa-pill-answered")).to_have_count(0)
    await row.locator(".qa-answer").click()
    await expect(mod.locator("#status")).to_have_text("Marked as answered.", timeout=WAIT_MS)
    await expect(row.locator(".qa-answer")).to_be_hidden()
    await expect(row.locator(".qa-pill-answered")).to_have_text("Answered")
    for page in (ann, bob):
        answered = item(page, question)
        await expect(answered.locator(".qa-pill-answered")).to_have_text(
            "Answered", timeout=WAIT_MS
        )
        await expect(answered).to_have_class(has_class("is-answered"))
    await web.check_clean()


async def test_anonymous_and_approval_queue_in_chinese(web: Web) -> None:
    created = await web.server.create_room()
    room = created["room"]["id"]
    mod = await moderate(web, created)
    cai = await web.page("cai", locale="zh-CN", **PHONE)
    dan = await web.page("dan")
    await join(cai, web, room, "Cai")
    await join(dan, web, room, "Dan")
    # the Chinese page labels the card in Chinese
    await expect(cai.locator(".qa-card .qa-label")).to_have_text("问答")
    await expect(cai.locator(".qa-submit")).to_have_text("提问")
    await expect(cai.locator(".qa-input")).to_have_attribute("placeholder", "向主播提问…")
    await expect(dan.locator(".qa-card .qa-label")).to_have_text("Q&A")

    # an anonymous question: no author name for the other viewer, the name for staff
    secret = "Will the slides be shared?"
    await ask(dan, secret, anonymous=True)
    await expect(item(dan, secret).locator(".qa-author")).to_have_text(
        "You · Anonymous", timeout=WAIT_MS
    )
    seen = item(cai, secret)
    await expect(seen).to_be_visible(timeout=WAIT_MS)
    await expect(seen.locator(".qa-author")).to_have_text("匿名")
    assert "Dan" not in (await seen.inner_text())
    row = board_row(mod, secret)
    await expect(row.locator(".chat-name")).to_have_text("Dan", timeout=WAIT_MS)
    await expect(row.locator(".qa-anon")).to_have_text("Anonymous")

    # require approval: a question waits in the moderator's queue, off the viewer pages
    toggle = mod.locator(".qa-approval-toggle")
    await expect(toggle).to_have_attribute("aria-pressed", "false")
    await toggle.click()
    await expect(toggle).to_have_attribute("aria-pressed", "true", timeout=WAIT_MS)
    await expect(mod.locator(".qa-approval-note")).to_have_text(
        "Questions are approved before they show."
    )
    await ask(cai, "课程多少钱？")
    question = "课程多少钱?"  # stored and shown in NFKC form (clean_text): full-width ？ → ?
    await expect(cai.locator("#status")).to_have_text(
        "你的问题将在房管审核通过后显示。", timeout=WAIT_MS
    )
    await expect(cai.locator(".qa-input")).to_have_value("")
    queued = queue_row(mod, question)
    await expect(queued).to_have_count(1, timeout=WAIT_MS)
    await expect(queued.locator(".chat-name")).to_have_text("Cai")
    await expect(mod.locator(".qa-queue-count")).to_have_text("1")
    await expect(board_row(mod, question)).to_have_count(0)
    for page in (cai, dan):
        await expect(item(page, question)).to_have_count(0)
        await expect(page.locator(".qa-list .qa-item")).to_have_count(1)

    # approved: on every page, with the asker's name
    await queued.locator(".qa-approve").click()
    await expect(mod.locator("#status")).to_have_text("Question approved.", timeout=WAIT_MS)
    await expect(queued).to_have_count(0, timeout=WAIT_MS)
    await expect(mod.locator(".qa-queue-count")).to_have_text("0")
    await expect(board_row(mod, question).locator(".chat-name")).to_have_text(
        "Cai", timeout=WAIT_MS
    )
    approved = item(dan, question)
    await expect(approved).to_be_visible(timeout=WAIT_MS)
    await expect(approved.locator(".qa-author")).to_have_text("Cai")
    await expect(item(cai, question)).to_be_visible(timeout=WAIT_MS)
    await expect(item(cai, question).locator(".qa-author")).to_have_text("我")
    await expect(cai.locator(".qa-count")).to_have_text("2")
    await web.check_clean()
