"""Recordings: each stream's media remuxed, not re-encoded, into one file.

A recording is one more subscriber of the room's relay (``remux.RelayFeed``):
the publisher's encoded frames are written as they are. H.264 goes into a
fragmented MP4 (``moov`` first and empty, then a ``moof``/``mdat`` pair about
every second), so a crash loses at most the last fragment and the file plays
up to there; VP8 has no standard MP4 mapping and goes into WebM. Opus audio is
kept as Opus in either.

Files: ``DATA_DIR/recordings/{room}/{stream}.mp4`` (or ``.webm``) and a
sidecar ``{stream}.json`` (``RecordingInfo``) written when the file opens and
again when it is finalised: codecs, the wall-clock start (to line chat up with
the picture), duration from the timestamps (no ffprobe) and size.

Crash recovery: while a file is written its writer holds an advisory lock on
it (``flock``, released by the kernel when the process dies, kill -9 too). At
start, every recording whose sidecar says it is not complete and whose file
nobody holds (another node sharing the data directory may still be writing
its own) is cut after its last complete fragment (MP4 ``moof``+``mdat``, WebM
``Cluster``), so it plays to the end without an error, and its sidecar is
finalised with ``recovered`` set (``recover``).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import re
import struct
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import av
import msgspec
from av.container import OutputContainer
from av.stream import Stream

from livehub.media.relay import KINDS, Kind, RoomRelay
from livehub.media.remux import (
    RATES,
    SAFE_ID,
    TIME_BASES,
    BitstreamError,
    Durations,
    FeedRooms,
    LiveFeed,
    Timed,
    add_opus_stream,
    new_feed,
    packet,
    video_dimensions,
)

log = logging.getLogger("livehub.media.recorder")

RECORDING_FILE = re.compile(r"\A([A-Za-z0-9][A-Za-z0-9_-]{0,63})\.(mp4|webm)\Z")
Format = Literal["mp4", "webm"]


@dataclass(frozen=True)
class RecordingConfig:
    enabled: bool = True
    fragment_seconds: float = 1.0  # MP4 fragment / WebM cluster length: what a crash can lose
    keyframe_interval: float | None = 4.0  # ask for keyframes so replays can seek
    # how often to look for recordings another node's crash left unfinished (shared data dir)
    recover_interval: float = 60.0

    @classmethod
    def build(cls, overrides: dict[str, Any] | None) -> RecordingConfig:
        """From ``Settings.extra['recording']``, e.g. ``{"enabled": false}``."""
        return cls(**(overrides or {}))


class RecordingInfo(msgspec.Struct, frozen=True):
    room: str
    stream: str
    file: str
    format: Format
    video: str | None
    audio: str | None
    width: int | None = None
    height: int | None = None
    started_at: float | None = None  # wall clock of the first frame in the file
    duration: float = 0.0
    size: int = 0
    complete: bool = False
    recovered: bool = False  # finalised after a crash, cut at its last complete fragment

    @property
    def url(self) -> str:
        return f"/recordings/{self.room}/{self.file}"

    def public(self) -> dict[str, Any]:
        """What the REST API shows for a stream's recording."""
        return {
            "url": self.url,
            "replay": f"/replay/{self.room}/{self.stream}",
            "format": self.format,
            "video": self.video,
            "audio": self.audio,
            "duration": round(self.duration, 3),
            "size": self.size,
            "started_at": self.started_at,
            "complete": self.complete,
            "recovered": self.recovered,
        }


def format_for(video: str | None) -> Format:
    return "webm" if video is not None and video.lower() == "video/vp8" else "mp4"


