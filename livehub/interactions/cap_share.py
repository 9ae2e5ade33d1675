"""One danmaku cap for a room served by several nodes.

Each node batches and samples only the messages it accepted, and every node's
batch reaches every viewer, so with N nodes a viewer could get up to N times
the room's cap. Instead each node publishes, every tick, how many messages it
had to consider for the room over the last second (its demand), and takes the
share of the cap that its demand is of the room's total. The shares add up to
the cap, and a busy node gets most of it. A node that stops publishing for
``STALE_SECONDS`` (idle, or gone) no longer counts.

The share scales the node's token bucket for the room (rate and one-second
burst alike, keeping how full it is), so the nodes' buckets together refill at
the cap and hold one second of it; a node alone in a room gets the whole burst.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from livehub.rooms.store import StateStore

STALE_SECONDS = 2.0  # a node's figure older than this no longer counts
FORGET_SECONDS = 60.0  # and is deleted after this


def _key(room: str) -> str:
    return f"cap_share:{room}"


class CapShares:
    def __init__(
        self,
        store: StateStore,
        node_id: str,
        tick_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._node = node_id
        self._clock = clock
        self._window = max(1, round(1.0 / tick_seconds))
        self._recent: dict[str, deque[int]] = {}

    async def update(self, demand: dict[str, int]) -> dict[str, float]:
        """Record this tick's demand (room -> messages); this node's share of the cap
        of each room it had demand in over the last second."""
        shares = {}
        for room, count in demand.items():
            if count == 0 and room not in self._recent:
                continue  # quiet, and already said so
            recent = self._recent.setdefault(room, deque(maxlen=self._window))
            recent.append(count)
            mine = sum(recent)
            if mine == 0:
                if len(recent) == self._window:  # quiet for a second: stop publishing
                    del self._recent[room]
                    await self._store.hdel(_key(room), self._node)
                continue
            shares[room] = await self._share(room, mine)
        return shares

    async def _share(self, room: str, mine: int) -> float:
        now = self._clock()
        await self._store.hset(_key(room), {self._node: f"{now:.3f} {mine}"})
        total, forgotten = 0, []
        for node, value in (await self._store.hgetall(_key(room))).items():
            stamp, _, count = value.partition(" ")
            try:
                age, figure = now - float(stamp), int(count)
            except ValueError:
                forgotten.append(node)
                continue
            if age > FORGET_SECONDS:
                forgotten.append(node)
            elif age <= STALE_SECONDS:
                total += max(0, figure)
        if forgotten:
            await self._store.hdel(_key(room), *forgotten)
        return mine / total if total > mine else 1.0

    def forget(self, room: str) -> None:
        self._recent.pop(room, None)
