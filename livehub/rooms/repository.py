"""Durable rooms, streams, bans and mutes in SQLite (the same database file as the event log)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import aiosqlite
import msgspec

from livehub.rooms.eventlog import connect, refused_when_unwritable
from livehub.rooms.models import Mute, Room, Stream

SCHEMA = """
CREATE TABLE IF NOT EXISTS rooms (
    id TEXT PRIMARY KEY,
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS streams (
    id TEXT PRIMARY KEY,
    room TEXT NOT NULL,
    started_at REAL NOT NULL,
    ended_at REAL,
    seen_at REAL
);
CREATE INDEX IF NOT EXISTS streams_room ON streams(room, started_at);
CREATE UNIQUE INDEX IF NOT EXISTS streams_one_live ON streams(room) WHERE ended_at IS NULL;
CREATE TABLE IF NOT EXISTS bans (
    room TEXT NOT NULL,
    viewer_id TEXT NOT NULL,
    by TEXT NOT NULL,
    reason TEXT NOT NULL,
    ts REAL NOT NULL,
    PRIMARY KEY (room, viewer_id)
);
CREATE TABLE IF NOT EXISTS mutes (
    room TEXT NOT NULL,
    viewer_id TEXT NOT NULL,
    by TEXT NOT NULL,
    until REAL NOT NULL,
    PRIMARY KEY (room, viewer_id)
);
"""


class RoomRepository:
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn
        self._decoder = msgspec.json.Decoder(Room)

    @classmethod
    async def open(cls, path: Path, synchronous: str = "FULL") -> RoomRepository:
        conn = await connect(path, synchronous)
        await conn.executescript(SCHEMA)
        columns = {row[1] for row in await conn.execute_fetchall("PRAGMA table_info(streams)")}
        if "seen_at" not in columns:  # a database from before streams were seen alive
            await conn.execute("ALTER TABLE streams ADD COLUMN seen_at REAL")
        return cls(conn)

    async def close(self) -> None:
        await self._conn.close()

    async def get(self, room_id: str) -> Room | None:
        rows = list(
            await self._conn.execute_fetchall("SELECT body FROM rooms WHERE id = ?", (room_id,))
        )
        return self._decoder.decode(rows[0][0]) if rows else None

    async def open_room_ids(self) -> list[str]:
        """Every room that is not closed (what recovery rebuilds)."""
        rows = await self._conn.execute_fetchall("SELECT id, body FROM rooms ORDER BY id")
        return [row[0] for row in rows if not self._decoder.decode(row[1]).closed]

    @refused_when_unwritable
    async def insert(self, room: Room) -> bool:
        """Insert a new room; False when the id is taken."""
        cursor = await self._conn.execute(
            "INSERT OR IGNORE INTO rooms (id, body) VALUES (?, ?)",
            (room.id, msgspec.json.encode(room)),
        )
        return cursor.rowcount == 1

    @refused_when_unwritable
    async def save(self, room: Room) -> None:
        await self._conn.execute(
            "UPDATE rooms SET body = ? WHERE id = ?", (msgspec.json.encode(room), room.id)
        )

    @refused_when_unwritable
    async def start_stream(self, stream: Stream) -> bool:
        """Record a new live stream; False when the room already has one (atomic)."""
        try:
            await self._conn.execute(
                "INSERT INTO streams (id, room, started_at) VALUES (?, ?, ?)",
                (stream.id, stream.room, stream.started_at),
            )
        except sqlite3.IntegrityError:
            return False
        return True

    @refused_when_unwritable
    async def end_stream(self, stream_id: str, ended_at: float) -> None:
        await self._conn.execute(
            "UPDATE streams SET ended_at = ? WHERE id = ?", (ended_at, stream_id)
        )

    @refused_when_unwritable
    async def touch_stream(self, stream_id: str, seen_at: float) -> None:
        """Record that the live stream's media was seen at ``seen_at`` (unix seconds)."""
        await self._conn.execute(
            "UPDATE streams SET seen_at = ? WHERE id = ? AND ended_at IS NULL",
            (seen_at, stream_id),
        )

    async def stream_seen_at(self, stream_id: str) -> float | None:
        """When the stream's media was last seen alive (None if never recorded)."""
        rows = list(
            await self._conn.execute_fetchall(
                "SELECT seen_at FROM streams WHERE id = ?", (stream_id,)
            )
        )
        return float(rows[0][0]) if rows and rows[0][0] is not None else None

    async def streams(self, room_id: str) -> list[Stream]:
        rows = await self._conn.execute_fetchall(
            "SELECT id, room, started_at, ended_at FROM streams WHERE room = ? ORDER BY started_at",
            (room_id,),
        )
        return [Stream(id=r[0], room=r[1], started_at=r[2], ended_at=r[3]) for r in rows]

    @refused_when_unwritable
    async def ban(self, room: str, viewer_id: str, by: str, reason: str, ts: float) -> None:
        await self._conn.execute(
            "INSERT OR REPLACE INTO bans (room, viewer_id, by, reason, ts) VALUES (?, ?, ?, ?, ?)",
            (room, viewer_id, by, reason, ts),
        )

    @refused_when_unwritable
    async def unban(self, room: str, viewer_id: str) -> bool:
        cursor = await self._conn.execute(
            "DELETE FROM bans WHERE room = ? AND viewer_id = ?", (room, viewer_id)
        )
        return cursor.rowcount == 1

    @refused_when_unwritable
    async def mute(self, room: str, viewer_id: str, by: str, until: float) -> None:
        await self._conn.execute(
            "INSERT OR REPLACE INTO mutes (room, viewer_id, by, until) VALUES (?, ?, ?, ?)",
            (room, viewer_id, by, until),
        )

    @refused_when_unwritable
    async def unmute(self, room: str, viewer_id: str) -> None:
        await self._conn.execute(
            "DELETE FROM mutes WHERE room = ? AND viewer_id = ?", (room, viewer_id)
        )

    async def mutes_after(self, now: float) -> list[Mute]:
        """The mutes still running at `now`; the ones that ran out are deleted."""
        await self._conn.execute("DELETE FROM mutes WHERE until <= ?", (now,))
        rows = await self._conn.execute_fetchall(
            "SELECT room, viewer_id, by, until FROM mutes ORDER BY room, viewer_id"
        )
        return [Mute(room=r[0], viewer_id=r[1], by=r[2], until=r[3]) for r in rows]

    async def is_banned(self, room: str, viewer_id: str) -> bool:
        rows = await self._conn.execute_fetchall(
            "SELECT 1 FROM bans WHERE room = ? AND viewer_id = ?", (room, viewer_id)
        )
        return bool(list(rows))
