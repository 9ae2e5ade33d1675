"""The durable event log: every interaction, appended to SQLite (WAL) with group commit.

Appends are queued and written by one writer task: whatever has queued while the
previous transaction committed goes into the next one, so many appends share one
fsync. ``append`` returns only after the commit (acknowledge after commit).

Idempotency: an event carrying a client id is stored under the unique key
``room|actor|client_id``; appending it again returns the first event with
``created=False`` instead of recording it twice, even across processes that
share the file.

Faults (a full disk, an I/O error, the file locked past the busy timeout, a
commit that stalls): every append has a commit deadline. An append whose batch
failed, or that was not committed within the deadline, raises ``Unavailable``
(retryable) and is never acknowledged. One that timed out while its batch was
already being written may still be committed afterwards: the caller was told
"not recorded, try again", and the retry, carrying the same client id, then
finds that event (``created=False``) instead of recording it twice. An event
without a client id has no such key; its caller must treat ``Unavailable`` as
"perhaps recorded". Timed-out appends still queued are dropped, never written.

The writer task never dies: a failed batch fails its appends and the loop goes
on with the next one. The log says how it is through ``on_health(error | None)``
(once per change, not per event) and logs once per failure streak; the first
batch that commits again clears it, so service resumes by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import aiosqlite
import msgspec

from livehub.errors import Unavailable

log = logging.getLogger("livehub.eventlog")

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uid TEXT NOT NULL UNIQUE,
    nonce TEXT NOT NULL,
    ts REAL NOT NULL,
    room TEXT NOT NULL,
    stream TEXT,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS events_room_stream ON events(room, stream, id);
CREATE INDEX IF NOT EXISTS events_room_kind ON events(room, kind, id);
CREATE TABLE IF NOT EXISTS probe (id INTEGER PRIMARY KEY CHECK (id = 1), ts REAL NOT NULL);
"""

MAX_BATCH = 2000
# How long an append (or a health probe) waits for its commit before it is refused.
COMMIT_DEADLINE_SECONDS = 5.0
# What a refused append tells the client to wait before retrying.
RETRY_AFTER_SECONDS = 1.0
BUSY_TIMEOUT_MS = 10_000
STALLED = "no commit within the deadline (the disk or the database is stuck)"

T = TypeVar("T")
P = ParamSpec("P")

# Told the log's health: a description of the failure, or None once commits work again.
HealthHook = Callable[[str | None], None]


class NewEvent(msgspec.Struct, frozen=True):
    room: str
    kind: str
    actor: str
    data: dict[str, Any]
    stream: str | None = None
    client_id: str | None = None
    ts: float = 0.0


class Event(msgspec.Struct, frozen=True):
    id: int
    ts: float
    room: str
    stream: str | None
    kind: str
    actor: str
    data: dict[str, Any]


def idempotency_key(room: str, actor: str, client_id: str) -> str:
    return f"{room}|{actor}|{client_id}"


class _Pending(msgspec.Struct):
    event: NewEvent
    uid: str
    nonce: str
    data: bytes
    future: asyncio.Future[tuple[Event, bool]]


class _Probe(msgspec.Struct):
    """A tiny write through the writer: commits only when events could commit too."""

    future: asyncio.Future[None]


def checked_deadline(seconds: float) -> float:
    if seconds <= 0:
        raise ValueError(f"the commit deadline must be positive, not {seconds:g}")
    return seconds


def unavailable() -> Unavailable:
    """The refusal of a write the database could not take (one wording, one retry_after)."""
    return Unavailable(
        "The database cannot be written now; try again.",
        retry_after=RETRY_AFTER_SECONDS,
    )


