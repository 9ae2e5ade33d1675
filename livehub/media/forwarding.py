"""The one place that reaches into aiortc's internals, to forward without transcoding.

aiortc has no public API for forwarding received encoded frames (aiortc issue
449): every receiver decodes and every sender encodes. livehub changes two
things, per peer connection, never globally:

* Receiving (the publisher): a receiver hands each reassembled encoded frame,
  in the event loop, to ``receiver.__decoder_queue.put((codec, frame))``; a
  decoder thread reads that queue. ``forward_receiver`` swaps the queue for one
  that turns each frame into a ``relay.EncodedFrame`` (with a keyframe flag)
  and passes it to a sink at once; the decoder thread only ever sees the final
  ``None`` that stops it, so no decoder is ever created. A video receiver's
  jitter buffer is swapped too, for ``WholeFrames``: it reassembles frames
  itself (``assembly.FrameAssembler``) so that a frame with a lost packet, and
  the frames that depend on it, are never forwarded or recorded, and it has
  aiortc send the publisher a PLI for a new keyframe.
* Sending (each viewer): ``forward_sender`` installs a ``Packer`` as the
  sender's encoder (so aiortc never constructs a real one), routes the
  viewer's picture loss indications to the relay, and replaces the sender's
  RTP loop (``_run_rtp``) with a ``SendLoop``: it reads the relay
  subscription directly, reuses the RTP payloads the first viewer's packer cut
  from each frame, stamps this viewer's headers and writes the SRTP-protected
  packets straight to the ICE pair's socket (``SocketPath``). aiortc's RTCP,
  statistics and NACK retransmission keep working on the state it keeps.

aiortc is pinned to exactly ``AIORTC_VERSION``; importing this module with any
other version raises ``ForwardingUnsupported``, and tests/media/test_forwarding.py
checks every internal name used here and the whole path end to end. aioice is
pinned too (pyproject.toml), and ``SocketPath`` still checks its shape for every
frame and falls back to aiortc's own send path when it differs.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import queue
import random
import struct
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiortc
import av
from aioice.ice import StunProtocol
from aiortc import MediaStreamError, MediaStreamTrack, RTCRtpReceiver, RTCRtpSender, clock
from aiortc import rtcrtpreceiver as _receiver_module
from aiortc.codecs.base import Encoder
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtpsender import random_sequence_number
from aiortc.rtp import RTP_HISTORY_SIZE, HeaderExtensions, HeaderExtensionsMap, RtpPacket
from aiortc.utils import random32

from livehub.media.assembly import FRAMINGS, AssemblyConfig, FrameAssembler, RtpIn
from livehub.media.relay import (
    EncodedFrame,
    KeyframeRequests,
    Kind,
    RelayClosed,
    RelayConfig,
    Subscription,
)

AIORTC_VERSION = "1.16.0"

_RECEIVER_QUEUE = "_RTCRtpReceiver__decoder_queue"
_RECEIVER_THREAD = "_RTCRtpReceiver__decoder_thread"
_RECEIVER_JITTER = "_RTCRtpReceiver__jitter_buffer"
_RECEIVER_CODECS = "_RTCRtpReceiver__codecs"
_SENDER_ENCODER = "_RTCRtpSender__encoder"
# What RTCRtpSender._run_rtp reads and writes, which SendLoop takes over.
_SENDER_STATE = {
    name: f"_RTCRtpSender__{name}"
    for name in (
        "track",
        "mid",
        "rtp_header_extensions_map",
        "rtp_history",
        "rtp_started",
        "rtp_exited",
        "ntp_timestamp",
        "rtp_timestamp",
        "octet_count",
        "packet_count",
    )
}

# RTCDtlsTransport's transport statistics (packets and bytes sent), kept by socket_path users.
_DTLS_TX = ("_RTCDtlsTransport__tx_packets", "_RTCDtlsTransport__tx_bytes")

log = logging.getLogger(__name__)

CLOCK_RATES = {"video/h264": 90000, "video/vp8": 90000, "audio/opus": 48000}


class ForwardingUnsupported(RuntimeError):
    """The installed aiortc is not the one livehub's forwarding was written against."""


def check_version(version: str) -> None:
    if version != AIORTC_VERSION:
        raise ForwardingUnsupported(
            f"livehub forwards media through aiortc internals and needs aiortc=={AIORTC_VERSION}"
            f", but aiortc {version} is installed; install the pinned version"
            " (pip install -e .) or port livehub/media/forwarding.py and its tests."
        )


