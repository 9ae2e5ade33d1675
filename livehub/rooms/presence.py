"""Who is in a room: connections per viewer, viewers now and peak, watch time.

A viewer may hold several connections (tabs, nodes); they join on the first and
leave on the last. Watch time accrues from join to leave, and every node accrues
its connected viewers periodically so a crashed node loses at most one period.
Joins and leaves are events in the log.

``Presence`` keeps the room-wide counts in the state store; each node's share of
them (its connections, under a lease) is ``livehub.rooms.node_presence``. With a
store private to one process (memory), a crash leaves joins without leaves in
the log; ``close_dangling`` closes them on the next start at the room's last
logged heartbeat.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Final

import msgspec

from livehub.rooms.counters import Counters
from livehub.rooms.eventlog import Event, EventLog, NewEvent
from livehub.rooms.models import Principal, Room
from livehub.rooms.recorder import Recorder, room_event
from livehub.rooms.store import StateStore

log = logging.getLogger("livehub.presence")

JOIN: Final = "presence.join"
LEAVE: Final = "presence.leave"
#: a node's "these viewers are still here" in a room's log, every accrual period
HEARTBEAT: Final = "presence.heartbeat"
_PAGE: Final = 5000


class RoomStats(msgspec.Struct, frozen=True):
    viewers: int
    peak: int
    likes: int


def conns_key(room: str) -> str:
    return f"conns:{room}"


def _who(room: str) -> str:
    return f"who:{room}"


def _accrued(room: str) -> str:
    return f"accrued:{room}"


def _peak(room: str, scope: str) -> str:
    return f"peak:{room}:{scope}"


def _join_data(who: Principal) -> dict[str, str]:
    return {"name": who.name, "role": who.role}


class Presence:
    def __init__(
        self,
        store: StateStore,
        log: EventLog,
        counters: Counters,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._log = log
        self._counters = counters
        self._clock = clock
        self._record = Recorder(log, clock)

    async def join(self, room: Room, who: Principal, conns: int = 1) -> bool:
        """Count ``conns`` new connections; True when the viewer had none (they joined)."""
        announced = await self.announce(room, who)
        count = await self.count(room, who, conns)
        return await self.counted_in(room, who, count == conns, announced=announced)

    # ``join`` in three steps, for a caller that must know how far a failed one got:

    async def announce(self, room: Room, who: Principal) -> bool:
        """Log the join of a viewer nobody counts yet, before counting them (a failed
        commit then counts nothing); True when logged. Two nodes may both log one for
        the same viewer: a join while joined changes nothing."""
        if await self.present(room, who):
            return False
        await self._record(room, who.viewer_id, JOIN, _join_data(who))
        return True

    async def count(self, room: Room, who: Principal, conns: int = 1) -> int:
        """Add ``conns`` connections of the viewer; returns how many they have now."""
        return await self._store.hincr(conns_key(room.id), who.viewer_id, conns)

    async def counted_in(self, room: Room, who: Principal, first: bool, *, announced: bool) -> bool:
        """The rest of a join once counted; ``first``: the connections just counted are
        all the viewer has. Returns ``first``."""
        now = self._clock()
        await self._counters.seen(room.id, room.scope, who.viewer_id, now)
        if not first:
            return False
        await self._store.hset(_who(room.id), {who.viewer_id: msgspec.json.encode(who).decode()})
        await self._store.hset(_accrued(room.id), {who.viewer_id: repr(now)})
        viewers = await self._store.hlen(conns_key(room.id))
        await self._store.set_max(_peak(room.id, room.scope), viewers)
        if not announced:  # someone else's leave raced the check: they are back
            await self._record(room, who.viewer_id, JOIN, _join_data(who))
        return True

    async def leave(
        self, room: Room, who: Principal, conns: int = 1, at: float | None = None
    ) -> bool:
        """Count ``conns`` closed connections; True when they were the viewer's last (they
        left). ``at`` is when they were last seen (the leave's time), now by default."""
        event = await self.release(room, who, conns, at)
        if event is None:
            return False
        await self._log.append(event)
        return True

    async def release(
        self, room: Room, who: Principal, conns: int = 1, at: float | None = None
    ) -> NewEvent | None:
        """``leave`` in the store only: the leave event to append when they left, else
        None (for a caller that appends many leaves at once)."""
        at = self._clock() if at is None else at
        count = await self._store.hincr(conns_key(room.id), who.viewer_id, -conns)
        if count < 0:  # a leave without a join (a node restarted in between): nothing to do
            await self._store.hdel(conns_key(room.id), who.viewer_id)
            return None
        await self.accrue(room, who.viewer_id, at)
        await self._counters.seen(room.id, room.scope, who.viewer_id, at)
        if count > 0:
            return None
        await self._store.hdel(conns_key(room.id), who.viewer_id)
        await self._store.hdel(_accrued(room.id), who.viewer_id)
        await self._store.hdel(_who(room.id), who.viewer_id)
        return room_event(room, LEAVE, who.viewer_id, {}, ts=at)

    async def recount(self, room: Room, who: Principal, delta: int) -> None:
        """Correct the viewer's connection count by ``delta`` (an older copy of the store
        came back); no event: the log has their joins and leaves already."""
        count = await self.count(room, who, delta)
        if count <= 0:
            await self._store.hdel(conns_key(room.id), who.viewer_id)
            await self._store.hdel(_accrued(room.id), who.viewer_id)
            await self._store.hdel(_who(room.id), who.viewer_id)
        elif count - delta <= 0:  # counted again
            await self.counted_in(room, who, True, announced=True)

    async def present(self, room: Room, who: Principal) -> bool:
        """Whether any node counts a connection of the viewer now."""
        return await self._store.hget(conns_key(room.id), who.viewer_id) is not None

    async def append_all(self, events: Sequence[NewEvent]) -> None:
        """Append ``events`` together: the log's writer commits them in one transaction
        (or a few), where one append after another would commit each alone."""
        await asyncio.gather(*(self._log.append(event) for event in events))

    async def rejoined(self, room: Room, who: Principal, left_at: float, back_at: float) -> None:
        """A viewer whose node died at ``left_at`` was back through another node at
        ``back_at``, before the dead node was swept: the log gets the gap."""
        await self._record(room, who.viewer_id, LEAVE, {}, left_at)
        await self._record(room, who.viewer_id, JOIN, _join_data(who), back_at)

    async def accrue(self, room: Room, viewer_id: str, until: float | None = None) -> float:
        """Add the watch time since the last accrual (up to ``until``, now by default);
        returns the seconds added."""
        now = self._clock() if until is None else until
        last = await self._store.hget(_accrued(room.id), viewer_id)
        if last is None:
            return 0.0
        seconds = max(0.0, now - float(last))
        if seconds:
            await self._store.hset(_accrued(room.id), {viewer_id: repr(now)})
            await self._counters.add_watch(room.id, room.scope, viewer_id, seconds)
        return seconds

    async def stats(self, room: Room) -> RoomStats:
        viewers = await self._store.hlen(conns_key(room.id))
        peak = int(await self._store.get(_peak(room.id, room.scope)) or 0)
        likes = (await self._counters.room(room.id, room.scope)).get("likes", 0)
        return RoomStats(viewers=viewers, peak=max(peak, viewers), likes=likes)

    async def roster(self, room_id: str) -> list[Principal]:
        raw = await self._store.hgetall(_who(room_id))
        decoder = msgspec.json.Decoder(Principal)
        return sorted((decoder.decode(v) for v in raw.values()), key=lambda p: p.name)

    async def heartbeat(self, room: Room, node: str, viewers: int) -> None:
        """Log that ``node`` still held ``viewers`` viewers of ``room`` now."""
        await self._record(room, f"node:{node}", HEARTBEAT, {"node": node, "viewers": viewers})

    async def close_dangling(self, room: Room) -> int:
        """Record a leave for every viewer the log still has joined in ``room``, at the
        room's last logged heartbeat after their join (or their join). Only for a store
        private to this process, on start: nobody is connected yet, so every join the
        log has without its leave is a connection a crash cut off. Returns the leaves."""
        joined: dict[str, Event] = {}
        beats: list[Event] = []
        after = 0
        while page := await self._log.by_kinds(
            room.id, (JOIN, LEAVE, HEARTBEAT), after_id=after, limit=_PAGE
        ):
            for event in page:
                if event.kind == JOIN:
                    joined.setdefault(event.actor, event)
                elif event.kind == LEAVE:
                    joined.pop(event.actor, None)
                else:
                    beats.append(event)
            after = page[-1].id
            beats = beats[-1:]
        last_beat = beats[-1] if beats else None

        def left_at(join: Event) -> float:
            if last_beat is not None and last_beat.id > join.id:
                return max(join.ts, last_beat.ts)
            return join.ts

        await self.append_all(
            [room_event(room, LEAVE, v, {}, ts=left_at(join)) for v, join in joined.items()]
        )
        if joined:
            log.warning("room %s: %d leaves a crash cut off recorded", room.id, len(joined))
        return len(joined)