def refused_when_unwritable(method: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """For a direct write on the database file (not through the log's writer): a full
    disk, an I/O error or a lock held past the busy timeout becomes ``Unavailable``."""

    @functools.wraps(method)
    async def write(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await method(*args, **kwargs)
        except sqlite3.OperationalError as exc:
            raise unavailable() from exc

    return write


async def connect(path: Path, synchronous: str = "FULL") -> aiosqlite.Connection:
    """Open the database file in WAL mode with our pragmas (autocommit: we BEGIN ourselves)."""
    conn = await aiosqlite.connect(path, isolation_level=None)
    await conn.execute("PRAGMA journal_mode=WAL")
    await conn.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'FULL' else 'NORMAL'}")
    await conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    return conn


class EventLog:
    def __init__(
        self,
        conn: aiosqlite.Connection,
        reader: aiosqlite.Connection | None = None,
        *,
        commit_deadline: float = COMMIT_DEADLINE_SECONDS,
        on_health: HealthHook | None = None,
    ) -> None:
        self._conn = conn
        # Reads use their own connection: on the writer's they would see a batch
        # before its COMMIT (and rows a failed batch then rolls back).
        self._reader = reader or conn
        self._queue: asyncio.Queue[_Pending | _Probe] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._decoder = msgspec.json.Decoder(dict[str, Any])
        self._encoder = msgspec.json.Encoder()
        self._deadline = checked_deadline(commit_deadline)
        self._on_health = on_health
        self._health: str | None = None  # what was last told to on_health
        self._failed_batches = 0  # in the current failure streak
        self._failing_since = 0.0

    @classmethod
    async def open(
        cls,
        path: Path,
        synchronous: str = "FULL",
        *,
        commit_deadline: float = COMMIT_DEADLINE_SECONDS,
        on_health: HealthHook | None = None,
    ) -> EventLog:
        checked_deadline(commit_deadline)  # before any connection is opened
        conn = await connect(path, synchronous)
        await conn.executescript(SCHEMA)
        # The writer gives up waiting for another writer's lock when its callers do.
        await conn.execute(f"PRAGMA busy_timeout={round(commit_deadline * 1000)}")
        log = cls(
            conn,
            await connect(path, synchronous),
            commit_deadline=commit_deadline,
            on_health=on_health,
        )
        log._writer = asyncio.create_task(log._write_loop(), name="eventlog-writer")
        return log

    @property
    def commit_deadline(self) -> float:
        return self._deadline

    @property
    def failing(self) -> str | None:
        """Why the last commit failed or stalled; None while commits work."""
        return self._health

    async def close(self) -> None:
        if self._writer is not None:
            # Bounded: a writer stuck on a dead disk must not keep the process alive.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), self._deadline)
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        if self._reader is not self._conn:
            await self._reader.close()
        await self._conn.close()

    async def append(self, event: NewEvent) -> tuple[Event, bool]:
        """Durably record ``event``; returns (stored event, created).

        Raises ``Unavailable`` when the commit failed or did not finish within the
        commit deadline (see the module's note on what a timed-out append means).
        """
        if not event.ts:
            event = msgspec.structs.replace(event, ts=time.time())
        nonce = secrets.token_hex(8)
        uid = (
            idempotency_key(event.room, event.actor, event.client_id) if event.client_id else nonce
        )
        data = self._encoder.encode(event.data)  # a bad payload fails here, not its batch
        future: asyncio.Future[tuple[Event, bool]] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(event, uid, nonce, data, future))
        return await self._committed(future)

    async def probe(self, within: float | None = None) -> None:
        """Commit a tiny write through the writer (health): raises ``Unavailable``
        unless it commits ``within`` seconds (the commit deadline by default)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Probe(future))
        await self._committed(future, within)

    async def _committed(self, future: asyncio.Future[T], within: float | None = None) -> T:
        try:
            # On timeout wait_for cancels the future: the writer then skips the item.
            return await asyncio.wait_for(future, within or self._deadline)
        except TimeoutError:
            self._tell(STALLED)
            raise unavailable() from None

    async def find(self, room: str, actor: str, client_id: str) -> Event | None:
        rows = await self._reader.execute_fetchall(
            "SELECT id, ts, room, stream, kind, actor, data FROM events WHERE uid = ?",
            (idempotency_key(room, actor, client_id),),
        )
        return self._row(next(iter(rows))) if rows else None

    async def newest_id(self) -> int:
        """The id of the last committed event (0 for an empty log)."""
        rows = list(await self._reader.execute_fetchall("SELECT max(id) FROM events"))
        return int(rows[0][0] or 0)

    async def get(self, event_id: int) -> Event | None:
        rows = await self._reader.execute_fetchall(
            "SELECT id, ts, room, stream, kind, actor, data FROM events WHERE id = ?", (event_id,)
        )
        return self._row(next(iter(rows))) if rows else None

    async def by_kinds(
        self,
        room: str,
        kinds: Sequence[str],
        *,
        after_id: int = 0,
        limit: int = 500,
        newest: bool = False,
    ) -> list[Event]:
        """Events of ``kinds`` in ``room`` after ``after_id``, oldest first.

        With ``newest`` the last ``limit`` of them (still returned oldest first).
        """
        marks = ",".join("?" * len(kinds))
        order = "DESC" if newest else "ASC"
        rows = await self._reader.execute_fetchall(
            "SELECT id, ts, room, stream, kind, actor, data FROM events "
            f"WHERE room = ? AND kind IN ({marks}) AND id > ? ORDER BY id {order} LIMIT ?",
            (room, *kinds, after_id, limit),
        )
        events = [self._row(r) for r in rows]
        return events[::-1] if newest else events

    async def scan_kinds(
        self, room: str, kinds: Sequence[str], *, after_id: int = 0, batch: int = 5000
    ) -> AsyncIterator[Event]:
        """Every event of ``kinds`` in ``room`` after ``after_id``, in id order, read in batches."""
        last = after_id
        while True:
            events = await self.by_kinds(room, kinds, after_id=last, limit=batch)
            for event in events:
                yield event
            if len(events) < batch:
                return
            last = events[-1].id

    async def scan(
        self, room: str, stream: str | None = None, batch: int = 5000
    ) -> AsyncIterator[Event]:
        """Every event of a room (or one of its streams) in id order."""
        last = 0
        while True:
            if stream is None:
                query = "WHERE room = ? AND id > ?"
                args: tuple[Any, ...] = (room, last)
            else:
                query = "WHERE room = ? AND stream = ? AND id > ?"
                args = (room, stream, last)
            rows = await self._reader.execute_fetchall(
                "SELECT id, ts, room, stream, kind, actor, data FROM events "
                f"{query} ORDER BY id LIMIT ?",
                (*args, batch),
            )
            if not rows:
                return
            for row in rows:
                event = self._row(row)
                last = event.id
                yield event

    def _row(self, row: Any) -> Event:
        return Event(
            id=row[0],
            ts=row[1],
            room=row[2],
            stream=row[3],
            kind=row[4],
            actor=row[5],
            data=self._decoder.decode(row[6]),
        )

    async def _write_loop(self) -> None:
        while True:
            batch = await self._next_batch()
            try:
                await self._write_batch(batch)
            except Exception:  # never expected: the writer must outlive any bug too
                log.exception("event log writer: unexpected error; going on")
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _next_batch(self) -> list[_Pending | _Probe]:
        """What queued while the last batch committed (at least one item)."""
        batch = [await self._queue.get()]
        while len(batch) < MAX_BATCH and not self._queue.empty():
            batch.append(self._queue.get_nowait())
        return batch

    async def _write_batch(self, batch: list[_Pending | _Probe]) -> None:
        # An append that timed out (or whose caller went away) before its batch
        # began is dropped: its caller was told it was not recorded.
        events = [p for p in batch if isinstance(p, _Pending) and not p.future.done()]
        probes = [p for p in batch if isinstance(p, _Probe) and not p.future.done()]
        if not events and not probes:
            return
        try:
            results = await self._write(events, probe=bool(probes))
        except Exception as exc:  # the batch fails for its callers, the log keeps going
            self._failed(exc)
            futures: list[asyncio.Future[Any]] = [p.future for p in events]
            futures += [p.future for p in probes]
            for future in futures:
                if not future.done():
                    future.set_exception(unavailable())
            return
        self._succeeded()
        for pending, result in zip(events, results, strict=True):
            if not pending.future.done():
                pending.future.set_result(result)
        for probe in probes:
            if not probe.future.done():
                probe.future.set_result(None)

    def _failed(self, exc: Exception) -> None:
        self._failed_batches += 1
        self._tell(f"{type(exc).__name__}: {exc}")

    def _succeeded(self) -> None:
        self._tell(None)
        self._failed_batches = 0

    def _tell(self, error: str | None) -> None:
        """Log and pass on a change of health: once per failure streak, never per event."""
        if error == self._health:
            return
        if self._health is None:
            self._failing_since = time.monotonic()
            log.error("event log: commits fail, events are refused until one succeeds: %s", error)
        elif error is None:
            log.warning(
                "event log: commits work again after %.1f s (%d failed batches)",
                time.monotonic() - self._failing_since,
                self._failed_batches,
            )
        self._health = error
        if self._on_health is not None:
            try:
                self._on_health(error)
            except Exception:  # a broken hook must not take the writer down
                log.exception("event log: the health hook failed")

    async def _write(
        self, batch: list[_Pending], *, probe: bool = False
    ) -> list[tuple[Event, bool]]:
        rows = [
            (
                p.uid,
                p.nonce,
                p.event.ts,
                p.event.room,
                p.event.stream,
                p.event.kind,
                p.event.actor,
                p.data,
            )
            for p in batch
        ]
        if self._conn.in_transaction:  # a ROLLBACK that failed with the last batch
            await self._conn.execute("ROLLBACK")
        await self._conn.execute("BEGIN IMMEDIATE")
        try:
            if rows:
                await self._conn.executemany(
                    "INSERT OR IGNORE INTO events "
                    "(uid, nonce, ts, room, stream, kind, actor, data) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
            if probe:
                await self._conn.execute(
                    "INSERT OR REPLACE INTO probe (id, ts) VALUES (1, ?)", (time.time(),)
                )
            stored = await self._stored_by_uid([p.uid for p in batch]) if rows else {}
            await self._conn.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:
                await self._conn.execute("ROLLBACK")
            raise
        return [(stored[p.uid][0], stored[p.uid][1] == p.nonce) for p in batch]

    async def _stored_by_uid(self, uids: list[str]) -> dict[str, tuple[Event, str]]:
        found: dict[str, tuple[Event, str]] = {}
        unique = list(dict.fromkeys(uids))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            rows = await self._conn.execute_fetchall(
                "SELECT id, ts, room, stream, kind, actor, data, uid, nonce FROM events "
                f"WHERE uid IN ({','.join('?' * len(chunk))})",
                chunk,
            )
            for row in rows:
                found[row[7]] = (self._row(row), row[8])
        return found
