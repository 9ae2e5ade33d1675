"""Rebuild the state store from the durable log: the log is the truth, the store a cache.

On start (the memory store is empty after any restart) and whenever the store is
found emptied (a Redis restart without persistence), every open room's live
state is rebuilt by the parts that own it, and each node re-asserts what it owns
(its connections). An epoch marker in the store tells "emptied" from "running":
it is written after a rebuild and checked every ``interval`` seconds; when it is
gone the rebuild runs again. Rebuilders are idempotent (they overwrite the cache
with what the log says), so two nodes rebuilding at once is harmless.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable

from livehub.errors import Unavailable
from livehub.rooms.store import StateStore

log = logging.getLogger("livehub.recovery")

EPOCH_KEY = "livehub:epoch"
CHECK_SECONDS = 1.0
# A part restoring one item the store lost claims it for this long (``set_if_absent``
# with this ttl), so concurrent rebuilders restore it once and a crashed one's claim
# runs out.
RESTORE_LEASE_SECONDS = 10.0
# What a request for such an item is told while another holds the claim (retry_after).
RESTORE_RETRY_SECONDS = 1.0
# An event logged this long ago has had its store update made, or never will (its
# node died): a repair may add what the store lacks of such events, never of newer
# ones, which may still be on their way (a restart takes longer than this).
SETTLE_SECONDS = 1.0

RoomRebuilder = Callable[[str], Awaitable[None]]
NodeRebuilder = Callable[[], Awaitable[None]]


class Recovery:
    def __init__(
        self,
        store: StateStore,
        open_rooms: Callable[[], Awaitable[list[str]]],
        *,
        interval: float = CHECK_SECONDS,
    ) -> None:
        self._store = store
        self._open_rooms = open_rooms
        self._interval = interval
        self._per_room: list[RoomRebuilder] = []
        self._per_node: list[NodeRebuilder] = []
        self.rebuilds = 0

    def add_room(self, rebuild: RoomRebuilder) -> None:
        """``rebuild(room_id)`` restores one room's live state of one part from the log."""
        self._per_room.append(rebuild)

    def add_node(self, rebuild: NodeRebuilder) -> None:
        """``rebuild()`` re-asserts what this node owns (its connections, leases)."""
        self._per_node.append(rebuild)

    async def rebuild(self) -> int:
        """Rebuild every open room and this node's share; returns the rooms rebuilt."""
        rooms = await self._open_rooms()
        for room_id in rooms:
            for part in self._per_room:
                await part(room_id)
        for node_part in self._per_node:
            await node_part()
        await self._store.set(EPOCH_KEY, secrets.token_hex(8))
        self.rebuilds += 1
        log.info("rebuilt the live state of %d open rooms from the log", len(rooms))
        return len(rooms)

    async def watch(self) -> None:
        """Supervised loop: rebuild whenever the store lost its epoch marker."""
        while True:
            try:
                if await self._store.get(EPOCH_KEY) is None:
                    await self.rebuild()
            except Unavailable:  # the store is away: rebuild once it answers (empty or not)
                pass
            await asyncio.sleep(self._interval)
