"""The watch and moderate pages in a real browser against a real livehub."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from playwright.async_api import Page, expect

if TYPE_CHECKING:  # the fixture's class; not imported at run time (two conftest modules)
    from conftest import Web

SHOTS = Path("/tmp/livehub-shots")
WAIT_MS = 10_000
XSS_TEXT = '<img src=x onerror="window.__pwned=1">'
XSS_NAME = "<b>bold</b>"


# ---------------------------------------------------------------- helpers


async def join(page: Page, web: Web, room: str, name: str) -> str:
    """Open the watch page, answer the name prompt, wait for the welcome; the viewer id."""
    await web.answer_name(page, room, name)
    return await welcomed(page)


async def welcomed(page: Page) -> str:
    """Wait until the page's LiveClient has its welcome; the viewer id."""
    await expect(page.locator("#conn-state")).to_have_attribute(
        "data-state", "connected", timeout=WAIT_MS
    )
    handle = await page.wait_for_function(
        "() => window.livehub && window.livehub.client && window.livehub.client.you"
        " && window.livehub.client.you.viewer_id",
        timeout=WAIT_MS,
    )
    # let socket.io finish its polling -> websocket upgrade, so every test talks
    # over the same transport
    await page.wait_for_function(
        "() => window.livehub.client.socket.io.engine.transport.name === 'websocket'",
        timeout=WAIT_MS,
    )
    return str(await handle.json_value())


async def send(page: Page, text: str, *, expect_ok: bool = True) -> None:
    await page.locator("#chat-input").fill(text)
    await page.locator("#chat-send").click()
    if expect_ok:
        # the input is emptied once the server acked the message
        try:
            await expect(page.locator("#chat-input")).to_have_value("", timeout=WAIT_MS)
        except AssertionError as exc:
            state = await page.evaluate(
                "({status: document.getElementById('status').textContent,"
                " conn: document.getElementById('conn-state').dataset.state,"
                " transport: window.livehub.client.socket.io.engine.transport.name})"
            )
            raise AssertionError(f"message {text!r} not acked; page state {state}") from exc


def chat_item(page: Page, text: str) -> Any:
    return page.locator("#chat-list .chat-item").filter(
        has=page.locator(".chat-text", has_text=text)
    )


def overlay_item(page: Page, text: str) -> Any:
    return page.locator("#danmaku .danmaku-item", has_text=text)


async def wait_inside_stage(page: Page, text: str) -> dict[str, Any]:
    """Wait until the flying danmaku with `text` lies wholly over the video stage."""
    handle = await page.wait_for_function(
        """(text) => {
          const stage = document.getElementById('stage').getBoundingClientRect();
          const item = [...document.querySelectorAll('#danmaku .danmaku-item')]
            .find((e) => e.textContent === text);
          if (!item) return null;
          const r = item.getBoundingClientRect();
          const inside = r.width > 0 && r.height > 0 && r.left >= stage.left
            && r.right <= stage.right && r.top >= stage.top && r.bottom <= stage.bottom;
          return inside ? {stage: stage.toJSON(), item: r.toJSON()} : null;
        }""",
        arg=text,
        timeout=WAIT_MS,
        polling=50,
    )
    return dict(await handle.json_value())


def within(inner: dict[str, float], outer: dict[str, float]) -> bool:
    return (
        inner["x"] >= outer["x"] - 0.5
        and inner["y"] >= outer["y"] - 0.5
        and inner["x"] + inner["width"] <= outer["x"] + outer["width"] + 0.5
        and inner["y"] + inner["height"] <= outer["y"] + outer["height"] + 0.5
    )


# ---------------------------------------------------------------- tests


