"""Read a stream's events into a :class:`~livehub.reports.builder.ReportBuilder`.

Two ways in, same result:

* :func:`build_from_log` (the server): the stream's events through
  ``EventLog.scan`` and the few look-ups before the stream (the *prelude*) on
  an aiosqlite connection to the same database file;
* :func:`build_from_file` (the command line, the benchmark): the database file
  read directly with :mod:`sqlite3`, rows decoded once each, no structs.

The prelude: when the stream started (its ``stream.started`` event, else the
stream's record), who was already connected then (presence events of the 12
hours before, see :func:`~livehub.reports.builder.present_before`), and the
polls, quizzes and offers created before it (prepared before going live).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Final

import aiosqlite
import msgspec

from livehub.reports.builder import (
    CARRY_SECONDS,
    DEFINITION_KINDS,
    PRESENCE_KINDS,
    ReportBuilder,
    present_before,
)
from livehub.reports.model import Report
from livehub.rooms.eventlog import EventLog
from livehub.rooms.models import Stream

BATCH: Final = 10_000
PROGRESS_EVERY: Final = 10_000

_FIRST = "SELECT MIN(id) FROM events WHERE room = ? AND stream = ?"
_STARTED = (
    "SELECT ts FROM events WHERE room = ? AND kind = 'stream.started' AND stream = ? "
    "ORDER BY id LIMIT 1"
)
_PRESENCE = (
    "SELECT id, actor, kind, data FROM events WHERE room = ? AND kind IN (?, ?) "
    "AND id < ? AND ts >= ?"
)
_DEFINITIONS = (
    "SELECT id, kind, data FROM events WHERE room = ? AND kind IN (?, ?, ?) AND id < ? ORDER BY id"
)
_EVENTS = (
    "SELECT id, ts, kind, actor, data FROM events WHERE room = ? AND stream = ? AND id > ? "
    "ORDER BY id LIMIT ?"
)
_COUNT = "SELECT COUNT(*), COALESCE(MAX(id), 0) FROM events WHERE room = ? AND stream = ?"
_STREAM = "SELECT id, room, started_at, ended_at FROM streams WHERE room = ? AND id = ?"
_LATEST = (
    "SELECT id, room, started_at, ended_at FROM streams WHERE room = ? "
    "ORDER BY started_at DESC LIMIT 1"
)

_decode: Callable[[bytes], dict[str, Any]] = msgspec.json.Decoder(dict[str, Any]).decode


class Prelude(msgspec.Struct, frozen=True):
    started_at: float | None
    first_id: int | None
    carried: list[tuple[str, str, str]]
    definitions: list[tuple[str, dict[str, Any]]]


def _prelude(
    started: float | None,
    record: Stream | None,
    first_id: int | None,
    presence: Iterable[Any],
    definitions: Iterable[Any],
) -> Prelude:
    newest_first = sorted(presence, key=lambda r: -int(r[0]))
    rows = ((str(r[1]), str(r[2]), _decode(r[3])) for r in newest_first)
    return Prelude(
        started_at=started if started is not None else (record.started_at if record else None),
        first_id=first_id,
        carried=present_before(rows),
        definitions=[(str(r[1]), _decode(r[2])) for r in definitions],
    )


def _builder(room: str, stream: str, prelude: Prelude, fallback_start: float) -> ReportBuilder:
    start = prelude.started_at if prelude.started_at is not None else fallback_start
    builder = ReportBuilder(room, stream, start)
    for kind, data in prelude.definitions:
        builder.define(kind, data)
    for viewer_id, name, role in prelude.carried:
        builder.carry(viewer_id, name, role)
    return builder


def _finish(builder: ReportBuilder, record: Stream | None, now: float) -> Report:
    live = record.ended_at is None if record is not None else False
    return builder.finish(
        generated_at=now, live=live, ended_at=record.ended_at if record is not None else None
    )


# -- the server: aiosqlite + the event log ------------------------------------------------


async def _one(conn: aiosqlite.Connection, sql: str, args: tuple[Any, ...]) -> Any:
    rows = list(await conn.execute_fetchall(sql, args))
    return rows[0] if rows else None


async def prelude_async(
    conn: aiosqlite.Connection, room: str, stream: str, record: Stream | None
) -> Prelude:
    first = await _one(conn, _FIRST, (room, stream))
    first_id = first[0] if first and first[0] is not None else None
    started_row = await _one(conn, _STARTED, (room, stream))
    started = float(started_row[0]) if started_row else None
    presence: list[Any] = []
    definitions: list[Any] = []
    start = started if started is not None else (record.started_at if record else None)
    if first_id is not None:
        if start is not None:
            presence = list(
                await conn.execute_fetchall(
                    _PRESENCE, (room, *PRESENCE_KINDS, first_id, start - CARRY_SECONDS)
                )
            )
        definitions = list(
            await conn.execute_fetchall(_DEFINITIONS, (room, *DEFINITION_KINDS, first_id))
        )
    return _prelude(started, record, first_id, presence, definitions)


async def stream_state_async(conn: aiosqlite.Connection, room: str, stream: str) -> tuple[int, int]:
    """(number of events, highest id) of the stream: what a stored report is checked against."""
    row = await _one(conn, _COUNT, (room, stream))
    return (int(row[0]), int(row[1])) if row else (0, 0)


async def build_from_log(
    log: EventLog,
    conn: aiosqlite.Connection,
    room: str,
    stream: str,
    *,
    now: float,
    record: Stream | None = None,
) -> Report:
    """The report of ``stream``, its events read through ``log.scan``.

    ``record`` (the stream's row) says whether it is still live; without it the
    stream counts as ended at its ``stream.stopped`` or last event.
    """
    prelude = await prelude_async(conn, room, stream, record)
    builder: ReportBuilder | None = (
        _builder(room, stream, prelude, 0.0) if prelude.started_at is not None else None
    )
    add = builder.add if builder is not None else None
    async for event in log.scan(room, stream):
        if add is None:  # no start known: the first event starts it
            builder = _builder(room, stream, prelude, event.ts)
            add = builder.add
        add(event.id, event.ts, event.kind, event.actor, event.data)
    if builder is None:
        builder = _builder(room, stream, prelude, record.started_at if record else now)
    return _finish(builder, record, now)


# -- the command line: sqlite3 -----------------------------------------------------------


def connect_file(path: Path) -> sqlite3.Connection:
    """Open the database file for reading (never creating it)."""
    if not path.is_file():
        raise FileNotFoundError(f"no database at {path}")
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


def stream_record(conn: sqlite3.Connection, room: str, stream: str | None) -> Stream | None:
    """The stream's row (the room's latest with ``stream`` None); None if unknown."""
    try:
        if stream is None:
            row = conn.execute(_LATEST, (room,)).fetchone()
        else:
            row = conn.execute(_STREAM, (room, stream)).fetchone()
    except sqlite3.OperationalError:  # no streams table: a bare event log
        return None
    return Stream(id=row[0], room=row[1], started_at=row[2], ended_at=row[3]) if row else None


def stream_state(conn: sqlite3.Connection, room: str, stream: str) -> tuple[int, int]:
    row = conn.execute(_COUNT, (room, stream)).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def prelude_sync(
    conn: sqlite3.Connection, room: str, stream: str, record: Stream | None
) -> Prelude:
    first = conn.execute(_FIRST, (room, stream)).fetchone()
    first_id = first[0] if first and first[0] is not None else None
    started_row = conn.execute(_STARTED, (room, stream)).fetchone()
    started = float(started_row[0]) if started_row else None
    presence: list[Any] = []
    definitions: list[Any] = []
    start = started if started is not None else (record.started_at if record else None)
    if first_id is not None:
        if start is not None:
            presence = conn.execute(
                _PRESENCE, (room, *PRESENCE_KINDS, first_id, start - CARRY_SECONDS)
            ).fetchall()
        definitions = conn.execute(_DEFINITIONS, (room, *DEFINITION_KINDS, first_id)).fetchall()
    return _prelude(started, record, first_id, presence, definitions)


Row = tuple[int, float, str, str, bytes]


def iter_batches(
    conn: sqlite3.Connection, room: str, stream: str, batch: int = BATCH
) -> Iterator[list[Row]]:
    """The stream's events as raw rows (id, ts, kind, actor, data JSON), in id order,
    ``batch`` at a time."""
    last = 0
    while True:
        rows: list[Row] = conn.execute(_EVENTS, (room, stream, last, batch)).fetchall()
        if not rows:
            return
        yield rows
        last = rows[-1][0]


def iter_rows(conn: sqlite3.Connection, room: str, stream: str) -> Iterator[Row]:
    for rows in iter_batches(conn, room, stream):
        yield from rows


def build_from_file(
    conn: sqlite3.Connection,
    room: str,
    stream: str,
    *,
    now: float,
    record: Stream | None = None,
    progress: Callable[[int], None] | None = None,
) -> Report:
    """The report of ``stream`` read straight from the database file; ``progress``
    is called with the number of events folded so far every 10,000 events."""
    prelude = prelude_sync(conn, room, stream, record)
    builder: ReportBuilder | None = (
        _builder(room, stream, prelude, 0.0) if prelude.started_at is not None else None
    )
    decode = _decode
    done = 0
    for rows in iter_batches(conn, room, stream, PROGRESS_EVERY):
        if builder is None:
            builder = _builder(room, stream, prelude, rows[0][1])
        builder.add_raw(rows, decode)
        done += len(rows)
        if progress is not None:
            progress(done)
    if builder is None:
        builder = _builder(room, stream, prelude, record.started_at if record else now)
    return _finish(builder, record, now)