class RecordingSink:
    """Writes one recording; every method runs on the feed's worker thread."""

    def __init__(
        self,
        path: Path,
        info: RecordingInfo,
        config: RecordingConfig,
        started_at: Callable[[], float | None],
    ) -> None:
        self.path = path
        self.info = info
        self._config = config
        self._started_at = started_at
        self._out: OutputContainer | None = None
        self._lock: int | None = None  # a descriptor holding the file's flock while written
        self._streams: dict[Kind, Stream] = {}
        self._last: dict[Kind, int] = {}
        self._durations = Durations()
        self.packets = 0
        self.keyframe_sample: bytes | None = None  # the first keyframe written (tests)

    @property
    def opened(self) -> bool:
        return self._out is not None

    # the thread side

    def write(self, frames: list[Timed]) -> None:
        for timed in frames:
            if self._out is None and not self._open(timed):
                continue
            if timed.kind not in self._streams:
                continue
            self._last[timed.kind] = timed.pts
            ready = self._durations.push(timed)
            if ready is not None:
                self._mux(*ready)

    def _mux(self, timed: Timed, duration: int) -> None:
        assert self._out is not None
        stream = self._streams[timed.kind]
        self._out.mux(packet(timed.data, stream, timed.pts, timed.kind, timed.keyframe, duration))
        self.packets += 1

    def _open(self, first: Timed) -> bool:
        """Open the file at the first frame that can start it (a keyframe with its headers)."""
        info = self.info
        starter: Kind = "video" if info.video else "audio"
        if first.kind != starter or not first.keyframe:
            return False
        width = height = None
        if info.video is not None:
            try:
                width, height = video_dimensions(info.video, first.data)
            except BitstreamError as exc:
                log.info("%s: waiting for a keyframe that can start the file (%s)", info.file, exc)
                return False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = _hold(self.path)  # before the muxer opens it: the same inode
        try:
            out = self._container()
        except BaseException:
            self._release()
            raise
        try:
            if info.video is not None:
                codec = "h264" if info.format == "mp4" else "vp8"
                video = out.add_mux_stream(codec, width=width, height=height)
                video.time_base = TIME_BASES["video"]
                self._streams["video"] = video
                self.keyframe_sample = first.data
            if info.audio is not None:
                self._streams["audio"] = add_opus_stream(out)
        except BaseException:
            out.close()
            self._release()
            raise
        self._out = out
        self.info = msgspec.structs.replace(
            info, width=width, height=height, started_at=self._started_at()
        )
        _save(self.path, self.info)
        return True

    def _container(self) -> OutputContainer:
        fragment = max(0.1, self._config.fragment_seconds)
        if self.info.format == "mp4":
            options = {
                "movflags": "frag_keyframe+empty_moov+default_base_moof",
                "frag_duration": str(int(fragment * 1_000_000)),
            }
        else:
            options = {"cluster_time_limit": str(int(fragment * 1000))}
        # Each fragment goes to the disk as soon as the muxer has it, not when 32 KB
        # of them fill FFmpeg's buffer: a crash loses at most the fragment being made.
        options["flush_packets"] = "1"
        return av.open(str(self.path), "w", format=self.info.format, options=options)

    def close(self) -> None:
        try:
            if self._out is not None:
                try:
                    for timed, duration in self._durations.rest():
                        self._mux(timed, duration)
                finally:
                    self._out.close()
            self.info = msgspec.structs.replace(
                self.info, duration=self.duration(), size=_size(self.path), complete=True
            )
            if self._out is not None:
                _save(self.path, self.info)
        finally:
            self._release()

    def _release(self) -> None:
        if self._lock is not None:
            os.close(self._lock)  # closing the descriptor drops the flock
            self._lock = None

    def duration(self) -> float:
        """From the timestamps: the end of the last frame of the longer kind."""
        step = self._durations.step
        ends = [(last + step[kind]) / RATES[kind] for kind, last in self._last.items()]
        return max(ends, default=0.0)


def _save(path: Path, info: RecordingInfo) -> None:
    """Write the sidecar of the recording at ``path`` atomically."""
    sidecar = path.with_suffix(".json")
    tmp = sidecar.with_suffix(".json.tmp")
    tmp.write_bytes(msgspec.json.encode(msgspec.structs.replace(info, size=_size(path))))
    os.replace(tmp, sidecar)


def _hold(path: Path) -> int:
    """Lock ``path`` as being written (``fcntl.flock``); returns the descriptor to close."""
    fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError if held
    except BaseException:
        os.close(fd)
        raise
    return fd


def _try_hold(path: Path) -> int | None:
    """Lock ``path`` unless a live process holds it (is writing or recovering it)."""
    try:
        return _hold(path)
    except BlockingIOError:
        return None


# crash recovery: where an unfinished file can be cut

_BOX = struct.Struct(">I4s")


def mp4_complete_end(data: bytes) -> int | None:
    """Where a fragmented MP4 ends after its last complete fragment (``moof`` followed
    by its whole ``mdat``); None when even ``ftyp`` and ``moov`` are not whole."""
    pos, end, movie = 0, None, False
    pending_moof = False
    while pos + _BOX.size <= len(data):
        size, kind = _BOX.unpack_from(data, pos)
        header = _BOX.size
        if size == 1:
            if pos + 16 > len(data):
                break
            size = struct.unpack_from(">Q", data, pos + 8)[0]
            header = 16
        if size < header or size == 0 or pos + size > len(data):
            break  # runs to the end of the file or past it: cut here
        pos += size
        if kind == b"moov":
            movie = True
        if kind == b"moof":
            pending_moof = True
            continue
        if kind == b"mdat" and not pending_moof:
            continue  # a sample data box without its fragment header
        pending_moof = False
        if movie:
            end = pos
    return end


