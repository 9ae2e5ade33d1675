"""Forwarding through aiortc's internals: fails loudly the day aiortc changes under us.

Three layers: the pinned version and every internal name; the source lines the
approach depends on; and the whole path end to end over real peer connections
on this machine, counting that the middle never builds a decoder or an encoder.
"""

from __future__ import annotations

import asyncio
import fractions
import importlib.metadata
import inspect
import queue
import time
import tomllib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiortc
import av
import pytest
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
    rtcrtpreceiver,
    rtcrtpsender,
)
from aiortc.rtp import RTCP_PSFB_PLI, RtcpPsfbPacket
from support import COUNTER_H, COUNTER_W, counter_frame, read_counter

from livehub.media import forwarding
from livehub.media.forwarding import (
    AIORTC_VERSION,
    ForwardedTrack,
    ForwardingUnsupported,
    KeyframeAsker,
    Packer,
    check_version,
    forward_receiver,
    forward_sender,
    h264_keyframe,
    is_forwarding,
    packer_of,
    vp8_keyframe,
)
from livehub.media.relay import EncodedFrame, RoomRelay

ROOT = Path(__file__).resolve().parents[2]
W, H = COUNTER_W, COUNTER_H
NO_ICE_SERVERS = RTCConfiguration(iceServers=[])


