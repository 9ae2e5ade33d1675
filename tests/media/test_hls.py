"""Live HLS from a real publisher, checked with ffprobe while live and after it ends.

Plus the remuxing itself, offline: frames encoded here go through the
recorder's and the HLS packager's sinks, and every video packet comes out
with the very NAL units that went in (nothing decoded, nothing re-encoded).
"""

from __future__ import annotations

import asyncio
import fractions
import re
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import av
import pytest
from publishing import (
    MEDIA_TIMING,
    codecs,
    decodes_cleanly,
    encoded_h264,
    encoded_opus,
    ffprobe,
    interleaved,
    publish,
    unpublish,
    until,
)
from support import Server, make_settings, start_server, stop_server

from livehub.media.hls import HlsConfig, HlsPackager, HlsSink
from livehub.media.recorder import RecordingConfig, RecordingInfo, RecordingSink
from livehub.media.remux import Timed, h264_dimensions, h264_parameter_sets, nal_units
from livehub.signaling.hls_api import HLS

LIST_SIZE = 2


@pytest.fixture
async def hls_server(tmp_path: Path) -> AsyncIterator[Server]:
    extra = {
        "media": MEDIA_TIMING,
        "hls": {"list_size": LIST_SIZE},
        "recording": {"enabled": False},
    }
    srv = await start_server(make_settings(tmp_path / "data", extra=extra))
    yield srv
    await stop_server(srv)


def packager(server: Server) -> HlsPackager:
    return server.app[HLS]


async def get(server: Server, path: str) -> tuple[int, Any, bytes]:
    async with server.http.get(server.url + path) as r:
        return r.status, r.headers, await r.read()


def segments(playlist: str) -> list[tuple[float, str]]:
    """(duration, uri) of every segment in a media playlist."""
    found: list[tuple[float, str]] = []
    duration = None
    for line in playlist.splitlines():
        if line.startswith("#EXTINF:"):
            duration = float(line[len("#EXTINF:") :].split(",")[0])
        elif line and not line.startswith("#"):
            assert duration is not None
            found.append((duration, line))
            duration = None
    return found


def found(pattern: str, text: str) -> str:
    match = re.search(pattern, text)
    assert match is not None, (pattern, text)
    return match.group(1)