_CLUSTER = 0x1F43B675
_SEGMENT = 0x18538067
_EBML = 0x1A45DFA3
_UNKNOWN_SIZE_8 = b"\x01\xff\xff\xff\xff\xff\xff\xff"


def _vint(data: bytes, pos: int, keep_marker: bool) -> tuple[int, int, bool] | None:
    """An EBML variable-size integer at ``pos``: (value, length, all ones = unknown)."""
    if pos >= len(data) or data[pos] == 0:
        return None
    length = 8 - data[pos].bit_length() + 1
    if pos + length > len(data):
        return None
    value = int.from_bytes(data[pos : pos + length], "big")
    if not keep_marker:
        value &= (1 << (7 * length)) - 1
    unknown = not keep_marker and value == (1 << (7 * length)) - 1
    return value, length, unknown


def webm_complete_end(data: bytes) -> tuple[int, int | None] | None:
    """Where a WebM file ends after its last complete ``Cluster``, and the offset of the
    Segment's size field when the Segment claims more than that (to be made "unknown");
    None when the headers or the first cluster are not whole."""
    head = _vint(data, 0, keep_marker=True)
    size = _vint(data, head[1], keep_marker=False) if head else None
    if head is None or head[0] != _EBML or size is None:
        return None
    pos = head[1] + size[1] + size[0]
    segment = _vint(data, pos, keep_marker=True)
    seg_size = _vint(data, pos + segment[1], keep_marker=False) if segment else None
    if segment is None or segment[0] != _SEGMENT or seg_size is None:
        return None
    size_at = pos + segment[1]
    start = size_at + seg_size[1]
    end = None
    for kind, _, body, length in _children(data, start, len(data)):
        if kind == _CLUSTER:
            end = body + length
    if end is None:
        return None
    claims = None if seg_size[2] else start + seg_size[0]
    fix = size_at if claims is not None and claims != end and seg_size[1] == 8 else None
    return end, fix


_INFO = 0x1549A966
_TIMESTAMP_SCALE = 0x2AD7B1
_DURATION = 0x4489
_VOID = 0xEC


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """The whole EBML elements in ``data[start:end]``: (id, offset, data offset, data size)."""
    found = []
    pos = start
    while pos < end:
        element = _vint(data, pos, keep_marker=True)
        size = _vint(data, pos + element[1], keep_marker=False) if element else None
        if element is None or size is None or size[2]:
            break
        body = pos + element[1] + size[1]
        if body + size[0] > end:
            break
        found.append((element[0], pos, body, size[0]))
        pos = body + size[0]
    return found


def webm_duration_patch(data: bytes, seconds: float) -> tuple[int, bytes] | None:
    """Where and what to write so a WebM file's ``Info`` states its duration: over its
    ``Duration``, or over the 11-byte ``Void`` FFmpeg reserves for one while writing."""
    head = _vint(data, 0, keep_marker=True)
    size = _vint(data, head[1], keep_marker=False) if head else None
    if head is None or size is None:
        return None
    segment_at = head[1] + size[1] + size[0]
    segment = _vint(data, segment_at, keep_marker=True)
    seg_size = _vint(data, segment_at + segment[1], keep_marker=False) if segment else None
    if segment is None or seg_size is None:
        return None
    start = segment_at + segment[1] + seg_size[1]
    for kind, _, body, length in _children(data, start, len(data)):
        if kind != _INFO:
            continue
        children = _children(data, body, body + length)
        scale = 1_000_000
        for child, _, at, n in children:
            if child == _TIMESTAMP_SCALE and 0 < n <= 8:
                scale = int.from_bytes(data[at : at + n], "big") or scale
        ticks = seconds * 1e9 / scale
        for child, offset, at, n in children:
            if child == _DURATION and n in (4, 8):
                return at, struct.pack(">f" if n == 4 else ">d", ticks)
            if child == _VOID and at + n - offset == 11:
                return offset, b"\x44\x89\x88" + struct.pack(">d", ticks)
        return None
    return None


