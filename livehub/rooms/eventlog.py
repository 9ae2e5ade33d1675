"""The durable event log: every interaction, appended to SQLite (WAL) with group commit.

Appends are queued and written by one writer task: whatever has queued while the
previous transaction committed goes into the next one, so many appends share one
fsync. ``append`` returns only after the commit (acknowledge after commit).

Idempotency: an event carrying a client id is stored under the unique key
``room|actor|client_id``; appending it again returns the first event with
``created=False`` instead of recording it twice, even across processes that
share the file.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import aiosqlite
import msgspec

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
"""

MAX_BATCH = 2000


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
    future: asyncio.Future[tuple[Event, bool]]


async def connect(path: Path, synchronous: str = "FULL") -> aiosqlite.Connection:
    """Open the database file in WAL mode with our pragmas (autocommit: we BEGIN ourselves)."""
    conn = await aiosqlite.connect(path, isolation_level=None)
    await conn.execute("PRAGMA journal_mode=WAL")
    await conn.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'FULL' else 'NORMAL'}")
    await conn.execute("PRAGMA busy_timeout=10000")
    return conn


class EventLog:
    def __init__(
        self, conn: aiosqlite.Connection, reader: aiosqlite.Connection | None = None
    ) -> None:
        self._conn = conn
        # Reads use their own connection: on the writer's they would see a batch
        # before its COMMIT (and rows a failed batch then rolls back).
        self._reader = reader or conn
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._decoder = msgspec.json.Decoder(dict[str, Any])
        self._encoder = msgspec.json.Encoder()

    @classmethod
    async def open(cls, path: Path, synchronous: str = "FULL") -> EventLog:
        conn = await connect(path, synchronous)
        await conn.executescript(SCHEMA)
        log = cls(conn, await connect(path, synchronous))
        log._writer = asyncio.create_task(log._write_loop(), name="eventlog-writer")
        return log

    async def close(self) -> None:
        if self._writer is not None:
            await self._queue.join()
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        if self._reader is not self._conn:
            await self._reader.close()
        await self._conn.close()

    async def append(self, event: NewEvent) -> tuple[Event, bool]:
        """Durably record ``event``; returns (stored event, created)."""
        if not event.ts:
            event = msgspec.structs.replace(event, ts=time.time())
        nonce = secrets.token_hex(8)
        uid = (
            idempotency_key(event.room, event.actor, event.client_id) if event.client_id else nonce
        )
        future: asyncio.Future[tuple[Event, bool]] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(event, uid, nonce, future))
        return await future

    async def find(self, room: str, actor: str, client_id: str) -> Event | None:
        rows = await self._reader.execute_fetchall(
            "SELECT id, ts, room, stream, kind, actor, data FROM events WHERE uid = ?",
            (idempotency_key(room, actor, client_id),),
        )
        return self._row(next(iter(rows))) if rows else None

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

    async def each_of_kinds(
        self, room: str, kinds: Sequence[str], *, after_id: int = 0, batch: int = 1000
    ) -> AsyncIterator[Event]:
        """Every event of ``kinds`` in ``room`` after ``after_id``, oldest first, in batches."""
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
            first = await self._queue.get()
            batch = [first]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                results = await self._write(batch)
            except Exception as exc:  # the append fails for its callers, the log keeps going
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(exc)
            else:
                for item, result in zip(batch, results, strict=True):
                    if not item.future.done():
                        item.future.set_result(result)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _write(self, batch: list[_Pending]) -> list[tuple[Event, bool]]:
        rows = [
            (
                p.uid,
                p.nonce,
                p.event.ts,
                p.event.room,
                p.event.stream,
                p.event.kind,
                p.event.actor,
                self._encoder.encode(p.event.data),
            )
            for p in batch
        ]
        await self._conn.execute("BEGIN IMMEDIATE")
        try:
            await self._conn.executemany(
                "INSERT OR IGNORE INTO events (uid, nonce, ts, room, stream, kind, actor, data) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            stored = await self._stored_by_uid([p.uid for p in batch])
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
