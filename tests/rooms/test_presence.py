"""Presence: connections per viewer, join and leave events, peak, watch time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fake_clock import Clock

from livehub.rooms.counters import Counters
from livehub.rooms.eventlog import Event, EventLog
from livehub.rooms.memory_store import MemoryStore
from livehub.rooms.models import NO_STREAM, Principal, Room, Stream
from livehub.rooms.presence import Presence, RoomStats


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
