"""The studio goes live from a (fake) camera over WHIP and a watch page plays it over
WHEP, in headless Chromium against a real livehub.

Chromium does not gather loopback ICE candidates, and aiortc skips 127.0.0.1 too:
the media flows over the machine's own non-loopback address, which both offer as
a host candidate (mDNS hiding is switched off so Chromium offers the IP itself).
The server listens on 0.0.0.0 as it would in production, and the pages load from
http://127.0.0.1, a secure context, so getUserMedia works without TLS.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Browser, Page, Response, async_playwright, expect
from support import Server, free_port, make_settings, start_server, stop_server

if TYPE_CHECKING:  # the fixture's class; not imported at run time (two conftest modules)
    from conftest import Web

WAIT_MS = 15_000
CHROMIUM = "/usr/bin/chromium"
HAVE_CHROMIUM = Path(CHROMIUM).exists()
MEDIA_ARGS = [
    # generated 30 fps cameras and beeping microphones; fake_device_1 is a depth
    # camera (16-bit grey, which no encoder takes), 0 and 2 are ordinary ones
    "--use-fake-device-for-media-stream=fps=30,device-count=3",
    "--use-fake-ui-for-media-stream",  # no permission prompt
    "--disable-features=WebRtcHideLocalIpsWithMdns",  # real IPs in candidates, not .local names
    "--autoplay-policy=user-gesture-required",  # what a phone does: sound needs a tap
]


def web_conftest() -> Any:
    """tests/web/conftest.py as pytest loaded it (before this module)."""
    path = str(Path(__file__).with_name("conftest.py"))
    for module in list(sys.modules.values()):
        if getattr(module, "__file__", None) == path and hasattr(module, "LAUNCH_ARGS"):
            return module
    raise AssertionError("tests/web/conftest.py is not loaded")


def web_launch_args() -> list[str]:
    return list(web_conftest().LAUNCH_ARGS)


def non_loopback_ip() -> str | None:
    """The address this machine would use for a private network (nothing is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 9))  # UDP connect only picks a route
            ip = str(s.getsockname()[0])
        except OSError:
            return None
    return None if ip.startswith("127.") else ip


def skip_without_a_non_loopback_address() -> None:
    if non_loopback_ip() is None:
        pytest.skip("no non-loopback IPv4 address: Chromium cannot reach aiortc over loopback")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Overrides the web conftest's browser: the same flags plus a fake camera."""
    if not HAVE_CHROMIUM:
        pytest.fail(f"{CHROMIUM} is not installed: run scripts/install-system")
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=web_launch_args() + MEDIA_ARGS)
        try:
            yield b
        finally:
            await b.close()


@pytest.fixture
async def memory_server(tmp_path: Path) -> AsyncIterator[Server]:
    """Overrides the shared fixture: listening on every interface (see the module doc)."""
    skip_without_a_non_loopback_address()
    srv = await start_server(make_settings(tmp_path / "data", host="0.0.0.0"))
    yield srv
    await stop_server(srv)


# ---------------------------------------------------------------- helpers


def record_failed_requests(page: Page) -> list[str]:
    """Every answer of 400 or more the page gets, as "METHOD /path STATUS"."""
    failed: list[str] = []

    def on_response(response: Response) -> None:
        if response.status >= 400:
            path = urlsplit(response.url).path
            failed.append(f"{response.request.method} {path} {response.status}")

    page.on("response", on_response)
    return failed


async def open_studio(web: Web, room: str, token: str) -> Page:
    page = await web.page("studio", viewport={"width": 1300, "height": 900})
    await page.goto(web.url(f"/studio/{room}#token={token}"))
    await expect(page.locator("#conn-state")).to_have_attribute(
        "data-state", "connected", timeout=WAIT_MS
    )
    await expect(page.locator("#preview-box")).to_have_class("studio-preview has-media")
    await page.wait_for_function(
        "() => { const v = document.getElementById('preview');"
        " return v.videoWidth > 0 && v.srcObject.getVideoTracks().length === 1"
        " && v.srcObject.getAudioTracks().length === 1; }",
        timeout=WAIT_MS,
    )
    return page


async def decoded_frames(page: Page) -> dict[str, Any]:
    return dict(
        await page.evaluate(
            "() => { const v = document.getElementById('video');"
            " const q = v.getVideoPlaybackQuality();"
            " return {frames: q.totalVideoFrames, width: v.videoWidth, height: v.videoHeight,"
            " muted: v.muted, paused: v.paused}; }"
        )
    )


