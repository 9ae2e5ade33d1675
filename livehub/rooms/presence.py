"""Who is in a room: connections per viewer, viewers now and peak, watch time.

A viewer may hold several connections (tabs, nodes); they join on the first and
leave on the last. Watch time accrues from join to leave, and every node accrues
its connected viewers periodically so a crashed node loses at most one period.
Joins and leaves are events in the log.

``Presence`` keeps the room-wide counts in the state store. ``NodePresence`` is
one node's share: the connections it holds, owned under a lease in the store
(renewed every heartbeat) with the node's last heartbeat and each viewer's last
activity. When a node's lease expires, a live node sweeps it: its viewers are
released and their leaves recorded at their last sign of life (the node's last
heartbeat, or the viewer's last event or join if later), never at the sweep
time. A graceful stop records every leave in one batch before the sockets
close. A node whose registration vanished from the store (a Redis restart
without persistence, or a sweep after a stall) re-asserts its connections, so
the counts are true again within a heartbeat. With a store private to one
process (memory), a crash leaves joins without leaves in the log; they are
closed on the next start at the room's last logged heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Final, TypeVar, cast

import msgspec

from livehub.errors import LivehubError
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
#: a node's lease lives this many heartbeats without renewal
LEASE_BEATS: Final = 3
#: watch time is accrued (and a heartbeat logged) every this many heartbeats
ACCRUE_BEATS: Final = 6
#: at most this many viewers are released at once (store calls in flight)
RELEASE_CONCURRENCY: Final = 32
_PAGE: Final = 5000

RoomLookup = Callable[[str], Awaitable[Room]]
_T = TypeVar("_T")


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
        except LivehubError:  # no such room (any more): nothing to record
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
            with contextlib.suppress(LivehubError):
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
            with contextlib.suppress(LivehubError):
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
            except LivehubError:
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
            except LivehubError:
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
            except LivehubError:
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
        except LivehubError:
            return
        await self._presence.close_dangling(room)


def _held_json(held: Held) -> str:
    return _encode_held(held).decode()
