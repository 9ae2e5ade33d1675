# ruff: noqa: E501  (long playwright locator chains read better unwrapped)
"""Draw and offer cards, the moderator panels and the public verify page in headless Chromium."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from playwright.async_api import expect

if TYPE_CHECKING:
    from conftest import Web

WAIT_MS = 10_000


async def test_draw_offer_verify(web: Web) -> None:
    server = web.server
    created = await server.create_room()
    room = created["room"]["id"]
    mod_page = await web.page("mod", viewport={"width": 700, "height": 1000})
    await mod_page.goto(web.url(f"/moderate/{room}#token={created['host_token']}"))
    await expect(mod_page.locator(".draw-panel")).to_be_visible(timeout=WAIT_MS)
    await expect(mod_page.locator(".offer-panel")).to_be_visible(timeout=WAIT_MS)

    ann = await web.page(
        "ann", viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    await web.join(ann, room, "Ann")
    bob = await web.page("bob")
    await web.join(bob, room, "Bob")

    # moderator starts a present draw through the form
    await mod_page.locator(".draw-prize-input").fill("A <b>signed</b> mug")
    await mod_page.locator(".draw-winners-input").fill("1")
    await mod_page.locator(".draw-create-submit").click()
    await expect(mod_page.locator(".draw-admin")).to_have_count(1, timeout=WAIT_MS)

    card = ann.locator(".draw-card")
    await expect(card).to_be_visible(timeout=WAIT_MS)
    await expect(card.locator(".draw-prize")).to_have_text("A <b>signed</b> mug")
    await expect(card.locator(".draw-countdown")).to_contain_text("s left")
    await card.locator(".draw-enter").click()
    await expect(card.locator(".draw-entered")).to_be_visible(timeout=WAIT_MS)
    await expect(mod_page.locator(".draw-admin .draw-count")).to_have_text(
        "1 entered", timeout=WAIT_MS
    )

    await mod_page.locator(".draw-draw_pick").click()
    await expect(card.locator(".draw-you-won")).to_be_visible(timeout=WAIT_MS)
    await expect(card.locator(".draw-commitment")).to_contain_text("Commitment")
    bob_card = bob.locator(".draw-card")
    await expect(bob_card.locator(".draw-winner")).to_have_text("Ann", timeout=WAIT_MS)
    await expect(bob_card.locator(".draw-you-won")).to_have_count(0)
    href = await card.locator(".draw-verify").get_attribute("href")
    draw_id = href.split("draw=")[1]
    assert href == f"/verify?room={room}&draw={draw_id}"
    assert await card.locator(".draw-verify").get_attribute("rel") == "noopener"

    # Chinese
    await bob.locator("#lang-toggle").click()
    await expect(bob_card.locator(".draw-label")).to_have_text("抽奖")

    # verify page, WebCrypto path
    v = await web.page("verify")
    await v.goto(web.url(href))
    await expect(v.locator("#verify-result")).to_have_attribute(
        "data-verdict", "ok", timeout=WAIT_MS
    )
    await expect(v.locator(".verify-step[data-state=pass]")).to_have_count(6)
    status, record = await server.api(
        "GET", f"/api/rooms/{room}/draws/{draw_id}/transcript", token=None
    )
    assert status == 200
    # tampered paste
    tampered = {**record, "seed": "ab" * 32}
    await v.locator("#verify-paste-box summary").click()
    await v.locator("#verify-json").fill(json.dumps(tampered))
    await v.locator("#verify-check").click()
    await expect(v.locator("#verify-result")).to_have_attribute(
        "data-verdict", "failed", timeout=WAIT_MS
    )
    await expect(v.locator("#verify-verdict")).to_have_text(
        "✗ FAILED: seed_hash does not match the seed"
    )

    # verify page without crypto.subtle (plain http): same answers from the JS SHA-256
    ctx = await web.browser.new_context(locale="en-US")
    web.contexts.append(ctx)
    await ctx.add_init_script(
        "Object.defineProperty(globalThis.crypto, 'subtle', {value: undefined, configurable: true});"
    )
    nv = await ctx.new_page()
    errors = []
    nv.on("pageerror", lambda e: errors.append(str(e)))
    await nv.goto(web.url(href))
    assert await nv.evaluate("globalThis.crypto.subtle === undefined")
    await expect(nv.locator("#verify-result")).to_have_attribute(
        "data-verdict", "ok", timeout=WAIT_MS
    )
    # many entrants, unicode, several winners: JS and Python agree
    from livehub.interactions import draw_proof as proof

    ids = proof.normalise_entrants(
        [f"v_{i}" for i in range(300)] + ["é", "中文", "😀", "\uffff", "a"]
    )
    big = proof.transcript(
        room="r",
        draw_id="d",
        prize="p",
        rule={"kind": "present"},
        winners_count=7,
        entrants=ids,
        seed_hex="13" * 32,
        committed_at=1.0,
        revealed_at=2.0,
    )
    for page in (nv, v):
        await page.locator("#verify-paste-box").evaluate("d => d.open = true")
        await page.locator("#verify-json").fill(json.dumps(big))
        await page.locator("#verify-check").click()
        await expect(page.locator("#verify-result")).to_have_attribute(
            "data-verdict", "ok", timeout=WAIT_MS
        )
        wrong = {**big, "winners": big["winners"][::-1]}
        await page.locator("#verify-json").fill(json.dumps(wrong))
        await page.locator("#verify-check").click()
        await expect(page.locator("#verify-verdict")).to_have_text(
            "✗ FAILED: the winners are not the ones the seed picks", timeout=WAIT_MS
        )
    assert errors == []

    # offers
    await mod_page.locator(".offer-title-input").fill("Course -30%")
    await mod_page.locator(".offer-text-input").fill("Until midnight <script>x</script>")
    await mod_page.locator(".offer-url-input").fill("https://shop.example/c")
    await mod_page.locator(".offer-cta-input").fill("Get it")
    await mod_page.locator(".offer-create-submit").click()
    ocard = ann.locator(".offer-card")
    await expect(ocard).to_be_visible(timeout=WAIT_MS)
    await expect(ocard.locator(".offer-text")).to_have_text("Until midnight <script>x</script>")
    link = ocard.locator(".offer-link")
    await expect(link).to_have_text("Get it")
    href = await link.get_attribute("href")
    token = await ann.evaluate(f"localStorage.getItem('livehub.token.{room}')")
    assert href.startswith(f"/o/{room}/o_") and href.endswith(f"?t={token}"), href
    assert await link.get_attribute("target") == "_blank"
    assert "noopener" in await link.get_attribute("rel")
    await expect(ocard.locator(".offer-host")).to_have_text("Opens shop.example")
    # a click goes through the server: count it (the external site may be unreachable)
    async with server.http.get(server.url + href, allow_redirects=False) as resp:
        assert resp.status == 302
    await expect(mod_page.locator(".offer-clicks")).to_have_text("1 clicks", timeout=WAIT_MS)
    # late joiner sees it
    cat = await web.page("cat")
    await web.join(cat, room, "Cat")
    await expect(cat.locator(".offer-card")).to_be_visible(timeout=WAIT_MS)
    # withdraw
    await mod_page.locator(".offer-withdraw").click()
    await expect(ocard).to_have_count(0, timeout=WAIT_MS)
    await expect(cat.locator(".offer-card")).to_have_count(0, timeout=WAIT_MS)

    # keyword draw from the form: hint shown
    await mod_page.locator(".draw-kind").select_option("keyword")
    await mod_page.locator(".draw-prize-input").fill("Sticker")
    await mod_page.locator(".draw-keyword-input").fill("lucky")
    await mod_page.locator(".draw-create-submit").click()
    kcard = cat.locator(".draw-card[data-status=open]")
    await expect(kcard.locator(".draw-rule")).to_have_text(
        "Send “lucky” in the chat to enter.", timeout=WAIT_MS
    )
    await kcard.locator(".draw-enter").click()
    await expect(cat.locator("#status")).to_contain_text("lucky", timeout=WAIT_MS)
    await web.check_clean()
