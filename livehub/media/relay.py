"""The forwarding relay: one publisher's encoded frames fanned out to many viewers.

Per room there is one ``RoomRelay``. The publisher's receivers hand it every
complete encoded frame (``publish``); each viewer owns one ``Subscription`` per
media kind, a bounded queue its RTP sender drains. Nothing here decodes or
encodes, and nothing here imports aiortc: ``forwarding`` glues this to the
peer connections.

Keyframes: a viewer starts on a keyframe, so a new video subscription waits
for one and the relay asks the publisher for it (PLI) at once. A viewer whose
queue overflows, or whose oldest frame is older than ``max_lag``, drops its
queue and waits for the next keyframe instead of stalling anyone else.
Requests to the publisher are rate-limited (``KeyframeRequests``).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from livehub.media.assembly import AssemblyConfig

Kind = Literal["audio", "video"]
KINDS: tuple[Kind, ...] = ("audio", "video")

# The step a rebased timeline advances past the last frame of a previous publisher.
_STEP = {"audio": 960, "video": 3000}


def _not_connected() -> bool:
    return False


class RelayClosed(Exception):
    """The subscription or the whole relay has ended."""


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    """One complete encoded frame as it arrived (immutable, shared by every viewer).

    ``timestamp`` counts in the codec's RTP clock (90 kHz video, 48 kHz Opus)
    from the publisher's first frame.
    """

    kind: Kind
    data: bytes
    timestamp: int
    keyframe: bool
    # RTP payloads of ``data`` by codec, filled by the first viewer's sender that
    # sends this frame and reused by every other one (``forwarding.Packer``).
    packetized: dict[str, list[bytes]] = field(default_factory=dict, compare=False, repr=False)

    def at(self, timestamp: int) -> EncodedFrame:
        return EncodedFrame(self.kind, self.data, timestamp, self.keyframe)


@dataclass(frozen=True)
class RelayConfig:
    max_video_frames: int = 90  # about 3 s at 30 fps
    max_audio_frames: int = 150  # 3 s of 20 ms Opus
    max_lag: float = 1.5  # seconds a queued frame may wait before the viewer resyncs
    keyframe_min_interval: float = 0.25  # never ask the publisher more often
    keyframe_retry: float = 1.0  # re-ask when an asked-for keyframe has not come
    # putting the publisher's video frames together from RTP packets (whole frames only)
    assembly: AssemblyConfig = field(default_factory=AssemblyConfig)


class KeyframeRequests:
    """Rate-limits picture loss indications to the publisher.

    At most one request per ``min_interval``; while a request is outstanding
    (no keyframe seen since) another is sent only after ``retry``. ``send``
    returns False when it could not ask (the publisher is not connected yet),
    which does not count as a request.
    """

    def __init__(
        self,
        send: Callable[[], bool],
        min_interval: float,
        retry: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._send = send
        self._min_interval = min_interval
        self._retry = retry
        self._clock = clock
        self._last = float("-inf")
        self._outstanding = False
        self.sent = 0

    def request(self) -> bool:
        now = self._clock()
        since = now - self._last
        if since < self._min_interval or (self._outstanding and since < self._retry):
            return False
        if not self._send():
            return False
        self._last = now
        self._outstanding = True
        self.sent += 1
        return True

    def keyframe_arrived(self) -> None:
        self._outstanding = False

    def retarget(self, send: Callable[[], bool]) -> None:
        self._send = send
        self._outstanding = False
        self._last = float("-inf")


@dataclass
class SubscriptionStats:
    delivered: int = 0
    dropped: int = 0
    resyncs: int = 0


class Subscription:
    """One viewer's feed of one kind: a bounded queue its sender drains with ``next``."""

    def __init__(
        self,
        kind: Kind,
        limit: int,
        max_lag: float,
        on_wait: Callable[[], object],
        clock: Callable[[], float],
    ) -> None:
        self.kind = kind
        self._limit = limit
        self._max_lag = max_lag
        self._on_wait = on_wait
        self._clock = clock
        self._queue: deque[tuple[float, EncodedFrame]] = deque()
        self._ready = asyncio.Event()
        self._closed = False
        self.waiting_keyframe = kind == "video"
        self.stats = SubscriptionStats()
        self.last_taken: float | None = None

    @property
    def closed(self) -> bool:
        return self._closed

    def offer(self, frame: EncodedFrame, now: float) -> None:
        if self._closed:
            return
        if self.waiting_keyframe:
            if not frame.keyframe:
                self.stats.dropped += 1
                return
            self.waiting_keyframe = False
        if len(self._queue) >= self._limit:
            if self.kind == "video":
                self._resync()
                if not frame.keyframe:
                    self.stats.dropped += 1
                    return
                self.waiting_keyframe = False
            else:
                self._queue.popleft()
                self.stats.dropped += 1
        self._queue.append((now, frame))
        self._ready.set()

    def _resync(self) -> None:
        """Drop everything queued and wait for the next keyframe."""
        self.stats.dropped += len(self._queue)
        self.stats.resyncs += 1
        self._queue.clear()
        self.waiting_keyframe = True
        self._on_wait()

    async def next(self) -> EncodedFrame:
        while True:
            if self._closed:
                raise RelayClosed
            frame = self._take()
            if frame is not None:
                return frame
            self._ready.clear()
            await self._ready.wait()

    def _take(self) -> EncodedFrame | None:
        now = self._clock()
        while self._queue:
            queued_at, frame = self._queue[0]
            if now - queued_at <= self._max_lag:
                self._queue.popleft()
                self.stats.delivered += 1
                self.last_taken = now
                return frame
            if self.kind == "video":
                self._resync()
                return None
            self._queue.popleft()
            self.stats.dropped += 1
        return None

    def close(self) -> None:
        self._closed = True
        self._queue.clear()
        self._ready.set()


