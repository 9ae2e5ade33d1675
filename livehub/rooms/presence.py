"""Who is in a room: connections per viewer, viewers now and peak, watch time.

A viewer may hold several connections (tabs, nodes); they join on the first and
leave on the last. Watch time accrues from join to leave, and every node accrues
its connected viewers periodically so a crashed node loses at most one period.
Joins and leaves are events in the log.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import msgspec

from livehub.rooms.counters import Counters
from livehub.rooms.eventlog import EventLog
from livehub.rooms.models import Principal, Room
from livehub.rooms.recorder import Recorder
from livehub.rooms.store import StateStore


class RoomStats(msgspec.Struct, frozen=True):
    viewers: int
    peak: int
    likes: int


def _conns(room: str) -> str:
    return f"conns:{room}"


def _who(room: str) -> str:
    return f"who:{room}"


def _accrued(room: str) -> str:
    return f"accrued:{room}"


def _peak(room: str, scope: str) -> str:
    return f"peak:{room}:{scope}"


class Presence:
    def __init__(
        self,
        store: StateStore,
        log: EventLog,
        counters: Counters,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._counters = counters
        self._clock = clock
        self._record = Recorder(log, clock)

    async def join(self, room: Room, who: Principal) -> bool:
        """Count a new connection; True when it is the viewer's first (they joined)."""
        now = self._clock()
        count = await self._store.hincr(_conns(room.id), who.viewer_id, 1)
        await self._counters.seen(room.id, room.scope, who.viewer_id, now)
        if count != 1:
            return False
        await self._store.hset(_who(room.id), {who.viewer_id: msgspec.json.encode(who).decode()})
        await self._store.hset(_accrued(room.id), {who.viewer_id: repr(now)})
        viewers = await self._store.hlen(_conns(room.id))
        await self._store.set_max(_peak(room.id, room.scope), viewers)
        await self._record(
            room, who.viewer_id, "presence.join", {"name": who.name, "role": who.role}
        )
        return True

    async def leave(self, room: Room, who: Principal) -> bool:
        """Count a closed connection; True when it was the viewer's last (they left)."""
        count = await self._store.hincr(_conns(room.id), who.viewer_id, -1)
        if count < 0:  # a leave without a join (a node restarted in between): nothing to do
            await self._store.hdel(_conns(room.id), who.viewer_id)
            return False
        await self.accrue(room, who.viewer_id)
        await self._counters.seen(room.id, room.scope, who.viewer_id, self._clock())
        if count > 0:
            return False
        await self._store.hdel(_conns(room.id), who.viewer_id)
        await self._store.hdel(_accrued(room.id), who.viewer_id)
        await self._store.hdel(_who(room.id), who.viewer_id)
        await self._record(room, who.viewer_id, "presence.leave", {})
        return True

    async def accrue(self, room: Room, viewer_id: str) -> float:
        """Add the watch time since the last accrual; returns the seconds added."""
        now = self._clock()
        last = await self._store.hget(_accrued(room.id), viewer_id)
        if last is None:
            return 0.0
        await self._store.hset(_accrued(room.id), {viewer_id: repr(now)})
        seconds = max(0.0, now - float(last))
        if seconds:
            await self._counters.add_watch(room.id, room.scope, viewer_id, seconds)
        return seconds

    async def stats(self, room: Room) -> RoomStats:
        viewers = await self._store.hlen(_conns(room.id))
        peak = int(await self._store.get(_peak(room.id, room.scope)) or 0)
        likes = (await self._counters.room(room.id, room.scope)).get("likes", 0)
        return RoomStats(viewers=viewers, peak=max(peak, viewers), likes=likes)

    async def roster(self, room_id: str) -> list[Principal]:
        raw = await self._store.hgetall(_who(room_id))
        decoder = msgspec.json.Decoder(Principal)
        return sorted((decoder.decode(v) for v in raw.values()), key=lambda p: p.name)
