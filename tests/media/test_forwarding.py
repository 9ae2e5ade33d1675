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
from aioice.ice import Connection, StunProtocol
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceTransport,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
    rtcrtpreceiver,
    rtcrtpsender,
)
from aiortc.codecs.h264 import H264Encoder
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import RTCP_PSFB_PLI, HeaderExtensionsMap, RtcpPsfbPacket, RtpPacket
from support import COUNTER_H, COUNTER_W, counter_frame, read_counter

from livehub.media import forwarding
from livehub.media.forwarding import (
    AIORTC_VERSION,
    ForwardedTrack,
    ForwardingUnsupported,
    KeyframeAsker,
    Packer,
    SendLoop,
    SocketPath,
    WholeFrames,
    check_version,
    forward_receiver,
    forward_sender,
    h264_keyframe,
    is_forwarding,
    packer_of,
    rtp_extension_block,
    rtp_packet,
    send_loop_of,
    vp8_keyframe,
    whole_frames_of,
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
    # SocketPath writes to aioice's sockets and encrypts with aiortc's pylibsrtp session
    for name in ("aioice", "pylibsrtp"):
        pinned = importlib.metadata.version(name)
        assert f"{name}=={pinned}" in pyproject["project"]["dependencies"]


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
        for name in forwarding._SENDER_STATE.values():
            assert hasattr(sender, name), name
        assert isinstance(receiver._RTCRtpReceiver__codecs, dict)
        assert hasattr(receiver, "_RTCRtpReceiver__jitter_buffer")
        forward_receiver(receiver, "video", lambda frame: None)
        assert is_forwarding(receiver)
        assert isinstance(whole_frames_of(receiver), WholeFrames)
        with pytest.raises(ForwardingUnsupported):
            forward_sender(sender, "video/H264", lambda: None, lambda: None)  # encoder set twice
            forward_sender(sender, "video/H264", lambda: None, lambda: None)
        assert isinstance(packer_of(sender), Packer)
        assert isinstance(send_loop_of(sender), SendLoop)
        dtls = sender.transport
        assert all(hasattr(dtls, name) for name in forwarding._DTLS_TX)
        assert isinstance(dtls.transport._connection._nominated, dict)
    finally:
        await pc.close()


# 2. the source lines the approach stands on


@pytest.mark.parametrize(
    ("function", "needles"),
    [
        (rtcrtpreceiver.decoder_worker, ["task = input_q.get()", "codec, encoded_frame = task"]),
        (
            RTCRtpReceiver.receive,
            [
                "target=decoder_worker",
                "self.__decoder_queue,",
                "if not self.__started:",
                # WholeFrames keeps the receiver's codec table: filled in place, not replaced
                "self.__codecs[codec.payloadType] = codec",
            ],
        ),
        (
            RTCRtpReceiver._handle_rtp_packet,
            [
                # WholeFrames stands in for the video jitter buffer
                "packet._data = depayload(codec, packet.payload)",
                "pli_flag, encoded_frame = self.__jitter_buffer.add(packet)",
                "if pli_flag:",
                "await self._send_rtcp_pli(packet.ssrc)",
                "if encoded_frame is not None and self.__decoder_thread:",
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
        (
            RTCRtpSender._handle_rtcp_packet,
            ["RTCP_PSFB_PLI", "self._send_keyframe()", "await self._retransmit(seq)"],
        ),
        # SendLoop replaces _run_rtp and keeps the state it kept
        (RTCRtpSender.send, ["asyncio.ensure_future(self._run_rtp(parameters.codecs[0]))"]),
        (
            RTCRtpSender._run_rtp,
            [
                "self.__rtp_started.set()",
                "payload_type=codec.payloadType",
                "packet.ssrc = self._ssrc",
                "clock.current_ntp_time() >> 14",
                "packet.extensions.mid = self.__mid",
                "if enc_frame.audio_level is not None:",
                "packet.serialize(self.__rtp_header_extensions_map)",
                "await self.transport._send_rtp(packet_bytes)",
                "self.__ntp_timestamp = clock.current_ntp_time()",
                "self.__octet_count += len(payload)",
                "self.__track.stop()",
                "self.__rtp_exited.set()",
            ],
        ),
        (
            RTCRtpSender._retransmit,
            [
                "self.__rtp_history.get(sequence_number % RTP_HISTORY_SIZE)",
                "packet.sequence_number == sequence_number",
            ],
        ),
        (
            RTCRtpSender._run_rtcp,
            [
                "ntp_timestamp=self.__ntp_timestamp",
                "rtp_timestamp=self.__rtp_timestamp",
                "packet_count=self.__packet_count",
                "octet_count=self.__octet_count",
            ],
        ),
        (RTCRtpSender.stop, ["self.__rtp_exited.wait()"]),
        # SocketPath makes the last call of aiortc's and aioice's send path itself
        (
            RTCDtlsTransport._send_rtp,
            [
                "data = self._tx_srtp.protect(data)",
                "await self.transport._send(data)",
                "self.__tx_bytes += len(data)",
                "self.__tx_packets += 1",
            ],
        ),
        (RTCIceTransport.__init__, ["self._send = self._connection.send"]),
        (Connection.send, ["await self.sendto(data, 1)"]),
        (
            Connection.sendto,
            [
                "self._nominated.get(component)",
                "active_pair.protocol.send_data(data, active_pair.remote_addr)",
            ],
        ),
        (StunProtocol.send_data, ["self.transport.sendto(data, addr)"]),
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


def test_the_packer_cuts_a_relay_frame_once_for_every_viewer() -> None:
    idr = _encode("libx264", 1, tune="zerolatency")[0]
    frame = EncodedFrame("video", idr, 3000, True)
    first, second = Packer("video/H264"), Packer("video/H264")
    payloads = first.payloads(frame)
    assert second.payloads(frame) is payloads
    assert payloads == first.pack(_packet(idr, 0))[0]
    assert (first.packetized, second.packetized, second.packed) == (2, 0, 1)
    vp8 = EncodedFrame("video", _encode("libvpx", 1)[0], 0, True)
    a, b = Packer("video/VP8"), Packer("video/VP8")
    assert a.payloads(vp8) is not b.payloads(vp8), "VP8 carries each sender's picture id"
    assert Packer("audio/opus").payloads(EncodedFrame("audio", b"opus", 960, True)) == [b"opus"]


@pytest.mark.parametrize("uris", [["mid", "abs"], ["abs"], []], ids=str)
@pytest.mark.parametrize("marker", [False, True])
def test_stamped_packets_are_what_aiortc_would_serialize(uris: list[str], marker: bool) -> None:
    known = {
        "mid": "urn:ietf:params:rtp-hdrext:sdes:mid",
        "abs": "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
    }
    extensions_map = HeaderExtensionsMap()
    extensions_map.configure(
        RTCRtpParameters(
            headerExtensions=[
                RTCRtpHeaderExtensionParameters(id=n + 1, uri=known[u]) for n, u in enumerate(uris)
            ]
        )
    )
    ntp = 0xE3F1_2345_6789_ABCD
    packet = RtpPacket(payload_type=102, marker=int(marker), sequence_number=65535, timestamp=7)
    packet.ssrc, packet.payload = 0xDEADBEEF, b"\x7c\x85" + bytes(range(200))
    packet.extensions.abs_send_time = (ntp >> 14) & 0x00FFFFFF
    packet.extensions.mid = "1"
    block = rtp_extension_block(extensions_map, "1", ntp)
    ours = rtp_packet(102, marker, 65535, 7, 0xDEADBEEF, block, packet.payload)
    assert ours == packet.serialize(extensions_map)
    back = RtpPacket.parse(ours, extensions_map)
    assert (back.marker, back.sequence_number, back.payload) == (marker, 65535, packet.payload)


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


# 5. one cut per frame, stamped and sent per viewer


class Room:
    """A publisher forwarded into a relay, and viewers added to it one by one."""

    def __init__(self, peers: list[RTCPeerConnection], mime: str = "video/H264") -> None:
        self.peers, self.mime = peers, mime
        self.relay = RoomRelay("room")
        self.asker: KeyframeAsker | None = None

    async def start(self) -> None:
        publisher, ingest = RTCPeerConnection(NO_ICE_SERVERS), RTCPeerConnection(NO_ICE_SERVERS)
        self.peers += [publisher, ingest]
        publisher.addTransceiver(CounterTrack(), direction="sendonly")
        into = ingest.addTransceiver("video", direction="recvonly")
        into.setCodecPreferences(capabilities(self.mime))
        forward_receiver(into.receiver, "video", self.relay.publish)
        await _connect(publisher, ingest)
        self.asker = KeyframeAsker(into.receiver)
        self.relay.attach_publisher({"video": self.mime}, self.asker)

    async def watch(self, name: str) -> tuple[MediaStreamTrack, RTCRtpSender]:
        egress, viewer = RTCPeerConnection(NO_ICE_SERVERS), RTCPeerConnection(NO_ICE_SERVERS)
        self.peers += [egress, viewer]
        viewer.addTransceiver("video", direction="recvonly")
        arrived: asyncio.Future[MediaStreamTrack] = asyncio.get_running_loop().create_future()
        viewer.on("track", arrived.set_result)
        subscription = self.relay.add_viewer(name, ("video",)).subscriptions["video"]
        out = egress.addTransceiver(ForwardedTrack(subscription, self.mime), direction="sendonly")
        out.setCodecPreferences(capabilities(self.mime))
        forward_sender(out.sender, self.mime, self.relay.request_keyframe, lambda: None)
        await _connect(viewer, egress)
        return await asyncio.wait_for(arrived, 5), out.sender

    async def close(self) -> None:
        if self.asker is not None:
            await self.asker.close()


async def _counters(track: MediaStreamTrack, count: int) -> list[int]:
    return [read_counter(await asyncio.wait_for(track.recv(), 5)) for _ in range(count)]


def _consecutive(counters: list[int]) -> bool:
    return counters == list(range(counters[0], counters[0] + len(counters)))


async def test_each_frame_is_cut_once_however_many_viewers_and_all_decode(
    monkeypatch: pytest.MonkeyPatch, peers: list[RTCPeerConnection]
) -> None:
    cuts: list[int] = []

    class CountingH264(H264Encoder):
        @classmethod
        def _packetize(cls, packages: Any) -> list[bytes]:
            cuts.append(1)
            return super()._packetize(packages)

    monkeypatch.setattr(forwarding, "H264Encoder", CountingH264)  # only the relay's cuts
    room = Room(peers)
    await room.start()
    viewers = [await room.watch(f"v{n}") for n in range(3)]
    for track, _ in viewers:
        assert _consecutive(await _counters(track, 15))
    late_track, late_sender = await room.watch("late")  # joins on a fresh keyframe
    late = await _counters(late_track, 10)
    assert _consecutive(late) and late[0] > 10
    loops = [send_loop_of(sender) for _, sender in [*viewers, (late_track, late_sender)]]
    packers = [packer_of(sender) for _, sender in [*viewers, (late_track, late_sender)]]
    assert all(loop is not None and loop.sent == loop.sent_direct > 0 for loop in loops)
    handed = sum(p.packed for p in packers if p is not None)
    assert len(cuts) == sum(p.packetized for p in packers if p is not None)
    assert len(cuts) <= room.relay.frames_in < handed / 2, "one cut per frame, not per viewer"
    stats = [s for s in (await late_sender.getStats()).values() if s.type == "outbound-rtp"]
    assert stats[0].packetsSent == loops[-1].sent  # what aiortc's RTCP reports count
    transport = [s for s in (await late_sender.getStats()).values() if s.type == "transport"]
    assert transport[0].packetsSent >= loops[-1].sent
    await room.close()


async def test_a_lost_packet_is_retransmitted_from_the_send_loop(
    monkeypatch: pytest.MonkeyPatch, peers: list[RTCPeerConnection]
) -> None:
    room = Room(peers)
    await room.start()
    track, sender = await room.watch("v")
    loop = send_loop_of(sender)
    assert loop is not None
    dropped: list[bytes] = []
    send = SocketPath.send

    def lose_one(path: SocketPath, packets: list[bytes]) -> None:
        if not dropped and loop.sent > 60:
            dropped.append(packets[0])
            packets = packets[1:]
        send(path, packets)

    monkeypatch.setattr(SocketPath, "send", lose_one)
    counters = await _counters(track, 90)
    assert dropped and loop.retransmitted >= 1, "the viewer asked for the lost packet again"
    assert _consecutive(counters[-45:]), "no frame was lost"
    await room.close()


async def test_without_the_direct_socket_path_aiortcs_send_path_is_used(
    monkeypatch: pytest.MonkeyPatch, peers: list[RTCPeerConnection]
) -> None:
    monkeypatch.setattr(SocketPath, "of", classmethod(lambda cls, dtls: None))
    room = Room(peers, "video/VP8")
    await room.start()
    track, sender = await room.watch("v")
    assert _consecutive(await _counters(track, 15))
    loop = send_loop_of(sender)
    assert loop is not None and loop.sent > 0 and loop.sent_direct == 0
    await room.close()
