"""Media under loss and crashes: the recording and HLS always decode, start to end.

A real aiortc publisher sends H.264 and Opus over WHIP through ``LossyPath``, a
UDP proxy that drops and reorders 2% of the RTP packets on the way in and
drops every retransmission, so a lost packet stays lost. The server must drop
each frame that lost a packet and the frames after it up to a keyframe it
asks for: every sample of the recording and of every HLS segment is then a
frame exactly as the publisher encoded it, and FFmpeg decodes them all without
one complaint. And a server killed with SIGKILL mid-recording
finalises that recording when it starts again, cut at its last complete
fragment, so it decodes end to end too.
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import av
import pytest
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder
from media.publishing import MEDIA_TIMING, Publisher, publish, run, unpublish, until
from processes import ProcessGroup, ServerProcess, api, create_room
from support import Server, make_settings, start_server, stop_server
from udp_proxy import LossyPath

from livehub.media.forwarding import WholeFrames, whole_frames_of
from livehub.media.hls import HlsPackager
from livehub.media.recorder import RecordingManager
from livehub.signaling.hls_api import HLS, RECORDINGS
from livehub.signaling.whip import MEDIA

SECONDS = 8.0


def non_loopback_ip() -> str | None:
    """This machine's address toward the outside (aiortc gathers no loopback candidates)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.254", 9))  # no packet is sent: this only picks a route
        except OSError:
            return None
        address = str(s.getsockname()[0])
    return None if address.startswith("127.") else address


@pytest.fixture
def host_ip() -> str:
    address = non_loopback_ip()
    if address is None:
        pytest.skip("no non-loopback IPv4 address: aiortc gathers no loopback candidates")
    return address


@pytest.fixture
async def lossy_server(tmp_path: Path) -> AsyncIterator[Server]:
    extra = {"media": MEDIA_TIMING, "hls": {"list_size": 30}}
    srv = await start_server(make_settings(tmp_path / "data", extra=extra))
    yield srv
    await stop_server(srv)


Sample = tuple[bytes, ...]  # what identifies a frame: its slices (H.264), its bytes (VP8)
H264_SLICES = (1, 5)


def h264_slices(units: list[bytes]) -> Sample:
    return tuple(u for u in units if u[0] & 0x1F in H264_SLICES)


@pytest.fixture
def encoded(monkeypatch: pytest.MonkeyPatch) -> set[Sample]:
    """Every frame the publisher's encoder makes (in this process: the server never
    encodes video, it forwards)."""
    made: set[Sample] = set()
    encode = H264Encoder._encode_frame
    packetize = Vp8Encoder._packetize

    def keep_h264(self: H264Encoder, frame: av.VideoFrame, force_keyframe: bool) -> Any:
        units = list(encode(self, frame, force_keyframe))
        made.add(h264_slices(units))
        return iter(units)

    def keep_vp8(buffer: bytes, picture_id: int) -> list[bytes]:
        made.add((buffer,))
        return packetize(buffer, picture_id)

    monkeypatch.setattr(H264Encoder, "_encode_frame", keep_h264)
    monkeypatch.setattr(Vp8Encoder, "_packetize", staticmethod(keep_vp8))
    return made


def samples(target: Path) -> list[Sample]:
    """Each video sample of an MP4 (length-prefixed H.264) or WebM (VP8) file."""
    out: list[Sample] = []
    with av.open(str(target)) as container:
        stream = container.streams.video[0]
        vp8 = stream.codec_context.name == "vp8"
        for packet in container.demux(stream):
            data, units, pos = bytes(packet), [], 0
            if not data:
                continue
            if vp8:
                out.append((data,))
                continue
            while pos + 4 <= len(data):
                size = int.from_bytes(data[pos : pos + 4], "big")
                units.append(data[pos + 4 : pos + 4 + size])
                pos += 4 + size
            out.append(h264_slices(units))
    return out


async def decoded(target: str) -> tuple[int, int]:
    """(video packets, video frames decoded) of a file, ffprobe decoding every one of
    them; any complaint from the demuxer or the decoder fails the test."""
    code, out, err = await run(
        "ffprobe",
        "-v",
        "error",
        "-count_frames",
        "-count_packets",
        "-select_streams",
        "v:0",
        "-show_entries",
        "stream=nb_read_frames,nb_read_packets",
        "-of",
        "json",
        target,
        timeout=60,
    )
    assert code == 0 and err == "", f"{target}: {err}"
    stream = json.loads(out)["streams"][0]
    return int(stream["nb_read_packets"]), int(stream["nb_read_frames"])


async def complaints(target: str) -> str:
    """What FFmpeg says decoding every frame, audio too ('' when nothing is wrong).

    Frames keep their own timestamps in their own time base on the way to the null
    muxer: by default FFmpeg would put them on a 1/frame-rate grid guessed from the
    stream, where frames around a gap (dropped frames) can land on the same tick and
    be reported as non-increasing timestamps although the file is right."""
    code, _, err = await run(
        "ffmpeg",
        "-v",
        "error",
        "-i",
        target,
        "-fps_mode",
        "passthrough",
        "-enc_time_base",
        "-1",
        "-f",
        "null",
        "-",
        timeout=60,
    )
    return err if code == 0 else f"exit {code}: {err}"


def first_video_packet_is_a_keyframe(target: Path) -> bool:
    with av.open(str(target)) as container:
        for packet in container.demux(container.streams.video[0]):
            if packet.size:
                return bool(packet.is_keyframe)
    return False