def cut_unfinished(path: Path, fmt: Format) -> bool:
    """Cut ``path`` after its last complete fragment; False if nothing in it can play."""
    data = path.read_bytes()
    fix: int | None = None
    if fmt == "mp4":
        end = mp4_complete_end(data)
    else:
        found = webm_complete_end(data)
        end, fix = found if found is not None else (None, None)
    if end is None:
        return False
    with path.open("r+b") as file:
        file.truncate(end)
        if fix is not None:
            file.seek(fix)
            file.write(_UNKNOWN_SIZE_8)
    return True


def _state_duration(path: Path, seconds: float) -> None:
    """Write a WebM file's duration into its header (players show and seek by it)."""
    with path.open("r+b") as file:
        head = file.read(64 * 1024)
        patch = webm_duration_patch(head, seconds)
        if patch is not None:
            file.seek(patch[0])
            file.write(patch[1])


def media_duration(path: Path, fmt: Format) -> float:
    """The end of the last packet in a file, in seconds. FFmpeg reads a fragmented MP4's
    fragment headers when it opens it (skipping the media data); a WebM without a
    duration in its header is read packet by packet."""
    end = 0.0
    with av.open(str(path)) as container:
        if fmt == "mp4" and container.duration is not None:
            return float(container.duration) / av.time_base
        for item in container.demux():
            if item.pts is None or item.time_base is None:
                continue
            end = max(end, float((item.pts + (item.duration or 0)) * item.time_base))
    return end


def _unfinished(sidecar: Path) -> RecordingInfo | None:
    """The recording a sidecar describes if it is not complete (and names a recording)."""
    try:
        info = msgspec.json.decode(sidecar.read_bytes(), type=RecordingInfo)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None
    if info.complete or RECORDING_FILE.match(info.file) is None:
        return None
    return info


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


class Recording(LiveFeed[RecordingSink]):
    """One stream being recorded."""

    def info(self) -> RecordingInfo:
        """Live figures while recording (the sink's own are final once it closed)."""
        info = self.sink.info
        if info.complete:
            return info
        seconds = [s for s in map(self.feed.timeline.seconds, KINDS) if s is not None]
        return msgspec.structs.replace(
            info,
            started_at=self.feed.timeline.origin_wall,
            duration=max(seconds, default=0.0),
            size=_size(self.sink.path),
        )


