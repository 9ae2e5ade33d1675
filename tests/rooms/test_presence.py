"""Presence: connections per viewer, join and leave events, peak, watch time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
from fake_clock import Clock

from livehub.errors import NotFound
from livehub.rooms.counters import Counters
from livehub.rooms.eventlog import Event, EventLog
from livehub.rooms.memory_store import MemoryStore
from livehub.rooms.models import NO_STREAM, Principal, Room, Stream
from livehub.rooms.node_presence import (
    NODES_KEY,
    Held,
    NodePresence,
    changes_key,
    held_field,
    held_key,
    lease_key,
    seen_key,
)
from livehub.rooms.presence import HEARTBEAT, Presence, RoomStats, conns_key


@pytest.fixture
def clock() -> Clock:
    return Clock(100.0)


@pytest.fixture
def store(clock: Clock) -> MemoryStore:
    return MemoryStore(clock=clock)


@pytest.fixture
def counters(store: MemoryStore) -> Counters:
    return Counters(store)


@pytest.fixture
async def log(tmp_path: Path) -> AsyncIterator[EventLog]:
    opened = await EventLog.open(tmp_path / "livehub.db", "NORMAL")
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def presence(store: MemoryStore, log: EventLog, counters: Counters, clock: Clock) -> Presence:
    return Presence(store, log, counters, clock=clock)


ROOM = Room(id="r1", title="Room", private=False, created_at=0.0)
LIVE = Room(
    id="r1",
    title="Room",
    private=False,
    created_at=0.0,
    stream=Stream(id="s_1", room="r1", started_at=50.0),
)
ANN = Principal(room="r1", viewer_id="v_ann", name="Ann", role="viewer")
BOB = Principal(room="r1", viewer_id="v_bob", name="Bob", role="moderator")
CY = Principal(room="r1", viewer_id="v_cy", name="Cy", role="viewer")


async def presence_events(log: EventLog, room: str = "r1") -> list[Event]:
    return [e async for e in log.scan(room) if e.kind.startswith("presence.")]


async def test_two_connections_are_one_join(presence: Presence, log: EventLog) -> None:
    assert await presence.join(ROOM, ANN) is True
    assert await presence.join(ROOM, ANN) is False
    assert (await presence.stats(ROOM)).viewers == 1
    [join] = await presence_events(log)
    assert (join.kind, join.actor, join.data, join.ts) == (
        "presence.join",
        "v_ann",
        {"name": "Ann", "role": "viewer"},
        100.0,
    )
    assert await presence.roster("r1") == [ANN]


async def test_leave_of_one_connection_keeps_the_viewer(presence: Presence, log: EventLog) -> None:
    await presence.join(ROOM, ANN)
    await presence.join(ROOM, ANN)
    assert await presence.leave(ROOM, ANN) is False
    assert (await presence.stats(ROOM)).viewers == 1
    assert await presence.roster("r1") == [ANN]
    assert [e.kind for e in await presence_events(log)] == ["presence.join"]

    assert await presence.leave(ROOM, ANN) is True
    assert (await presence.stats(ROOM)).viewers == 0
    assert await presence.roster("r1") == []
    events = await presence_events(log)
    assert [(e.kind, e.actor) for e in events] == [
        ("presence.join", "v_ann"),
        ("presence.leave", "v_ann"),
    ]


async def test_rejoin_after_leaving_is_a_new_join(presence: Presence, log: EventLog) -> None:
    await presence.join(ROOM, ANN)
    await presence.leave(ROOM, ANN)
    assert await presence.join(ROOM, ANN) is True
    kinds = [e.kind for e in await presence_events(log)]
    assert kinds == ["presence.join", "presence.leave", "presence.join"]


async def test_events_carry_the_stream(presence: Presence, log: EventLog) -> None:
    await presence.join(LIVE, ANN)
    await presence.leave(LIVE, ANN)
    assert {e.stream for e in await presence_events(log)} == {"s_1"}


async def test_peak_follows_the_maximum(presence: Presence) -> None:
    await presence.join(ROOM, ANN)
    await presence.join(ROOM, BOB)
    await presence.join(ROOM, BOB)
    assert await presence.stats(ROOM) == RoomStats(viewers=2, peak=2, likes=0)
    await presence.join(ROOM, CY)
    assert await presence.stats(ROOM) == RoomStats(viewers=3, peak=3, likes=0)
    await presence.leave(ROOM, ANN)
    await presence.leave(ROOM, CY)
    assert await presence.stats(ROOM) == RoomStats(viewers=1, peak=3, likes=0)
    await presence.join(ROOM, ANN)
    assert await presence.stats(ROOM) == RoomStats(viewers=2, peak=3, likes=0)
    assert [p.name for p in await presence.roster("r1")] == ["Ann", "Bob"]


async def test_peak_is_per_stream(presence: Presence) -> None:
    await presence.join(ROOM, ANN)
    await presence.join(ROOM, BOB)
    await presence.leave(ROOM, ANN)
    await presence.leave(ROOM, BOB)
    assert (await presence.stats(ROOM)).peak == 2
    await presence.join(LIVE, CY)
    assert await presence.stats(LIVE) == RoomStats(viewers=1, peak=1, likes=0)


async def test_stats_include_likes(presence: Presence, counters: Counters) -> None:
    await counters.add_room("r1", NO_STREAM, "likes", 7)
    assert (await presence.stats(ROOM)).likes == 7


async def test_watch_time_across_join_accrue_leave(
    presence: Presence, counters: Counters, clock: Clock
) -> None:
    clock.now = 100.0
    await presence.join(ROOM, ANN)
    clock.now = 130.0
    assert await presence.accrue(ROOM, "v_ann") == 30.0
    clock.now = 160.0
    await presence.leave(ROOM, ANN)
    viewer = await counters.viewer("r1", NO_STREAM, "v_ann")
    assert viewer["watch_seconds"] == 60.0


async def test_accrue_adds_only_new_time(
    presence: Presence, counters: Counters, clock: Clock
) -> None:
    await presence.join(ROOM, ANN)
    clock.now = 112.5
    assert await presence.accrue(ROOM, "v_ann") == 12.5
    assert await presence.accrue(ROOM, "v_ann") == 0.0
    clock.now = 120.0
    assert await presence.accrue(ROOM, "v_ann") == 7.5
    assert (await counters.viewer("r1", NO_STREAM, "v_ann"))["watch_seconds"] == 20.0


async def test_accrue_of_an_absent_viewer_adds_nothing(
    presence: Presence, counters: Counters, clock: Clock
) -> None:
    assert await presence.accrue(ROOM, "v_nobody") == 0.0
    await presence.join(ROOM, ANN)
    clock.now = 150.0
    await presence.leave(ROOM, ANN)
    clock.now = 500.0
    assert await presence.accrue(ROOM, "v_ann") == 0.0
    assert (await counters.viewer("r1", NO_STREAM, "v_ann"))["watch_seconds"] == 50.0


async def test_watch_time_with_two_connections(
    presence: Presence, counters: Counters, clock: Clock
) -> None:
    await presence.join(ROOM, ANN)  # 100
    clock.now = 110.0
    await presence.join(ROOM, ANN)  # a second tab adds no time of its own
    clock.now = 140.0
    await presence.leave(ROOM, ANN)  # one tab closes: 40 s so far
    clock.now = 170.0
    await presence.leave(ROOM, ANN)  # the last one: 70 s in all
    assert (await counters.viewer("r1", NO_STREAM, "v_ann"))["watch_seconds"] == 70.0
    clock.now = 200.0
    await presence.join(ROOM, ANN)
    clock.now = 205.0
    await presence.leave(ROOM, ANN)
    assert (await counters.viewer("r1", NO_STREAM, "v_ann"))["watch_seconds"] == 75.0


async def test_watch_time_is_per_viewer(
    presence: Presence, counters: Counters, clock: Clock
) -> None:
    await presence.join(ROOM, ANN)
    clock.now = 120.0
    await presence.join(ROOM, BOB)
    clock.now = 150.0
    await presence.leave(ROOM, ANN)
    await presence.leave(ROOM, BOB)
    assert (await counters.viewer("r1", NO_STREAM, "v_ann"))["watch_seconds"] == 50.0
    assert (await counters.viewer("r1", NO_STREAM, "v_bob"))["watch_seconds"] == 30.0


async def test_first_and_last_seen(presence: Presence, counters: Counters, clock: Clock) -> None:
    clock.now = 100.0
    await presence.join(LIVE, ANN)
    clock.now = 105.0
    await presence.join(LIVE, ANN)
    clock.now = 130.0
    await presence.leave(LIVE, ANN)
    viewer = await counters.viewer("r1", "s_1", "v_ann")
    assert viewer["first_seen"] == 100.0
    assert viewer["last_seen"] == 130.0
    clock.now = 200.0
    await presence.leave(LIVE, ANN)
    clock.now = 300.0
    await presence.join(LIVE, ANN)
    viewer = await counters.viewer("r1", "s_1", "v_ann")
    assert (viewer["first_seen"], viewer["last_seen"]) == (100.0, 300.0)
    # Counters are per stream: nothing was recorded outside it.
    assert await counters.viewer("r1", NO_STREAM, "v_ann") == {}


# -- one node's share: leases, sweeps, a graceful stop, a crash on the memory store ------------

BEAT = 2.0  # heartbeat seconds; lease: 3 heartbeats = 6 s


async def live_room(room_id: str) -> Room:
    if room_id != "r1":
        raise NotFound("room_not_found", room_id)
    return LIVE


def node(
    presence: Presence, store: MemoryStore, log: EventLog, clock: Clock, name: str
) -> NodePresence:
    return NodePresence(presence, store, live_room, name, BEAT, shared=True, clock=clock)


async def leaves(log: EventLog) -> dict[str, float]:
    return {e.actor: e.ts for e in await presence_events(log) if e.kind == "presence.leave"}


async def test_a_dead_nodes_viewers_leave_at_its_last_heartbeat(
    presence: Presence, store: MemoryStore, log: EventLog, clock: Clock
) -> None:
    a, b = (node(presence, store, log, clock, n) for n in ("a", "b"))
    await a.beat()
    await b.beat()
    await a.connected(LIVE, ANN)  # 100
    await b.connected(LIVE, BOB)
    clock.now = 104.0
    await a.beat()  # a's last heartbeat
    await b.beat()
    clock.now = 105.0
    await a.connected(LIVE, CY)  # joined after a's last heartbeat
    assert (await presence.stats(LIVE)).viewers == 3
    # a dies; b renews its lease every heartbeat; nothing is swept before a's lease ends
    clock.now = 108.0
    await b.beat()
    assert (await presence.stats(LIVE)).viewers == 3
    clock.now = 110.5
    await b.beat()
    assert (await presence.stats(LIVE)).viewers == 1
    assert await leaves(log) == {"v_ann": 104.0, "v_cy": 105.0}
    assert await presence.roster("r1") == [BOB]
    assert await store.smembers(NODES_KEY) == {"b"}
    assert await store.hgetall(held_key("a")) == {}
    # Ann's watch time ends at a's last heartbeat, not at the sweep
    assert (await counters_of(presence, store, "v_ann"))["watch_seconds"] == 4.0


async def counters_of(presence: Presence, store: MemoryStore, viewer: str) -> dict[str, float]:
    return await Counters(store).viewer("r1", "s_1", viewer)


async def test_a_viewer_still_on_another_node_does_not_leave(
    presence: Presence, store: MemoryStore, log: EventLog, clock: Clock
) -> None:
    a, b = (node(presence, store, log, clock, n) for n in ("a", "b"))
    for n in (a, b):
        await n.beat()
        await n.connected(LIVE, ANN)
    clock.now = 107.0
    await b.beat()  # sweeps a
    assert await store.smembers(NODES_KEY) == {"b"}
    assert (await presence.stats(LIVE)).viewers == 1
    assert await leaves(log) == {}
    assert await b.disconnected(ANN) is True
    assert await leaves(log) == {"v_ann": 107.0}


async def test_a_dead_node_is_swept_once(
    presence: Presence, store: MemoryStore, log: EventLog, clock: Clock
) -> None:
    a, b, c = (node(presence, store, log, clock, n) for n in ("a", "b", "c"))
    for n in (a, b, c):
        await n.beat()
    await a.connected(LIVE, ANN)
    await a.connected(LIVE, ANN)  # two tabs: two connections released together
    clock.now = 107.0
    await b.renew()
    await c.renew()
    swept = [await b.sweep(), await c.sweep(), await b.sweep()]
    assert swept == [1, 0, 0]
    assert [e.kind for e in await presence_events(log)] == ["presence.join", "presence.leave"]
    assert await store.hgetall("conns:r1") == {}


async def test_a_node_sweeps_only_once_its_own_lease_held_for_a_lease(
    presence: Presence, store: MemoryStore, log: EventLog, clock: Clock
) -> None:
    """After a store outage every lease may have run out: a node that has not renewed
    its own for a whole lease since must not take the others for dead."""
    a = node(presence, store, log, clock, "a")
    await a.beat()
    await a.connected(LIVE, ANN)
    clock.now = 200.0  # an outage: a's lease ran out, and nobody renewed for a while
    b = node(presence, store, log, clock, "b")
    await b.beat()  # b is back first: not trusted yet
    assert (await presence.stats(LIVE)).viewers == 1
    clock.now = 202.0
    await a.beat()  # a is back too and renews
    clock.now = 206.0
    await a.beat()
    await b.beat()
    assert (await presence.stats(LIVE)).viewers == 1
    assert await leaves(log) == {}


async def test_a_node_swept_while_it_stalled_reasserts_its_viewers(
    presence: Presence, store: MemoryStore, log: EventLog, clock: Clock
) -> None:
    a, b = (node(presence, store, log, clock, n) for n in ("a", "b"))
    await a.beat()
    await b.beat()
    await a.connected(LIVE, ANN)
    clock.now = 107.0
    await b.beat()  # a stalled past its lease: swept
    assert (await presence.stats(LIVE)).viewers == 0
    clock.now = 108.0
    await a.beat()  # a is back: its registration is gone, so it re-asserts
    assert (await presence.stats(LIVE)).viewers == 1
    assert await presence.roster("r1") == [ANN]
    kinds = [(e.kind, e.ts) for e in await presence_events(log)]
    assert kinds == [("presence.join", 100.0), ("presence.leave", 100.0), ("presence.join", 108.0)]
    assert await a.disconnected(ANN) is True
    assert (await presence.stats(LIVE)).viewers == 0


async def test_activity_after_a_heartbeat_moves_the_leave(
    presence: Presence, store: MemoryStore, log: EventLog, clock: Clock
) -> None:
    a, b = (node(presence, store, log, clock, n) for n in ("a", "b"))
    await a.beat()
    await b.beat()
    await a.connected(LIVE, ANN)
    await a.connected(LIVE, BOB)
    clock.now = 103.0
    a.active("r1", "v_ann")
    a.active("r1", "v_nobody")  # not held here: ignored
    clock.now = 103.5
    await a.beat()  # the heartbeat writes Ann's activity
    clock.now = 110.0
    await b.beat()
    assert await leaves(log) == {"v_ann": 103.5, "v_bob": 103.5}
    held = Held(ANN, 1, 100.0, 104.0)
    assert held.last_seen(103.5) == 104.0


async def test_a_graceful_stop_records_every_leave_at_once(
    presence: Presence, store: MemoryStore, log: EventLog, clock: Clock
) -> None:
    a = node(presence, store, log, clock, "a")
    await a.beat()
    viewers = [
        Principal(room="r1", viewer_id=f"v_{i}", name=f"V{i}", role="viewer") for i in range(80)
    ]
    for who in viewers:
        await a.connected(LIVE, who)
    await a.connected(LIVE, viewers[0])
    clock.now = 130.0
    assert await a.leave_all() == 80
    assert await leaves(log) == {w.viewer_id: 130.0 for w in viewers}
    assert (await presence.stats(LIVE)).viewers == 0
    assert await store.get(lease_key("a")) is None
    assert await store.smembers(NODES_KEY) == set()
    # the sockets closing afterwards have nothing left to record
    assert await a.disconnected(viewers[0]) is False
    await a.beat()  # and a heartbeat after the stop registers nothing
    assert await store.smembers(NODES_KEY) == set()
    assert len(await leaves(log)) == 80


async def test_a_refused_store_write_keeps_no_connection(
    presence: Presence, store: MemoryStore, log: EventLog, clock: Clock
) -> None:
    a = node(presence, store, log, clock, "a")
    await store.set(held_key("a"), "not a hash")  # every hash write to it fails
    with pytest.raises(Exception):  # noqa: B017 - whatever the store raises
        await a.connected(LIVE, ANN)
    assert a.holds() == {}
    assert (await presence.stats(LIVE)).viewers == 0


async def test_accrual_logs_a_heartbeat_per_room(
    presence: Presence, store: MemoryStore, log: EventLog, clock: Clock
) -> None:
    a = node(presence, store, log, clock, "a")
    await a.connected(LIVE, ANN)
    await a.connected(LIVE, BOB)
    clock.now = 130.0
    await a.accrue_all()
    [beat] = [e for e in await presence_events(log) if e.kind == HEARTBEAT]
    assert (beat.actor, beat.ts, beat.data, beat.stream) == (
        "node:a",
        130.0,
        {"node": "a", "viewers": 2},
        "s_1",
    )
    assert (await counters_of(presence, store, "v_ann"))["watch_seconds"] == 30.0


async def test_a_crash_on_the_memory_store_is_settled_at_the_last_heartbeat(
    presence: Presence, store: MemoryStore, log: EventLog, clock: Clock
) -> None:
    before = node(presence, store, log, clock, "a")  # the run that crashes
    await before.connected(LIVE, ANN)  # 100
    await before.connected(LIVE, CY)
    clock.now = 110.0
    await before.disconnected(CY)  # left properly
    clock.now = 130.0
    await before.accrue_all()  # logged heartbeat
    clock.now = 140.0
    await before.connected(LIVE, BOB)  # joined after it
    clock.now = 155.0  # crash; the next run starts on an empty store
    fresh = MemoryStore(clock=clock)
    after = NodePresence(
        Presence(fresh, log, Counters(fresh), clock=clock),
        fresh,
        live_room,
        "b",
        BEAT,
        shared=False,
        clock=clock,
    )
    await after.settle("r1")
    assert await leaves(log) == {"v_cy": 110.0, "v_ann": 130.0, "v_bob": 140.0}
    await after.settle("r1")  # settled once
    await after.settle("nope")  # a room that is gone: nothing
    assert len([e for e in await presence_events(log) if e.kind == "presence.leave"]) == 3


async def test_a_shared_store_is_settled_by_leases_not_the_log(
    presence: Presence, store: MemoryStore, log: EventLog, clock: Clock
) -> None:
    a = node(presence, store, log, clock, "a")
    await a.connected(LIVE, ANN)
    await node(presence, store, log, clock, "b").settle("r1")
    assert await leaves(log) == {}


async def test_a_viewer_back_through_another_node_before_the_sweep_gets_the_gap(
    presence: Presence, store: MemoryStore, log: EventLog, clock: Clock
) -> None:
    a, b = (node(presence, store, log, clock, n) for n in ("a", "b"))
    await a.beat()
    await b.beat()
    await a.connected(LIVE, ANN)  # 100
    await b.connected(LIVE, BOB)  # Bob had a tab on b all along
    await a.connected(LIVE, BOB)
    clock.now = 104.0
    await a.beat()  # a's last heartbeat
    clock.now = 106.0
    await b.connected(LIVE, ANN)  # Ann's client reconnects through b
    clock.now = 110.5
    await b.beat()  # a swept
    assert (await presence.stats(LIVE)).viewers == 2
    events = [(e.kind, e.actor, e.ts) for e in await presence_events(log)]
    assert events == [
        ("presence.join", "v_ann", 100.0),
        ("presence.join", "v_bob", 100.0),
        ("presence.leave", "v_ann", 104.0),
        ("presence.join", "v_ann", 106.0),
    ]


async def lose_everything(store: MemoryStore, *nodes: str) -> None:
    """What a Redis restart without its data does to presence's keys."""
    keys = [conns_key("r1"), "who:r1", "accrued:r1", NODES_KEY]
    for n in nodes:
        keys += [lease_key(n), seen_key(n), held_key(n)]
    await store.delete(*keys)