class CounterTrack(MediaStreamTrack):
    """30 fps frames whose top rows spell the frame number in 16 black/white blocks."""

    kind = "video"

    def __init__(self, fps: int = 30) -> None:
        super().__init__()
        self.count = 0
        self._fps = fps
        self._start: float | None = None

    async def recv(self) -> av.VideoFrame:
        self._start = self._start or time.monotonic()
        await asyncio.sleep(max(0.0, self._start + self.count / self._fps - time.monotonic()))
        frame = counter_frame(self.count)
        frame.pts = self.count * (90000 // self._fps)
        frame.time_base = fractions.Fraction(1, 90000)
        self.count += 1
        return frame


def capabilities(mime: str) -> list[Any]:
    kind = mime.split("/")[0]
    return [c for c in RTCRtpSender.getCapabilities(kind).codecs if c.mimeType == mime]


# 1. version and names


def test_aiortc_is_the_pinned_version() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "aiortc==" + AIORTC_VERSION in pyproject["project"]["dependencies"]
    assert aiortc.__version__ == importlib.metadata.version("aiortc") == AIORTC_VERSION


def test_another_aiortc_version_is_refused_with_a_clear_error() -> None:
    check_version(AIORTC_VERSION)
    with pytest.raises(ForwardingUnsupported, match=r"needs aiortc==1\.16\.0.*1\.17\.0"):
        check_version("1.17.0")


def test_every_internal_name_forwarding_uses_exists() -> None:
    assert forwarding.missing_internals() == []


async def test_fresh_receivers_and_senders_have_the_private_state_we_replace() -> None:
    pc = RTCPeerConnection(NO_ICE_SERVERS)
    try:
        transceiver = pc.addTransceiver("video", direction="sendrecv")
        receiver, sender = transceiver.receiver, transceiver.sender
        assert isinstance(receiver._RTCRtpReceiver__decoder_queue, queue.Queue)
        assert receiver._RTCRtpReceiver__decoder_thread is None
        assert sender._RTCRtpSender__encoder is None
        forward_receiver(receiver, "video", lambda frame: None)
        assert is_forwarding(receiver)
        with pytest.raises(ForwardingUnsupported):
            forward_sender(sender, "video/H264", lambda: None, lambda: None)  # encoder set twice
            forward_sender(sender, "video/H264", lambda: None, lambda: None)
        assert isinstance(packer_of(sender), Packer)
    finally:
        await pc.close()


# 2. the source lines the approach stands on


@pytest.mark.parametrize(
    ("function", "needles"),
    [
        (rtcrtpreceiver.decoder_worker, ["task = input_q.get()", "codec, encoded_frame = task"]),
        (
            RTCRtpReceiver.receive,
            ["target=decoder_worker", "self.__decoder_queue,", "if not self.__started:"],
        ),
        (
            RTCRtpReceiver._handle_rtp_packet,
            [
                "self.__timestamp_mapper.map(",
                "self.__decoder_queue.put((codec, encoded_frame))",
            ],
        ),
        (RTCRtpReceiver.stop, ["self.__stop_decoder()"]),
        (
            RTCRtpSender._next_encoded_frame,
            [
                "data = await self.__track.recv()",
                "if self.__encoder is None:",
                "if isinstance(data, Frame):",
                "self.__encoder.pack(data)",
            ],
        ),
        (RTCRtpSender._handle_rtcp_packet, ["RTCP_PSFB_PLI", "self._send_keyframe()"]),
    ],
    ids=lambda v: getattr(v, "__qualname__", "needles"),
)
def test_aiortc_still_does_what_forwarding_relies_on(
    function: Callable[..., Any], needles: list[str]
) -> None:
    source = inspect.getsource(function)
    for needle in needles:
        assert needle in source, f"{function.__qualname__} no longer has {needle!r}"


async def test_codec_preferences_count_only_before_set_remote_description() -> None:
    """Why ingest creates its transceivers first: aiortc picks codecs inside SRD."""
    offerer = RTCPeerConnection(NO_ICE_SERVERS)
    offerer.addTransceiver("video", direction="sendonly")  # aiortc offers VP8 first
    await offerer.setLocalDescription(await offerer.createOffer())
    offer = offerer.localDescription

    async def answer_codec(before: bool) -> str:
        pc = RTCPeerConnection(NO_ICE_SERVERS)
        prefs = capabilities("video/H264")
        if before:
            pc.addTransceiver("video", direction="recvonly").setCodecPreferences(prefs)
        await pc.setRemoteDescription(offer)
        if not before:
            pc.getTransceivers()[0].setCodecPreferences(prefs)
        await pc.setLocalDescription(await pc.createAnswer())
        first = next(line for line in pc.localDescription.sdp.splitlines() if "rtpmap" in line)
        await pc.close()
        return first.split()[1]

    try:
        assert await answer_codec(before=True) == "H264/90000"
        assert await answer_codec(before=False) == "VP8/90000"
    finally:
        await offerer.close()


# 3. keyframes and packing


def _encode(codec: str, count: int, **options: str) -> list[bytes]:
    context = av.CodecContext.create(codec, "w")
    context.width, context.height, context.pix_fmt = W, H, "yuv420p"
    context.time_base = fractions.Fraction(1, 30)
    context.options = options
    out: list[bytes] = []
    for n in range(count):
        frame = counter_frame(n)
        frame.pts = n
        out += [bytes(p) for p in context.encode(frame)]
    out += [bytes(p) for p in context.encode(None)]
    return out


def test_h264_keyframes_are_recognised() -> None:
    packets = _encode("libx264", 10, tune="zerolatency", profile="baseline")
    assert [h264_keyframe(p) for p in packets] == [True] + [False] * 9
    for junk in (b"", b"\x00\x00\x01", b"\x00\x00\x00\x01\x65"[:4], b"\xff" * 40):
        assert not h264_keyframe(junk)


def test_vp8_keyframes_are_recognised() -> None:
    packets = _encode("libvpx", 10, deadline="realtime", **{"lag-in-frames": "0"})
    assert [vp8_keyframe(p) for p in packets] == [True] + [False] * (len(packets) - 1)
    assert not vp8_keyframe(b"") and not vp8_keyframe(b"\x00" * 12)


def test_the_packer_only_packs() -> None:
    packer = Packer("video/H264")
    with pytest.raises(ForwardingUnsupported):
        packer.encode(counter_frame(0))
    idr = _encode("libx264", 1, tune="zerolatency")[0]
    packet = av.Packet(idr)
    packet.pts = 4500
    payloads, timestamp = packer.pack(packet)
    assert timestamp == 4500 and payloads and all(len(p) <= 1300 for p in payloads)
    opus = Packer("audio/opus")
    assert opus.pack(_packet(b"opus", 960)) == ([b"opus"], 960)


def _packet(data: bytes, pts: int) -> av.Packet:
    packet = av.Packet(data)
    packet.pts = pts
    return packet


async def test_a_viewers_picture_loss_reaches_the_relay() -> None:
    pc = RTCPeerConnection(NO_ICE_SERVERS)
    try:
        sender = pc.addTransceiver("video", direction="sendonly").sender
        asked: list[str] = []
        forward_sender(
            sender, "video/VP8", lambda: asked.append("pli"), lambda: asked.append("rtcp")
        )
        pli = RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=1234, media_ssrc=sender._ssrc)
        await sender._handle_rtcp_packet(pli)
        assert asked == ["rtcp", "pli"]
    finally:
        await pc.close()