@dataclass
class Viewer:
    """A viewer's subscriptions, one per kind it plays."""

    id: str
    subscriptions: dict[Kind, Subscription] = field(default_factory=dict)

    def last_taken(self) -> float | None:
        times = [s.last_taken for s in self.subscriptions.values() if s.last_taken is not None]
        return max(times, default=None)


RTP_WRAP = 1 << 32
HALF_WRAP = 1 << 31


class _Timeline:
    """Keeps one kind's outgoing timestamps increasing, across publisher changes and
    across the 32-bit wrap of RTP timestamps.

    A sender starts its RTP clock anywhere in 32 bits, so the wrap comes at a random
    moment (at 90 kHz the clock wraps every 13.3 hours: a 2-hour stream crosses it
    one time in seven). Each frame's timestamp is taken as the nearest one to the
    previous frame's (a step of under 2^31 either way), so what the relay hands on
    keeps counting up past 2^32 instead of jumping back.
    """

    def __init__(self, kind: Kind) -> None:
        self._step = _STEP[kind]
        self._offset = 0
        self._last: int | None = None  # the last timestamp handed on
        self._raw: int | None = None  # the last timestamp received (32 bits)
        self._rebase = False

    def rebase(self) -> None:
        self._rebase = True

    def map(self, timestamp: int) -> int:
        if self._rebase or self._raw is None or self._last is None:
            self._rebase = False
            self._offset = 0 if self._last is None else self._last + self._step - timestamp
            out = timestamp + self._offset
        else:
            delta = (timestamp - self._raw) % RTP_WRAP
            if delta >= HALF_WRAP:
                delta -= RTP_WRAP  # a little back (reordered), not almost 2^32 forward
            out = self._last + delta
        self._raw = timestamp
        self._last = out
        return out


