"""Publishing a synthetic stream over WHIP to a real server, and probing what it wrote.

The publisher is a real aiortc peer in the test process: it encodes a moving
test picture (H.264 or VP8) and Opus silence. ffprobe and ffmpeg (Debian's)
check the files the server wrote, as a player would.
"""

from __future__ import annotations

import asyncio
import fractions
import json
import math
import random
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import av
from aiortc import (
    AudioStreamTrack,
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from udp_proxy import LossyPath

from livehub.media.remux import Timed

W, H = 320, 240
FPS = 30
MEDIA_TIMING = {
    "peer_timeout": 3.0,
    "connect_timeout": 8.0,
    "check_interval": 0.1,
}


class PatternTrack(MediaStreamTrack):
    """30 fps frames with a bar that moves, so every frame encodes to something."""

    kind = "video"

    def __init__(self, noise: bool = False) -> None:
        super().__init__()
        self.count = 0
        self._start: float | None = None
        # noise in the lower half makes every frame several RTP packets long
        self._noise = random.Random(5) if noise else None

    async def recv(self) -> av.VideoFrame:
        self._start = self._start or time.monotonic()
        await asyncio.sleep(max(0.0, self._start + self.count / FPS - time.monotonic()))
        frame = av.VideoFrame(W, H, "yuv420p")
        for plane in frame.planes[1:]:
            plane.update(b"\x80" * (plane.line_size * plane.height))
        stride = frame.planes[0].line_size
        luma = bytearray(b"\x20" * (stride * H))
        x = self.count * 4 % W
        for row in range(H):
            luma[row * stride + x : row * stride + min(W, x + 16)] = b"\xe0" * min(16, W - x)
        if self._noise is not None:
            luma[stride * H // 2 :] = self._noise.randbytes(stride * (H - H // 2))
        frame.planes[0].update(bytes(luma))
        frame.pts = self.count * (90000 // FPS)
        frame.time_base = fractions.Fraction(1, 90000)
        self.count += 1
        return frame


class Endpoint(Protocol):
    """Where a publisher can reach a server: a test ``Server`` or a server process's URL."""

    @property
    def url(self) -> str: ...

    @property
    def http(self) -> aiohttp.ClientSession: ...


@dataclass
class Publisher:
    pc: RTCPeerConnection
    track: PatternTrack
    location: str
    started: float  # wall clock when the server answered


async def publish(
    server: Endpoint,
    room: str,
    token: str,
    *,
    codec: str = "video/H264",
    audio: bool = True,
    path: LossyPath | None = None,
    noise: bool = False,
) -> Publisher:
    """Publish over WHIP; with ``path`` every packet goes through that proxy; with
    ``noise`` every video frame is several packets long."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    track = PatternTrack(noise)
    video = pc.addTransceiver(track, direction="sendonly")
    video.setCodecPreferences(
        [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == codec]
    )
    if audio:
        pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    # Without abs-send-time the server sends no REMB, so aiortc's encoder never
    # restarts (which would make keyframes nobody asked for).
    sdp = "".join(
        line
        for line in pc.localDescription.sdp.splitlines(keepends=True)
        if "abs-send-time" not in line
    )
    if path is not None:
        sdp = path.offer(sdp)
    headers = {"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"}
    async with server.http.post(f"{server.url}/whip/{room}", data=sdp, headers=headers) as r:
        assert r.status == 201, await r.text()
        location, answer = r.headers["Location"], await r.text()
    if path is not None:
        answer = path.answer(answer)
    await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    return Publisher(pc, track, location, time.time())


async def unpublish(server: Endpoint, publisher: Publisher, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with server.http.delete(server.url + publisher.location, headers=headers) as r:
        assert r.status == 200, await r.text()
    await publisher.pc.close()


async def until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """Wait for a truthy ``condition()`` (sync or async); fails after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.1)


async def run(*argv: str, timeout: float = 30) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def ffprobe(target: str) -> dict[str, Any]:
    """ffprobe's view of a file or URL: ``{"format": {...}, "streams": [...]}``."""
    code, out, err = await run(
        "ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams", target
    )
    assert code == 0, err
    return dict(json.loads(out))


async def decodes_cleanly(target: str) -> str:
    """Decode every frame with ffmpeg; returns its complaints ('' when there are none)."""
    code, _, err = await run("ffmpeg", "-v", "error", "-i", target, "-f", "null", "-")
    assert code == 0, err
    return err


def codecs(probe: dict[str, Any]) -> dict[str, str]:
    return {s["codec_type"]: s["codec_name"] for s in probe["streams"]}


# frames encoded here, for the sinks offline


def encoded_h264(count: int, keyframes: set[int] = frozenset()) -> list[tuple[int, bytes, bool]]:
    """``count`` frames of 320x240 H.264 at 30 fps: (RTP timestamp, access unit, keyframe);
    a keyframe every 30 frames, and at each of ``keyframes`` (as a PLI would ask)."""
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = 320, 240, "yuv420p"
    encoder.time_base = fractions.Fraction(1, 30)
    encoder.options = {"tune": "zerolatency", "keyint": "30"}
    encoder.profile = "Baseline"
    out = []
    for i in range(count):
        frame = av.VideoFrame(320, 240, "yuv420p")
        for n, plane in enumerate(frame.planes):
            plane.update(bytes([(i * 7 + n * 50) % 256]) * (plane.line_size * plane.height))
        frame.pts = i
        if i in keyframes:
            frame.pict_type = av.video.frame.PictureType.I
        for packet in encoder.encode(frame):
            out.append((i * 3000, bytes(packet), packet.is_keyframe))
    return out


def encoded_opus(count: int) -> list[bytes]:
    """``count`` 20 ms Opus packets of a 440 Hz tone."""
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate, encoder.layout, encoder.format = 48000, "stereo", "s16"
    encoder.time_base = fractions.Fraction(1, 48000)
    out = []
    for i in range(count):
        frame = av.AudioFrame(format="s16", layout="stereo", samples=960)
        tone = (int(6000 * math.sin(2 * math.pi * 440 * (i * 960 + k) / 48000)) for k in range(960))
        frame.planes[0].update(b"".join(struct.pack("<hh", v, v) for v in tone))
        frame.sample_rate, frame.pts = 48000, i * 960
        out.extend(bytes(p) for p in encoder.encode(frame))
    return out


def encoded_vp8(count: int) -> list[tuple[int, bytes, bool]]:
    """``count`` frames of 320x240 VP8 at 30 fps: (RTP timestamp, frame, keyframe)."""
    encoder = av.CodecContext.create("libvpx", "w")
    encoder.width, encoder.height, encoder.pix_fmt = 320, 240, "yuv420p"
    encoder.time_base = fractions.Fraction(1, 30)
    encoder.options = {"deadline": "realtime", "cpu-used": "8", "g": "30"}
    out = []
    for i in range(count):
        frame = av.VideoFrame(320, 240, "yuv420p")
        for n, plane in enumerate(frame.planes):
            plane.update(bytes([(i * 7 + n * 50) % 256]) * (plane.line_size * plane.height))
        frame.pts = i
        for packet in encoder.encode(frame):
            out.append((int(packet.pts or 0) * 3000, bytes(packet), packet.is_keyframe))
    return out


def interleaved(video: list[tuple[int, bytes, bool]], audio: list[bytes]) -> list[Timed]:
    """Video and audio frames in the order they would arrive."""
    frames: list[Timed] = []
    a = 0
    for ts, data, key in video:
        while a < len(audio) and a * 960 * 90000 <= ts * 48000:
            frames.append(Timed("audio", audio[a], a * 960, True))
            a += 1
        frames.append(Timed("video", data, ts, key))
    return frames
