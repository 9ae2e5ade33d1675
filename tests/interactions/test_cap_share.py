"""Several nodes share one room's danmaku cap, in proportion to their demand,
over both state stores (Redis is a real server) and a driven clock; each node's
share scales its token bucket, so together they keep one cap."""

from __future__ import annotations

import itertools
import random

import pytest
from fake_clock import Clock

from livehub.interactions.batcher import Batcher
from livehub.interactions.cap_share import STALE_SECONDS, CapShares
from livehub.interactions.messages import ChatMessage
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


class Node:
    """One node's half of the fan-out tick: demand -> share -> bucket -> batch."""

    def __init__(self, store: StateStore, name: str, clock: Clock) -> None:
        self.name = name
        self.batcher = Batcher(TICK, random.Random(name), clock)
        self.shares = CapShares(store, name, TICK, clock)
        self.serial = itertools.count()

    async def tick(self, cap: int, new: int) -> int:
        """``new`` viewer messages accepted here this tick; how many went out."""
        for _ in range(new):
            n = next(self.serial)
            self.batcher.add_message("r", cap, chat(f"v_{self.name}{n % 7}", n))
        for room, share in (await self.shares.update(self.batcher.demand())).items():
            self.batcher.set_share(room, share)
        return sum(len(batch.messages) for batch in self.batcher.drain())


def chat(viewer: str, n: int) -> ChatMessage:
    return ChatMessage(n, viewer, viewer, "viewer", "hi", "scroll", "#ffffff", None, 0.0)


async def run(
    nodes: list[Node], clock: Clock, cap: int, seconds: float, new: list[int]
) -> list[int]:
    """Ticks of both nodes for ``seconds``, ``new[i]`` messages at node i each tick;
    the messages each node sent out."""
    sent = [0] * len(nodes)
    for _ in range(round(seconds / TICK)):
        clock.advance(TICK)
        for i, node in enumerate(nodes):
            sent[i] += await node.tick(cap, new[i])
    return sent


async def test_the_nodes_buckets_keep_one_cap_between_them(store: StateStore, clock: Clock) -> None:
    cap, seconds = 20, 10
    nodes = [Node(store, name, clock) for name in ("a", "b")]
    await run(nodes, clock, cap, 2, [6, 2])  # the shares settle, the bursts are spent
    sent = await run(nodes, clock, cap, seconds, [6, 2])  # 80 a second for a cap of 20
    assert cap * seconds * 0.95 <= sum(sent) <= cap * seconds * 1.05  # one cap, not two
    assert sent[0] / sum(sent) == pytest.approx(0.75, abs=0.05)  # in proportion to demand

    # b goes quiet: once its figure is stale, a has the whole cap
    await run(nodes, clock, cap, STALE_SECONDS + 1, [6, 0])
    alone = await run(nodes, clock, cap, seconds, [6, 0])
    assert alone == [cap * seconds, 0]


async def test_a_burst_under_the_cap_goes_out_whole_after_a_hot_spell(
    store: StateStore, clock: Clock
) -> None:
    cap = 30
    nodes = [Node(store, name, clock) for name in ("a", "b")]
    await run(nodes, clock, cap, 3, [1, 20])  # b was hot: a's share shrank
    await run(nodes, clock, cap, 3, [0, 0])  # the room calms down
    greetings = await run(nodes, clock, cap, TICK, [5, 0])
    assert greetings == [5, 0]
    # a burst at both nodes at once, under the cap between them, goes out whole too
    await run(nodes, clock, cap, 3, [0, 0])
    assert await run(nodes, clock, cap, TICK, [4, 4]) == [4, 4]