async def wait_for_frames(page: Page, more_than: int = 0) -> dict[str, Any]:
    await page.wait_for_function(
        "(n) => { const v = document.getElementById('video');"
        " return v.videoWidth > 0 && v.getVideoPlaybackQuality().totalVideoFrames > n; }",
        arg=more_than,
        timeout=WAIT_MS,
    )
    return await decoded_frames(page)


async def inbound_video_codec(page: Page) -> str:
    """The codec of the watch page's WHEP session, from its RTCPeerConnection stats."""
    return str(
        await page.evaluate(
            """async () => {
              const stats = await window.livehub.player.session.pc.getStats();
              let codecId = null;
              stats.forEach((s) => {
                if (s.type === 'inbound-rtp' && s.kind === 'video') codecId = s.codecId;
              });
              const codec = codecId && stats.get(codecId);
              return codec ? codec.mimeType : 'none';
            }"""
        )
    )


# ---------------------------------------------------------------- tests


async def test_the_studio_goes_live_and_a_viewer_plays_it(web: Web) -> None:
    server = web.server
    created = await server.create_room()
    room = created["room"]["id"]
    studio = await open_studio(web, room, created["host_token"])
    # the interaction panels are run from the studio too
    assert await studio.locator("#controls > *").count() >= 5

    # a viewer is already waiting when the host goes live
    viewer = await web.page("viewer", viewport={"width": 1000, "height": 700})
    failed = record_failed_requests(viewer)
    await web.join(viewer, room, "Vic")
    await expect(viewer.locator("#stage-placeholder")).to_have_text("Waiting for the host…")
    assert await viewer.locator("#stage").get_attribute("data-playback") is None

    go_live = studio.locator("#go-live")
    await expect(go_live).to_be_enabled(timeout=WAIT_MS)
    await go_live.click()
    await expect(studio.locator("#publish-state")).to_have_attribute(
        "data-state", "live", timeout=WAIT_MS
    )
    await expect(studio.locator("#live-badge")).to_have_attribute("data-live", "on")
    status, body = await server.api("GET", f"/api/rooms/{room}")
    assert status == 200 and body["live"] is True, body

    await expect(viewer.locator("#stage")).to_have_attribute(
        "data-playback", "webrtc", timeout=WAIT_MS
    )
    first = await wait_for_frames(viewer)
    assert first["width"] > 0 and first["height"] > 0, first
    # frames keep arriving and decoding (not one stuck picture)
    later = await wait_for_frames(viewer, first["frames"] + 15)
    assert later["frames"] > first["frames"] + 15, later
    await expect(viewer.locator("#stage")).to_have_class("stage has-media")
    # the publisher's H.264 preference held all the way to the viewer
    assert await inbound_video_codec(viewer) == "video/H264"

    # muted autoplay; one tap turns the sound on
    unmute = viewer.locator(".player-unmute")
    await expect(unmute).to_be_visible()
    assert first["muted"] is True
    await unmute.click()
    await expect(unmute).to_be_hidden()
    assert (await decoded_frames(viewer))["muted"] is False

    # the studio sees the viewer, their likes and their chat, and moderates it
    await expect(studio.locator("#viewer-count")).not_to_have_text("0", timeout=WAIT_MS)
    await viewer.locator("#like-button").click()
    await expect(studio.locator("#like-count")).to_have_text("1", timeout=WAIT_MS)
    await viewer.locator("#chat-input").fill("hello from the couch")
    await viewer.locator("#chat-send").click()
    line = studio.locator("#chat-list .chat-item").filter(has_text="hello from the couch")
    await expect(line).to_be_visible(timeout=WAIT_MS)
    await line.locator(".mod-delete").click()
    await expect(
        viewer.locator("#chat-list .chat-item").filter(has_text="hello from the couch")
    ).to_have_count(0, timeout=WAIT_MS)

    # Stop: the stream ends for the viewer too
    await studio.locator("#stop-live").click()
    await expect(studio.locator("#publish-state")).to_have_attribute("data-state", "idle")
    await expect(viewer.locator("#live-badge")).to_have_attribute(
        "data-live", "off", timeout=WAIT_MS
    )
    await expect(viewer.locator("#stage")).not_to_have_attribute("data-playback", "webrtc")
    await expect(viewer.locator("#stage")).to_have_class("stage")
    assert await viewer.evaluate("document.getElementById('video').srcObject") is None
    status, body = await server.api("GET", f"/api/rooms/{room}")
    assert body["live"] is False, body

    # going live again starts a new stream, and the viewer plays that one (with sound now)
    frames_before = (await decoded_frames(viewer))["frames"]
    await go_live.click()
    await expect(viewer.locator("#stage")).to_have_attribute(
        "data-playback", "webrtc", timeout=WAIT_MS
    )
    again = await wait_for_frames(viewer, frames_before)
    assert again["width"] > 0 and again["muted"] is False, again
    await studio.locator("#stop-live").click()
    await expect(viewer.locator("#live-badge")).to_have_attribute(
        "data-live", "off", timeout=WAIT_MS
    )

    # The viewer DELETEs its session when the room stops being live; the server may
    # have ended it first (it ends viewers with the stream) and answer 404, which
    # Chromium logs as a console error. Nothing else may fail.
    assert all(f.startswith("DELETE /whep/") and f.endswith(" 404") for f in failed), failed
    await web.check_clean(allow_console=("status of 404 (Not Found)",))