async def test_two_viewers_exchange_danmaku(web: Web) -> None:
    room = (await web.server.create_room())["room"]["id"]
    a = await web.page("A")
    b = await web.page("B")
    await join(a, web, room, "Alice")
    await join(b, web, room, "Bob")

    await send(a, "hello from alice")
    # B: in the overlay over the video, and in the chat list with the sender's name
    await expect(overlay_item(b, "hello from alice")).to_have_count(1, timeout=WAIT_MS)
    boxes = await wait_inside_stage(b, "hello from alice")
    assert within(boxes["item"], boxes["stage"]), boxes
    stage_box = await b.locator("#stage").bounding_box()
    overlay_box = await b.locator("#danmaku").bounding_box()
    assert stage_box and overlay_box and within(dict(overlay_box), dict(stage_box))
    item = chat_item(b, "hello from alice")
    await expect(item).to_have_count(1, timeout=WAIT_MS)
    await expect(item.locator(".chat-name")).to_have_text("Alice")
    # A renders its own message from the ack, once
    await expect(chat_item(a, "hello from alice")).to_have_count(1)
    await expect(overlay_item(a, "hello from alice")).to_have_count(1)

    await b.screenshot(path=str(SHOTS / "watch-danmaku.png"))

    await send(b, "hi alice, bob here")
    await expect(overlay_item(a, "hi alice, bob here")).to_have_count(1, timeout=WAIT_MS)
    await wait_inside_stage(a, "hi alice, bob here")
    await expect(chat_item(a, "hi alice, bob here").locator(".chat-name")).to_have_text(
        "Bob", timeout=WAIT_MS
    )
    # the same message id on both pages, no duplicate on the sender's page
    ids_a = await a.locator("#chat-list .chat-item").evaluate_all(
        "els => els.map(e => e.dataset.id)"
    )
    ids_b = await b.locator("#chat-list .chat-item").evaluate_all(
        "els => els.map(e => e.dataset.id)"
    )
    assert ids_a == ids_b and len(ids_a) == 2
    await web.check_clean()


async def test_markup_in_names_and_messages_is_plain_text(web: Web) -> None:
    created = await web.server.create_room()
    room = created["room"]["id"]
    a = await web.page("A")
    b = await web.page("B")
    await join(a, web, room, XSS_NAME)
    await join(b, web, room, "Bob")

    await send(a, XSS_TEXT)
    for page in (a, b):
        item = chat_item(page, XSS_TEXT)
        await expect(item).to_have_count(1, timeout=WAIT_MS)
        assert await item.locator(".chat-text").text_content() == XSS_TEXT
        assert await item.locator(".chat-name").text_content() == XSS_NAME
        dm = page.locator("#danmaku .danmaku-item")
        await expect(dm).to_have_count(1, timeout=WAIT_MS)
        assert await dm.text_content() == XSS_TEXT

    # history (welcome) goes through the same rendering
    await b.reload()
    await welcomed(b)
    await expect(chat_item(b, XSS_TEXT)).to_have_count(1, timeout=WAIT_MS)
    assert await chat_item(b, XSS_TEXT).locator(".chat-name").text_content() == XSS_NAME

    # the moderator sees the same text in the feed and in the viewer list
    mod = await web.page("moderator")
    await mod.goto(web.url(f"/moderate/{room}#token={created['moderator_token']}"))
    await welcomed(mod)
    mod_item = chat_item(mod, XSS_TEXT)
    await expect(mod_item).to_have_count(1, timeout=WAIT_MS)
    assert await mod_item.locator(".chat-name").text_content() == XSS_NAME
    await mod.locator("#viewers-refresh").click()
    await expect(
        mod.locator("#viewer-list .viewer-item .chat-name", has_text=XSS_NAME)
    ).to_have_count(1, timeout=WAIT_MS)

    for page in (a, b, mod):
        assert await page.locator("main img, main b, #danmaku img").count() == 0
        assert await page.evaluate("typeof window.__pwned") == "undefined"
    await web.check_clean()