# 4. end to end: publisher -> forwarding peer -> viewer, with no codec in the middle


class Counting:
    def __init__(self, real: Callable[[Any], Any]) -> None:
        self.real = real
        self.calls: list[str] = []

    def __call__(self, codec: Any) -> Any:
        self.calls.append(codec.mimeType)
        return self.real(codec)


async def _connect(offerer: RTCPeerConnection, answerer: RTCPeerConnection) -> None:
    await offerer.setLocalDescription(await offerer.createOffer())
    await answerer.setRemoteDescription(offerer.localDescription)
    await answerer.setLocalDescription(await answerer.createAnswer())
    await offerer.setRemoteDescription(answerer.localDescription)


@pytest.fixture
async def peers() -> AsyncIterator[list[RTCPeerConnection]]:
    made: list[RTCPeerConnection] = []
    yield made
    for pc in made:
        await pc.close()


@pytest.mark.parametrize("mime", ["video/H264", "video/VP8"])
async def test_frames_are_forwarded_without_decoding_or_encoding(
    monkeypatch: pytest.MonkeyPatch, peers: list[RTCPeerConnection], mime: str
) -> None:
    decoders = Counting(rtcrtpreceiver.get_decoder)
    encoders = Counting(rtcrtpsender.get_encoder)
    monkeypatch.setattr(rtcrtpreceiver, "get_decoder", decoders)
    monkeypatch.setattr(rtcrtpsender, "get_encoder", encoders)
    publisher, ingest, egress, viewer = (RTCPeerConnection(NO_ICE_SERVERS) for _ in range(4))
    peers += [publisher, ingest, egress, viewer]
    relay = RoomRelay("room")
    seen: list[EncodedFrame] = []

    def sink(frame: EncodedFrame) -> None:
        seen.append(frame)
        relay.publish(frame)

    track = CounterTrack()
    publisher.addTransceiver(track, direction="sendonly")
    into = ingest.addTransceiver("video", direction="recvonly")
    into.setCodecPreferences(capabilities(mime))
    forward_receiver(into.receiver, "video", sink)
    await _connect(publisher, ingest)
    asker = KeyframeAsker(into.receiver)
    relay.attach_publisher({"video": mime}, asker)

    viewer.addTransceiver("video", direction="recvonly")
    arrived: asyncio.Future[MediaStreamTrack] = asyncio.get_running_loop().create_future()
    viewer.on("track", arrived.set_result)
    subscription = relay.add_viewer("v", ("video",)).subscriptions["video"]
    out = egress.addTransceiver(ForwardedTrack(subscription, mime), direction="sendonly")
    out.setCodecPreferences(capabilities(mime))
    packer = forward_sender(out.sender, mime, relay.request_keyframe, lambda: None)
    await _connect(viewer, egress)

    remote = await asyncio.wait_for(arrived, 5)
    counters = [read_counter(await asyncio.wait_for(remote.recv(), 5)) for _ in range(20)]
    assert counters == sorted(counters) and len(set(counters)) == 20
    assert counters[-1] - counters[0] < 40, "frames arrive in order, essentially none lost"
    assert seen[0].keyframe and all(f.kind == "video" for f in seen)
    assert packer.packed >= 20 and packer_of(out.sender) is packer
    assert into.receiver.track._queue.empty(), "the ingest track never got a decoded frame"
    assert decoders.calls == [mime], "only the viewer decoded"
    assert encoders.calls == [mime], "only the publisher encoded"
    await asker.close()