async def test_a_lost_studio_reconnects_and_the_viewer_sees_paused_then_the_same_stream(
    web: Web,
) -> None:
    server = web.server
    created = await server.create_room()
    room = created["room"]["id"]
    studio = await open_studio(web, room, created["host_token"])
    viewer = await web.page("viewer", viewport={"width": 1000, "height": 700})
    await web.join(viewer, room, "Vic")
    go_live = studio.locator("#go-live")
    await expect(go_live).to_be_enabled(timeout=WAIT_MS)
    await go_live.click()
    await expect(viewer.locator("#stage")).to_have_attribute(
        "data-playback", "webrtc", timeout=WAIT_MS
    )
    first = await wait_for_frames(viewer)
    stream_id = (await server.api("GET", f"/api/rooms/{room}"))[1]["stream_id"]

    # The studio's connection drops (as Chromium reports a lost network): no DELETE.
    await studio.evaluate(
        "() => { const h = window.livehub.studio.handle; h.pc.close(); h._report('failed'); }"
    )
    # The viewer is told, instead of a frozen LIVE frame.
    await expect(viewer.locator("#live-badge")).to_have_attribute(
        "data-live", "paused", timeout=WAIT_MS
    )
    await expect(viewer.locator("#live-badge")).to_have_text("Paused, reconnecting…")
    await expect(viewer.locator("#stage-placeholder")).to_have_text("Paused, reconnecting…")
    await expect(viewer.locator("#stage")).not_to_have_class("stage has-media")

    # The studio publishes again by itself; the viewer plays on without a reload.
    await expect(studio.locator("#publish-state")).to_have_attribute(
        "data-state", "live", timeout=WAIT_MS
    )
    await expect(viewer.locator("#live-badge")).to_have_attribute(
        "data-live", "on", timeout=WAIT_MS
    )
    await expect(viewer.locator("#stage")).to_have_attribute(
        "data-playback", "webrtc", timeout=WAIT_MS
    )
    await wait_for_frames(viewer, first["frames"])
    view = (await server.api("GET", f"/api/rooms/{room}"))[1]
    assert view["live"] and not view["paused"] and view["stream_id"] == stream_id
    status, listed = await server.api("GET", f"/api/rooms/{room}/streams")
    assert status == 200 and [s["id"] for s in listed["streams"]] == [stream_id]
    await web.check_clean()


