"""The replay page in a real browser: the recording plays, its chat flies over it
at the right moments, a seek starts the danmaku again from the new position.

The stream's recording is written with the recorder's own sink from frames
encoded here (a real publisher is tested in tests/media), so the page is
exercised against exactly the files and endpoints the server produces.
"""

from __future__ import annotations

import asyncio
import fractions
import json
from typing import TYPE_CHECKING

import av
from playwright.async_api import expect
from support import Server

from livehub.media.recorder import RecordingConfig, RecordingInfo, RecordingSink
from livehub.media.remux import Timed
from livehub.signaling.hls_api import RECORDINGS

if TYPE_CHECKING:  # the fixture's class; not imported at run time (two conftest modules)
    from conftest import Web

WAIT_MS = 10_000
SECONDS = 6


def write_recording(
    server: Server, room: str, stream: str, started_at: float, crash_at: float | None = None
) -> None:
    """The stream's recording, or with ``crash_at`` (a fraction) the file a server
    killed at that point left: its fragments so far and half of the next one."""
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = 320, 240, "yuv420p"
    encoder.time_base = fractions.Fraction(1, 30)
    encoder.options = {"tune": "zerolatency", "keyint": "30"}
    encoder.profile = "Baseline"
    frames = []
    for i in range(SECONDS * 30):
        frame = av.VideoFrame(320, 240, "yuv420p")
        for n, plane in enumerate(frame.planes):
            plane.update(bytes([(i * 5 + n * 60) % 256]) * (plane.line_size * plane.height))
        frame.pts = i
        frames += [Timed("video", bytes(p), i * 3000, p.is_keyframe) for p in encoder.encode(frame)]
    path = server.settings.data_dir / "recordings" / room / f"{stream}.mp4"
    info = RecordingInfo(room, stream, path.name, "mp4", "video/H264", None)
    sink = RecordingSink(path, info, RecordingConfig(), lambda: started_at)
    if crash_at is None:
        sink.write(frames)
        sink.close()
        return
    stop = int(len(frames) * crash_at)
    sink.write(frames[:stop])
    whole = path.stat().st_size
    for frame in frames[stop:]:
        sink.write([frame])
        if path.stat().st_size > whole:
            break
    written, sidecar = path.read_bytes(), path.with_suffix(".json").read_bytes()
    sink.close()
    path.write_bytes(written[: whole + (len(written) - whole) // 2])
    path.with_suffix(".json").write_bytes(sidecar)


async def test_replay_plays_the_recording_with_danmaku_that_follow_seeks(web: Web) -> None:
    server = web.server
    made = await server.create_room()
    room, host = made["room"]["id"], made["host_token"]
    status, stream = await server.api("POST", f"/api/rooms/{room}/streams", token=host)
    assert status == 201, stream
    ann = await server.client(room, name="Ann")
    assert (await ann.chat("hello replay"))["ok"]
    await asyncio.sleep(1.5)
    assert (await ann.chat("<b>later</b>", mode="top"))["ok"]
    await ann.close()
    status, _ = await server.api("DELETE", f"/api/rooms/{room}/streams/current", token=host)
    assert status == 200
    write_recording(server, room, stream["id"], stream["started_at"])

    page = await web.page("replay")
    await page.goto(web.url(f"/replay/{room}/{stream['id']}"))
    await expect(page.locator("#chat-list li.chat-item")).to_have_count(2, timeout=WAIT_MS)
    await expect(page.locator("#message-count")).to_have_text("2")
    await expect(page.locator("#chat-list .chat-text").nth(1)).to_have_text("<b>later</b>")
    await expect(page.locator("#chat-list .replay-time").first).to_have_text("0:00")
    assert await page.evaluate("document.querySelector('#chat-list b')") is None

    src = await page.evaluate("document.getElementById('video').getAttribute('src')")
    assert src == f"/recordings/{room}/{stream['id']}.mp4"
    await page.wait_for_function(
        "document.getElementById('video').readyState >= 2", timeout=WAIT_MS
    )
    duration = await page.evaluate("document.getElementById('video').duration")
    assert abs(duration - SECONDS) < 0.2

    await page.evaluate(
        "(() => { const v = document.getElementById('video'); v.muted = true; return v.play(); })()"
    )
    first = page.locator("#danmaku .danmaku-item", has_text="hello replay")
    await expect(first).to_have_count(1, timeout=WAIT_MS)
    later = page.locator("#danmaku .danmaku-item", has_text="<b>later</b>")
    await expect(later).to_have_count(1, timeout=WAIT_MS)
    assert await page.evaluate("document.getElementById('video').currentTime") >= 1.4

    # A seek back clears the overlay and replays the chat from there.
    await page.evaluate("document.getElementById('video').pause()")
    await page.evaluate("document.getElementById('video').currentTime = 0")
    await expect(page.locator("#danmaku .danmaku-item")).to_have_count(0, timeout=WAIT_MS)
    await page.evaluate("document.getElementById('video').play()")
    await expect(first).to_have_count(1, timeout=WAIT_MS)

    # Clicking a message's time seeks there.
    await page.locator("#chat-list .replay-time").nth(1).click()
    await page.wait_for_function(
        "Math.abs(document.getElementById('video').currentTime - 1.5) < 0.8", timeout=WAIT_MS
    )

    # Chinese strings come from the page's own table.
    await page.locator("#lang-toggle").click()
    await expect(page.locator("#chat-heading")).to_have_text("聊天回放")
    await web.check_clean()


async def test_replay_without_a_recording_says_so(web: Web) -> None:
    server = web.server
    made = await server.create_room()
    room, host = made["room"]["id"], made["host_token"]
    status, stream = await server.api("POST", f"/api/rooms/{room}/streams", token=host)
    assert status == 201
    await server.api("DELETE", f"/api/rooms/{room}/streams/current", token=host)
    page = await web.page("replay-none")
    await page.goto(web.url(f"/replay/{room}/{stream['id']}"))
    await expect(page.locator("#notice")).to_have_text(
        "This stream was not recorded.", timeout=WAIT_MS
    )
    missing = await web.page("replay-missing")
    await missing.goto(web.url(f"/replay/{room}/s_nosuch"))
    await expect(missing.locator("#notice")).not_to_be_hidden(timeout=WAIT_MS)
    body = json.loads(
        await missing.evaluate(
            f"fetch('/api/rooms/{room}/streams/s_nosuch/danmaku').then(r => r.text())"
        )
    )
    assert body["code"] == "stream_not_found"
    await web.check_clean(allow_console=("404",))


async def test_a_recording_recovered_after_a_crash_plays_to_its_end(web: Web) -> None:
    server = web.server
    made = await server.create_room()
    room, host = made["room"]["id"], made["host_token"]
    status, stream = await server.api("POST", f"/api/rooms/{room}/streams", token=host)
    assert status == 201, stream
    await server.api("DELETE", f"/api/rooms/{room}/streams/current", token=host)
    write_recording(server, room, stream["id"], stream["started_at"], crash_at=0.6)
    recordings = server.app[RECORDINGS]
    assert [info.stream for info in recordings.recover()] == [stream["id"]]
    info = recordings.info(room, stream["id"])
    assert info is not None and info.recovered and 2.0 < info.duration < SECONDS * 0.6 + 0.1

    page = await web.page("replay-recovered")
    await page.goto(web.url(f"/replay/{room}/{stream['id']}"))
    await page.wait_for_function(
        "() => document.getElementById('video').readyState >= 2", timeout=WAIT_MS
    )
    await page.evaluate(
        "(() => { const v = document.getElementById('video'); v.muted = true;"
        " v.playbackRate = 4; return v.play(); })()"
    )
    await page.wait_for_function(
        "() => document.getElementById('video').ended", timeout=WAIT_MS, polling=100
    )
    played = await page.evaluate(
        "(() => { const v = document.getElementById('video');"
        " return {error: v.error && v.error.code, time: v.currentTime, duration: v.duration}; })()"
    )
    assert played["error"] is None, played
    assert abs(played["time"] - info.duration) < 0.2, (played, info.duration)
    assert abs(played["duration"] - info.duration) < 0.2, (played, info.duration)
    await web.check_clean()
