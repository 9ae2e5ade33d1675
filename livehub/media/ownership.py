"""Which node owns a room's media, recorded in the state store so every node can tell.

The node that accepts a room's WHIP publisher claims the room's media: one key,
``media_owner:{room}``, holding that node's id and the URL clients reach it at,
with a short expiry. The owner refreshes the claim while it has the room's media
(a publisher, or a relay within its grace period) and deletes it when the media
ends; a node that dies stops refreshing, so its claim lapses within ``ttl``
seconds. Other nodes read the claim to send WHEP (and WHIP) requests to the owner.

A node killed with ``kill -9`` never releases its claims. When it starts
again (a new id, the same URL) it forgets its previous run's claims at once
(``forget_previous_run``) rather than waiting ``ttl`` for them to lapse: a
publisher reconnecting to it is not told the room is taken. (Nodes must not
share a URL; one that does takes its claim back within a refresh.)

A claim is best effort, not a lock: the store has no compare-and-delete, so a
claim that lapses (an owner stalled for ``ttl`` seconds) may be taken over and
then refreshed by both; ``keep`` logs that instead of overwriting the other node.
No aiortc and no HTTP here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from livehub.rooms.store import StateStore

log = logging.getLogger("livehub.media")

DEFAULT_TTL = 5.0


def owner_key(room: str) -> str:
    return f"media_owner:{room}"


@dataclass(frozen=True)
class Node:
    """A node as the others see it: a random id for this run and its public base URL."""

    id: str
    url: str

    def __post_init__(self) -> None:
        if not self.id or any(c.isspace() for c in self.id):
            raise ValueError(f"a node id is one word, not {self.id!r}")
        if not self.url.startswith(("http://", "https://")) or self.url.endswith("/"):
            raise ValueError(f"a node URL is an http(s) base URL without a final /: {self.url!r}")

    @classmethod
    def parse(cls, raw: str) -> Node | None:
        """The node in a stored claim, or None when the value is not one."""
        node_id, _, url = raw.partition(" ")
        try:
            return cls(node_id, url)
        except ValueError:
            return None

    def encode(self) -> str:
        return f"{self.id} {self.url}"


class MediaOwnership:
    """This node's claims on rooms' media, and lookups of other nodes' claims."""

    def __init__(self, store: StateStore, me: Node, ttl: float = DEFAULT_TTL) -> None:
        if ttl <= 0:
            raise ValueError(f"the claim's ttl must be positive, not {ttl!r}")
        self._store = store
        self.me = me
        self.ttl = ttl

    async def owner(self, room: str) -> Node | None:
        """The node that owns ``room``'s media now, if any does."""
        raw = await self._store.get(owner_key(room))
        return None if raw is None else Node.parse(raw)

    async def elsewhere(self, room: str) -> Node | None:
        """The other node that owns ``room``'s media; None if none does, or this one does."""
        owner = await self.owner(room)
        return None if owner is None or owner.id == self.me.id else owner

    async def claim(self, room: str) -> Node | None:
        """Own ``room``'s media: None when this node owns it now, else the node that does."""
        key, mine = owner_key(room), self.me.encode()
        for _ in range(2):
            if await self._store.set_if_absent(key, mine, self.ttl):
                return None
            raw = await self._store.get(key)
            if raw is None:
                continue  # it lapsed between the two calls: try again
            owner = Node.parse(raw)
            if owner is not None and owner.id != self.me.id:
                return owner
            await self._store.set(key, mine, self.ttl)  # ours already (or not a claim at all)
            return None
        await self._store.set(key, mine, self.ttl)
        return None

    async def keep(self, rooms: Iterable[str]) -> None:
        """Refresh this node's claims on ``rooms`` (whose media it still has)."""
        for room in rooms:
            key = owner_key(room)
            raw = await self._store.get(key)
            owner = None if raw is None else Node.parse(raw)
            if raw is None:
                await self._store.set_if_absent(key, self.me.encode(), self.ttl)
            elif owner is not None and owner.id != self.me.id:
                log.warning("room %s: node %s took over the media this node has", room, owner.url)
            else:
                await self._store.set(key, self.me.encode(), self.ttl)

    async def forget_previous_run(self, room: str) -> bool:
        """Delete a claim on ``room`` held under another id at this node's URL: this node's
        previous run, which died without releasing it. True when one was deleted."""
        owner = await self.owner(room)
        if owner is None or owner.id == self.me.id or owner.url != self.me.url:
            return False
        await self._store.delete(owner_key(room))
        log.info("room %s: forgot the media claim of this node's previous run", room)
        return True

    async def release(self, room: str) -> None:
        """Give up ``room``'s media (it ended here); another node's claim is left alone."""
        owner = await self.owner(room)
        if owner is not None and owner.id == self.me.id:
            await self._store.delete(owner_key(room))