async def test_a_tab_closed_before_its_node_reasserted_keeps_the_viewer_counted_elsewhere(
    presence: Presence, store: MemoryStore, log: EventLog, clock: Clock
) -> None:
    a, b = (node(presence, store, log, clock, n) for n in ("a", "b"))
    for n in (a, b):
        await n.beat()
        await n.connected(LIVE, ANN)  # Ann on both nodes
    await a.connected(LIVE, CY)
    await lose_everything(store, "a", "b")
    clock.now = 101.0
    await b.beat()  # b re-asserts Ann first
    assert (await presence.stats(LIVE)).viewers == 1
    clock.now = 101.5
    assert await a.disconnected(ANN) is False  # a re-asserts Cy, not the closed tab
    assert await presence.roster("r1") == [ANN, CY]
    assert (await presence.stats(LIVE)).viewers == 2
    assert await leaves(log) == {}
    clock.now = 102.0
    assert await b.disconnected(ANN) is True
    assert await a.disconnected(CY) is True
    assert await leaves(log) == {"v_ann": 102.0, "v_cy": 102.0}
    assert (await presence.stats(LIVE)).viewers == 0


async def test_a_leave_the_store_refused_is_recorded_with_a_later_heartbeat(
    presence: Presence, store: MemoryStore, log: EventLog, clock: Clock
) -> None:
    a = node(presence, store, log, clock, "a")
    await a.beat()
    await a.connected(LIVE, ANN)
    await a.connected(LIVE, BOB)
    await store.delete(seen_key("a"))
    await store.hset(seen_key("a"), {"broken": "1"})  # every read of it fails now
    clock.now = 103.0
    assert await a.disconnected(ANN) is False  # refused: kept, not lost
    with pytest.raises(Exception):  # noqa: B017 - whatever the store raises
        await a.beat()
    assert await leaves(log) == {}
    assert (await presence.stats(LIVE)).viewers == 2
    await store.delete(seen_key("a"))
    await store.set(seen_key("a"), "103.0")  # the store works again, nothing lost
    clock.now = 106.0
    await a.beat()
    assert await leaves(log) == {"v_ann": 103.0}  # when the connection closed
    assert (await presence.stats(LIVE)).viewers == 1
    await a.beat()
    assert len(await leaves(log)) == 1


