"""Built reports, kept in the ``reports`` table of the SQLite database file.

One report per (room, stream), stored with the number of events it covers, the
highest event id and the hash over the covered ids (``meta.events_hash``), so a
stored report can be checked against the log (:meth:`ReportStore.is_current`)
and two reports compared. A report of an older schema version reads as absent
(the caller rebuilds it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiosqlite
import msgspec

from livehub.reports import source
from livehub.reports.model import SCHEMA_VERSION, Report, ReportInfo
from livehub.rooms.eventlog import connect

SCHEMA = """
CREATE TABLE IF NOT EXISTS reports (
    room TEXT NOT NULL,
    stream TEXT NOT NULL,
    generated_at REAL NOT NULL,
    started_at REAL NOT NULL,
    ended_at REAL NOT NULL,
    live INTEGER NOT NULL,
    event_count INTEGER NOT NULL,
    last_event_id INTEGER NOT NULL,
    events_hash TEXT NOT NULL,
    schema_version INTEGER NOT NULL,
    body BLOB NOT NULL,
    PRIMARY KEY (room, stream)
);
CREATE INDEX IF NOT EXISTS reports_ended ON reports(ended_at);
"""

_INFO = "room, stream, generated_at, event_count, events_hash, last_event_id, schema_version, live"


def _info(row: Any) -> ReportInfo:
    return ReportInfo(
        room=row[0],
        stream=row[1],
        generated_at=row[2],
        event_count=row[3],
        events_hash=row[4],
        last_event_id=row[5],
        schema_version=row[6],
        live=bool(row[7]),
    )


class ReportStore:
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn
        self._decoder = msgspec.json.Decoder(Report)
        self._encoder = msgspec.json.Encoder()

    @classmethod
    async def open(cls, path: Path, synchronous: str = "FULL") -> ReportStore:
        conn = await connect(path, synchronous)
        await conn.executescript(SCHEMA)
        return cls(conn)

    @property
    def connection(self) -> aiosqlite.Connection:
        """Also used to read the event log's table (the prelude, the stream state)."""
        return self._conn

    async def close(self) -> None:
        await self._conn.close()

    async def save(self, report: Report) -> None:
        m = report.meta
        await self._conn.execute(
            "INSERT OR REPLACE INTO reports (room, stream, generated_at, started_at, ended_at, "
            "live, event_count, last_event_id, events_hash, schema_version, body) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                m.room,
                m.stream,
                m.generated_at,
                m.started_at,
                m.ended_at,
                int(m.live),
                m.event_count,
                m.last_event_id,
                m.events_hash,
                m.schema_version,
                self._encoder.encode(report),
            ),
        )

    async def get(self, room: str, stream: str) -> Report | None:
        rows = list(
            await self._conn.execute_fetchall(
                "SELECT schema_version, body FROM reports WHERE room = ? AND stream = ?",
                (room, stream),
            )
        )
        if not rows or rows[0][0] != SCHEMA_VERSION:
            return None
        return self._decoder.decode(rows[0][1])

    async def info(self, room: str, stream: str) -> ReportInfo | None:
        rows = list(
            await self._conn.execute_fetchall(
                f"SELECT {_INFO} FROM reports WHERE room = ? AND stream = ?", (room, stream)
            )
        )
        return _info(rows[0]) if rows else None

    async def list(self, room: str) -> list[ReportInfo]:
        """The room's stored reports, newest stream first (no bodies)."""
        rows = await self._conn.execute_fetchall(
            f"SELECT {_INFO} FROM reports WHERE room = ? ORDER BY started_at DESC, stream",
            (room,),
        )
        return [_info(r) for r in rows]

    async def delete(self, room: str, stream: str) -> bool:
        cursor = await self._conn.execute(
            "DELETE FROM reports WHERE room = ? AND stream = ?", (room, stream)
        )
        return cursor.rowcount == 1

    async def purge_ended_before(self, cutoff: float) -> int:
        """Delete the reports of streams that ended before ``cutoff``; how many."""
        cursor = await self._conn.execute(
            "DELETE FROM reports WHERE live = 0 AND ended_at < ?", (cutoff,)
        )
        return cursor.rowcount

    async def stream_state(self, room: str, stream: str) -> tuple[int, int]:
        """(event count, highest id) of the stream in the log now."""
        return await source.stream_state_async(self._conn, room, stream)

    async def is_current(self, info: ReportInfo) -> bool:
        """True when no event of the stream was added (or removed) since it was built."""
        count, last = await self.stream_state(info.room, info.stream)
        return (count, last) == (info.event_count, info.last_event_id)
