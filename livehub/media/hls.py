"""Live HLS: each live room's stream as a playlist of fMP4 segments.

The packager is one more subscriber of the room's relay (``remux.RelayFeed``).
Video is the publisher's H.264, remuxed as it is (no video encoder); audio is
decoded from Opus and encoded to AAC once per room, since HLS players do not
take Opus. FFmpeg's ``hls`` muxer writes ``DATA_DIR/hls/{room}/index.m3u8``
(replaced atomically), an init segment and numbered ``.m4s`` segments, cut at
the first keyframe after every ``segment_seconds``; the oldest segments are
deleted as the list slides. Browsers send keyframes rarely, so the packager
asks the publisher for one every ``segment_seconds`` (through the relay's
rate-limited keyframe requests); otherwise segments would last as long as the
publisher's GOP.

HLS cannot carry VP8: a VP8 stream has no HLS (WHEP still plays it). When the
stream ends the playlist gets ``#EXT-X-ENDLIST`` and stays served for
``linger`` seconds, then the room's directory is deleted.

Segment names carry the stream id and a random part, so a segment URL is
never reused for other content and can be cached.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from av.audio.codeccontext import AudioCodecContext
from av.audio.resampler import AudioResampler
from av.audio.stream import AudioStream
from av.codec.context import CodecContext
from av.container import OutputContainer
from av.stream import Stream

from livehub.media.relay import RoomRelay
from livehub.media.remux import (
    RATES,
    SAFE_ID,
    TIME_BASES,
    BitstreamError,
    Durations,
    FeedRooms,
    LiveFeed,
    Timed,
    new_feed,
    packet,
    video_dimensions,
)

log = logging.getLogger("livehub.media.hls")

SEGMENT_NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_-]{0,95}\.(m4s|mp4)\Z")
PLAYLIST = "index.m3u8"
AAC_FRAME = 1024
GAP = 480  # audio samples of jitter tolerated before a timestamp jump counts as a gap


@dataclass(frozen=True)
class HlsConfig:
    enabled: bool = True
    segment_seconds: float = 2.0
    list_size: int = 6
    linger: float = 30.0  # seconds an ended playlist stays served before its files go
    audio_bitrate: int = 128_000
    program_date_time: bool = True

    @classmethod
    def build(cls, overrides: dict[str, Any] | None) -> HlsConfig:
        """From ``Settings.extra['hls']``, e.g. ``{"list_size": 3}``."""
        return cls(**(overrides or {}))


class HlsSink:
    """Writes one room's live HLS; every method runs on the feed's worker thread."""

    def __init__(
        self, directory: Path, prefix: str, video: str | None, audio: str | None, config: HlsConfig
    ) -> None:
        self.directory = directory
        self.prefix = prefix
        self.video = video
        self.audio = audio
        self._config = config
        self._out: OutputContainer | None = None
        self._video: Stream | None = None
        self._aac: AudioStream | None = None
        self._decoder: AudioCodecContext | None = None
        self._resampler: AudioResampler | None = None
        self._fifo: av.AudioFifo | None = None
        self._aac_next = 0  # pts of the next AAC frame (48 kHz)
        self._fifo_end: int | None = None  # pts just after the last sample in the fifo
        self._durations = Durations()
        self.video_packets = 0
        self.aac_frames = 0

    @property
    def playlist(self) -> Path:
        return self.directory / PLAYLIST

    def write(self, frames: list[Timed]) -> None:
        for timed in frames:
            if self._out is None and not self._open(timed):
                continue
            assert self._out is not None
            if timed.kind == "video" and self._video is not None:
                ready = self._durations.push(timed)
                if ready is not None:
                    self._mux_video(*ready)
            elif timed.kind == "audio" and self._aac is not None:
                self._audio(timed)

    def _mux_video(self, timed: Timed, duration: int) -> None:
        assert self._out is not None and self._video is not None
        self._out.mux(packet(timed.data, self._video, timed.pts, "video", timed.keyframe, duration))
        self.video_packets += 1

    def _open(self, first: Timed) -> bool:
        starter = "video" if self.video else "audio"
        if first.kind != starter or not first.keyframe:
            return False
        width = height = 0
        if self.video is not None:
            try:
                width, height = video_dimensions(self.video, first.data)
            except BitstreamError as exc:
                log.info("%s: waiting for a keyframe that can start HLS (%s)", self.prefix, exc)
                return False
        self.directory.mkdir(parents=True, exist_ok=True)
        flags = "delete_segments+independent_segments+temp_file"
        if self._config.program_date_time:
            flags += "+program_date_time"
        out = av.open(
            str(self.playlist),
            "w",
            format="hls",
            options={
                "hls_time": f"{self._config.segment_seconds:g}",
                "hls_list_size": str(self._config.list_size),
                "hls_segment_type": "fmp4",
                "hls_flags": flags,
                "hls_segment_filename": str(self.directory / f"{self.prefix}-%d.m4s"),
                "hls_fmp4_init_filename": f"{self.prefix}-init.mp4",
            },
        )
        try:
            if self.video is not None:
                self._video = out.add_mux_stream("h264", width=width, height=height)
                self._video.time_base = TIME_BASES["video"]
            if self.audio is not None:
                aac = out.add_stream("aac", rate=RATES["audio"])
                aac.codec_context.layout = "stereo"
                aac.codec_context.bit_rate = self._config.audio_bitrate
                aac.time_base = TIME_BASES["audio"]
                self._aac = aac
                self._decoder = CodecContext.create("opus", "r")
                self._resampler = AudioResampler(format="fltp", layout="stereo", rate=48000)
        except BaseException:
            out.close()
            raise
        self._out = out
        return True

    def _audio(self, timed: Timed) -> None:
        assert self._decoder is not None and self._resampler is not None
        if self._fifo_end is not None and timed.pts < self._fifo_end - GAP:
            return  # overlaps what was already taken
        encoded = av.Packet(timed.data)
        encoded.pts = timed.pts
        encoded.time_base = TIME_BASES["audio"]
        try:
            decoded = self._decoder.decode(encoded)
        except av.error.FFmpegError:
            return  # one bad Opus packet: skip it
        for frame in decoded:
            frame.pts = None
            for pcm in self._resampler.resample(frame):
                self._queue_pcm(pcm, timed.pts)

    def _queue_pcm(self, pcm: av.AudioFrame, pts: int) -> None:
        if self._fifo is None or self._fifo_end is None or pts > self._fifo_end + GAP:
            # First audio, or a gap (lost packets, a publisher that came back):
            # start a new run of AAC frames at this packet's time.
            self._fifo = av.AudioFifo()
            self._aac_next = pts
            self._fifo_end = pts
        self._fifo.write(pcm)
        self._fifo_end += pcm.samples
        while self._fifo.samples >= AAC_FRAME:
            chunk = self._fifo.read(AAC_FRAME)
            if chunk is None:
                break
            self._encode(chunk)

    def _encode(self, chunk: av.AudioFrame | None) -> None:
        assert self._aac is not None and self._out is not None
        if chunk is not None:
            chunk.pts = self._aac_next
            chunk.time_base = Fraction(1, RATES["audio"])
            self._aac_next += chunk.samples
            self.aac_frames += 1
        for encoded in self._aac.encode(chunk):
            self._out.mux(encoded)

    def close(self) -> None:
        """Flush the AAC encoder and end the playlist (``#EXT-X-ENDLIST``)."""
        if self._out is None:
            return
        try:
            for timed, duration in self._durations.rest():
                self._mux_video(timed, duration)
            if self._aac is not None:
                self._encode(None)
        finally:
            self._out.close()


class LiveHls(LiveFeed[HlsSink]):
    """One room's packager."""


class HlsPackager(FeedRooms[LiveHls]):
    """Starts a room's HLS when its stream goes live; ends it when the stream ends."""

    def __init__(self, root: Path, config: HlsConfig | None = None) -> None:
        super().__init__()
        self.root = root
        self.config = config or HlsConfig()
        self._unavailable: dict[str, str] = {}  # room -> why it has no HLS
        self._cleanups: dict[str, asyncio.Task[None]] = {}

    def live(self, room: str) -> LiveHls | None:
        return self._live.get(room)

    def directory(self, room: str) -> Path:
        if not SAFE_ID.match(room):
            raise ValueError(f"bad room id {room!r}")
        return self.root / room

    async def start(self, room: str, stream: str, relay: RoomRelay) -> None:
        if not self.config.enabled or not (SAFE_ID.match(room) and SAFE_ID.match(stream)):
            return
        if await self._goes_on(room, stream, relay):
            return
        video, audio = relay.codecs.get("video"), relay.codecs.get("audio")
        if video is not None and video.lower() != "video/h264":
            self._unavailable[room] = f"HLS needs H.264 video; this stream is {video}."
            log.info("room %s: no HLS for %s", room, video)
            return
        self._unavailable.pop(room, None)
        self._cancel_cleanup(room)
        directory = self.directory(room)
        await asyncio.to_thread(shutil.rmtree, directory, True)
        sink = HlsSink(directory, f"{stream}-{secrets.token_hex(3)}", video, audio, self.config)
        feed = new_feed(relay, f"hls:{stream}", sink, self.config.segment_seconds)
        if not self._begin(room, LiveHls(room, stream, feed, sink)):
            return
        log.info("room %s: HLS for %s in %s", room, stream, directory)

    async def _finish(self, room: str) -> None:
        """End the playlist, delete the files after ``linger``."""
        current = self._live.pop(room, None)
        self._unavailable.pop(room, None)
        if current is None:
            return
        await current.feed.stop()
        self._cancel_cleanup(room)
        self._cleanups[room] = asyncio.create_task(self._remove_later(room))

    async def _remove_later(self, room: str) -> None:
        await asyncio.sleep(self.config.linger)
        self._cleanups.pop(room, None)
        if room not in self._live:
            await asyncio.to_thread(shutil.rmtree, self.directory(room), True)

    def _cancel_cleanup(self, room: str) -> None:
        task = self._cleanups.pop(room, None)
        if task is not None:
            task.cancel()

    # what the HTTP edge serves

    def unavailable(self, room: str) -> str | None:
        """Why a live room has no HLS (VP8), or None."""
        return self._unavailable.get(room)

    def playlist(self, room: str) -> Path | None:
        if not SAFE_ID.match(room):
            return None
        path = self.root / room / PLAYLIST
        return path if path.is_file() else None

    def segment(self, room: str, name: str) -> Path | None:
        if not SAFE_ID.match(room) or not SEGMENT_NAME.match(name):
            return None
        path = self.root / room / name
        return path if path.is_file() else None

    async def lifecycle(self, app: object) -> AsyncIterator[None]:
        """aiohttp cleanup context: every playlist ended at shutdown."""
        yield
        await self._finish_all()
        for task in list(self._cleanups.values()):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._cleanups.values(), return_exceptions=True)
        self._cleanups.clear()