async def test_switching_cameras_while_live_keeps_the_stream_going(web: Web) -> None:
    """Picking another camera and microphone replaces the tracks; the viewer keeps decoding."""
    created = await web.server.create_room()
    room = created["room"]["id"]
    studio = await open_studio(web, room, created["host_token"])
    camera = studio.locator("#camera-select")
    await expect(camera.locator("option")).to_have_count(3)
    await expect(camera).to_be_enabled()
    assert await sent_track_label(studio, "video") is None  # not live yet
    await studio.locator("#go-live").click()
    await expect(studio.locator("#publish-state")).to_have_attribute(
        "data-state", "live", timeout=WAIT_MS
    )
    assert await sent_track_label(studio, "video") == "fake_device_0"
    other = "fake_device_2"
    viewer = await web.page("viewer")
    await web.join(viewer, room, "Vic")
    before = await wait_for_frames(viewer)

    await camera.select_option(label=other)
    await studio.wait_for_function(
        "(label) => { const h = window.livehub.studio.handle;"
        " const s = h && h.pc.getSenders().find((x) => x.track && x.track.kind === 'video');"
        " return s && s.track.label === label && s.track.readyState === 'live'; }",
        arg=other,
        timeout=WAIT_MS,
    )
    preview = await studio.evaluate(
        "() => window.livehub.studio.stream.getVideoTracks().map((t) => t.label)"
    )
    assert preview == [other]  # one camera track: the old one is stopped and gone
    mic = studio.locator("#mic-select")
    await mic.select_option(label="Fake Audio Input 2")
    await studio.wait_for_function(
        "() => { const h = window.livehub.studio.handle;"
        " const s = h.pc.getSenders().find((x) => x.track && x.track.kind === 'audio');"
        " return s && s.track.label === 'Fake Audio Input 2'; }",
        timeout=WAIT_MS,
    )
    after = await wait_for_frames(viewer, before["frames"] + 30)
    assert after["width"] > 0
    assert await studio.locator("#publish-state").get_attribute("data-state") == "live"
    await web.check_clean()


async def sent_track_label(page: Page, kind: str) -> str | None:
    label = await page.evaluate(
        """(kind) => {
          const h = window.livehub.studio.handle;
          const s = h && h.pc.getSenders().find((x) => x.track && x.track.kind === kind);
          return s ? s.track.label : null;
        }""",
        kind,
    )
    return None if label is None else str(label)


async def test_without_webrtc_media_the_watch_page_falls_back_to_hls(web: Web) -> None:
    """Live over REST with nothing published here: WHEP says no_media, so the page loads
    hls.js and asks for the room's playlist (until HLS packaging is there it 404s, and
    the page keeps asking); when the stream stops, it stops."""
    server = web.server
    created = await server.create_room()
    room = created["room"]["id"]
    viewer = await web.page("viewer")
    failed = record_failed_requests(viewer)
    playlists: list[str] = []
    viewer.on(
        "request",
        lambda r: playlists.append(urlsplit(r.url).path) if "/hls/" in r.url else None,
    )
    await web.join(viewer, room, "Vic")
    status, body = await server.api(
        "POST", f"/api/rooms/{room}/streams", token=created["host_token"]
    )
    assert status == 201, body

    await expect(viewer.locator("#stage")).to_have_attribute(
        "data-playback", "hls", timeout=WAIT_MS
    )
    await expect(viewer.locator("#stage-placeholder")).to_have_text("Connecting to the stream…")
    await viewer.wait_for_function("() => typeof window.Hls === 'function'", timeout=WAIT_MS)
    await viewer.wait_for_function(
        "(n) => performance.getEntriesByType('resource')"
        ".filter((e) => e.name.includes('/hls/')).length >= n",
        arg=1,
        timeout=WAIT_MS,
    )
    assert playlists and set(playlists) == {f"/hls/{room}/index.m3u8"}, playlists
    assert f"POST /whep/{room} 409" in failed, failed

    status, body = await server.api(
        "DELETE", f"/api/rooms/{room}/streams/current", token=created["host_token"]
    )
    assert status == 200, body
    await expect(viewer.locator("#live-badge")).to_have_attribute(
        "data-live", "off", timeout=WAIT_MS
    )
    assert await viewer.locator("#stage").get_attribute("data-playback") is None
    await expect(viewer.locator("#stage-placeholder")).to_have_text("Waiting for the host…")
    asked = len(playlists)
    await viewer.wait_for_timeout(1500)  # longer than the first retry delay
    assert len(playlists) == asked, "the page kept asking for the playlist after the stream"
    # a WHEP 409 and playlist 404s are expected (Chromium logs each as a console error)
    assert all(
        f == f"POST /whep/{room} 409" or f.startswith(f"GET /hls/{room}/") for f in failed
    ), failed
    await web.check_clean(allow_console=("Failed to load resource",))