def missing_internals() -> list[str]:
    """Names this module relies on that the installed aiortc lacks (empty when all is well)."""
    wanted: list[tuple[object, str]] = [
        (_receiver_module, "decoder_worker"),
        (RTCRtpReceiver, "_handle_rtp_packet"),
        (RTCRtpReceiver, "_send_rtcp_pli"),
        (RTCRtpReceiver, "getSynchronizationSources"),
        (RTCRtpSender, "_send_keyframe"),
        (RTCRtpSender, "_handle_rtcp_packet"),
        (RTCRtpSender, "_next_encoded_frame"),
        (RTCRtpSender, "_run_rtp"),
        (RTCRtpSender, "_retransmit"),
        (RtpPacket, "parse"),
        (RTCDtlsTransport, "_send_rtp"),
        (StunProtocol, "send_data"),
        (HeaderExtensionsMap, "set"),
        (H264Encoder, "_packetize"),
        (H264Encoder, "_split_bitstream"),
        (Vp8Encoder, "_packetize"),
    ]
    return [
        f"{getattr(owner, '__name__', owner)}.{name}"
        for owner, name in wanted
        if not hasattr(owner, name)
    ]


check_version(aiortc.__version__)
if missing := missing_internals():
    raise ForwardingUnsupported(f"aiortc lacks {', '.join(missing)}")


# keyframes


def is_keyframe(mime: str, data: bytes) -> bool:
    """Whether an encoded frame can be decoded on its own."""
    name = mime.lower()
    if name == "video/h264":
        return h264_keyframe(data)
    if name == "video/vp8":
        return vp8_keyframe(data)
    return True  # audio frames stand alone


def h264_keyframe(data: bytes) -> bool:
    """An Annex-B access unit whose first slice is an IDR slice (NAL type 5)."""
    i = data.find(b"\x00\x00\x01")
    while 0 <= i < len(data) - 3:
        nal_type = data[i + 3] & 0x1F
        if nal_type == 5:
            return True
        if nal_type == 1:
            return False
        i = data.find(b"\x00\x00\x01", i + 3)
    return False


def vp8_keyframe(data: bytes) -> bool:
    """The VP8 frame tag's P bit is 0 and the keyframe start code follows (RFC 6386 9.1)."""
    return len(data) >= 10 and not data[0] & 0x01 and data[3:6] == b"\x9d\x01\x2a"


# receiving


class _ForwardingQueue(queue.Queue[Any]):
    """Stands in for a receiver's decoder queue: frames go to the sink, not a decoder.

    ``put`` runs on the event loop (from ``RTCRtpReceiver._handle_rtp_packet``).
    Only the ``None`` that stops the receiver reaches the decoder thread.
    """

    def __init__(self, kind: Kind, sink: Callable[[EncodedFrame], None]) -> None:
        super().__init__()
        self._kind = kind
        self._sink = sink
        self.forwarded = 0

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if item is None:
            super().put(None, block, timeout)
            return
        codec, jitter_frame = item
        data = bytes(jitter_frame.data)
        self.forward(data, int(jitter_frame.timestamp), is_keyframe(codec.mimeType, data))

    def forward(self, data: bytes, timestamp: int, keyframe: bool) -> None:
        self.forwarded += 1
        self._sink(EncodedFrame(self._kind, data, timestamp, keyframe))


