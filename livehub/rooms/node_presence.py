"""One node's share of presence: the connections it holds, owned under a lease.

The lease lives in the state store (renewed every heartbeat) with the node's
last heartbeat and each viewer's last activity. When a node's lease expires, a
live node sweeps it: its viewers are released and their leaves recorded at their
last sign of life (the node's last heartbeat, or the viewer's last event or join
if later), never at the sweep time. A graceful stop records every leave in one
batch before the sockets close. A node whose registration vanished from the
store (a Redis restart without persistence, or a sweep after a stall)
re-asserts its connections, and one whose store came back from an older copy
re-counts them, so the counts are true again within a heartbeat. A closed
connection the store refuses is kept and settled with a later heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Final, TypeVar, cast

import msgspec

from livehub.errors import GONE
from livehub.rooms.eventlog import NewEvent
from livehub.rooms.models import Principal, Room
from livehub.rooms.presence import LEAVE, Presence
from livehub.rooms.recorder import room_event
from livehub.rooms.store import StateStore

log = logging.getLogger("livehub.presence")

#: a node's lease lives this many heartbeats without renewal
LEASE_BEATS: Final = 3
#: watch time is accrued (and a heartbeat logged) every this many heartbeats
ACCRUE_BEATS: Final = 6
#: at most this many viewers are released at once (store calls in flight)
RELEASE_CONCURRENCY: Final = 32

RoomLookup = Callable[[str], Awaitable[Room]]
_T = TypeVar("_T")

NODES_KEY: Final = "presence:nodes"


def lease_key(node: str) -> str:
    """Exists (with a TTL of ``LEASE_BEATS`` heartbeats) while ``node`` is alive."""
    return f"presence:lease:{node}"


def seen_key(node: str) -> str:
    """``node``'s last heartbeat (epoch seconds); its registration in the store."""
    return f"presence:seen:{node}"


def held_key(node: str) -> str:
    """Hash of the viewers ``node`` holds connections of: ``Held`` per room and viewer."""
    return f"presence:held:{node}"


def changes_key(node: str) -> str:
    """How many changes of ``node``'s share the store has counted (an older copy has fewer)."""
    return f"presence:changes:{node}"


def _sweep_key(node: str) -> str:
    return f"presence:sweep:{node}"


class Unsettled(msgspec.Struct):
    """A closed connection, until the store and the log have it (a failed try is
    retried with each heartbeat)."""

    who: Principal
    at: float
    generation: int  # the node's re-asserts when it closed
    counted: bool = False  # the store took it; only ``leave`` may be left to append
    leave: NewEvent | None = None


class Held(msgspec.Struct):
    """One viewer whose connections a node holds (kept in the node's hash in the store)."""

    who: Principal
    conns: int
    since: float  # when this node first held them
    active: float  # their last event through this node
    token: str = ""  # the node's registration they were counted under

    def last_seen(self, heartbeat: float) -> float:
        return max(heartbeat, self.since, self.active)


_encode_held = msgspec.json.Encoder().encode
_decode_held = msgspec.json.Decoder(Held).decode


def held_field(room: str, viewer_id: str) -> str:
    return f"{room}\n{viewer_id}"