async def test_a_leave_refused_while_the_store_lost_everything_is_still_recorded(
    presence: Presence, store: MemoryStore, log: EventLog, clock: Clock
) -> None:
    a = node(presence, store, log, clock, "a")
    await a.beat()
    await a.connected(LIVE, ANN)
    await a.connected(LIVE, BOB)
    await store.delete(seen_key("a"))
    await store.hset(seen_key("a"), {"broken": "1"})
    clock.now = 103.0
    assert await a.disconnected(ANN) is False
    await lose_everything(store, "a")  # the store comes back empty
    clock.now = 106.0
    await a.beat()
    assert await leaves(log) == {"v_ann": 103.0}
    assert await presence.roster("r1") == [BOB]
    assert (await presence.stats(LIVE)).viewers == 1


async def test_entries_written_after_the_store_was_emptied_are_counted_again(
    presence: Presence, store: MemoryStore, log: EventLog, clock: Clock
) -> None:
    """A heartbeat writing activity just after Redis came back empty puts entries in the
    node's hash that nothing counts: the re-assert must not take them as counted."""
    a = node(presence, store, log, clock, "a")
    await a.beat()
    await a.connected(LIVE, ANN)
    await a.connected(LIVE, BOB)
    await lose_everything(store, "a")
    stale = Held(ANN, 1, 100.0, 100.5, token="an older registration")
    entry = msgspec.json.encode(stale).decode()
    await store.hset(held_key("a"), {held_field("r1", "v_ann"): entry})
    clock.now = 101.0
    await a.beat()
    assert await store.hgetall(conns_key("r1")) == {"v_ann": "1", "v_bob": "1"}
    await a.beat()  # re-asserted once
    assert await store.hgetall(conns_key("r1")) == {"v_ann": "1", "v_bob": "1"}