class RoomRelay:
    """Fans one publisher's frames out to every viewer of a room."""

    def __init__(
        self,
        room: str,
        config: RelayConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.room = room
        self.config = config or RelayConfig()
        self._clock = clock
        self._codecs: dict[Kind, str] = {}
        self._viewers: dict[str, Viewer] = {}
        self._subs: dict[Kind, list[Subscription]] = {"audio": [], "video": []}
        self._timelines = {kind: _Timeline(kind) for kind in KINDS}
        self.keyframes = KeyframeRequests(
            _not_connected, self.config.keyframe_min_interval, self.config.keyframe_retry, clock
        )
        self._publishing = False
        self._closed = False
        self.frames_in = 0
        self.keyframes_in = 0
        self.last_frame_at: float | None = None

    # publisher side

    @property
    def codecs(self) -> dict[Kind, str]:
        """The codec (``video/H264``, ``audio/opus``...) of each kind being published."""
        return dict(self._codecs)

    @property
    def publishing(self) -> bool:
        return self._publishing

    @property
    def closed(self) -> bool:
        return self._closed

    def attach_publisher(
        self, codecs: dict[Kind, str], request_keyframe: Callable[[], bool]
    ) -> list[str]:
        """Start taking frames from a (new) publisher.

        Returns the viewers that cannot follow (a kind they play changed codec);
        their subscriptions are closed and the caller should end their sessions.
        """
        self._ensure_open()
        dropped = [
            viewer.id
            for viewer in self._viewers.values()
            if any(
                self._codecs.get(kind) is not None and codecs.get(kind) != self._codecs[kind]
                for kind in viewer.subscriptions
            )
        ]
        for viewer_id in dropped:
            self.remove_viewer(viewer_id)
        self._codecs = dict(codecs)
        self._publishing = True
        self.keyframes.retarget(request_keyframe)
        for kind in KINDS:
            self._timelines[kind].rebase()
            for sub in self._subs[kind]:
                if kind == "video":
                    sub.waiting_keyframe = True
        if self._subs["video"]:
            self.keyframes.request()
        return dropped

    def detach_publisher(self) -> None:
        self._publishing = False
        self.keyframes.retarget(_not_connected)

    def publish(self, frame: EncodedFrame) -> None:
        """Take one frame from the publisher (called on the event loop, never blocks).

        Frames come whole (``assembly.FrameAssembler``); one with no bytes is
        not a frame (a decoder or muxer would get a 0-byte sample) and is dropped."""
        if not self._publishing or not frame.data:
            return
        now = self._clock()
        self.frames_in += 1
        self.last_frame_at = now
        if frame.keyframe and frame.kind == "video":
            self.keyframes_in += 1
            self.keyframes.keyframe_arrived()
        out = frame.at(self._timelines[frame.kind].map(frame.timestamp))
        waiting = False
        for sub in self._subs[frame.kind]:
            sub.offer(out, now)
            waiting = waiting or sub.waiting_keyframe
        if waiting:
            self.keyframes.request()

    def request_keyframe(self) -> None:
        """A viewer lost a picture (it sent a PLI or FIR)."""
        self.keyframes.request()

    # viewer side

    @property
    def viewer_count(self) -> int:
        return len(self._viewers)

    def viewer(self, viewer_id: str) -> Viewer | None:
        return self._viewers.get(viewer_id)

    def add_viewer(self, viewer_id: str, kinds: tuple[Kind, ...]) -> Viewer:
        self._ensure_open()
        if viewer_id in self._viewers:
            raise ValueError(f"viewer {viewer_id!r} is already subscribed")
        viewer = Viewer(viewer_id)
        for kind in kinds:
            limit = (
                self.config.max_video_frames if kind == "video" else self.config.max_audio_frames
            )
            sub = Subscription(
                kind, limit, self.config.max_lag, self.keyframes.request, self._clock
            )
            viewer.subscriptions[kind] = sub
            self._subs[kind].append(sub)
        self._viewers[viewer_id] = viewer
        if "video" in kinds and self._publishing:
            self.keyframes.request()
        return viewer

    def remove_viewer(self, viewer_id: str) -> None:
        viewer = self._viewers.pop(viewer_id, None)
        if viewer is None:
            return
        for kind, sub in viewer.subscriptions.items():
            sub.close()
            self._subs[kind].remove(sub)

    def close(self) -> list[str]:
        """End the relay and every subscription; returns the viewers that were on it."""
        ids = list(self._viewers)
        for viewer_id in ids:
            self.remove_viewer(viewer_id)
        self.detach_publisher()
        self._closed = True
        return ids

    def _ensure_open(self) -> None:
        if self._closed:
            raise RelayClosed(f"the relay of room {self.room!r} is closed")