class WholeFrames:
    """Stands in for a video receiver's jitter buffer: hands on whole frames only.

    aiortc's jitter buffer passes on whatever run of packets it holds when it
    gives up waiting for a lost one, so a frame can lack its first or last
    packets, and the frames after a lost one are passed on although they refer
    to it. Here a ``FrameAssembler`` per codec does the reassembly; whole
    frames go straight to the forwarding queue (several at once when a late
    packet completes them). While the assembler waits for a keyframe after a
    loss it asks for one: through ``request_keyframe`` when given (the relay's
    ``request_keyframe``, so one limiter paces every request to the publisher),
    else by having aiortc send a PLI, at most as often as its own
    ``KeyframeRequests`` allows.
    """

    def __init__(
        self,
        codecs: dict[int, RTCRtpCodecParameters],
        out: _ForwardingQueue,
        config: AssemblyConfig,
        keyframe_min_interval: float,
        keyframe_retry: float,
        clock: Callable[[], float] = time.monotonic,
        request_keyframe: Callable[[], object] | None = None,
    ) -> None:
        self._codecs = codecs
        self._request_keyframe = request_keyframe
        self._out = out
        self._config = config
        self._clock = clock
        self._assemblers: dict[str, FrameAssembler] = {}
        self._origin: int | None = None
        self.keyframes = KeyframeRequests(_always, keyframe_min_interval, keyframe_retry, clock)
        self.asks = 0  # packets that asked for a keyframe after a loss

    def assembler(self, mime: str) -> FrameAssembler | None:
        return self._assemblers.get(mime.lower())

    def add(self, packet: RtpPacket) -> tuple[bool, None]:
        codec = self._codecs.get(packet.payload_type)
        if codec is None:
            return False, None
        mime = codec.mimeType.lower()
        assembler = self._assemblers.get(mime)
        if assembler is None:
            if mime not in FRAMINGS:
                return False, None
            assembler = self._assemblers[mime] = FrameAssembler(
                mime, lambda data: is_keyframe(mime, data), self._config, self._clock
            )
        data: bytes = getattr(packet, "_data", b"")
        seq, timestamp = packet.sequence_number, packet.timestamp
        rtp = RtpIn(packet.ssrc, seq, timestamp, bool(packet.marker), packet.payload, data)
        for frame in assembler.add(rtp):
            if frame.keyframe:
                self.keyframes.keyframe_arrived()
            if self._origin is None:
                self._origin = frame.timestamp
            since = (frame.timestamp - self._origin) & 0xFFFFFFFF  # from the first frame
            self._out.forward(frame.data, since, frame.keyframe)
        if not assembler.lossy:
            return False, None
        self.asks += 1  # a frame was lost: ask for the next keyframe (the limiter paces)
        if self._request_keyframe is not None:
            self._request_keyframe()  # rate-limited by the relay
            return False, None
        return self.keyframes.request(), None


def _always() -> bool:
    return True


def forward_receiver(
    receiver: RTCRtpReceiver,
    kind: Kind,
    sink: Callable[[EncodedFrame], None],
    config: RelayConfig | None = None,
    request_keyframe: Callable[[], object] | None = None,
) -> None:
    """Make ``receiver`` hand its encoded frames to ``sink`` instead of decoding them;
    video frames whole only (``WholeFrames``, which asks for a keyframe after a loss
    through ``request_keyframe`` when given).

    Call before the connection starts receiving (before setLocalDescription).
    """
    current = getattr(receiver, _RECEIVER_QUEUE, None)
    if not isinstance(current, queue.Queue):
        raise ForwardingUnsupported(f"RTCRtpReceiver has no {_RECEIVER_QUEUE} queue")
    if getattr(receiver, _RECEIVER_THREAD, "missing") is not None:
        raise ForwardingUnsupported("the receiver is already decoding; forward it earlier")
    out = _ForwardingQueue(kind, sink)
    setattr(receiver, _RECEIVER_QUEUE, out)
    if kind == "video":
        codecs = getattr(receiver, _RECEIVER_CODECS, None)
        if not isinstance(codecs, dict) or not hasattr(receiver, _RECEIVER_JITTER):
            raise ForwardingUnsupported(f"RTCRtpReceiver has no {_RECEIVER_JITTER}")
        config = config or RelayConfig()
        buffer = WholeFrames(
            codecs,
            out,
            config.assembly,
            config.keyframe_min_interval,
            config.keyframe_retry,
            request_keyframe=request_keyframe,
        )
        setattr(receiver, _RECEIVER_JITTER, buffer)


def whole_frames_of(receiver: RTCRtpReceiver) -> WholeFrames | None:
    buffer = getattr(receiver, _RECEIVER_JITTER, None)
    return buffer if isinstance(buffer, WholeFrames) else None


def is_forwarding(receiver: RTCRtpReceiver) -> bool:
    return isinstance(getattr(receiver, _RECEIVER_QUEUE, None), _ForwardingQueue)


class KeyframeAsker:
    """Sends picture loss indications to a publisher's video receiver."""

    def __init__(self, receiver: RTCRtpReceiver) -> None:
        self._receiver = receiver
        self._tasks: set[asyncio.Task[None]] = set()

    def __call__(self) -> bool:
        sources = self._receiver.getSynchronizationSources()
        if not sources:
            return False  # nothing received yet: no SSRC to address
        for source in sources:
            self._spawn(self._receiver._send_rtcp_pli(source.source))
        return True

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