def ingest(server: Server, room: str) -> WholeFrames:
    publisher = server.app[MEDIA].publisher(room)
    assert publisher is not None
    for receiver in publisher.pc.getReceivers():
        buffer = whole_frames_of(receiver)
        if buffer is not None:
            return buffer
    raise AssertionError("the publisher's video receiver does not assemble whole frames")


@pytest.mark.parametrize("codec", ["video/H264", "video/VP8"])
async def test_a_publisher_on_a_lossy_path_gives_a_recording_and_hls_that_decode_to_the_end(
    lossy_server: Server, host_ip: str, tmp_path: Path, encoded: set[Sample], codec: str
) -> None:
    made = await lossy_server.create_room()
    rid, host = made["room"]["id"], made["host_token"]
    path = LossyPath(host_ip, drop=0.02, reorder=0.02, seed=9, lose_retransmissions=True)
    await path.start()
    recordings: RecordingManager = lossy_server.app[RECORDINGS]
    packager: HlsPackager = lossy_server.app[HLS]
    publisher: Publisher | None = None
    try:
        publisher = await publish(lossy_server, rid, host, codec=codec, path=path, noise=True)
        live = await until(lambda: recordings.recording(rid), 10, "the recorder")
        hls = None
        if codec == "video/H264":
            hls = await until(lambda: packager.live(rid), 10, "the HLS packager")
        buffer = ingest(lossy_server, rid)
        await until(lambda: live.info().duration >= SECONDS, 40, f"{SECONDS} s recorded")
        assembler = buffer.assembler(codec)
        assert assembler is not None
        await unpublish(lossy_server, publisher, host)
        publisher = None
    finally:
        if publisher is not None:
            await publisher.pc.close()
        path.close()

    # The path lost packets for good, and the server noticed and asked for keyframes.
    assert path.stats.dropped > 0 and path.stats.reordered > 0
    assembled = assembler.stats
    assert assembled.lost > 0 and assembled.partial > 0 and assembled.dependent > 0, assembled
    assert assembled.reordered > 0, "reordered packets were put back in their place"
    # a loss asks for a keyframe (paced by the room relay's one limiter), and one came
    assert buffer.asks > 0 and assembled.keyframes > 1
    assert assembled.frames > 0

    # The recording: every video sample decodes, and FFmpeg has nothing to say.
    recording = recordings.info(rid, live.stream)
    assert recording is not None and recording.complete and recording.duration >= SECONDS - 1
    file = lossy_server.settings.data_dir / "recordings" / rid / recording.file
    recorded = samples(file)
    assert all(sample in encoded for sample in recorded), "only whole frames, as encoded"
    assert len(recorded) < len(encoded), "the frames that lost packets are not in it"
    packets, frames = await decoded(str(file))
    assert packets == frames == len(recorded) > 0, "a sample that does not decode"
    assert await complaints(str(file)) == ""

    # HLS (H.264 only): each segment starts on a keyframe and decodes on its own, as
    # a player that joins there would decode it; the whole playlist decodes too.
    if codec == "video/VP8":
        return
    assert hls is not None
    directory = hls.sink.directory
    playlist = (directory / "index.m3u8").read_text()
    assert playlist.rstrip().endswith("#EXT-X-ENDLIST")
    names = [line for line in playlist.splitlines() if line.endswith(".m4s")]
    assert len(names) >= 3, playlist
    init = next(directory.glob("*-init.mp4")).read_bytes()
    for name in names:
        alone = tmp_path / f"alone-{name}.mp4"
        alone.write_bytes(init + (directory / name).read_bytes())
        assert first_video_packet_is_a_keyframe(alone), name
        assert all(sample in encoded for sample in samples(alone)), name
        packets, frames = await decoded(str(alone))
        assert packets == frames > 0, name
    assert await complaints(str(directory / "index.m3u8")) == ""


# kill -9 mid-recording


class Process:
    """A server process as ``publish`` wants it: its URL and an HTTP session."""

    def __init__(self, node: ServerProcess, http: aiohttp.ClientSession) -> None:
        self.url = node.url
        self.http = http


async def recording_of(node: ServerProcess, room: str, token: str) -> dict[str, Any] | None:
    status, body = await api(node.url, "GET", f"/api/rooms/{room}/streams", token=token)
    assert status == 200, body
    streams = body["streams"]
    return streams[-1].get("recording") if streams else None


async def test_a_recording_killed_mid_write_plays_to_its_last_fragment_after_a_restart(
    procs: ProcessGroup, host_ip: str, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    node = procs.serve(data)
    made = await create_room(node.url, "killed", "Killed mid-show")
    host = made["host_token"]
    async with aiohttp.ClientSession() as http:
        publisher = await publish(Process(node, http), "killed", host)
        try:

            async def recorded() -> bool:
                info = await recording_of(node, "killed", host)
                return info is not None and info["duration"] >= 4.0

            await until(recorded, 30, "four seconds recorded")
            during = await recording_of(node, "killed", host)
            assert during is not None and during["complete"] is False
            node.kill()
        finally:
            await publisher.pc.close()

    file = data / "recordings" / "killed" / during["url"].rsplit("/", 1)[1]
    assert file.stat().st_size > 0
    restarted = procs.serve(data)
    info = await recording_of(restarted, "killed", host)
    assert info is not None, "the stream still lists its recording"
    assert info["complete"] is True and info["recovered"] is True
    assert info["size"] == file.stat().st_size
    assert 2.0 <= info["duration"] <= during["duration"] + 2.0
    packets, frames = await decoded(str(file))
    assert packets == frames > 0
    assert await complaints(str(file)) == ""
    # and it is served as any finished recording is (a public room)
    async with aiohttp.ClientSession() as http, http.get(restarted.url + info["url"]) as r:
        assert r.status == 200 and len(await r.read()) == info["size"]
