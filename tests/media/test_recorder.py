"""Recording: a real publisher over WHIP, the file checked with ffprobe and ffmpeg.

The recording is a relay subscriber remuxing the publisher's frames, so the
test also proves nothing was re-encoded: the server's video stream has no
codec context at all, and the publisher's keyframe bytes are in the file.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from publishing import (
    MEDIA_TIMING,
    H,
    W,
    codecs,
    decodes_cleanly,
    encoded_h264,
    encoded_opus,
    encoded_vp8,
    ffprobe,
    interleaved,
    publish,
    unpublish,
    until,
)
from support import Server, make_settings, start_server, stop_server

from livehub.media.recorder import (
    Format,
    RecordingConfig,
    RecordingInfo,
    RecordingManager,
    RecordingSink,
)
from livehub.media.remux import nal_units
from livehub.signaling.hls_api import RECORDINGS


@pytest.fixture
async def media_server(tmp_path: Path) -> AsyncIterator[Server]:
    settings = make_settings(tmp_path / "data", extra={"media": MEDIA_TIMING})
    srv = await start_server(settings)
    yield srv
    await stop_server(srv)


def recordings(server: Server) -> RecordingManager:
    return server.app[RECORDINGS]


async def streams(server: Server, room: str, token: str) -> list[dict[str, Any]]:
    status, body = await server.api("GET", f"/api/rooms/{room}/streams", token=token)
    assert status == 200, body
    return list(body["streams"])


async def say(client: Any, text: str) -> int:
    ack = await client.call("chat", {"text": text, "client_id": uuid.uuid4().hex})
    assert ack["ok"], ack
    return int(ack["message"]["id"])


async def test_a_stream_is_recorded_as_it_was_sent_and_replayed_with_its_chat(
    media_server: Server,
) -> None:
    made = await media_server.create_room()
    rid, host = made["room"]["id"], made["host_token"]
    publisher = await publish(media_server, rid, host)
    room_view = (await media_server.api("GET", f"/api/rooms/{rid}"))[1]
    stream_id = room_view["stream_id"]
    live = await until(lambda: recordings(media_server).recording(rid), 5, "the recorder")
    assert live.stream == stream_id
    await until(lambda: live.sink.opened, 10, "the first keyframe to open the file")

    viewer = await media_server.client(rid, name="Bo")
    first = await say(viewer, "first!")
    await asyncio.sleep(1.0)
    gone = await say(viewer, "this one gets deleted")
    moderator = await media_server.client(rid, made["moderator_token"], role="moderator")
    assert (await moderator.call("mod_delete", {"message_id": gone}))["ok"]
    await asyncio.sleep(1.0)
    last = await say(viewer, "bye")

    # While live the stream lists its recording, still growing.
    listed = await streams(media_server, rid, host)
    during = listed[-1]["recording"]
    assert during["complete"] is False and during["url"] == f"/recordings/{rid}/{stream_id}.mp4"
    await until(lambda: live.info().duration >= 5.0, 15, "five seconds recorded")

    stopped_at = time.time()
    await unpublish(media_server, publisher, host)
    # The stream's end waited for the file to be finalised.
    assert recordings(media_server).recording(rid) is None
    path = media_server.settings.data_dir / "recordings" / rid / f"{stream_id}.mp4"
    info = recordings(media_server).info(rid, stream_id)
    assert info is not None and info.complete and info.size == path.stat().st_size > 0
    assert info.started_at is not None
    wall = stopped_at - info.started_at
    assert abs(info.duration - wall) < 1.0, (info.duration, wall)

    probe = await ffprobe(str(path))
    assert codecs(probe) == {"video": "h264", "audio": "opus"}
    video = next(s for s in probe["streams"] if s["codec_type"] == "video")
    assert (video["width"], video["height"]) == (W, H)
    assert abs(float(probe["format"]["duration"]) - info.duration) < 0.3
    assert await decodes_cleanly(str(path)) == ""

    # Not re-encoded: the server never had a video codec context, and the
    # publisher's keyframe (its IDR slice, byte for byte) is in the file.
    assert live.sink._streams["video"].codec_context is None
    assert live.sink.keyframe_sample is not None
    idr = [n for n in nal_units(live.sink.keyframe_sample) if n[0] & 0x1F == 5]
    assert idr and idr[0] in path.read_bytes()

    listed = await streams(media_server, rid, host)
    recording = listed[-1]["recording"]
    assert recording["complete"] is True
    assert recording["size"] == info.size and recording["duration"] == round(info.duration, 3)
    assert recording["replay"] == f"/replay/{rid}/{stream_id}"

    # The file is public for a public room, with Range support for seeking.
    async with media_server.http.get(media_server.url + recording["url"]) as r:
        assert r.status == 200 and r.headers["Content-Type"] == "video/mp4"
        assert len(await r.read()) == info.size
    ranged = {"Range": "bytes=100-199"}
    async with media_server.http.get(media_server.url + recording["url"], headers=ranged) as r:
        assert r.status == 206 and r.headers["Content-Range"] == f"bytes 100-199/{info.size}"
        assert await r.read() == path.read_bytes()[100:200]

    # Replay chat: visible messages only, at offsets into the recording.
    status, replay = await media_server.api(
        "GET", f"/api/rooms/{rid}/streams/{stream_id}/danmaku", token=None
    )
    assert status == 200, replay
    assert replay["recording"]["url"] == recording["url"]
    texts = [m["text"] for m in replay["messages"]]
    assert texts == ["first!", "bye"]
    offsets = [m["offset_ms"] for m in replay["messages"]]
    assert [m["id"] for m in replay["messages"]] == [first, last]
    assert 0 <= offsets[0] < offsets[1] <= info.duration * 1000
    assert 1500 <= offsets[1] - offsets[0] <= 4000
    assert set(replay["messages"][0]) == {
        "id",
        "name",
        "role",
        "text",
        "mode",
        "color",
        "offset_ms",
    }

    async with media_server.http.get(f"{media_server.url}/replay/{rid}/{stream_id}") as r:
        assert r.status == 200 and "replay.js" in await r.text()


async def test_a_private_rooms_recording_and_chat_need_a_token_of_the_room(
    media_server: Server,
) -> None:
    made = await media_server.create_room(private=True)
    rid, host = made["room"]["id"], made["host_token"]
    other = await media_server.create_room()
    publisher = await publish(media_server, rid, host, audio=False)
    stream_id = (await media_server.api("GET", f"/api/rooms/{rid}"))[1]["stream_id"]
    live = await until(lambda: recordings(media_server).recording(rid), 5, "the recorder")
    await until(lambda: live.info().duration >= 1.0, 10, "a second recorded")
    await unpublish(media_server, publisher, host)
    url = f"{media_server.url}/recordings/{rid}/{stream_id}.mp4"
    danmaku = f"{media_server.url}/api/rooms/{rid}/streams/{stream_id}/danmaku"
    viewer = media_server.token(rid)
    for target in (url, danmaku):
        for query, status in [
            ("", 401),
            ("?t=garbage", 401),
            (f"?t={other['host_token']}", 403),
            (f"?t={viewer}", 200),
        ]:
            async with media_server.http.get(target + query) as r:
                assert r.status == status, (target, query, await r.text())
    probe = await ffprobe(f"{url}?t={viewer}")
    assert codecs(probe) == {"video": "h264"}, "video only: no audio was published"


async def test_recording_names_cannot_leave_the_recordings_directory(
    media_server: Server,
) -> None:
    made = await media_server.create_room()
    rid = made["room"]["id"]
    (media_server.settings.data_dir / "recordings").mkdir(parents=True, exist_ok=True)
    for path in (
        f"/recordings/{rid}/..%2F..%2Fsecret.key",
        f"/recordings/{rid}/%2e%2e%2fadmin.key",
        f"/recordings/{rid}/s_x.json",
        f"/recordings/{rid}/livehub.db",
        f"/recordings/{rid}/nosuch.mp4",
        "/recordings/..%2F/livehub.db",
    ):
        async with media_server.http.get(media_server.url + path) as r:
            assert r.status == 404, (path, r.status)
            assert (await r.json())["code"] in {"recording_not_found", "room_not_found"}
    status, body = await media_server.api(
        "GET", f"/api/rooms/{rid}/streams/s_nosuch/danmaku", token=None
    )
    assert status == 404 and body["code"] == "stream_not_found"


async def test_a_vp8_stream_is_recorded_to_webm_and_has_no_hls(media_server: Server) -> None:
    made = await media_server.create_room()
    rid, host = made["room"]["id"], made["host_token"]
    publisher = await publish(media_server, rid, host, codec="video/VP8")
    stream_id = (await media_server.api("GET", f"/api/rooms/{rid}"))[1]["stream_id"]
    live = await until(lambda: recordings(media_server).recording(rid), 5, "the recorder")
    await until(lambda: live.info().duration >= 2.0, 10, "two seconds recorded")
    async with media_server.http.get(f"{media_server.url}/hls/{rid}/index.m3u8") as r:
        assert r.status == 404 and (await r.json())["code"] == "hls_unavailable"
    await unpublish(media_server, publisher, host)
    path = media_server.settings.data_dir / "recordings" / rid / f"{stream_id}.webm"
    probe = await ffprobe(str(path))
    assert codecs(probe) == {"video": "vp8", "audio": "opus"}
    assert await decodes_cleanly(str(path)) == ""
    listed = await streams(media_server, rid, host)
    assert listed[-1]["recording"]["url"] == f"/recordings/{rid}/{stream_id}.webm"
    async with media_server.http.get(media_server.url + listed[-1]["recording"]["url"]) as r:
        assert r.status == 200 and r.headers["Content-Type"] == "video/webm"


async def test_a_stream_the_publisher_ends_gets_its_report_built(media_server: Server) -> None:
    made = await media_server.create_room()
    rid, host = made["room"]["id"], made["host_token"]
    publisher = await publish(media_server, rid, host)
    stream_id = (await media_server.api("GET", f"/api/rooms/{rid}"))[1]["stream_id"]
    viewer = await media_server.client(rid, name="Bo")
    await say(viewer, "hello from the stream")
    await unpublish(media_server, publisher, host)

    async def stored() -> bool:
        status, body = await media_server.api("GET", f"/api/rooms/{rid}/reports", token=host)
        return status == 200 and any(r["stream"] == stream_id for r in body["reports"])

    deadline = time.monotonic() + 10
    while not await stored():
        assert time.monotonic() < deadline, "no report was stored for the WHIP-ended stream"
        await asyncio.sleep(0.2)
    status, report = await media_server.api(
        "GET", f"/api/rooms/{rid}/streams/{stream_id}/report", token=host
    )
    assert status == 200 and report["summary"]["chat_messages"] == 1


async def test_old_recordings_are_purged_and_a_live_one_is_kept(media_server: Server) -> None:
    manager = recordings(media_server)
    old = await media_server.create_room()
    old_id, old_host = old["room"]["id"], old["host_token"]
    publisher = await publish(media_server, old_id, old_host)
    ended = await until(lambda: manager.recording(old_id), 5, "the recorder")
    await until(lambda: ended.sink.opened, 10, "the first keyframe")
    await unpublish(media_server, publisher, old_host)
    old_file = media_server.settings.data_dir / "recordings" / old_id / f"{ended.stream}.mp4"
    assert old_file.is_file() and old_file.with_suffix(".json").is_file()

    now = await media_server.create_room()
    now_id, now_host = now["room"]["id"], now["host_token"]
    live_publisher = await publish(media_server, now_id, now_host)
    live = await until(lambda: manager.recording(now_id), 5, "the recorder")
    await until(lambda: live.sink.opened, 10, "the first keyframe")

    ten_days_ago = time.time() - 10 * 86400
    for path in (old_file, live.sink.path):
        os.utime(path, (ten_days_ago, ten_days_ago))
    assert await manager.purge_older_than(time.time() - 86400) == 1
    assert not old_file.exists() and not old_file.with_suffix(".json").exists()
    assert manager.info(old_id, ended.stream) is None
    assert live.sink.path.exists()  # still being written: kept
    assert await manager.purge_older_than(time.time() - 86400) == 0
    await unpublish(media_server, live_publisher, now_host)
    assert manager.info(now_id, live.stream) is not None  # finished just now: not old


# crash recovery, offline: the state a kill -9 leaves, made by copying a file mid-write


def _complaints(path: Path) -> str:
    """What FFmpeg says decoding every frame of ``path`` ('' when it decodes cleanly)."""
    done = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.stderr.strip() or ("" if done.returncode == 0 else f"exit {done.returncode}")


def _probed_duration(path: Path) -> float:
    done = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", path],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return float(done.stdout)


def _sink(root: Path, fmt: Format, stream: str = "s_1") -> RecordingSink:
    mime = "video/H264" if fmt == "mp4" else "video/VP8"
    info = RecordingInfo("r", stream, f"{stream}.{fmt}", fmt, mime, "audio/opus")
    return RecordingSink(root / "r" / info.file, info, RecordingConfig(), lambda: 1.0)


def _frames(fmt: Format, seconds: int) -> list[Any]:
    video = (encoded_h264 if fmt == "mp4" else encoded_vp8)(30 * seconds)
    return interleaved(video, encoded_opus(50 * seconds))


def _crashed(root: Path, fmt: Format, fraction: float) -> Path:
    """A recording as a kill -9 leaves it: on disk the fragments written by ``fraction``
    of 6 s and half of the next one (killed mid-write), its sidecar still saying the
    recording is not complete."""
    frames = _frames(fmt, 6)
    sink = _sink(root.parent / "writing", fmt)
    stop = int(len(frames) * fraction)
    sink.write(frames[:stop])
    whole = sink.path.stat().st_size
    for frame in frames[stop:]:
        sink.write([frame])
        if sink.path.stat().st_size > whole:
            break
    written = sink.path.read_bytes()
    assert len(written) > whole, "another fragment was written"
    (root / "r").mkdir(parents=True)
    path = root / "r" / f"s_1.{fmt}"
    path.write_bytes(written[: whole + (len(written) - whole) // 2])
    shutil.copy(sink.path.with_suffix(".json"), path.with_suffix(".json"))
    sink.close()
    return path


@pytest.mark.parametrize("fmt", ["mp4", "webm"])
@pytest.mark.parametrize("fraction", [0.3, 0.6])
def test_a_recording_a_crash_left_unfinished_is_cut_at_its_last_fragment_and_finalised(
    tmp_path: Path, fmt: Format, fraction: float
) -> None:
    root = tmp_path / "recordings"
    path = _crashed(root, fmt, fraction)
    before = msgspec.json.decode(path.with_suffix(".json").read_bytes(), type=RecordingInfo)
    assert not before.complete and before.duration == 0
    assert _complaints(path) != "", "as the crash left it, the file does not play to its end"

    manager = RecordingManager(root)
    done = manager.recover()
    assert [(i.room, i.stream) for i in done] == [("r", "s_1")]
    info = manager.info("r", "s_1")
    assert info is not None and info.complete and info.recovered
    assert info.size == path.stat().st_size > 0
    assert _complaints(path) == ""
    assert abs(_probed_duration(path) - info.duration) < 0.1
    assert 6 * fraction - 2.5 < info.duration <= 6 * fraction + 0.1  # at most a fragment lost
    assert info.public()["recovered"] is True and info.public()["complete"] is True
    assert manager.recover() == [], "finalised once"


def test_a_recording_still_being_written_is_not_touched_and_an_empty_one_is_removed(
    tmp_path: Path,
) -> None:
    root = tmp_path / "recordings"
    frames = _frames("mp4", 3)
    # another process (another node on the same data directory) is writing this one
    live = _sink(root, "mp4", "s_live")
    live.write(frames[: len(frames) // 2])
    # this one died before anything whole reached the disk
    empty = _sink(root, "mp4", "s_empty")
    empty.write(frames[:20])
    empty.path.write_bytes(empty.path.read_bytes()[:40])
    empty._release()  # its process is gone: nobody holds the file
    size = live.path.stat().st_size

    manager = RecordingManager(root)
    assert manager.recover() == []
    assert live.path.stat().st_size == size and live.path.with_suffix(".json").exists()
    info = manager.info("r", "s_live")
    assert info is not None and not info.complete and not info.recovered
    assert not empty.path.exists() and not empty.path.with_suffix(".json").exists()
    assert manager.info("r", "s_empty") is None

    live.write(frames[len(frames) // 2 :])
    live.close()
    finished = manager.info("r", "s_live")
    assert finished is not None and finished.complete and not finished.recovered
    assert manager.recover() == [] and _complaints(live.path) == ""


async def test_a_running_node_finalises_what_another_nodes_crash_left(tmp_path: Path) -> None:
    root = tmp_path / "recordings"
    manager = RecordingManager(root, RecordingConfig(recover_interval=0.05))
    loop = asyncio.create_task(manager.recover_forever())
    try:
        # another node on the same data directory died mid-recording, after this one started
        path = await asyncio.to_thread(_crashed, root, "mp4", 0.5)

        def finalised() -> bool:
            info = manager.info("r", "s_1")
            return info is not None and info.recovered

        await until(finalised, 10, "the recording to be finalised")
    finally:
        loop.cancel()
    assert _complaints(path) == ""
