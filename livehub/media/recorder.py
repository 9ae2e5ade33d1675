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
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
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
    OPUS_FRAME,
    RATES,
    SAFE_ID,
    TIME_BASES,
    BitstreamError,
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
        self._streams: dict[Kind, Stream] = {}
        self._last: dict[Kind, int] = {}
        self._step: dict[Kind, int] = {"audio": OPUS_FRAME, "video": 3000}
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
            stream = self._streams.get(timed.kind)
            if stream is None:
                continue
            last = self._last.get(timed.kind)
            if last is not None and timed.pts > last:
                self._step[timed.kind] = min(timed.pts - last, RATES[timed.kind] // 10)
            self._last[timed.kind] = timed.pts
            assert self._out is not None
            self._out.mux(packet(timed.data, stream, timed.pts, timed.kind, timed.keyframe))
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
        out = self._container()
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
            raise
        self._out = out
        self.info = msgspec.structs.replace(
            info, width=width, height=height, started_at=self._started_at()
        )
        self._save()
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
        return av.open(str(self.path), "w", format=self.info.format, options=options)

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
        self.info = msgspec.structs.replace(
            self.info, duration=self.duration(), size=_size(self.path), complete=True
        )
        if self._out is not None:
            self._save()

    def duration(self) -> float:
        """From the timestamps: the end of the last frame of the longer kind."""
        ends = [(last + self._step[kind]) / RATES[kind] for kind, last in self._last.items()]
        return max(ends, default=0.0)

    def _save(self) -> None:
        sidecar = self.path.with_suffix(".json")
        tmp = sidecar.with_suffix(".json.tmp")
        info = msgspec.structs.replace(self.info, size=_size(self.path))
        tmp.write_bytes(msgspec.json.encode(info))
        os.replace(tmp, sidecar)


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

    async def lifecycle(self, app: object) -> AsyncIterator[None]:
        """aiohttp cleanup context: every recording finalised at shutdown."""
        yield
        await self._finish_all()