async def _bounded(jobs: Iterable[Awaitable[_T]], limit: int = RELEASE_CONCURRENCY) -> list[_T]:
    """Await ``jobs``, ``limit`` at a time; every job runs to its end before the first
    error (if any) is raised, so none is left half done in the background."""
    gate = asyncio.Semaphore(limit)

    async def one(job: Awaitable[_T]) -> _T:
        async with gate:
            return await job

    results = await asyncio.gather(*(one(job) for job in jobs), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return cast(list[_T], results)


class NodePresence:
    """This node's connections, owned under a lease in the store (see the module doc)."""

    def __init__(
        self,
        presence: Presence,
        store: StateStore,
        rooms: RoomLookup,
        node: str,
        heartbeat: float,
        *,
        shared: bool,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._presence = presence
        self._store = store
        self._rooms = rooms
        self.node = node
        self.heartbeat = heartbeat
        self._shared = shared
        self._clock = clock
        self._held: dict[tuple[str, str], Held] = {}
        self._dirty: set[tuple[str, str]] = set()
        self._registered = False
        self._renewing = asyncio.Lock()  # the heartbeat and a recovery rebuild both renew
        self._renewed_since: float | None = None
        self._closed = False
        self._generation = 0  # re-asserts so far
        self._token = secrets.token_hex(4)  # this registration: counts made under it
        self._next_token: str | None = None  # a re-assert's, until it is complete
        self._changes = 0  # changes of this node's share the store has counted
        self._unsettled: list[Unsettled] = []  # closed connections the store did not take

    @property
    def lease_seconds(self) -> float:
        return self.heartbeat * LEASE_BEATS

    def holds(self) -> dict[tuple[str, str], int]:
        """(room, viewer) -> connections this node holds."""
        return {key: held.conns for key, held in self._held.items()}

    # -- connections ---------------------------------------------------------------------

    async def connected(self, room: Room, who: Principal) -> bool:
        """A connection opened here; True when the viewer joined the room. When this
        raises, the connection is not counted (and a join already logged gets its leave)."""
        await self._check_registration()  # before this connection is held: counted once
        key = (room.id, who.viewer_id)
        now = self._clock()
        held = self._held.get(key)
        if held is None:
            held = self._held[key] = Held(who, 0, now, now)
        held.conns += 1
        held.active = now
        try:
            held.token = self._token
            # held before counted: a crash in between is swept as "never joined"
            await self._store.hset(held_key(self.node), {held_field(*key): _held_json(held)})
            announced = await self._presence.announce(room, who)
        except BaseException:
            self._drop(key)
            raise
        try:
            count = await self._presence.count(room, who)
        except BaseException:
            self._drop(key)
            if announced:  # logged as joined but never counted: log the leave too
                leave = room_event(room, LEAVE, who.viewer_id, {}, ts=now)
                self._unsettled.append(Unsettled(who, now, self._generation, True, leave))
            raise
        try:
            joined = await self._presence.counted_in(room, who, count == 1, announced=announced)
            await self._changed()
        except BaseException:
            await self.disconnected(who)  # counted: released as a closed connection is
            raise
        return joined

    async def disconnected(self, who: Principal) -> bool:
        """A connection of ``who`` (to ``who.room``) closed here; True when it was the
        viewer's last (they left).

        When the store fails, the leave is kept and recorded with a later heartbeat,
        at the time the connection closed."""
        held = self._held.get((who.room, who.viewer_id))
        if held is None:  # already released (a graceful stop recorded the leave)
            return False
        self._drop((who.room, who.viewer_id))
        pending = Unsettled(who, self._clock(), self._generation)
        try:
            return await self._settle(pending)
        except Exception as exc:  # the store or the log: retried with each heartbeat
            log.warning("leave of %s not recorded yet, will retry: %r", who.viewer_id, exc)
            self._unsettled.append(pending)
            return False

    async def _settle(self, pending: Unsettled) -> bool:
        """Record a closed connection in the store, and its leave when it was the
        viewer's last; a retry after a failure resumes where the last try stopped."""
        who = pending.who
        key = (who.room, who.viewer_id)
        try:
            room = await self._rooms(who.room)
        except GONE:  # no such room (any more): nothing to record
            return False
        if not pending.counted:
            await self._check_registration()
            held = self._held.get(key)
            if held is not None:
                await self._store.hset(held_key(self.node), {held_field(*key): _held_json(held)})
            else:
                await self._store.hdel(held_key(self.node), held_field(*key))
            if pending.generation == self._generation:
                pending.leave = await self._presence.release(room, who, 1, pending.at)
            elif key not in self._held and not await self._presence.present(room, who):
                # the store lost the counts since it closed, and the re-assert did not
                # count this connection: nothing to take back, but the viewer left
                pending.leave = room_event(room, LEAVE, who.viewer_id, {}, ts=pending.at)
            pending.counted = True
            with contextlib.suppress(Exception):  # best effort: the count is right already
                await self._changed()
        if pending.leave is not None:
            await self._presence.append_all([pending.leave])
        return pending.leave is not None

    async def _settle_unsettled(self) -> None:
        while self._unsettled:
            await self._settle(self._unsettled[0])
            self._unsettled.pop(0)

    def active(self, room_id: str, viewer_id: str) -> None:
        """The viewer sent an event through this node (written with the next heartbeat)."""
        key = (room_id, viewer_id)
        held = self._held.get(key)
        if held is not None:
            held.active = self._clock()
            self._dirty.add(key)

    def _drop(self, key: tuple[str, str]) -> int:
        held = self._held[key]
        held.conns -= 1
        if held.conns <= 0:
            del self._held[key]
            self._dirty.discard(key)
        return max(held.conns, 0)

    # -- the lease -------------------------------------------------------------------------

    async def run(self) -> None:
        """Supervised loop: one heartbeat every ``heartbeat`` seconds."""
        self._renewed_since = None  # a restart after a failure: not trusted to sweep yet
        try:
            while True:
                await self.beat()
                await asyncio.sleep(self.heartbeat)
        finally:
            self._renewed_since = None

    async def beat(self) -> None:
        """Renew the lease (re-asserting what the store lost), write the heartbeat and
        the viewers' activity, and sweep the nodes whose lease expired."""
        if self._closed:
            return
        now = self._clock()
        await self.renew()
        if self._renewed_since is None:
            self._renewed_since = now
        await self._settle_unsettled()
        if self._dirty:
            dirty, self._dirty = self._dirty, set()
            entries = {held_field(*k): _held_json(self._held[k]) for k in dirty if k in self._held}
            if entries:
                await self._store.hset(held_key(self.node), entries)
        if self._shared and now - self._renewed_since >= self.lease_seconds:
            await self.sweep()

    async def renew(self) -> None:
        """Renew this node's lease; when its registration is gone from the store (a Redis
        restart without persistence, or a sweep while this node stalled), re-assert every
        connection it holds first. Also the node's part of a recovery rebuild."""
        async with self._renewing:
            if self._closed:
                return
            await self._reassert_if_lost()
            now = self._clock()
            await self._store.set(lease_key(self.node), repr(now), ttl=self.lease_seconds)
            await self._store.set(seen_key(self.node), repr(now))
            if not self._registered:
                await self._store.sadd(NODES_KEY, self.node)
                self._registered = True

    async def _check_registration(self) -> None:
        """Before counting: re-assert first when the store lost this node's registration,
        or re-count when it went back to an older copy of it."""
        if self._closed or not self._registered:
            return
        if await self._registration() != "intact":
            async with self._renewing:  # checked again inside: one re-assert at a time
                await self._reassert_if_lost()

    async def _registration(self) -> str:
        """ "lost" (gone), "older" (an older copy: its change count is behind) or "intact"."""
        if await self._store.get(seen_key(self.node)) is None:
            return "lost"
        changes = await self._store.get(changes_key(self.node))
        return "older" if int(changes or 0) < self._changes else "intact"

    async def _reassert_if_lost(self) -> None:
        """(Holding ``_renewing``.) Re-assert when the store lost this node's registration;
        re-count this node's share when the store went back to an older copy (a Redis
        restarted from a snapshot)."""
        if self._closed or not self._registered:
            return
        state = await self._registration()
        if state == "intact":
            return
        if state == "lost":
            await self._reassert()
        else:
            await self._resync()
        await self._store.set(changes_key(self.node), str(self._changes))
        await self._store.set(seen_key(self.node), repr(self._clock()))

    async def _changed(self) -> None:
        """Count a change of this node's share (its hash and counts) in the store: a copy
        of the store from before it is then told by its smaller count."""
        self._changes = max(self._changes, await self._store.incr(changes_key(self.node)))

    async def _resync(self) -> None:
        """The store holds an older copy of this node's share: count the difference
        between what it has and what this node holds now. The log already has every
        join and leave in between, so none is recorded."""
        self._generation += 1  # leaves not settled before now: the old copy decides
        stored = {
            f: _decode_held(raw)
            for f, raw in (await self._store.hgetall(held_key(self.node))).items()
        }
        now = {held_field(*key): h for key, h in self._held.items()}
        deltas = [
            (h.who, h.conns - (stored[f].conns if f in stored else 0)) for f, h in now.items()
        ]
        deltas += [(old.who, -old.conns) for f, old in stored.items() if f not in now]
        log.warning(
            "node %s: the store went back to an older copy; re-counting %d viewers",
            self.node,
            sum(1 for _, d in deltas if d),
        )

        async def one(who: Principal, delta: int) -> None:
            with contextlib.suppress(*GONE):
                await self._presence.recount(await self._rooms(who.room), who, delta)

        await _bounded(one(who, delta) for who, delta in deltas if delta)
        await self._store.delete(held_key(self.node))
        for h in self._held.values():
            h.token = self._token
        if now:
            await self._store.hset(held_key(self.node), {f: _held_json(h) for f, h in now.items()})
        await self._store.sadd(NODES_KEY, self.node)

    async def _reassert(self) -> None:
        """Count every connection held here again, under a new registration token. Each
        viewer is counted, then written to the node's hash with the token; one already
        written with it is skipped, so a re-assert cut short by a store error is finished
        by the next one without counting anyone twice (entries written meanwhile with an
        older token, such as a heartbeat's, are counted again)."""
        if self._next_token is None:
            self._next_token = secrets.token_hex(4)
            self._generation += 1  # leaves not settled before now were lost with the counts
        token = self._next_token
        held = list(self._held.items())
        log.warning(
            "node %s: its connections were gone from the store; re-asserting %d viewers",
            self.node,
            len(held),
        )
        await self._store.sadd(NODES_KEY, self.node)
        stored = await self._store.hgetall(held_key(self.node))
        done = {f for f, raw in stored.items() if _decode_held(raw).token == token}

        async def one(key: tuple[str, str], h: Held) -> None:
            if held_field(*key) in done or self._held.get(key) is not h or h.conns <= 0:
                return  # counted already, or gone meanwhile
            with contextlib.suppress(*GONE):
                await self._presence.join(await self._rooms(h.who.room), h.who, h.conns)
            h.token = token
            await self._store.hset(held_key(self.node), {held_field(*key): _held_json(h)})

        await _bounded(one(k, h) for k, h in held)
        self._token, self._next_token = token, None

    async def sweep(self) -> int:
        """Release the viewers of every node whose lease expired (once: the sweep is
        claimed in the store); returns the nodes swept."""
        swept = 0
        for node in await self._store.smembers(NODES_KEY):
            if node == self.node or await self._store.get(lease_key(node)) is not None:
                continue
            if not await self._store.set_if_absent(
                _sweep_key(node), self.node, ttl=self.lease_seconds
            ):
                continue
            await self._release_node(node)
            swept += 1
        return swept

    async def _release_node(self, node: str) -> None:
        raw_seen = await self._store.get(seen_key(node))
        heartbeat = float(raw_seen) if raw_seen is not None else 0.0
        entries = await self._store.hgetall(held_key(node))
        back = await self._earliest_elsewhere(node)

        async def one(field: str, raw: str) -> bool:
            held = _decode_held(raw)
            key = (held.who.room, held.who.viewer_id)
            left = False
            try:
                room = await self._rooms(held.who.room)
            except GONE:
                pass
            else:
                at = held.last_seen(heartbeat)
                left = await self._presence.leave(room, held.who, held.conns, at)
                if not left and key in back and back[key] > at:
                    # reconnected elsewhere after the crash: the outage was not watched
                    await self._presence.rejoined(room, held.who, at, back[key])
            await self._store.hdel(held_key(node), field)
            return left

        left = await _bounded(one(f, raw) for f, raw in entries.items())
        await self._store.delete(held_key(node), seen_key(node), changes_key(node))
        await self._store.srem(NODES_KEY, node)
        log.warning(
            "node %s's lease expired: %d viewers released at its last heartbeat, %d left",
            node,
            len(entries),
            sum(left),
        )

    async def _earliest_elsewhere(self, dead: str) -> dict[tuple[str, str], float]:
        """(room, viewer) -> when the first connection other nodes hold of them opened."""
        earliest: dict[tuple[str, str], float] = {}
        for node in await self._store.smembers(NODES_KEY):
            if node == dead:
                continue
            for raw in (await self._store.hgetall(held_key(node))).values():
                held = _decode_held(raw)
                key = (held.who.room, held.who.viewer_id)
                earliest[key] = min(earliest.get(key, held.since), held.since)
        return earliest

    # -- stopping ------------------------------------------------------------------------

    async def leave_all(self) -> int:
        """A graceful stop: record every leave now, in one batch, and give up the lease
        (before the sockets close; their disconnects then find nothing to do)."""
        with contextlib.suppress(Exception):  # best effort: the store may still be down
            await self._settle_unsettled()
        self._closed = True
        held, self._held = self._held, {}
        self._dirty.clear()
        now = self._clock()

        async def one(h: Held) -> NewEvent | None:
            try:
                room = await self._rooms(h.who.room)
            except GONE:
                return None
            return await self._presence.release(room, h.who, h.conns, now)

        leaves = [e for e in await _bounded(one(h) for h in held.values()) if e is not None]
        await self._presence.append_all(leaves)
        async with self._renewing:  # after a renewal under way, which then finds it closed
            await self._store.delete(
                lease_key(self.node),
                seen_key(self.node),
                held_key(self.node),
                changes_key(self.node),
            )
            await self._store.srem(NODES_KEY, self.node)
        log.info("node %s stopping: %d leaves recorded", self.node, len(leaves))
        return len(leaves)

    # -- watch time and the log's heartbeat ---------------------------------------------------

    async def accrue_forever(self) -> None:
        """Supervised loop: accrue the watch time of the viewers held here, and log a
        heartbeat per room they are in, every ``ACCRUE_BEATS`` heartbeats."""
        while True:
            await asyncio.sleep(self.heartbeat * ACCRUE_BEATS)
            await self.accrue_all()

    async def accrue_all(self) -> None:
        by_room: dict[str, int] = {}
        for room_id, _ in self._held:
            by_room[room_id] = by_room.get(room_id, 0) + 1
        for room_id, viewers in by_room.items():
            try:
                room = await self._rooms(room_id)
            except GONE:
                continue
            await self._presence.heartbeat(room, self.node, viewers)
            await _bounded(
                self._presence.accrue(room, viewer)
                for (r, viewer) in list(self._held)
                if r == room_id
            )

    # -- recovery ------------------------------------------------------------------------

    async def settle(self, room_id: str) -> None:
        """Recovery's per-room part: with a store private to this process, close the
        joins a crash left open in the log (see ``Presence.close_dangling``)."""
        if self._shared:
            return  # the nodes' leases settle them
        try:
            room = await self._rooms(room_id)
        except GONE:
            return
        await self._presence.close_dangling(room)


def _held_json(held: Held) -> str:
    return _encode_held(held).decode()