async def test_a_browser_without_webrtc_plays_the_studio_over_hls(web: Web) -> None:
    """The same studio stream, packaged as HLS by the server, played by hls.js."""
    created = await web.server.create_room()
    room = created["room"]["id"]
    studio = await open_studio(web, room, created["host_token"])
    await studio.locator("#go-live").click()
    await expect(studio.locator("#publish-state")).to_have_attribute(
        "data-state", "live", timeout=WAIT_MS
    )
    viewer = await web.page("viewer")
    await viewer.add_init_script("delete window.RTCPeerConnection;")
    await web.join(viewer, room, "Vic")
    await expect(viewer.locator("#stage")).to_have_attribute("data-playback", "hls")
    first = await wait_for_frames(viewer)
    assert first["width"] > 0 and first["height"] > 0, first
    await wait_for_frames(viewer, first["frames"] + 15)
    await expect(viewer.locator("#stage")).to_have_class("stage has-media")
    await web.check_clean(allow_console=("Failed to load resource",))


async def test_the_studio_needs_a_host_link(web: Web) -> None:
    created = await web.server.create_room()
    room = created["room"]["id"]
    for token, text in (
        (created["moderator_token"], "only the host can go live"),
        (None, "This page needs the host link"),
    ):
        page = await web.page("studio")
        suffix = f"#token={token}" if token else ""
        await page.goto(web.url(f"/studio/{room}{suffix}"))
        await expect(page.locator("#notice")).to_contain_text(text, timeout=WAIT_MS)
        await expect(page.locator("#go-live")).to_be_disabled()
        assert await page.evaluate("window.livehub.studio.stream") is None  # no camera opened
    # in Chinese too
    page = await web.page("studio-zh", locale="zh-CN")
    await page.goto(web.url(f"/studio/{room}#token={created['moderator_token']}"))
    await expect(page.locator("#notice")).to_contain_text("只有主播可以开播", timeout=WAIT_MS)
    await expect(page.locator("#go-live")).to_have_text("开始直播")
    await web.check_clean()


async def test_pages_and_vendor_files_are_served(web: Web) -> None:
    for path, kind in (
        ("/studio/any-room", "text/html"),
        ("/static/js/studio.js", "text/javascript"),
        ("/static/js/media.js", "text/javascript"),
        ("/static/js/player.js", "text/javascript"),
        ("/static/vendor/hls.min.js", "text/javascript"),
    ):
        async with web.server.http.get(web.url(path)) as resp:
            assert resp.status == 200, path
            assert resp.content_type in (kind, "application/javascript"), (path, resp.content_type)
            assert "Content-Security-Policy" in resp.headers


async def test_a_viewer_on_another_node_plays_the_studio_through_the_redirect(
    browser: Browser, redis_url: str, tmp_path: Path
) -> None:
    """Two nodes on one Redis: the studio publishes to A; a watch page loaded from B
    posts its WHEP offer to B, follows the 307 to A (the browser drops the token on
    the way, so media.js sends it again) and plays A's media."""
    skip_without_a_non_loopback_address()
    ports = [free_port(), free_port()]
    origins = tuple(f"http://127.0.0.1:{port}" for port in ports)
    nodes = [
        await start_server(
            make_settings(
                tmp_path / "data",
                port=port,
                host="0.0.0.0",
                public_url=origin,
                allowed_origins=origins,
                redis_url=redis_url,
            )
        )
        for port, origin in zip(ports, origins, strict=True)
    ]
    a, b = (web_conftest().Web(node, browser) for node in nodes)
    try:
        created = await nodes[0].create_room()
        room = created["room"]["id"]
        studio = await open_studio(a, room, created["host_token"])
        await studio.locator("#go-live").click()
        await expect(studio.locator("#publish-state")).to_have_attribute(
            "data-state", "live", timeout=WAIT_MS
        )

        viewer = await b.page("viewer on B")
        redirects: list[str] = []
        viewer.on(
            "response",
            lambda r: redirects.append(r.headers.get("location", "")) if r.status == 307 else None,
        )
        await b.join(viewer, room, "Vic")
        await expect(viewer.locator("#stage")).to_have_attribute(
            "data-playback", "webrtc", timeout=WAIT_MS
        )
        first = await wait_for_frames(viewer)
        assert first["width"] > 0, first
        assert redirects == [f"{origins[0]}/whep/{room}"]
        session = await viewer.evaluate("window.livehub.player.session.sessionUrl")
        assert session.startswith(f"{origins[0]}/whep/{room}/"), session
        await studio.locator("#stop-live").click()
        await expect(viewer.locator("#live-badge")).to_have_attribute(
            "data-live", "off", timeout=WAIT_MS
        )
        for web in (a, b):
            await web.check_clean(allow_console=("status of 401", "status of 404"))
    finally:
        for web in (a, b):
            await web.close()
        for node in nodes:
            await stop_server(node)