async def test_identity_survives_reload(web: Web) -> None:
    room = (await web.server.create_room())["room"]["id"]
    page = await web.page("viewer")
    viewer_id = await join(page, web, room, "Carol")
    await send(page, "before reload one")
    await send(page, "before reload two")

    await page.reload()
    assert await welcomed(page) == viewer_id
    await expect(page.locator("#name-dialog")).to_be_hidden()
    you = await page.evaluate("window.livehub.client.you")
    assert you["name"] == "Carol" and you["role"] == "viewer"
    texts = page.locator("#chat-list .chat-item .chat-text")
    await expect(texts).to_have_text(["before reload one", "before reload two"], timeout=WAIT_MS)
    names = page.locator("#chat-list .chat-item .chat-name")
    await expect(names).to_have_text(["Carol", "Carol"])

    # messages sent after the reload still carry the same viewer id
    await send(page, "after reload")
    viewers = await page.locator("#chat-list .chat-item").evaluate_all(
        "els => els.map(e => e.dataset.viewer)"
    )
    assert viewers == [viewer_id] * 3
    await web.check_clean()


async def test_moderator_deletes_and_blocks(web: Web) -> None:
    created = await web.server.create_room()
    room = created["room"]["id"]
    mod = await web.page("moderator", viewport={"width": 1280, "height": 900})
    await mod.goto(web.url(f"/moderate/{room}#token={created['moderator_token']}"))
    await welcomed(mod)
    assert "token=" not in mod.url  # the token left the address bar
    viewer = await web.page("viewer")
    await join(viewer, web, room, "Dave")

    await send(viewer, "please delete me")
    await expect(overlay_item(viewer, "please delete me")).to_have_count(1)
    viewer_item = chat_item(viewer, "please delete me")
    await expect(viewer_item).to_have_count(1)
    message_id = await viewer_item.get_attribute("data-id")
    mod_item = mod.locator(f'#chat-list .chat-item[data-id="{message_id}"]')
    await expect(mod_item.locator(".chat-text")).to_have_text("please delete me", timeout=WAIT_MS)
    await expect(mod_item.locator(".chat-name")).to_have_text("Dave")
    await expect(mod_item.locator(".mod-mute")).to_be_visible()
    await expect(mod_item.locator(".mod-ban")).to_be_visible()
    await mod_item.locator(".mod-delete").click()
    await expect(mod_item).to_have_count(0, timeout=WAIT_MS)
    await expect(viewer_item).to_have_count(0, timeout=WAIT_MS)
    await expect(overlay_item(viewer, "please delete me")).to_have_count(0, timeout=WAIT_MS)

    # a blocked word, added through the rule form
    await mod.locator("#rule-pattern").fill("grapefruit")
    await mod.locator("#rule-form button[type=submit]").click()
    rule = mod.locator("#rules-list .rule-item")
    await expect(rule).to_have_count(1, timeout=WAIT_MS)
    await expect(rule.locator(".rule-pattern")).to_have_text("grapefruit")
    await expect(mod.locator("#rule-pattern")).to_have_value("")

    await send(viewer, "I like grapefruit a lot", expect_ok=False)
    await expect(viewer.locator("#status")).to_have_text(
        "Your message was blocked.", timeout=WAIT_MS
    )
    await expect(viewer.locator("#status")).to_have_attribute("data-kind", "error")
    # not delivered: a later message arrives, the blocked one never did
    await send(viewer, "an ordinary message")
    await expect(chat_item(mod, "an ordinary message")).to_have_count(1, timeout=WAIT_MS)
    for page in (mod, viewer):
        await expect(chat_item(page, "grapefruit")).to_have_count(0)
        await expect(overlay_item(page, "grapefruit")).to_have_count(0)

    await mod.screenshot(path=str(SHOTS / "moderate.png"), full_page=True)
    await web.check_clean()