async def test_a_live_room_has_sliding_hls_segments_and_an_endlist_when_it_stops(
    hls_server: Server, tmp_path: Path
) -> None:
    made = await hls_server.create_room(private=True)
    rid, host = made["room"]["id"], made["host_token"]
    viewer = hls_server.token(rid)
    index = f"/hls/{rid}/index.m3u8"
    status, _, body = await get(hls_server, f"{index}?t={viewer}")
    assert status == 404 and b'"not_live"' in body

    publisher = await publish(hls_server, rid, host)
    directory = hls_server.settings.data_dir / "hls" / rid

    async def playlist() -> str | None:
        status, headers, body = await get(hls_server, f"{index}?t={viewer}")
        if status != 200:
            return None
        assert headers["Content-Type"] == "application/vnd.apple.mpegurl"
        assert headers["Cache-Control"] == "no-cache"
        return body.decode()

    async def two_segments() -> str | None:
        text = await playlist()
        return text if text and len(segments(text)) >= 2 else None

    text = await until(two_segments, 15, "two segments")
    live = packager(hls_server).live(rid)
    assert live is not None and live.sink._video is not None
    assert live.sink._video.codec_context is None, "video is remuxed: no codec context at all"
    assert live.sink.aac_frames > 0, "audio is AAC, encoded once for the room"
    status, _, body = await get(hls_server, index)
    assert status == 401, "a private room's playlist needs a token"

    # Every URI carries the token, so a player keeps it.
    assert re.search(r'#EXT-X-MAP:URI="[\w-]+-init\.mp4\?t=' + re.escape(viewer) + '"', text)
    first_duration, first_uri = segments(text)[0]
    assert first_uri.endswith(f"?t={viewer}")
    assert 1.5 <= first_duration <= 3.5, text  # keyframes asked for every 2 s
    first_name = first_uri.split("?")[0]
    init_name = found(r'URI="([^"?]+)', text)

    status, headers, segment = await get(hls_server, f"/hls/{rid}/{first_uri}")
    assert status == 200 and headers["Content-Type"] == "video/iso.segment"
    assert headers["Cache-Control"].startswith("private")
    status, headers, init = await get(hls_server, f"/hls/{rid}/{init_name}?t={viewer}")
    assert status == 200 and headers["Content-Type"] == "video/mp4"
    assert (await get(hls_server, f"/hls/{rid}/{first_name}"))[0] == 401

    # ffprobe reads the live playlist over HTTP, token and all.
    probe = await ffprobe(f"{hls_server.url}{index}?t={viewer}")
    assert codecs(probe) == {"video": "h264", "audio": "aac"}
    piece = tmp_path / "piece.mp4"
    piece.write_bytes(init + segment)
    alone = await ffprobe(str(piece))
    assert codecs(alone) == {"video": "h264", "audio": "aac"}
    video = next(s for s in alone["streams"] if s["codec_type"] == "video")
    assert abs(float(video["duration"]) - first_duration) < 0.2

    # The list slides: old segments are deleted from disk and from the playlist.
    async def slid() -> str | None:
        text = await playlist()
        names = {uri.split("?")[0] for _, uri in segments(text or "")}
        return (
            text
            if text and first_name not in names and not (directory / first_name).exists()
            else None
        )

    text = await until(slid, 20, "the first segment to be deleted")
    assert len(segments(text)) == LIST_SIZE
    assert int(found(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", text)) >= 1
    on_disk = [p.name for p in directory.iterdir() if p.suffix == ".m4s"]
    assert len(on_disk) <= LIST_SIZE + 1, on_disk  # the list and one kept for slow players
    status, _, body = await get(hls_server, f"/hls/{rid}/{first_name}?t={viewer}")
    assert status == 404 and b"segment_not_found" in body
    durations = [d for d, _ in segments(text)]
    assert all(1.5 <= d <= 3.5 for d in durations), durations

    await unpublish(hls_server, publisher, host)
    ended = await playlist()
    assert ended is not None and ended.rstrip().endswith("#EXT-X-ENDLIST")
    assert packager(hls_server).live(rid) is None
    assert await decodes_cleanly(f"{hls_server.url}{index}?t={viewer}") == ""


async def test_hls_names_cannot_leave_the_room_directory(hls_server: Server) -> None:
    made = await hls_server.create_room()
    rid = made["room"]["id"]
    (hls_server.settings.data_dir / "hls" / rid).mkdir(parents=True)
    (hls_server.settings.data_dir / "hls" / rid / "index.m3u8.tmp").write_text("#EXTM3U\n")
    for path in (
        f"/hls/{rid}/..%2F..%2Fsecret.key",
        f"/hls/{rid}/%2e%2e%2fadmin.key",
        f"/hls/{rid}/index.m3u8.tmp",
        f"/hls/{rid}/livehub.db",
        f"/hls/{rid}/nosuch.m4s",
        "/hls/..%2F/secret.key",
        f"/hls/{rid}/index.m3u8",
    ):
        status, headers, _ = await get(hls_server, path)
        assert status == 404, (path, status)
        assert headers["Content-Type"].startswith("application/json"), path


# offline: the sinks remux, they do not encode


def _slices(avcc: bytes) -> list[bytes]:
    """The slice NAL units (types 1 and 5) of a length-prefixed (MP4) sample."""
    units, pos = [], 0
    while pos + 4 <= len(avcc):
        size = int.from_bytes(avcc[pos : pos + 4], "big")
        units.append(avcc[pos + 4 : pos + 4 + size])
        pos += 4 + size
    return [u for u in units if u[0] & 0x1F in (1, 5)]


def _video_samples(target: str) -> list[bytes]:
    with av.open(target) as container:
        stream = container.streams.video[0]
        return [bytes(p) for p in container.demux(stream) if p.size]


def test_the_sinks_write_the_publishers_video_bytes_unchanged(tmp_path: Path) -> None:
    video = encoded_h264(150)  # 5 s
    audio = encoded_opus(250)
    frames: list[Timed] = []
    a = 0
    for ts, data, key in video:
        while a < len(audio) and a * 960 * 90000 <= ts * 48000:
            frames.append(Timed("audio", audio[a], a * 960, True))
            a += 1
        frames.append(Timed("video", data, ts, key))
    info = RecordingInfo("r", "s_1", "s_1.mp4", "mp4", "video/H264", "audio/opus")
    recording = RecordingSink(tmp_path / "s_1.mp4", info, RecordingConfig(), lambda: 1.0)
    hls = HlsSink(tmp_path / "hls", "s_1-x", "video/H264", "audio/opus", HlsConfig(list_size=0))
    for start in range(0, len(frames), 10):
        recording.write(frames[start : start + 10])
        hls.write(frames[start : start + 10])
    recording.close()
    hls.close()

    # No codec context on either video stream: there is nothing that could encode.
    assert recording._streams["video"].codec_context is None
    assert hls._video is not None and hls._video.codec_context is None

    sent = [[u for u in nal_units(data) if u[0] & 0x1F in (1, 5)] for _, data, _ in video]
    assert [_slices(s) for s in _video_samples(str(recording.path))] == sent
    assert [_slices(s) for s in _video_samples(str(hls.playlist))] == sent
    assert recording.info.complete and abs(recording.info.duration - 5.0) < 0.05
    assert hls.aac_frames == pytest.approx(a * 960 / 1024, abs=2)
    assert hls.playlist.read_text().rstrip().endswith("#EXT-X-ENDLIST")

    # Crash-safe: a recording cut off mid-write still plays up to its last fragment.
    cut = tmp_path / "cut.mp4"
    whole = recording.path.read_bytes()
    cut.write_bytes(whole[: len(whole) * 2 // 3])
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", cut],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert 2.0 < float(probe.stdout) < 5.0
    assert len(_video_samples(str(cut))) >= 60


@pytest.mark.parametrize(
    ("width", "height", "profile"),
    [(160, 120, "Baseline"), (1280, 720, "Main"), (1920, 1080, "High"), (642, 362, "High")],
)
def test_the_picture_size_is_read_from_the_sps(width: int, height: int, profile: str) -> None:
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
    encoder.time_base = fractions.Fraction(1, 30)
    encoder.profile = profile
    frame = av.VideoFrame(width, height, "yuv420p")
    frame.pts = 0
    data = b"".join(bytes(p) for p in [*encoder.encode(frame), *encoder.encode(None)])
    sets = h264_parameter_sets(data)
    assert sets is not None
    assert h264_dimensions(sets[0]) == (width, height)


async def test_a_vanished_publisher_ends_the_playlist_after_the_grace_period(
    hls_server: Server,
) -> None:
    grace = 1
    made = await hls_server.create_room(settings={"publisher_grace_seconds": grace})
    publisher = await publish(hls_server, made["room"]["id"], made["host_token"], audio=False)
    live = await until(lambda: packager(hls_server).live(made["room"]["id"]), 5, "the packager")
    await until(lambda: live.sink.video_packets > 0, 10, "video")
    await publisher.pc.close()  # vanishes: the grace period ends the stream and the playlist
    await until(lambda: live.feed.done, grace + 8, "the end")
    await asyncio.sleep(0)
    assert live.sink.playlist.read_text().rstrip().endswith("#EXT-X-ENDLIST")


def _video_dts(target: str) -> list[int]:
    """The video packets' decode times, in the 90 kHz clock, from the first one's."""
    with av.open(target) as container:
        stream = container.streams.video[0]
        times = [
            round(float(p.dts * p.time_base) * 90000)
            for p in container.demux(stream)
            if p.size and p.dts is not None
        ]
    return [t - times[0] for t in times]


def test_after_a_loss_each_frame_keeps_its_own_time_in_the_recording_and_in_hls(
    tmp_path: Path,
) -> None:
    """Frames dropped after a loss leave a gap, and the keyframe asked for can come
    right after another one (two keyframes in a row, a fragment of one sample): every
    frame must still come out at its own time, none two at one time."""
    video = encoded_h264(150, keyframes={60, 61, 62, 100})
    kept = [v for v in video if not 40 <= v[0] // 3000 < 60]  # dropped up to a keyframe
    assert kept[40][2] and kept[41][2] and kept[42][2]
    frames = interleaved(kept, encoded_opus(250))
    info = RecordingInfo("r", "s_1", "s_1.mp4", "mp4", "video/H264", "audio/opus")
    recording = RecordingSink(tmp_path / "s_1.mp4", info, RecordingConfig(), lambda: 1.0)
    hls = HlsSink(tmp_path / "hls", "s_1-x", "video/H264", "audio/opus", HlsConfig(list_size=0))
    for start in range(0, len(frames), 7):
        recording.write(frames[start : start + 7])
        hls.write(frames[start : start + 7])
    recording.close()
    hls.close()
    sent = [ts - kept[0][0] for ts, _, _ in kept]
    assert _video_dts(str(recording.path)) == sent
    assert _video_dts(str(hls.playlist)) == sent
    assert abs(recording.info.duration - 5.0) < 0.05