class RecordingManager(FeedRooms[Recording]):
    """Starts a recording when a stream goes live and finalises it when it ends."""

    def __init__(self, root: Path, config: RecordingConfig | None = None) -> None:
        super().__init__()
        self.root = root
        self.config = config or RecordingConfig()

    def recording(self, room: str) -> Recording | None:
        return self._live.get(room)

    async def start(self, room: str, stream: str, relay: RoomRelay) -> None:
        """Record ``stream`` from ``relay`` (a publisher went live, or came back)."""
        if not self.config.enabled or not (SAFE_ID.match(room) and SAFE_ID.match(stream)):
            return
        if await self._goes_on(room, stream, relay):
            return  # the same recording goes on
        video, audio = relay.codecs.get("video"), relay.codecs.get("audio")
        fmt = format_for(video)
        path = self.root / room / f"{stream}.{fmt}"
        if path.exists() or path.with_suffix(".json").exists():
            # One file per stream: a publisher back with another codec is not recorded again.
            log.info("room %s: stream %s already has a recording", room, stream)
            return
        info = RecordingInfo(room, stream, path.name, fmt, video, audio)
        sink = RecordingSink(path, info, self.config, lambda: feed.timeline.origin_wall)
        feed = new_feed(relay, f"recorder:{stream}", sink, self.config.keyframe_interval)
        if not self._begin(room, Recording(room, stream, feed, sink)):
            return
        log.info("room %s: recording %s to %s", room, stream, path)

    async def _finish(self, room: str) -> None:
        """Finalise the room's recording."""
        recording = self._live.pop(room, None)
        if recording is None:
            return
        await recording.feed.stop()
        info = recording.sink.info
        log.info(
            "room %s: recording %s finalised (%.1f s, %d bytes)",
            room,
            recording.stream,
            info.duration,
            info.size,
        )

    def info(self, room: str, stream: str) -> RecordingInfo | None:
        """The recording of a stream: live figures, else its sidecar, else None."""
        if not (SAFE_ID.match(room) and SAFE_ID.match(stream)):
            return None
        current = self._live.get(room)
        if current is not None and current.stream == stream and not current.feed.done:
            return current.info() if current.sink.opened else None
        for fmt in ("mp4", "webm"):
            path = self.root / room / f"{stream}.{fmt}"
            sidecar = path.with_suffix(".json")
            try:
                saved = msgspec.json.decode(sidecar.read_bytes(), type=RecordingInfo)
            except (FileNotFoundError, msgspec.DecodeError, msgspec.ValidationError):
                continue
            if path.exists():
                return msgspec.structs.replace(saved, size=_size(path))
        return None

    def file(self, room: str, name: str) -> Path | None:
        """The recording file ``name`` of ``room`` if it exists (names are validated)."""
        if not SAFE_ID.match(room) or not RECORDING_FILE.match(name):
            return None
        path = self.root / room / name
        return path if path.is_file() else None

    async def purge_older_than(self, cutoff: float) -> int:
        """Delete the recordings last written before ``cutoff`` (a Unix time), with
        their sidecars; a stream still being recorded is kept. Returns how many."""
        live = {(r.room, r.stream) for r in self._live.values() if not r.feed.done}
        return await asyncio.to_thread(self._purge, cutoff, live)

    def _purge(self, cutoff: float, live: set[tuple[str, str]]) -> int:
        deleted = 0
        if not self.root.is_dir():
            return 0
        for room_dir in self.root.iterdir():
            if not (room_dir.is_dir() and SAFE_ID.match(room_dir.name)):
                continue
            for path in room_dir.iterdir():
                match = RECORDING_FILE.match(path.name)
                if match is None or (room_dir.name, match[1]) in live:
                    continue
                try:
                    if path.stat().st_mtime >= cutoff:
                        continue
                    path.unlink()
                except FileNotFoundError:
                    continue
                path.with_suffix(".json").unlink(missing_ok=True)
                deleted += 1
        return deleted

    def recover(self) -> list[RecordingInfo]:
        """Finalise every recording a crash left unfinished (blocking; run in a thread).

        A file being written by a live process (this node's or another's) is left
        alone; an unfinished one is cut after its last complete fragment and its
        sidecar completed. A file in which nothing whole was written is deleted
        with its sidecar. Returns the recordings finalised."""
        done: list[RecordingInfo] = []
        if not self.root.is_dir():
            return done
        live = {(r.room, r.stream) for r in self._live.values() if not r.feed.done}
        for sidecar in sorted(self.root.glob("*/*.json")):
            info = _unfinished(sidecar)
            if info is None or (info.room, info.stream) in live:
                continue
            path = sidecar.with_name(info.file)
            lock = _try_hold(path) if path.is_file() else None
            if lock is None:
                continue  # being written (or recovered) by a live process
            try:
                info = _unfinished(sidecar)  # unless another node just finalised it
                recovered = self._recover_one(path, info) if info is not None else None
            finally:
                os.close(lock)
            if recovered is not None:
                done.append(recovered)
        return done

    async def recover_forever(self) -> None:
        """Finalise what crashes leave unfinished every ``recover_interval`` (the first
        pass runs at start, in ``lifecycle``): a node that shares its data directory
        with one that died finalises that one's recordings without a restart."""
        while True:
            await asyncio.sleep(self.config.recover_interval)
            await asyncio.to_thread(self.recover)

    def _recover_one(self, path: Path, info: RecordingInfo) -> RecordingInfo | None:
        try:
            playable = cut_unfinished(path, info.format)
            duration = media_duration(path, info.format) if playable else 0.0
            if playable and info.format == "webm":
                _state_duration(path, duration)
        except (OSError, av.error.FFmpegError) as exc:
            log.warning("recording %s/%s: cannot recover (%s)", info.room, info.file, exc)
            return None
        if not playable:
            log.warning("recording %s/%s: nothing whole was written; deleted", info.room, info.file)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            path.with_suffix(".json").unlink(missing_ok=True)
            return None
        info = msgspec.structs.replace(
            info, duration=duration, size=_size(path), complete=True, recovered=True
        )
        _save(path, info)
        log.info(
            "recording %s/%s recovered after a crash: %.1f s, %d bytes",
            info.room,
            info.file,
            info.duration,
            info.size,
        )
        return info

    async def lifecycle(self, app: object) -> AsyncIterator[None]:
        """aiohttp cleanup context: recordings a crash left unfinished are finalised at
        start, and every recording is finalised at shutdown."""
        await asyncio.to_thread(self.recover)
        yield
        await self._finish_all()
