"""The one place that reaches into aiortc's internals, to forward without transcoding.

aiortc has no public API for forwarding received encoded frames (aiortc issue
449): every receiver decodes and every sender encodes. livehub changes two
things, per peer connection, never globally:

* Receiving (the publisher): a receiver hands each reassembled encoded frame,
  in the event loop, to ``receiver.__decoder_queue.put((codec, frame))``; a
  decoder thread reads that queue. ``forward_receiver`` swaps the queue for one
  that turns each frame into a ``relay.EncodedFrame`` (with a keyframe flag)
  and passes it to a sink at once; the decoder thread only ever sees the final
  ``None`` that stops it, so no decoder is ever created.
* Sending (each viewer): a sender packetizes, without encoding, whatever its
  track's ``recv()`` returns that is not an ``av.Frame``. ``ForwardedTrack``
  returns ``av.Packet``s, and ``forward_sender`` installs a ``Packer`` as the
  sender's encoder (so aiortc never constructs a real one) and routes the
  viewer's picture loss indications to the relay.

aiortc is pinned to exactly ``AIORTC_VERSION``; importing this module with any
other version raises ``ForwardingUnsupported``, and tests/media/test_forwarding.py
checks every internal name used here and the whole path end to end.
"""

from __future__ import annotations

import asyncio
import fractions
import queue
import random
from collections.abc import Awaitable, Callable
from typing import Any

import aiortc
import av
from aiortc import MediaStreamError, MediaStreamTrack, RTCRtpReceiver, RTCRtpSender
from aiortc import rtcrtpreceiver as _receiver_module
from aiortc.codecs.base import Encoder
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder

from livehub.media.relay import EncodedFrame, Kind, RelayClosed, Subscription

AIORTC_VERSION = "1.16.0"

_RECEIVER_QUEUE = "_RTCRtpReceiver__decoder_queue"
_RECEIVER_THREAD = "_RTCRtpReceiver__decoder_thread"
_SENDER_ENCODER = "_RTCRtpSender__encoder"

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
        frame = EncodedFrame(
            self._kind, data, int(jitter_frame.timestamp), is_keyframe(codec.mimeType, data)
        )
        self.forwarded += 1
        self._sink(frame)


def forward_receiver(
    receiver: RTCRtpReceiver, kind: Kind, sink: Callable[[EncodedFrame], None]
) -> None:
    """Make ``receiver`` hand its encoded frames to ``sink`` instead of decoding them.

    Call before the connection starts receiving (before setLocalDescription).
    """
    current = getattr(receiver, _RECEIVER_QUEUE, None)
    if not isinstance(current, queue.Queue):
        raise ForwardingUnsupported(f"RTCRtpReceiver has no {_RECEIVER_QUEUE} queue")
    if getattr(receiver, _RECEIVER_THREAD, "missing") is not None:
        raise ForwardingUnsupported("the receiver is already decoding; forward it earlier")
    setattr(receiver, _RECEIVER_QUEUE, _ForwardingQueue(kind, sink))


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
    """A sender's 'encoder' that only packetizes already encoded frames."""

    def __init__(self, mime: str) -> None:
        self.mime = mime.lower()
        if self.mime not in CLOCK_RATES:
            raise ValueError(f"cannot forward {mime}")
        self._picture_id = random.randint(0, (1 << 15) - 1)
        self.packed = 0

    def encode(self, frame: Any, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        raise ForwardingUnsupported("a forwarding sender was given a raw frame to encode")

    def pack(self, packet: av.Packet[Any]) -> tuple[list[bytes], int]:
        data = bytes(packet)
        self.packed += 1
        if self.mime == "video/h264":
            payloads = H264Encoder._packetize(H264Encoder._split_bitstream(data))
        elif self.mime == "video/vp8":
            payloads = Vp8Encoder._packetize(data, self._picture_id)
            self._picture_id = (self._picture_id + 1) % (1 << 15)
        else:
            payloads = [data]
        return payloads, int(packet.pts or 0)


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
    packer = Packer(mime)
    setattr(sender, _SENDER_ENCODER, packer)
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
