"""Reports of a room's streams: built from the log, stored, served, kept current.

* an ended stream's report is stored; a stored one is served while it still
  covers every event of the stream (count and highest id unchanged), else it is
  rebuilt and stored again;
* a live stream gets a preview built on the spot, stored only when asked
  (:meth:`Reports.rebuild`);
* :meth:`Reports.schedule` builds and stores in the background (the edge calls
  it when a stream stops); concurrent requests for the same report share one build.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable

from livehub.errors import NotFound
from livehub.reports.model import Report, ReportInfo
from livehub.reports.source import build_from_log
from livehub.reports.store import ReportStore
from livehub.rooms.eventlog import EventLog
from livehub.rooms.models import Stream
from livehub.rooms.service import RoomService

log = logging.getLogger("livehub.reports")


class Reports:
    def __init__(
        self,
        log_: EventLog,
        store: ReportStore,
        rooms: RoomService,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._log = log_
        self._store = store
        self._rooms = rooms
        self._clock = clock
        self._building: dict[tuple[str, str], asyncio.Future[Report]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def store(self) -> ReportStore:
        return self._store

    async def stream(self, room_id: str, stream_id: str) -> Stream:
        for stream in await self._rooms.streams(room_id):
            if stream.id == stream_id:
                return stream
        raise NotFound("stream_not_found", f"No stream {stream_id!r} in this room.")

    async def latest(self, room_id: str) -> Stream:
        streams = await self._rooms.streams(room_id)
        if not streams:
            raise NotFound("no_streams", "This room has not streamed yet.")
        return max(streams, key=lambda s: s.started_at)

    async def build(self, room_id: str, stream: Stream) -> Report:
        """A fresh report (not stored); one build at a time per stream."""
        key = (room_id, stream.id)
        running = self._building.get(key)
        if running is not None:
            return await asyncio.shield(running)
        task = asyncio.ensure_future(self._build(room_id, stream))
        self._building[key] = task
        task.add_done_callback(lambda _t: self._building.pop(key, None))
        return await asyncio.shield(task)

    async def _build(self, room_id: str, stream: Stream) -> Report:
        return await build_from_log(
            self._log,
            self._store.connection,
            room_id,
            stream.id,
            now=self._clock(),
            record=stream,
        )

    async def rebuild(self, room_id: str, stream: Stream) -> Report:
        """Build and store (a live stream's preview too)."""
        report = await self.build(room_id, stream)
        await self._store.save(report)
        return report

    async def report(self, room_id: str, stream: Stream) -> Report:
        """The stored report while current; else built (and stored once the stream ended)."""
        if stream.ended_at is None:
            return await self.build(room_id, stream)
        info = await self._store.info(room_id, stream.id)
        if info is not None and not info.live and await self._store.is_current(info):
            stored = await self._store.get(room_id, stream.id)
            if stored is not None:
                return stored
        return await self.rebuild(room_id, stream)

    async def list(self, room_id: str) -> list[ReportInfo]:
        return await self._store.list(room_id)

    async def delete(self, room_id: str, stream_id: str) -> bool:
        return await self._store.delete(room_id, stream_id)

    # -- background ----------------------------------------------------------------------

    def schedule(self, room_id: str, stream_id: str) -> asyncio.Task[None]:
        """Build and store the report of a stream that just stopped, in the background."""
        task = asyncio.ensure_future(self._stopped(room_id, stream_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def stream_stopped(self, room_id: str, stream_id: str) -> None:
        """The hook the edge calls after a stream stopped."""
        self.schedule(room_id, stream_id)

    async def _stopped(self, room_id: str, stream_id: str) -> None:
        try:
            stream = await self.stream(room_id, stream_id)
            report = await self.rebuild(room_id, stream)
        except asyncio.CancelledError:
            raise
        except Exception:  # a background build must not die silently
            log.exception("building the report of %s/%s failed", room_id, stream_id)
            return
        log.info(
            "report of %s/%s stored (%d events, %d viewers)",
            room_id,
            stream_id,
            report.meta.event_count,
            report.summary.unique_viewers,
        )

    async def drain(self) -> None:
        """Wait for the background builds under way."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
        await self._store.close()

    async def lifecycle(self, _app: object) -> AsyncIterator[None]:
        """For ``app.cleanup_ctx``: closes the store (after cancelling builds) at shutdown."""
        yield
        await self.close()

    # -- for retention and erasure (livehub.reports.privacy) -----------------------------

    async def refresh(self, room_id: str, stream_ids: Iterable[str]) -> tuple[int, int]:
        """Rebuild the stored reports of these streams from the log as it is now, or
        delete them when the log no longer holds the stream's events; (rebuilt, deleted)."""
        rebuilt = deleted = 0
        streams = {s.id: s for s in await self._rooms.streams(room_id)}
        for stream_id in stream_ids:
            if await self._store.info(room_id, stream_id) is None:
                continue
            count, _ = await self._store.stream_state(room_id, stream_id)
            stream = streams.get(stream_id)
            if count == 0 or stream is None:
                deleted += int(await self._store.delete(room_id, stream_id))
            else:
                await self.rebuild(room_id, stream)
                rebuilt += 1
        return rebuilt, deleted

    async def purge(self, cutoff: float) -> int:
        """Delete the stored reports of streams that ended before ``cutoff``."""
        return await self._store.purge_ended_before(cutoff)