async def test_language_toggle_and_locale(web: Web) -> None:
    room = (await web.server.create_room())["room"]["id"]
    en = await web.page("en")
    await en.goto(web.url(f"/watch/{room}"))
    await expect(en.locator("#name-dialog h2")).to_have_text("Join the chat", timeout=WAIT_MS)
    assert await en.evaluate("document.documentElement.lang") == "en"
    await join(en, web, room, "Hana")
    await expect(en.locator("#chat-send")).to_have_text("Send")
    await expect(en.locator("#chat-heading")).to_have_text("Chat")
    await expect(en.locator("#conn-state")).to_have_text("Connected")

    await en.locator("#lang-toggle").click()
    await expect(en.locator("#chat-send")).to_have_text("发送")
    await expect(en.locator("#chat-heading")).to_have_text("聊天")
    await expect(en.locator("#conn-state")).to_have_text("已连接")
    await expect(en.locator("#lang-toggle")).to_have_text("English")
    await expect(en.locator("#chat-input")).to_have_attribute("placeholder", "说点什么…")
    assert await en.evaluate("document.documentElement.lang") == "zh-CN"

    # the choice is remembered across a reload
    await en.reload()
    await welcomed(en)
    await expect(en.locator("#chat-send")).to_have_text("发送")

    await en.locator("#lang-toggle").click()
    await expect(en.locator("#chat-send")).to_have_text("Send")
    await expect(en.locator("#lang-toggle")).to_have_text("中文")
    assert await en.evaluate("document.documentElement.lang") == "en"

    zh = await web.page("zh", locale="zh-CN")
    await zh.goto(web.url(f"/watch/{room}"))
    await expect(zh.locator("#name-dialog h2")).to_have_text("加入聊天", timeout=WAIT_MS)
    await expect(zh.locator("#chat-send")).to_have_text("发送")
    await expect(zh.locator("#lang-toggle")).to_have_text("English")
    assert await zh.evaluate("document.documentElement.lang") == "zh-CN"
    await web.check_clean()


async def test_likes_reach_other_viewer(web: Web) -> None:
    room = (await web.server.create_room())["room"]["id"]
    a = await web.page("A")
    b = await web.page("B")
    await join(a, web, room, "Erin")
    await join(b, web, room, "Frank")
    await expect(b.locator("#like-count")).to_have_text("0")

    for _ in range(3):
        await a.locator("#like-button").click()
    await expect(a.locator("#like-count")).to_have_text("3", timeout=WAIT_MS)
    await expect(b.locator("#like-count")).to_have_text("3", timeout=WAIT_MS)
    for _ in range(2):
        await b.locator("#like-button").click()
    await expect(a.locator("#like-count")).to_have_text("5", timeout=WAIT_MS)
    await expect(b.locator("#like-count")).to_have_text("5", timeout=WAIT_MS)
    await expect(a.locator("#viewer-count")).to_have_text("2", timeout=WAIT_MS)
    await web.check_clean()


async def test_phone_viewport(web: Web) -> None:
    room = (await web.server.create_room())["room"]["id"]
    phone = await web.page(
        "phone",
        viewport={"width": 390, "height": 844},
        device_scale_factor=3,
        is_mobile=True,
        has_touch=True,
    )
    # the name prompt fits the screen
    await phone.goto(web.url(f"/watch/{room}"))
    for selector in ("#name-input", "#name-submit"):
        await expect(phone.locator(selector)).to_be_in_viewport(timeout=WAIT_MS)
    assert await phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    await join(phone, web, room, "Gwen")
    await send(phone, "hello from a phone")
    await expect(chat_item(phone, "hello from a phone")).to_have_count(1)

    for selector in ("#stage", "#chat-input", "#chat-send", "#like-button"):
        await expect(phone.locator(selector)).to_be_visible()
        await expect(phone.locator(selector)).to_be_in_viewport()
    sizes = await phone.evaluate(
        "({scroll: document.documentElement.scrollWidth, inner: window.innerWidth,"
        " body: document.body.scrollWidth})"
    )
    assert sizes["inner"] == 390, sizes
    assert sizes["scroll"] <= sizes["inner"] and sizes["body"] <= sizes["inner"], sizes
    stage = await phone.locator("#stage").bounding_box()
    assert stage and stage["width"] > 300 and stage["height"] > 150, stage
    await wait_inside_stage(phone, "hello from a phone")
    await phone.screenshot(path=str(SHOTS / "watch-phone.png"))
    await web.check_clean()
