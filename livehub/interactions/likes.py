"""Likes: taps are aggregated by the client, rate-limited, logged and counted."""

from __future__ import annotations

import time
from collections.abc import Callable

from livehub.errors import ProtocolError, RateLimited
from livehub.rooms.counters import Counters
from livehub.rooms.eventlog import EventLog
from livehub.rooms.models import Principal, Room
from livehub.rooms.recorder import Recorder
from livehub.rooms.store import StateStore

MAX_LIKES_PER_EVENT = 50
LIKES_PER_SECOND = 20.0
LIKE_BURST = 100.0


class Likes:
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

    async def like(self, room: Room, who: Principal, count: int) -> int:
        """Record ``count`` likes; returns the room's total for the current stream."""
        if not 1 <= count <= MAX_LIKES_PER_EVENT:
            raise ProtocolError("bad_payload", f"count must be 1-{MAX_LIKES_PER_EVENT}.")
        now = self._clock()
        wait = await self._store.take_token(
            f"rl:like:{room.id}:{who.viewer_id}", LIKES_PER_SECOND, LIKE_BURST, now, count
        )
        if wait:
            raise RateLimited("Too many likes; slow down.", wait)
        await self._record(room, who.viewer_id, "like", {"count": count}, now)
        await self._counters.add(room.id, room.scope, who.viewer_id, "likes", count)
        return await self._counters.add_room(room.id, room.scope, "likes", count)
