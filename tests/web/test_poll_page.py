"""Poll and quiz cards on the watch page, and their panels on the moderate page,
in a real browser against a real livehub.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from playwright.async_api import expect
from support import LiveClient

if TYPE_CHECKING:  # the fixture's class; not imported at run time (two conftest modules)
    from conftest import Web

SHOTS = Path("/tmp/livehub-shots")
WAIT_MS = 10_000


def ok(ack: dict[str, Any]) -> dict[str, Any]:
    assert ack["ok"] is True, ack
    return ack


async def test_viewer_votes_by_clicking_and_sees_the_tally(web: Web) -> None:
    room = (await web.server.create_room())["room"]["id"]
    host = await web.server.client(room, role="host", name="Host")
    poll = ok(
        await host.call(
            "poll_create",
            {"question": "<b>Best</b> fruit?", "kind": "single", "options": ["Apple", "Pear"]},
        )
    )["poll"]
    ok(await host.call("poll_open", {"poll_id": poll["id"]}))

    page = await web.page("viewer", viewport={"width": 390, "height": 844}, is_mobile=True)
    viewer_id = await web.join(page, room, "Vera")
    card = page.locator(f".poll-card[data-poll='{poll['id']}']")
    await expect(card).to_be_visible(timeout=WAIT_MS)
    await expect(card.locator(".poll-question")).to_have_text("<b>Best</b> fruit?")
    await expect(card.locator(".poll-bar")).to_have_count(0)  # results hidden

    await card.locator(".poll-option", has_text="Pear").click()
    await card.locator(".poll-submit").click()
    await expect(card.locator(".poll-voted")).to_be_visible(timeout=WAIT_MS)
    await expect(card.locator(".poll-form")).to_be_hidden()
    await expect(card.locator(".poll-hidden-note")).to_be_visible()
    staff = await host.wait_for("poll_staff", lambda v: v["turnout"] == 1)
    assert staff["tally"]["counts"] == [0, 1]
    (vote,) = [e async for e in web.server.services.log.scan(room) if e.kind == "poll.vote"]
    assert vote.actor == viewer_id and vote.data["choices"] == [1]

    # the host shows the results: the bars appear on the card and follow new votes
    ok(await host.call("poll_results", {"poll_id": poll["id"], "visible": True}))
    pear = card.locator(".poll-bar[data-index='1'] .poll-bar-count")
    await expect(pear).to_have_text("1 · 100%", timeout=WAIT_MS)
    bob = await web.server.client(room, name="Bob")
    ok(await bob.call("poll_vote", {"poll_id": poll["id"], "choices": [0]}))
    await expect(card.locator(".poll-bar[data-index='0'] .poll-bar-count")).to_have_text(
        "1 · 50%", timeout=WAIT_MS
    )
    await expect(pear).to_have_text("1 · 50%")
    await expect(card.locator(".poll-turnout")).to_have_text("2 votes")

    # a reload shows the poll already voted
    await page.reload()
    await expect(card.locator(".poll-voted")).to_be_visible(timeout=WAIT_MS)
    await expect(card.locator(".poll-form")).to_be_hidden()
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    await page.screenshot(path=str(SHOTS / "poll-card.png"))
    await web.check_clean()


async def test_moderator_panel_runs_a_poll(web: Web) -> None:
    created = await web.server.create_room()
    room = created["room"]["id"]
    viewer: LiveClient = await web.server.client(room, name="Ann")
    mod = await web.page("moderator", viewport={"width": 900, "height": 900})
    await mod.goto(web.url(f"/moderate/{room}#token={created['moderator_token']}"))
    panel = mod.locator(".poll-panel")
    await panel.locator(".poll-question-input").fill("Rate the show")
    await panel.locator(".poll-kind").select_option("rating")
    await expect(panel.locator(".poll-options-input")).to_be_hidden()
    await panel.locator(".poll-show-live").check()
    await panel.locator(".poll-create-submit").click()
    row = panel.locator(".poll-admin", has_text="Rate the show")
    await expect(row).to_have_attribute("data-status", "draft", timeout=WAIT_MS)
    await row.locator(".poll-action[data-event='poll_open']").click()
    await expect(row).to_have_attribute("data-status", "open", timeout=WAIT_MS)
    pushed = await viewer.wait_for("poll", lambda v: v["status"] == "open")
    assert pushed["kind"] == "rating" and pushed["results_visible"] is True
    ok(await viewer.call("poll_vote", {"poll_id": pushed["id"], "choices": [4]}))
    await expect(row.locator(".poll-bar[data-index='4'] .poll-bar-count")).to_have_text(
        "1 · 100%", timeout=WAIT_MS
    )
    await row.locator(".poll-action[data-event='poll_close']").click()
    await expect(row).to_have_attribute("data-status", "closed", timeout=WAIT_MS)
    await web.check_clean()


QUIZ_TEXT = "What is 2 + 2?\n3\n*4\n5\ntime: 30\n\nWhich are prime?\n*2\n4\n*5"


async def test_quiz_from_the_moderate_panel_to_the_viewer_card(web: Web) -> None:
    created = await web.server.create_room()
    room = created["room"]["id"]
    mod = await web.page("moderator", viewport={"width": 1280, "height": 900})
    await mod.goto(web.url(f"/moderate/{room}#token={created['moderator_token']}"))
    page = await web.page("viewer")
    await web.join(page, room, "Quinn")

    panel = mod.locator(".quiz-panel")
    await panel.locator(".quiz-title-input").fill("Maths")
    await panel.locator(".quiz-text-input").fill(QUIZ_TEXT)
    await panel.locator(".quiz-create-submit").click()
    row = panel.locator(".quiz-admin", has_text="Maths")
    await expect(row).to_have_attribute("data-status", "ready", timeout=WAIT_MS)
    await row.locator(".quiz-action[data-event='quiz_next']").click()
    await expect(row).to_have_attribute("data-status", "question", timeout=WAIT_MS)

    card = page.locator(".quiz-card")
    await expect(card.locator(".quiz-question")).to_have_text("What is 2 + 2?", timeout=WAIT_MS)
    await expect(card.locator(".quiz-countdown")).to_have_text(re.compile(r"^(30|29|28) s$"))
    await card.locator(".quiz-option", has_text="4").click()
    await expect(card.locator(".quiz-locked")).to_be_visible(timeout=WAIT_MS)
    await expect(row.locator(".quiz-answer-count")).to_have_text("1 answered", timeout=WAIT_MS)

    await row.locator(".quiz-action[data-event='quiz_reveal']").click()
    correct = card.locator(".quiz-option.is-correct")
    await expect(correct).to_have_text("4", timeout=WAIT_MS)
    await expect(correct).to_have_attribute("data-count", "1")
    await expect(card.locator(".quiz-result")).to_have_text(
        re.compile(r"^Correct! \+\d+$"), timeout=WAIT_MS
    )
    await expect(card.locator(".quiz-leaderboard .quiz-name")).to_have_text(["Quinn"])
    await expect(card.locator(".quiz-you")).to_contain_text("rank #1")

    await row.locator(".quiz-action[data-event='quiz_end']").click()
    await expect(card).to_have_attribute("data-phase", "podium", timeout=WAIT_MS)
    await expect(card.locator(".quiz-podium .quiz-name")).to_have_text(["Quinn"])
    await page.screenshot(path=str(SHOTS / "quiz-card.png"))
    await web.check_clean()
