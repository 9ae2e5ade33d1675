"""Video frames from RTP packets: whole frames only, never a partial one.

A publisher's video frame is cut into RTP packets that share a timestamp; the
last one carries the marker bit. Over a lossy path some never arrive and some
arrive out of order. ``FrameAssembler`` puts packets back in sequence order
(waiting a little for a late or retransmitted one), and hands on a frame only
when every packet of it is there: the sequence numbers run without a gap from
the frame's first packet to its marker, and the codec's own framing agrees
(VP8: the first packet starts partition 0; H.264: FU-A fragments run from a
start to an end fragment, and after a gap only a packet that begins an access
unit can begin a frame).

A frame with a missing packet is dropped, and so is every frame after it until
the next keyframe: later frames refer to the lost one, and a decoder (a
viewer's, the recording's player, an HLS player) would show garbage or fail.
``lossy`` says the assembler is waiting for a keyframe because of a loss; the
caller asks the publisher for one (PLI), rate-limited.

Nothing here knows aiortc: packets come in as ``RtpIn`` (the raw RTP payload,
to read the codec's framing, and its depayloaded bytes).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

SEQ_WRAP = 1 << 16
HALF_SEQ = 1 << 15

# H.264 NAL unit types (RFC 6184 5.4)
_FU_A = 28
_STAP_A = 24
_SLICE = 1
_IDR = 5
_AU_PREFIX = {6, 7, 8, 9}  # SEI, SPS, PPS, access unit delimiter: only before an AU's slices


class RtpIn(NamedTuple):
    """What the assembler needs of one received RTP packet."""

    ssrc: int
    sequence: int
    timestamp: int
    marker: bool
    payload: bytes  # the RTP payload as sent (with the codec's payload header)
    data: bytes  # the same depayloaded: what the frame's bytes are made of


@dataclass(frozen=True, slots=True)
class Frame:
    timestamp: int  # RTP timestamp (32 bits, as received)
    data: bytes
    keyframe: bool


@dataclass(frozen=True)
class AssemblyConfig:
    reorder_wait: float = 0.2  # seconds a missing packet is waited for (reordered, NACKed)
    reorder_packets: int = 512  # packets held behind a missing one before it counts as lost
    restart_gap: int = 3000  # a packet this far behind means the sender started again


@dataclass
class AssemblyStats:
    frames: int = 0  # frames handed on
    keyframes: int = 0
    partial: int = 0  # frames dropped for a missing packet (or broken framing)
    dependent: int = 0  # whole frames dropped while waiting for a keyframe
    lost: int = 0  # packets never received
    reordered: int = 0  # packets that came out of order, in time to be used
    late: int = 0  # packets that came after their place was given up, or twice
    restarts: int = 0


class PacketFraming:
    """How one codec marks where frames start inside RTP payloads."""

    def starts_frame(self, payload: bytes) -> bool:
        """Whether this packet certainly begins a frame (used after a gap)."""
        raise NotImplementedError

    def begin(self, payload: bytes) -> bool:
        """The first packet of a frame that follows the previous one: False if it cannot be."""
        raise NotImplementedError

    def follow(self, payload: bytes) -> bool:
        """A later packet of the same frame: False when the framing is broken."""
        raise NotImplementedError

    def complete(self) -> bool:
        """At the frame's end: False when it ends inside a fragment."""
        return True


class H264Framing(PacketFraming):
    """RFC 6184 single NAL units, STAP-A and FU-A (what browsers and aiortc send)."""

    def __init__(self) -> None:
        self._in_fragment = False

    @staticmethod
    def _first_nal(payload: bytes) -> tuple[int, bytes] | None:
        """The type and body (after the NAL header) of the first NAL unit a packet
        starts, or None for an FU-A continuation or an unreadable payload."""
        if not payload:
            return None
        kind = payload[0] & 0x1F
        if kind == _STAP_A:
            return (payload[3] & 0x1F, payload[4:]) if len(payload) > 4 else None
        if kind == _FU_A:
            if len(payload) < 3 or not payload[1] & 0x80:
                return None
            return payload[1] & 0x1F, payload[2:]
        if 1 <= kind <= 23:
            return kind, payload[1:]
        return None

    def starts_frame(self, payload: bytes) -> bool:
        first = self._first_nal(payload)
        if first is None:
            return False
        kind, body = first
        if kind in _AU_PREFIX:
            return True
        # a slice whose first_mb_in_slice is 0 (ue(v) code "1"): the picture's first slice
        return kind in (_SLICE, _IDR) and bool(body) and bool(body[0] & 0x80)

    def begin(self, payload: bytes) -> bool:
        self._in_fragment = False
        return self.follow(payload)

    def follow(self, payload: bytes) -> bool:
        if not payload:
            return False
        kind = payload[0] & 0x1F
        if kind == _FU_A:
            if len(payload) < 2:
                return False
            start, end = bool(payload[1] & 0x80), bool(payload[1] & 0x40)
            if start == self._in_fragment or (start and end):
                return False  # a start inside a fragment, a continuation outside one
            self._in_fragment = not end
            return True
        return not self._in_fragment and (kind == _STAP_A or 1 <= kind <= 23)

    def complete(self) -> bool:
        return not self._in_fragment


class Vp8Framing(PacketFraming):
    """RFC 7741: a frame starts where the descriptor has S set and partition index 0."""

    @staticmethod
    def _starts(payload: bytes) -> bool:
        return len(payload) > 1 and payload[0] & 0x10 != 0 and payload[0] & 0x07 == 0

    def starts_frame(self, payload: bytes) -> bool:
        return self._starts(payload)

    def begin(self, payload: bytes) -> bool:
        return self._starts(payload)

    def follow(self, payload: bytes) -> bool:
        return len(payload) > 1 and not self._starts(payload)


