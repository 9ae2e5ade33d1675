"""The engagement report in a real browser against a real livehub: the served HTML
report (SVG charts, English and Chinese, its own CSP, no console error) and the
report page that lists a room's streams and offers the downloads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from playwright.async_api import Page, expect
from support import Server

if TYPE_CHECKING:  # the fixture's class; not imported at run time (two conftest modules)
    from conftest import Web

SHOTS = Path("/tmp/livehub-shots")
WAIT_MS = 10_000
XSS_NAME = "<img src=x onerror=window.pw=1>"  # tokens keep 32 characters of a name


async def finished_stream(server: Server) -> tuple[str, str, str, str]:
    """A room with one ended stream where two viewers chatted and liked;
    (room, stream id, host token, viewer token)."""
    created = await server.create_room(settings={"max_danmaku_per_second": 0})
    room, host_token = created["room"]["id"], created["host_token"]
    status, stream = await server.api("POST", f"/api/rooms/{room}/streams", token=host_token)
    assert status == 201, stream
    viewer_token = server.token(room, "viewer", XSS_NAME, viewer_id="v-xss")
    ann = await server.client(room, viewer_token)
    bob = await server.client(room, name="Bob", viewer_id="v-bob")
    for client, text in ((ann, "hello"), (bob, "hi there")):
        ack = await client.chat(text)
        assert ack["ok"], ack
    assert (await bob.call("like", {"count": 4}))["ok"]
    for client in (ann, bob):
        await client.close()
    status, _ = await server.api("DELETE", f"/api/rooms/{room}/streams/current", token=host_token)
    assert status == 200
    return room, str(stream["id"]), host_token, viewer_token


async def open_served_report(web: Web, path: str, token: str, name: str, **opts: Any) -> Page:
    page = await web.page(name, extra_http_headers={"Authorization": f"Bearer {token}"}, **opts)
    response = await page.goto(web.url(path))
    assert response is not None and response.status == 200
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp
    return page


async def test_served_html_report_in_english_and_chinese(web: Web) -> None:
    room, stream, host_token, _ = await finished_stream(web.server)
    path = f"/api/rooms/{room}/streams/{stream}/report?format=html"

    page = await open_served_report(web, path, host_token, "report-en")
    await expect(page.locator("h1")).to_have_text("Engagement report")
    assert await page.locator("svg.chart").count() >= 4
    assert await page.locator("svg.chart polyline").count() == 2
    await expect(page.locator("table.viewers tbody tr")).to_have_count(2)
    # the hostile name is text, and the inline styles applied (the CSP allows them)
    await expect(page.locator("table.viewers td.name", has_text=XSS_NAME)).to_have_count(1)
    assert await page.evaluate("window.pw") is None
    background = await page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(244, 245, 247)"
    assert await page.evaluate("document.scripts.length") == 0
    await page.screenshot(path=str(SHOTS / "report-html-en.png"), full_page=True)

    zh = await open_served_report(web, path + "&lang=zh-CN", host_token, "report-zh")
    await expect(zh.locator("h1")).to_have_text("直播互动数据报告")
    assert await zh.evaluate("document.documentElement.lang") == "zh-CN"
    await expect(zh.locator("h2").first).to_have_text("概览")
    assert await zh.locator("svg.chart").count() >= 4

    await web.check_clean()


async def test_report_page_lists_streams_and_downloads(web: Web, tmp_path: Path) -> None:
    room, stream, host_token, _ = await finished_stream(web.server)
    page = await web.page("reports", accept_downloads=True)
    await page.goto(web.url(f"/rooms/{room}/report#token={host_token}"))

    item = page.locator(f"li.report-stream[data-stream='{stream}']")
    await expect(item).to_be_visible(timeout=WAIT_MS)
    assert "token=" not in page.url  # taken out of the address bar
    viewers = item.locator(".report-number[data-key='viewers'] dd")
    await expect(viewers).to_have_text("2", timeout=WAIT_MS)
    await expect(item.locator(".report-number[data-key='likes'] dd")).to_have_text("4")
    await expect(item.locator(".report-number[data-key='messages'] dd")).to_have_text("2")
    await expect(item.locator(".report-replay")).to_have_count(0)  # no recording yet
    async with page.context.expect_page() as opened:
        await item.locator("a.report-open").click()
    tab = await opened.value
    await tab.wait_for_url("**/report?format=html*", timeout=WAIT_MS)
    assert f"/api/rooms/{room}/streams/{stream}/report?format=html" in tab.url
    assert "sig=" in tab.url and host_token not in tab.url  # a signed link, not the token
    await expect(tab.locator("svg").first).to_be_visible(timeout=WAIT_MS)
    await tab.close()

    async with page.expect_download() as info:
        await item.locator("button.report-json").click()
    download = await info.value
    assert download.suggested_filename == f"{room}-{stream}-report.json"
    saved = tmp_path / "report.json"
    await download.save_as(saved)
    body = json.loads(saved.read_text(encoding="utf-8"))
    assert body["meta"]["stream"] == stream and body["summary"]["unique_viewers"] == 2

    async with page.expect_download() as info:
        await item.locator("button.report-csv").click()
    download = await info.value
    assert download.suggested_filename == f"{room}-{stream}-viewers.csv"
    await download.save_as(tmp_path / "viewers.csv")
    csv_text = (tmp_path / "viewers.csv").read_text(encoding="utf-8-sig")
    assert csv_text.startswith("pid,name,") and "Bob" in csv_text

    async with page.expect_download() as info:
        await item.locator("button.report-html").click()
    download = await info.value
    await download.save_as(tmp_path / "report.html")
    html_text = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert html_text.startswith("<!doctype html>") and "<svg" in html_text

    # Chinese: the page's own strings and the HTML report it links to
    await page.locator("#lang-toggle").click()
    await expect(page.locator(".room-title [data-i18n='report.title']")).to_have_text(
        "直播数据报告"
    )
    item = page.locator(f"li.report-stream[data-stream='{stream}']")
    await expect(item.locator("a.report-open")).to_have_text("打开报告")
    async with page.context.expect_page() as opened:
        await item.locator("a.report-open").click()
    tab = await opened.value
    await tab.wait_for_url("**lang=zh-CN*", timeout=WAIT_MS)
    await tab.close()
    await page.screenshot(path=str(SHOTS / "report-page.png"), full_page=True)
    await web.check_clean()


async def test_report_page_refuses_a_viewer_link(web: Web) -> None:
    room, _, _, viewer_token = await finished_stream(web.server)
    page = await web.page("viewer-reports")
    await page.goto(web.url(f"/rooms/{room}/report#token={viewer_token}"))
    await expect(page.locator("#notice")).to_be_visible(timeout=WAIT_MS)
    await expect(page.locator("#notice")).to_contain_text("does not give access")
    await expect(page.locator("li.report-stream")).to_have_count(0)
    await web.check_clean()
