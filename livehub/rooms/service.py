"""Rooms and their streams: create, read, update, close, go live, stop.

The repository (SQLite) is the durable copy; the state store holds each room's
current record so every node reads the same live settings without touching the
database on every message. Every change is also an event in the log.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable

import msgspec

from livehub.errors import Conflict, NotFound, ProtocolError
from livehub.rooms.eventlog import EventLog
from livehub.rooms.models import Room, RoomSettings, Rule, Stream
from livehub.rooms.recorder import room_event
from livehub.rooms.repository import RoomRepository
from livehub.rooms.store import StateStore

ROOM_ID = re.compile(r"\A[a-z0-9][a-z0-9_-]{0,63}\Z")


def room_key(room_id: str) -> str:
    return f"room:{room_id}"


class RoomService:
    def __init__(
        self,
        repo: RoomRepository,
        store: StateStore,
        log: EventLog,
        default_settings: RoomSettings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._repo = repo
        self._store = store
        self._log = log
        self._defaults = default_settings
        self._clock = clock
        self._decoder = msgspec.json.Decoder(Room)

    @property
    def defaults(self) -> RoomSettings:
        return self._defaults

    def now(self) -> float:
        return self._clock()

    async def shutdown(self) -> None:
        await self._repo.close()

    async def create(
        self,
        title: str,
        *,
        room_id: str | None = None,
        private: bool = False,
        settings: RoomSettings | None = None,
        actor: str = "admin",
    ) -> Room:
        rid = room_id or secrets.token_hex(4)
        if not ROOM_ID.match(rid):
            raise ProtocolError("bad_room_id", "Room ids are 1-64 of a-z, 0-9, '-' and '_'.")
        title = title.strip()
        if not 1 <= len(title) <= 120:
            raise ProtocolError("bad_title", "A title is 1-120 characters.")
        chosen = settings or self._defaults
        chosen.validate()
        room = Room(
            id=rid,
            title=title,
            private=private,
            created_at=self._clock(),
            settings=chosen,
            room_key=secrets.token_urlsafe(32) if private else None,
        )
        if not await self._repo.insert(room):
            raise Conflict("room_exists", f"A room with id {rid!r} exists.")
        await self._store.set(room_key(rid), msgspec.json.encode(room).decode())
        await self._record(room, "room.created", actor, {"title": title, "private": private})
        return room

    async def get(self, room_id: str) -> Room:
        cached = await self._store.get(room_key(room_id))
        if cached is not None:
            return self._decoder.decode(cached)
        room = await self._repo.get(room_id) if ROOM_ID.match(room_id) else None
        if room is None:
            raise NotFound("room_not_found", f"No room {room_id!r}.")
        await self._store.set(room_key(room_id), msgspec.json.encode(room).decode())
        return room

    async def open_room_ids(self) -> list[str]:
        return await self._repo.open_room_ids()

    async def get_open(self, room_id: str) -> Room:
        room = await self.get(room_id)
        if room.closed:
            raise Conflict("room_closed", "This room is closed.")
        return room

    async def update(
        self,
        room_id: str,
        actor: str,
        *,
        title: str | None = None,
        settings: dict[str, object] | None = None,
    ) -> Room:
        room = await self.get_open(room_id)
        changes: dict[str, object] = {}
        if title is not None:
            title = title.strip()
            if not 1 <= len(title) <= 120:
                raise ProtocolError("bad_title", "A title is 1-120 characters.")
            changes["title"] = title
        if settings:
            merged = {**msgspec.to_builtins(room.settings), **settings}
            try:
                new_settings = msgspec.convert(merged, RoomSettings)
            except msgspec.ValidationError as exc:
                raise ProtocolError("bad_settings", str(exc)) from exc
            new_settings.validate()
            changes["settings"] = new_settings
        if not changes:
            return room
        updated = msgspec.structs.replace(room, **changes)
        await self._save(updated)
        record: dict[str, object] = {"settings": settings}
        if title:
            record["title"] = title
        await self._record(updated, "room.updated", actor, record)
        return updated

    async def set_rules(self, room: Room, rules: tuple[Rule, ...], actor: str) -> Room:
        updated = msgspec.structs.replace(room, rules=rules, rules_version=room.rules_version + 1)
        await self._save(updated)
        return updated

    async def close(self, room_id: str, actor: str) -> Room:
        room = await self.get(room_id)
        if room.stream is not None:
            room = await self.stop_stream(room_id, actor)
        closed = msgspec.structs.replace(room, closed=True)
        await self._save(closed)
        await self._record(closed, "room.closed", actor, {})
        return closed

    async def start_stream(self, room_id: str, actor: str) -> tuple[Room, Stream]:
        room = await self.get_open(room_id)
        if room.stream is not None:
            raise Conflict("already_live", "The room is already live.")
        stream = Stream(id="s_" + secrets.token_hex(5), room=room_id, started_at=self._clock())
        if not await self._repo.start_stream(stream):
            raise Conflict("already_live", "The room is already live.")
        live = msgspec.structs.replace(room, stream=stream)
        await self._save(live)
        await self._record(live, "stream.started", actor, {"stream_id": stream.id})
        return live, stream

    async def stop_stream(self, room_id: str, actor: str) -> Room:
        room = await self.get(room_id)
        if room.stream is None:
            raise Conflict("not_live", "The room is not live.")
        ended = msgspec.structs.replace(room.stream, ended_at=self._clock())
        await self._record(room, "stream.stopped", actor, {"stream_id": ended.id})
        await self._repo.end_stream(ended.id, ended.ended_at or 0.0)
        stopped = msgspec.structs.replace(room, stream=None)
        await self._save(stopped)
        return stopped

    async def pause_stream(
        self, room_id: str, stream_id: str, *, at: float | None = None, actor: str = "system"
    ) -> Room | None:
        """The stream's publisher is lost (it may come back within the room's grace period):
        mark ``stream_id`` paused since ``at`` (now by default). The paused room, or None
        when that stream is not the room's live one or is paused already."""
        room = await self.get(room_id)
        if room.stream is None or room.stream.id != stream_id or room.stream.paused:
            return None
        since = self._clock() if at is None else at
        paused = msgspec.structs.replace(
            room, stream=msgspec.structs.replace(room.stream, paused_at=since)
        )
        await self._save(paused)
        await self._record(paused, "stream.paused", actor, {"stream_id": stream_id, "at": since})
        return paused

    async def resume_stream(self, room_id: str, actor: str) -> Room | None:
        """A publisher is back on the paused stream: live again. The room, or None when its
        stream was not paused."""
        room = await self.get(room_id)
        if room.stream is None or not room.stream.paused:
            return None
        resumed = msgspec.structs.replace(
            room, stream=msgspec.structs.replace(room.stream, paused_at=None)
        )
        await self._save(resumed)
        await self._record(resumed, "stream.resumed", actor, {"stream_id": room.stream.id})
        return resumed

    async def stream_seen(self, stream_id: str) -> None:
        """The stream's media is alive now (what a restart counts the grace period from)."""
        await self._repo.touch_stream(stream_id, self._clock())

    async def last_seen(self, stream: Stream) -> float | None:
        """The last time the stream is known to have had its publisher's media; None for
        a stream that never had any (started over REST, for chat alone)."""
        if stream.paused_at is not None:
            return stream.paused_at
        return await self._repo.stream_seen_at(stream.id)

    async def streams(self, room_id: str) -> list[Stream]:
        await self.get(room_id)
        return await self._repo.streams(room_id)

    async def _save(self, room: Room) -> None:
        await self._repo.save(room)
        await self._store.set(room_key(room.id), msgspec.json.encode(room).decode())

    async def _record(self, room: Room, kind: str, actor: str, data: dict[str, object]) -> None:
        await self._log.append(room_event(room, kind, actor, dict(data)))