FRAMINGS: dict[str, Callable[[], PacketFraming]] = {
    "video/h264": H264Framing,
    "video/vp8": Vp8Framing,
}


class FrameAssembler:
    """Whole video frames, in order, from RTP packets as they arrive.

    ``add`` takes one packet and returns the frames it completed (none, one or
    several: a late packet can complete a run of them). Frames come out in
    sequence order; a frame missing a packet and the frames after it up to the
    next keyframe never come out. The first frame handed on is a keyframe.
    """

    def __init__(
        self,
        mime: str,
        is_keyframe: Callable[[bytes], bool],
        config: AssemblyConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        framing = FRAMINGS.get(mime.lower())
        if framing is None:
            raise ValueError(f"cannot assemble {mime} frames")
        self._framing = framing()
        self._is_keyframe = is_keyframe
        self.config = config or AssemblyConfig()
        self._clock = clock
        self.stats = AssemblyStats()
        self._ssrc: int | None = None
        self._highest: int | None = None  # the highest extended sequence number seen
        self._next: int | None = None  # the extended sequence number to process next
        self._pending: dict[int, tuple[RtpIn, float]] = {}  # ahead of _next, with arrival
        self._frame: list[RtpIn] = []  # the frame being put together (in order)
        self._frame_ok = False  # it began cleanly and its framing holds so far
        self._boundary = False  # the next packet in order begins a frame
        self._last_timestamp: int | None = None  # of the last packet processed
        self._waiting_keyframe = True
        self.lossy = False  # waiting for a keyframe because something was lost

    @property
    def waiting_keyframe(self) -> bool:
        return self._waiting_keyframe

    def add(self, packet: RtpIn) -> list[Frame]:
        out: list[Frame] = []
        if packet.ssrc != self._ssrc:
            if self._ssrc is not None:
                self._restart()
            self._ssrc = packet.ssrc
        now = self._clock()
        highest = self._highest
        ext = self._extend(packet.sequence)
        if self._next is None:
            self._next = ext
        elif ext < self._next:
            if self._next - ext > self.config.restart_gap:
                self._restart()  # the sender's sequence started over
                self._next = self._highest = ext
            else:
                self.stats.late += 1
                return out
        if ext in self._pending:
            self.stats.late += 1
            return out
        if highest is not None and ext < highest:
            self.stats.reordered += 1
        self._pending[ext] = (packet, now)
        self._drain(out)
        while self._pending and self._gap_expired(now):
            self._skip_gap()
            self._drain(out)
        return out

    # sequence order

    def _extend(self, sequence: int) -> int:
        if self._highest is None:
            self._highest = sequence
            return sequence
        delta = (sequence - self._highest) % SEQ_WRAP
        if delta >= HALF_SEQ:
            delta -= SEQ_WRAP
        ext = self._highest + delta
        self._highest = max(self._highest, ext)
        return ext

    def _drain(self, out: list[Frame]) -> None:
        assert self._next is not None
        while self._next in self._pending:
            packet, _ = self._pending.pop(self._next)
            self._next += 1
            self._process(packet, out)

    def _gap_expired(self, now: float) -> bool:
        """A packet is missing at ``_next``: has it been waited for long enough?"""
        assert self._next is not None
        if max(self._pending) - self._next >= self.config.reorder_packets:
            return True
        first_seen = min(arrival for _, arrival in self._pending.values())
        return now - first_seen >= self.config.reorder_wait

    def _skip_gap(self) -> None:
        assert self._next is not None
        resume = min(self._pending)
        self.stats.lost += resume - self._next
        self._next = resume
        self._lost()

    def _restart(self) -> None:
        self.stats.restarts += 1
        self._pending.clear()
        self._lost()
        self._next = self._highest = None
        self._last_timestamp = None

    # frames

    def _lost(self) -> None:
        """Packets are missing here: the frame being assembled cannot be whole (it is
        dropped when it ends, so that what is left of it is not taken for a frame)."""
        self._frame_ok = False
        self._boundary = False
        self._waiting_keyframe = True
        self.lossy = True

    def _process(self, packet: RtpIn, out: list[Frame]) -> None:
        if not packet.payload:
            return  # padding: it takes a sequence number and carries nothing
        if self._frame and packet.timestamp != self._frame[0].timestamp:
            # the previous frame ended without a marker: nothing was lost in between
            self._finish(out)
        if not self._frame:
            self._start(packet)
        else:
            self._frame_ok = self._frame_ok and self._framing.follow(packet.payload)
            self._frame.append(packet)
        self._last_timestamp = packet.timestamp
        if packet.marker:
            self._finish(out)

    def _start(self, packet: RtpIn) -> None:
        if self._boundary:
            clean = True
        else:
            # after a gap (or at the very start): only a packet that certainly
            # begins a frame, of another frame than the last one seen, can
            clean = packet.timestamp != self._last_timestamp and self._framing.starts_frame(
                packet.payload
            )
        self._frame_ok = self._framing.begin(packet.payload) and clean
        self._frame = [packet]

    def _finish(self, out: list[Frame]) -> None:
        frame, ok = self._frame, self._frame_ok and self._framing.complete()
        self._frame, self._frame_ok = [], False
        self._boundary = True
        if not ok:
            self.stats.partial += 1
            self._waiting_keyframe = True
            self.lossy = True
            return
        data = b"".join(p.data for p in frame)
        if not data:
            return
        keyframe = self._is_keyframe(data)
        if self._waiting_keyframe and not keyframe:
            self.stats.dependent += 1
            self.lossy = True
            return
        self._waiting_keyframe = self.lossy = False
        self.stats.frames += 1
        self.stats.keyframes += keyframe
        out.append(Frame(frame[0].timestamp, data, keyframe))