async def test_an_older_copy_of_the_store_is_recounted_without_new_events(
    presence: Presence, store: MemoryStore, log: EventLog, clock: Clock
) -> None:
    """Redis restarted from a snapshot taken a while ago: its counts are of then. Each
    node counts the difference to what it holds now; the log already has the joins
    and leaves in between."""
    a, b = (node(presence, store, log, clock, n) for n in ("a", "b"))
    await a.beat()
    await b.beat()
    await a.connected(LIVE, ANN)
    await a.connected(LIVE, BOB)
    await b.connected(LIVE, BOB)  # Bob on both
    clock.now = 102.0
    await a.beat()
    await b.beat()
    keys = [conns_key("r1"), "who:r1", held_key("a"), held_key("b")]
    snapshot = {k: await store.hgetall(k) for k in keys}
    strings = [seen_key("a"), seen_key("b"), changes_key("a"), changes_key("b")]
    saved = {k: await store.get(k) for k in strings}
    clock.now = 110.0
    await a.disconnected(ANN)  # after the snapshot: gone
    await a.disconnected(BOB)  # Bob stays, on b
    await b.connected(LIVE, CY)  # and Cy joined
    await a.beat()
    await b.beat()
    events = await presence_events(log)
    # Redis comes back with the snapshot
    await store.delete(*keys)
    for k, v in snapshot.items():
        if v:
            await store.hset(k, v)
    for k, value in saved.items():
        await store.set(k, str(value))
    assert await store.hgetall(conns_key("r1")) == {"v_ann": "1", "v_bob": "2"}
    clock.now = 112.0
    await a.beat()
    await b.beat()
    assert await store.hgetall(conns_key("r1")) == {"v_bob": "1", "v_cy": "1"}
    assert await presence.roster("r1") == [BOB, CY]
    assert await presence_events(log) == events  # nothing recorded twice or made up
    clock.now = 113.0
    await a.beat()
    await b.beat()  # recounted once
    assert await store.hgetall(conns_key("r1")) == {"v_bob": "1", "v_cy": "1"}
    assert await b.disconnected(BOB) is True
    assert await b.disconnected(CY) is True
    assert await store.hgetall(conns_key("r1")) == {}
