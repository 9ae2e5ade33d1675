"""Several nodes share one room's danmaku cap, in proportion to their demand,
over both state stores (Redis is a real server) and a driven clock."""

from __future__ import annotations

import pytest
from fake_clock import Clock

from livehub.interactions.cap_share import CapShares
from livehub.rooms.store import StateStore

TICK = 0.1


@pytest.fixture
def clock() -> Clock:
    return Clock(50_000.0)


@pytest.fixture
def store(both_stores: StateStore) -> StateStore:
    return both_stores


async def second(nodes: dict[str, CapShares], clock: Clock, per_tick: dict[str, int]) -> dict:
    """One second of ticks with this demand per node; the shares after the last tick."""
    shares: dict[str, dict[str, float]] = {}
    for _ in range(round(1 / TICK)):
        clock.advance(TICK)
        for name, node in nodes.items():
            shares[name] = await node.update({"r": per_tick.get(name, 0)})
    return shares


async def test_shares_follow_demand_and_add_up_to_one(store: StateStore, clock: Clock) -> None:
    nodes = {n: CapShares(store, n, TICK, clock) for n in ("a", "b")}
    shares = await second(nodes, clock, {"a": 3, "b": 1})
    # Each node sees the others' figures of their last tick, so a's share lags by one.
    assert shares["a"]["r"] == pytest.approx(30 / 39) and shares["b"]["r"] == pytest.approx(0.25)

    # One node alone: all of the cap.
    only = await second({"a": nodes["a"]}, clock, {"a": 3})
    assert only["a"] == {"r": pytest.approx(0.75)}  # b's last figure is still fresh
    clock.advance(2.5)
    only = await second({"a": nodes["a"]}, clock, {"a": 3})
    assert only["a"] == {"r": 1.0}  # b's figure went stale


async def test_a_quiet_node_stops_counting(store: StateStore, clock: Clock) -> None:
    nodes = {n: CapShares(store, n, TICK, clock) for n in ("a", "b")}
    await second(nodes, clock, {"a": 1, "b": 1})
    quiet = await second(nodes, clock, {"a": 1})
    assert quiet["b"] == {}  # no demand, no share to set
    assert set(await store.hgetall("cap_share:r")) == {"a"}  # b took its figure back
    clock.advance(TICK)
    assert await nodes["a"].update({"r": 1}) == {"r": 1.0}


async def test_garbage_and_long_gone_nodes_are_cleared(store: StateStore, clock: Clock) -> None:
    await store.hset("cap_share:r", {"junk": "not a figure", "old": f"{clock() - 120} 50"})
    node = CapShares(store, "a", TICK, clock)
    assert await node.update({"r": 2}) == {"r": 1.0}
    assert set(await store.hgetall("cap_share:r")) == {"a"}
