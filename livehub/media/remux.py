"""What the recorder and the HLS packager share: a relay subscriber that remuxes.

A ``RelayFeed`` is one more viewer of a room's ``RoomRelay`` (a recording is a
subscriber, not a special case). It drains its subscriptions on the event
loop, turns each ``EncodedFrame``'s RTP timestamp into a presentation time on
one output timeline (``Timeline``), and hands the frames in batches to a
``Sink`` that runs on the feed's own worker thread, so muxing and disk writes
never block the event loop. Nothing here encodes video: a sink writes the
publisher's bytes as they are.

Also here: the bitstream facts a muxer needs before the first packet (H.264
SPS/PPS and picture size, VP8 picture size) and an Opus stream template with
the ``OpusHead`` that MP4 and WebM require.
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
import struct
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Generic, Protocol, TypeVar

import av
from av.container import OutputContainer
from av.stream import Stream

from livehub.media.relay import (
    KINDS,
    EncodedFrame,
    Kind,
    RelayClosed,
    RoomRelay,
    Subscription,
)

log = logging.getLogger("livehub.media.remux")

RATES: dict[Kind, int] = {"audio": 48000, "video": 90000}
TIME_BASES: dict[Kind, Fraction] = {kind: Fraction(1, rate) for kind, rate in RATES.items()}
OPUS_FRAME = 960  # 20 ms at 48 kHz, what browsers and aiortc send
SAFE_ID = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z")


class BitstreamError(ValueError):
    """An encoded frame that cannot start a file (no parameter sets, unreadable header)."""


# H.264


def nal_units(data: bytes) -> list[bytes]:
    """The NAL units of an Annex-B access unit (start codes removed)."""
    units: list[bytes] = []
    starts: list[tuple[int, int]] = []  # (start code offset, payload offset)
    i = data.find(b"\x00\x00\x01")
    while i >= 0:
        begin = i - 1 if i > 0 and data[i - 1] == 0 else i
        starts.append((begin, i + 3))
        i = data.find(b"\x00\x00\x01", i + 3)
    for n, (_, payload) in enumerate(starts):
        end = starts[n + 1][0] if n + 1 < len(starts) else len(data)
        if end > payload:
            units.append(data[payload:end])
    return units


def h264_parameter_sets(data: bytes) -> tuple[bytes, bytes] | None:
    """The first SPS and PPS NAL units of an access unit, or None if it lacks either."""
    sps = pps = None
    for unit in nal_units(data):
        kind = unit[0] & 0x1F
        if kind == 7 and sps is None:
            sps = unit
        elif kind == 8 and pps is None:
            pps = unit
    return (sps, pps) if sps is not None and pps is not None else None


class _Bits:
    """An RBSP reader: emulation prevention bytes removed, exp-Golomb codes."""

    def __init__(self, nal: bytes) -> None:
        rbsp = bytearray()
        zeros = 0
        for byte in nal[1:]:  # after the NAL header
            if zeros >= 2 and byte == 3:
                zeros = 0
                continue
            rbsp.append(byte)
            zeros = zeros + 1 if byte == 0 else 0
        self._data = bytes(rbsp)
        self._pos = 0

    def bit(self) -> int:
        if self._pos >= len(self._data) * 8:
            raise BitstreamError("the SPS ends early")
        value = self._data[self._pos >> 3] >> (7 - (self._pos & 7)) & 1
        self._pos += 1
        return value

    def bits(self, n: int) -> int:
        value = 0
        for _ in range(n):
            value = value << 1 | self.bit()
        return value

    def ue(self) -> int:
        zeros = 0
        while self.bit() == 0:
            zeros += 1
            if zeros > 31:
                raise BitstreamError("a malformed exp-Golomb code in the SPS")
        return (1 << zeros) - 1 + self.bits(zeros)

    def se(self) -> int:
        code = self.ue()
        return (code + 1) // 2 if code & 1 else -(code // 2)


_HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}


def h264_dimensions(sps: bytes) -> tuple[int, int]:
    """Width and height (after cropping) from an SPS NAL unit (H.264 7.3.2.1.1)."""
    r = _Bits(sps)
    profile = r.bits(8)
    r.bits(16)  # constraint flags, level
    r.ue()  # seq_parameter_set_id
    chroma_format = 1
    if profile in _HIGH_PROFILES:
        chroma_format = r.ue()
        if chroma_format == 3:
            r.bit()  # separate_colour_plane_flag
        r.ue()  # bit_depth_luma_minus8
        r.ue()  # bit_depth_chroma_minus8
        r.bit()  # qpprime_y_zero_transform_bypass_flag
        if r.bit():  # seq_scaling_matrix_present_flag
            for i in range(8 if chroma_format != 3 else 12):
                if r.bit():
                    _skip_scaling_list(r, 16 if i < 6 else 64)
    r.ue()  # log2_max_frame_num_minus4
    poc_type = r.ue()
    if poc_type == 0:
        r.ue()
    elif poc_type == 1:
        r.bit()
        r.se()
        r.se()
        for _ in range(r.ue()):
            r.se()
    r.ue()  # max_num_ref_frames
    r.bit()  # gaps_in_frame_num_value_allowed_flag
    width_mbs = r.ue() + 1
    height_units = r.ue() + 1
    frame_mbs_only = r.bit()
    if not frame_mbs_only:
        r.bit()  # mb_adaptive_frame_field_flag
    r.bit()  # direct_8x8_inference_flag
    left = right = top = bottom = 0
    if r.bit():  # frame_cropping_flag
        left, right, top, bottom = r.ue(), r.ue(), r.ue(), r.ue()
    sub_width, sub_height = {0: (1, 1), 1: (2, 2), 2: (2, 1), 3: (1, 1)}.get(chroma_format, (2, 2))
    crop_x = 1 if chroma_format == 0 else sub_width
    crop_y = (2 - frame_mbs_only) * (1 if chroma_format == 0 else sub_height)
    width = width_mbs * 16 - crop_x * (left + right)
    height = (2 - frame_mbs_only) * height_units * 16 - crop_y * (top + bottom)
    if not (0 < width <= 16384 and 0 < height <= 16384):
        raise BitstreamError(f"the SPS gives an implausible picture size {width}x{height}")
    return width, height


def _skip_scaling_list(r: _Bits, size: int) -> None:
    last = following = 8
    for _ in range(size):
        if following:
            following = (last + r.se() + 256) % 256
        last = following or last


# VP8


def vp8_dimensions(data: bytes) -> tuple[int, int]:
    """Width and height from a VP8 keyframe header (RFC 6386 9.1)."""
    if len(data) < 10 or data[0] & 0x01 or data[3:6] != b"\x9d\x01\x2a":
        raise BitstreamError("not a VP8 keyframe")
    width, height = struct.unpack_from("<HH", data, 6)
    return width & 0x3FFF, height & 0x3FFF


def video_dimensions(mime: str, keyframe: bytes) -> tuple[int, int]:
    if mime.lower() == "video/h264":
        sets = h264_parameter_sets(keyframe)
        if sets is None:
            raise BitstreamError("the H.264 keyframe carries no SPS and PPS")
        return h264_dimensions(sets[0])
    if mime.lower() == "video/vp8":
        return vp8_dimensions(keyframe)
    raise BitstreamError(f"cannot remux {mime}")


# Opus


def opus_head(channels: int = 2, pre_skip: int = 312) -> bytes:
    """The 19-byte ``OpusHead`` (RFC 7845 5.1) that MP4 (dOps) and WebM need."""
    return b"OpusHead" + struct.pack("<BBHIhB", 1, channels, pre_skip, 48000, 0, 0)


def _ogg_crc(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = (crc << 1 ^ 0x04C11DB7 if crc & 0x80000000 else crc << 1) & 0xFFFFFFFF
    return crc


def _ogg_page(data: bytes, sequence: int, flags: int, granule: int) -> bytes:
    lacing = [255] * (len(data) // 255) + [len(data) % 255]
    header = b"OggS" + struct.pack("<BBqIII", 0, flags, granule, 1, sequence, 0)
    header += bytes([len(lacing), *lacing])
    crc = _ogg_crc(header + data)
    return header[:22] + struct.pack("<I", crc) + header[26:] + data


def _opus_ogg() -> bytes:
    tags = b"OpusTags" + struct.pack("<I", 7) + b"livehub" + struct.pack("<I", 0)
    silence = b"\xfc\xff\xfe"  # one 20 ms stereo CELT frame of silence
    return (
        _ogg_page(opus_head(), 0, 0x02, 0)
        + _ogg_page(tags, 1, 0x00, 0)
        + _ogg_page(silence, 2, 0x04, OPUS_FRAME)
    )


def add_opus_stream(out: OutputContainer) -> Stream:
    """An Opus stream (48 kHz stereo, with ``OpusHead``) to mux packets into, no encoder.

    PyAV cannot set extradata on a codec-less stream, so the stream is copied
    from a tiny in-memory Ogg Opus file; a stream made from a template is never
    opened as an encoder.
    """
    with av.open(io.BytesIO(_opus_ogg()), "r", format="ogg") as template:
        stream = out.add_stream_from_template(template.streams.audio[0])
    stream.time_base = TIME_BASES["audio"]
    return stream


def packet(
    data: bytes, stream: Stream, pts: int, kind: Kind, keyframe: bool, duration: int
) -> av.Packet[Stream]:
    """A packet of the publisher's bytes, unchanged, at ``pts`` in the kind's RTP clock,
    lasting ``duration`` (until the next frame of its kind)."""
    out = av.Packet(data)
    out.stream = stream
    out.pts = out.dts = pts
    out.duration = duration
    out.time_base = TIME_BASES[kind]
    out.is_keyframe = keyframe
    return out


class Durations:
    """Holds back each kind's latest frame until the next one comes, to give it its
    true duration: the distance to that next frame.

    A fragmented MP4 muxer otherwise guesses the duration of a fragment's last
    sample, and with only one sample in a fragment (two keyframes in a row, as
    after a loss) it guesses 0: the next fragment then starts at the same time
    and a player reads two frames with one timestamp. Across a gap (frames
    dropped after a loss) the guess is wrong as well. The last frame, at the
    end, lasts as long as the step before it (at most 0.1 s).
    """

    def __init__(self) -> None:
        self._held: dict[Kind, Timed] = {}
        self.step: dict[Kind, int] = {"audio": OPUS_FRAME, "video": 3000}

    def push(self, timed: Timed) -> tuple[Timed, int] | None:
        """Hold ``timed``; returns the frame it ends, with that frame's duration."""
        previous = self._held.get(timed.kind)
        self._held[timed.kind] = timed
        if previous is None:
            return None
        duration = timed.pts - previous.pts  # > 0: the timeline only goes forward
        self.step[timed.kind] = min(duration, RATES[timed.kind] // 10)
        return previous, duration

    def rest(self) -> list[tuple[Timed, int]]:
        """The frames still held (at the end), each lasting its kind's last step."""
        held, self._held = self._held, {}
        return [(timed, self.step[kind]) for kind, timed in held.items()]


# one timeline for audio and video


@dataclass(frozen=True, slots=True)
class Timed:
    """A frame placed on the output timeline: ``pts`` in its kind's clock from the start."""

    kind: Kind
    data: bytes
    pts: int
    keyframe: bool


class Timeline:
    """Puts audio and video frames on one timeline that starts at the first keyframe.

    Each kind's RTP timestamps count from that kind's first frame, with no
    common origin (the relay rebases them independently), so the kinds are
    lined up by arrival: a kind's first frame is placed at the time it arrived
    after the origin, later frames by their RTP distance from it. Frames before
    the origin (audio before the first keyframe) and frames that would go back
    in time are dropped.
    """

    def __init__(self, has_video: bool) -> None:
        self._has_video = has_video
        self.origin: float | None = None  # arrival (monotonic) of the first frame kept
        self.origin_wall: float | None = None  # the same moment, wall clock
        self._first: dict[Kind, tuple[int, int]] = {}  # kind -> (rtp timestamp, pts)
        self.last: dict[Kind, int] = {}
        self.dropped = 0

    def place(self, frame: EncodedFrame, arrival: float, wall: float) -> Timed | None:
        kind = frame.kind
        if self.origin is None:
            starts = frame.keyframe if self._has_video else True
            if kind != ("video" if self._has_video else "audio") or not starts:
                self.dropped += 1
                return None
            self.origin, self.origin_wall = arrival, wall
        first = self._first.get(kind)
        if first is None:
            first = (frame.timestamp, round((arrival - self.origin) * RATES[kind]))
            self._first[kind] = first
        pts = frame.timestamp - first[0] + first[1]
        if pts < 0 or (kind in self.last and pts <= self.last[kind]):
            self.dropped += 1
            return None
        self.last[kind] = pts
        return Timed(kind, frame.data, pts, frame.keyframe)

    def seconds(self, kind: Kind) -> float | None:
        last = self.last.get(kind)
        return None if last is None else last / RATES[kind]


# the subscriber


class Sink(Protocol):
    """Writes placed frames; every call runs on the feed's worker thread, in order."""

    def write(self, frames: list[Timed]) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class FeedConfig:
    keyframe_interval: float | None = None  # ask the publisher for a keyframe this often
    max_backlog: int = 900  # frames waiting for the worker (about 10 s of audio and video)
    stop_timeout: float = 15.0  # seconds ``stop`` waits for the file to be finalised


class RelayFeed:
    """A relay subscriber that places frames on a timeline and feeds a ``Sink``.

    It ends when ``stop`` is called, when the relay closes or drops it (the
    publisher changed codec), or when the sink fails; ``finished`` resolves
    after the sink was closed (the file finalised), in every case.
    """

    def __init__(
        self,
        relay: RoomRelay,
        viewer_id: str,
        sink: Sink,
        kinds: tuple[Kind, ...],
        config: FeedConfig,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.relay = relay
        self.viewer_id = viewer_id
        self.sink = sink
        self.kinds = kinds
        self.config = config
        self.timeline = Timeline("video" in kinds)
        self._clock = clock
        self._wall = wall
        self._backlog: list[Timed] = []
        self._wake = asyncio.Event()
        self._readers_left = len(kinds)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"remux-{viewer_id}")
        self._tasks: list[asyncio.Task[None]] = []
        self._last_key: int | None = None
        self._resync = False
        self.failed: BaseException | None = None
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.frames = 0

    def start(self) -> None:
        viewer = self.relay.add_viewer(self.viewer_id, self.kinds)
        for kind, sub in viewer.subscriptions.items():
            self._tasks.append(asyncio.create_task(self._read(kind, sub)))
        self._tasks.append(asyncio.create_task(self._write()))

    @property
    def done(self) -> bool:
        return self.finished.done()

    async def stop(self) -> None:
        """Unsubscribe, write what is queued, close the sink (finalise); idempotent.

        Waits at most ``config.stop_timeout`` (a stalled disk must not hold up
        the end of a stream); the worker still finishes the file afterwards.
        """
        self.relay.remove_viewer(self.viewer_id)
        try:
            await asyncio.wait_for(asyncio.shield(self.finished), self.config.stop_timeout)
        except TimeoutError:
            log.error("%s: still finalising after %.0f s", self.viewer_id, self.config.stop_timeout)

    async def _read(self, kind: Kind, sub: Subscription) -> None:
        try:
            while True:
                frame = await sub.next()
                self._take(frame)
        except RelayClosed:
            pass
        finally:
            self._readers_left -= 1
            self._wake.set()

    def _take(self, frame: EncodedFrame) -> None:
        if frame.kind == "video":
            if self._resync and not frame.keyframe:
                return
            self._resync = False
            self._ask_keyframe(frame)
        timed = self.timeline.place(frame, self._clock(), self._wall())
        if timed is None:
            if frame.kind == "video" and self.timeline.origin is not None:
                # a frame later ones refer to is not in the file: go on at a keyframe
                self._resync = True
                self.relay.request_keyframe()
            return
        if len(self._backlog) >= self.config.max_backlog:
            # The worker fell behind (a stalled disk): start again at a keyframe.
            log.warning(
                "%s: %d frames behind, dropping to the next keyframe",
                self.viewer_id,
                len(self._backlog),
            )
            self._backlog = [t for t in self._backlog if t.kind != "video"][-50:]
            self._resync = True
            self.relay.request_keyframe()
            if timed.kind == "video":
                return
        self._backlog.append(timed)
        self._wake.set()

    def _ask_keyframe(self, frame: EncodedFrame) -> None:
        interval = self.config.keyframe_interval
        if frame.keyframe:
            self._last_key = frame.timestamp
        elif interval is not None and self._last_key is not None:
            if frame.timestamp - self._last_key >= interval * RATES["video"]:
                self.relay.request_keyframe()  # rate-limited by the relay

    async def _write(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._readers_left > 0 or self._backlog:
                if not self._backlog:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                batch, self._backlog = self._backlog, []
                self.frames += len(batch)
                await loop.run_in_executor(self._executor, self.sink.write, batch)
        except Exception as exc:  # a broken file: stop feeding, still finalise what we have
            self.failed = exc
            log.exception("%s: writing failed", self.viewer_id)
            self.relay.remove_viewer(self.viewer_id)
        finally:
            await self._close_sink(loop)

    async def _close_sink(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            await asyncio.shield(loop.run_in_executor(self._executor, self.sink.close))
        except Exception as exc:
            self.failed = self.failed or exc
            log.exception("%s: finalising failed", self.viewer_id)
        finally:
            self._executor.shutdown(wait=False)
            for task in self._tasks:
                if task is not asyncio.current_task():
                    task.cancel()
            if not self.finished.done():
                self.finished.set_result(None)


# one feed a room: what the recorder and the HLS packager keep

S = TypeVar("S", bound=Sink)


class LiveFeed(Generic[S]):
    """One room's stream being fed to a sink."""

    def __init__(self, room: str, stream: str, feed: RelayFeed, sink: S) -> None:
        self.room = room
        self.stream = stream
        self.feed = feed
        self.sink = sink


L = TypeVar("L", bound=LiveFeed[Any])


def new_feed(
    relay: RoomRelay, viewer_id: str, sink: Sink, keyframe_interval: float | None
) -> RelayFeed:
    """A feed of every kind the relay carries into ``sink`` (not started yet)."""
    kinds = tuple(kind for kind in KINDS if kind in relay.codecs)
    return RelayFeed(relay, viewer_id, sink, kinds, FeedConfig(keyframe_interval=keyframe_interval))


class FeedRooms(Generic[L]):
    """At most one ``LiveFeed`` a room: started when a stream goes live, finished when it ends."""

    def __init__(self) -> None:
        self._live: dict[str, L] = {}

    async def _goes_on(self, room: str, stream: str, relay: RoomRelay) -> bool:
        """True if ``room`` already feeds ``stream`` from ``relay``; else finish its feed."""
        current = self._live.get(room)
        if current is not None:
            if current.stream == stream and current.feed.relay is relay and not current.feed.done:
                return True  # it goes on (a publisher back within its grace period)
            await self._finish(room)
        return False

    def _begin(self, room: str, live: L) -> bool:
        """Start ``live``'s feed and keep it as the room's; False if the relay closed."""
        try:
            live.feed.start()
        except RelayClosed:
            return False
        self._live[room] = live
        return True

    async def stop(self, room: str) -> None:
        """The room's media ended: finish its feed."""
        await self._finish(room)

    async def stream_stopped(self, room: str, stream: str) -> None:
        """A stream was stopped over REST (the publisher may still be sending)."""
        current = self._live.get(room)
        if current is not None and current.stream == stream:
            await self._finish(room)

    async def _finish_all(self) -> None:
        await asyncio.gather(*(self._finish(room) for room in list(self._live)))

    async def _finish(self, room: str) -> None:
        raise NotImplementedError