# sending


class Packer(Encoder):
    """A sender's 'encoder' that only packetizes already encoded frames.

    H.264 and Opus payloads do not depend on the viewer, so ``payloads`` cuts
    a relay frame once and every other viewer's sender reuses the cut
    (``EncodedFrame.packetized``). VP8 payloads carry this sender's picture id
    and are cut per sender.
    """

    def __init__(self, mime: str) -> None:
        self.mime = mime.lower()
        if self.mime not in CLOCK_RATES:
            raise ValueError(f"cannot forward {mime}")
        self._picture_id = random.randint(0, (1 << 15) - 1)
        self.packed = 0  # frames handed to the sender
        self.packetized = 0  # of those, frames this packer cut itself

    def encode(self, frame: Any, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        raise ForwardingUnsupported("a forwarding sender was given a raw frame to encode")

    def pack(self, packet: av.Packet[Any]) -> tuple[list[bytes], int]:
        self.packed += 1
        self.packetized += 1
        return self._packetize(bytes(packet)), int(packet.pts or 0)

    def payloads(self, frame: EncodedFrame) -> list[bytes]:
        """The RTP payloads of a relay frame, cut once for every viewer where possible."""
        self.packed += 1
        if self.mime == "video/vp8":
            self.packetized += 1
            return self._packetize(frame.data)
        payloads = frame.packetized.get(self.mime)
        if payloads is None:
            self.packetized += 1
            payloads = frame.packetized[self.mime] = self._packetize(frame.data)
        return payloads

    def _packetize(self, data: bytes) -> list[bytes]:
        if self.mime == "video/h264":
            return H264Encoder._packetize(H264Encoder._split_bitstream(data))
        if self.mime == "video/vp8":
            payloads = Vp8Encoder._packetize(data, self._picture_id)
            self._picture_id = (self._picture_id + 1) % (1 << 15)
            return payloads
        return [data]


_RTP_HEADER = struct.Struct("!BBHLL")


def rtp_extension_block(extensions_map: HeaderExtensionsMap, mid: str | None, ntp: int) -> bytes:
    """The header extension block aiortc's ``RtpPacket.serialize`` writes for a forwarded packet:
    abs-send-time from ``ntp`` and the MID (forwarded packets carry no audio level)."""
    values = HeaderExtensions(abs_send_time=(ntp >> 14) & 0x00FFFFFF, mid=mid)
    profile, value = extensions_map.set(values)
    return struct.pack("!HH", profile, len(value) >> 2) + value if value else b""


def rtp_packet(
    payload_type: int,
    marker: bool,
    sequence_number: int,
    timestamp: int,
    ssrc: int,
    extension_block: bytes,
    payload: bytes,
) -> bytes:
    """Byte for byte what ``RtpPacket.serialize`` writes for these fields (no CSRC, no padding)."""
    first = 0x90 if extension_block else 0x80
    header = _RTP_HEADER.pack(
        first, payload_type | (0x80 if marker else 0), sequence_number, timestamp, ssrc
    )
    return header + extension_block + payload


class SocketPath:
    """The way out of one DTLS transport, for a frame's packets: SRTP, then the socket.

    aiortc sends each packet through four coroutines (``RTCDtlsTransport._send_rtp``,
    aioice's ``Connection.send``, ``Connection.sendto``, ``StunProtocol.send_data``)
    that end in ``transport.sendto(srtp.protect(data), pair.remote_addr)``;
    this makes that last call directly. ``of`` is re-evaluated for every frame.
    """

    def __init__(self, dtls: RTCDtlsTransport, pair: Any) -> None:
        self._dtls = dtls
        self._protect: Callable[[bytes], bytes] = dtls._tx_srtp.protect
        self._sendto: Callable[[bytes, Any], None] = pair.protocol.transport.sendto
        self._addr = pair.remote_addr

    @classmethod
    def of(cls, dtls: RTCDtlsTransport) -> SocketPath | None:
        """The direct path, or None when the transport is not the shape this was written
        for (a TURN or TCP pair, another aioice): then aiortc's own path is used."""
        if dtls._state != DtlsState.CONNECTED:
            raise ConnectionError("Cannot send encrypted RTP, not connected")
        nominated = getattr(getattr(dtls.transport, "_connection", None), "_nominated", None)
        if not isinstance(nominated, dict):
            return None
        pair = nominated.get(1)
        if pair is None:
            raise ConnectionError("Cannot send data, not connected")
        protocol = getattr(pair, "protocol", None)
        if type(protocol) is not StunProtocol or protocol.transport is None:
            return None
        if not all(hasattr(dtls, name) for name in _DTLS_TX):
            return None
        return cls(dtls, pair)

    def send(self, packets: list[bytes]) -> None:
        protect, sendto, addr = self._protect, self._sendto, self._addr
        size = 0
        for data in packets:
            out = protect(data)
            sendto(out, addr)
            size += len(out)
        packets_name, bytes_name = _DTLS_TX
        setattr(self._dtls, packets_name, getattr(self._dtls, packets_name) + len(packets))
        setattr(self._dtls, bytes_name, getattr(self._dtls, bytes_name) + size)


class SendLoop:
    """Stands in for ``RTCRtpSender._run_rtp`` on a forwarding sender.

    aiortc builds an ``RtpPacket`` per packet per viewer, reads the clock twice
    per packet, serializes its header extensions every time and awaits four
    coroutines to send it. Here each relay frame's payloads are cut once for
    every viewer (``Packer.payloads``), the clock and the extension block are
    taken once per frame, a packet is one header ``pack`` plus its payload, and
    a frame's packets are SRTP-protected and written to the socket in one go
    (``SocketPath``). aiortc's sender keeps everything else: its RTCP reports
    read the counters kept here, and a NACK is answered by aiortc's
    ``_retransmit`` from this loop's history (``retransmit``).
    """

    def __init__(self, sender: RTCRtpSender, packer: Packer) -> None:
        self._sender = sender
        self._packer = packer
        self._history: list[tuple[int, bytes] | None] = [None] * RTP_HISTORY_SIZE
        self._aiortc_retransmit: Callable[[int], Awaitable[None]] = sender._retransmit
        self.sent = 0  # RTP packets
        self.sent_direct = 0  # of those, written to the socket by SocketPath
        self.retransmitted = 0

    def _state(self, name: str) -> Any:
        return getattr(self._sender, _SENDER_STATE[name])

    async def run(self, codec: RTCRtpCodecParameters) -> None:
        sender = self._sender
        self._state("rtp_started").set()
        try:
            track = self._state("track")
            if not isinstance(track, ForwardedTrack):
                raise ForwardingUnsupported("a forwarding sender needs a ForwardedTrack")
            if codec.payloadType is None:
                raise ForwardingUnsupported("the sender's codec has no payload type")
            await self._forward(track.subscription, codec.payloadType)
        except (asyncio.CancelledError, ConnectionError, MediaStreamError, RelayClosed):
            pass
        except Exception:
            # like aiortc: rtp_exited must be set or RTCRtpSender.stop() hangs
            log.exception("forwarding sender (%s) failed", sender.kind)
        track = self._state("track")
        if track is not None:
            track.stop()
            setattr(sender, _SENDER_STATE["track"], None)
        self._state("rtp_exited").set()

    async def _forward(self, subscription: Subscription, payload_type: int) -> None:
        sender = self._sender
        extensions_map = self._state("rtp_header_extensions_map")
        mid = self._state("mid")
        sequence_number = random_sequence_number()
        origin = random32()
        while True:
            frame = await subscription.next()
            if not sender._enabled:
                continue
            payloads = self._packer.payloads(frame)
            if not payloads:
                continue
            ntp = clock.current_ntp_time()
            timestamp = (origin + frame.timestamp) & 0xFFFFFFFF
            block = rtp_extension_block(extensions_map, mid, ntp)
            packets = self._stamp(payloads, payload_type, sequence_number, timestamp, block)
            sequence_number = (sequence_number + len(packets)) & 0xFFFF
            dtls = sender.transport
            path = SocketPath.of(dtls)
            if path is not None:
                path.send(packets)
                self.sent_direct += len(packets)
            else:
                for data in packets:
                    await dtls._send_rtp(data)
            self._count(ntp, timestamp, sum(map(len, payloads)), len(packets))

    def _stamp(
        self, payloads: list[bytes], payload_type: int, first: int, timestamp: int, block: bytes
    ) -> list[bytes]:
        """This viewer's RTP packets for a frame's payloads, remembered for retransmission."""
        ssrc, history, last = self._sender._ssrc, self._history, len(payloads) - 1
        packets = []
        for i, payload in enumerate(payloads):
            sequence_number = (first + i) & 0xFFFF
            data = rtp_packet(
                payload_type, i == last, sequence_number, timestamp, ssrc, block, payload
            )
            history[sequence_number % RTP_HISTORY_SIZE] = (sequence_number, data)
            packets.append(data)
        return packets

    def _count(self, ntp: int, timestamp: int, octets: int, packets: int) -> None:
        """Keep the figures aiortc's sender reports (RTCP SR) and shows (getStats)."""
        sender, state = self._sender, _SENDER_STATE
        setattr(sender, state["ntp_timestamp"], ntp)
        setattr(sender, state["rtp_timestamp"], timestamp)
        setattr(sender, state["octet_count"], self._state("octet_count") + octets)
        setattr(sender, state["packet_count"], self._state("packet_count") + packets)
        self.sent += packets

    async def retransmit(self, sequence_number: int) -> None:
        """Answer a NACK: hand aiortc the packet it asks for, as the RtpPacket it expects."""
        entry = self._history[sequence_number % RTP_HISTORY_SIZE]
        if entry is None or entry[0] != sequence_number:
            return
        packet = RtpPacket.parse(entry[1], self._state("rtp_header_extensions_map"))
        self._state("rtp_history")[sequence_number % RTP_HISTORY_SIZE] = packet
        self.retransmitted += 1
        await self._aiortc_retransmit(sequence_number)


class ForwardedTrack(MediaStreamTrack):
    """A track whose ``recv`` yields a relay subscription's frames as ``av.Packet``s."""

    def __init__(self, subscription: Subscription, mime: str) -> None:
        super().__init__()
        self.kind = subscription.kind
        self.subscription = subscription
        self._time_base = fractions.Fraction(1, CLOCK_RATES[mime.lower()])

    async def recv(self) -> av.Packet[Any]:
        try:
            frame = await self.subscription.next()
        except RelayClosed:
            self.stop()
            raise MediaStreamError from None
        packet = av.Packet(frame.data)
        packet.pts = frame.timestamp
        packet.time_base = self._time_base
        packet.is_keyframe = frame.keyframe
        return packet

    def stop(self) -> None:
        super().stop()
        self.subscription.close()


def forward_sender(
    sender: RTCRtpSender,
    mime: str,
    on_keyframe_request: Callable[[], None],
    on_rtcp: Callable[[], None],
) -> Packer:
    """Make ``sender`` packetize forwarded packets and report the viewer's feedback.

    ``on_keyframe_request`` runs when the viewer sends a PLI or FIR;
    ``on_rtcp`` on every RTCP packet routed to this sender (liveness).
    """
    if not hasattr(sender, _SENDER_ENCODER) or getattr(sender, _SENDER_ENCODER) is not None:
        raise ForwardingUnsupported(f"RTCRtpSender has no unset {_SENDER_ENCODER}")
    if missing := [name for name in _SENDER_STATE.values() if not hasattr(sender, name)]:
        raise ForwardingUnsupported(f"RTCRtpSender has no {', '.join(missing)}")
    packer = Packer(mime)
    loop = SendLoop(sender, packer)
    setattr(sender, _SENDER_ENCODER, packer)
    setattr(sender, "_run_rtp", loop.run)  # noqa: B010 (a method)
    setattr(sender, "_retransmit", loop.retransmit)  # noqa: B010 (a method)
    setattr(sender, "_send_keyframe", on_keyframe_request)  # noqa: B010 (a method)
    handle_rtcp = sender._handle_rtcp_packet

    async def handle(packet: Any) -> None:
        on_rtcp()
        await handle_rtcp(packet)

    setattr(sender, "_handle_rtcp_packet", handle)  # noqa: B010 (a method)
    return packer


def packer_of(sender: RTCRtpSender) -> Packer | None:
    encoder = getattr(sender, _SENDER_ENCODER, None)
    return encoder if isinstance(encoder, Packer) else None


def send_loop_of(sender: RTCRtpSender) -> SendLoop | None:
    run = getattr(sender, "_run_rtp", None)
    owner = getattr(run, "__self__", None)
    return owner if isinstance(owner, SendLoop) else None
