"""Media ownership claims, on the in-memory store and on a real Redis.

Two ``MediaOwnership`` objects on one store (or two Redis clients) stand for two
nodes. Expiry moves a fake clock for memory and really sleeps for Redis, so the
claims' ttl here is short.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from fake_clock import Clock

from livehub.media.ownership import MediaOwnership, Node, owner_key
from livehub.rooms.memory_store import MemoryStore
from livehub.rooms.redis_store import RedisStore
from livehub.rooms.store import StateStore

TTL = 0.3
A = Node("node-a", "http://127.0.0.1:8001")
B = Node("node-b", "https://b.example/live")

Advance = Callable[[float], Awaitable[None]]


@pytest.fixture
def clock() -> Clock:
    return Clock(1000.0)


@pytest.fixture(params=["memory", "redis"])
async def stores(
    request: pytest.FixtureRequest, clock: Clock
) -> AsyncIterator[tuple[StateStore, StateStore]]:
    """Each node's handle on the shared state."""
    if request.param == "memory":
        shared = MemoryStore(clock=clock)
        yield shared, shared
        await shared.close()
        return
    url = request.getfixturevalue("redis_url")
    first, second = await RedisStore.connect(url), await RedisStore.connect(url)
    yield first, second
    await first.close()
    await second.close()


@pytest.fixture
def advance(stores: tuple[StateStore, StateStore], clock: Clock) -> Advance:
    async def advance(seconds: float) -> None:
        if isinstance(stores[0], MemoryStore):
            clock.advance(seconds)
        else:
            await asyncio.sleep(seconds)

    return advance


@pytest.fixture
def nodes(stores: tuple[StateStore, StateStore]) -> tuple[MediaOwnership, MediaOwnership]:
    return MediaOwnership(stores[0], A, TTL), MediaOwnership(stores[1], B, TTL)


async def test_the_first_claim_wins_and_the_other_node_is_told_who_owns(
    nodes: tuple[MediaOwnership, MediaOwnership],
) -> None:
    a, b = nodes
    assert await a.owner("r1") is None and await b.elsewhere("r1") is None
    assert await a.claim("r1") is None, "a owns it now"
    assert await a.claim("r1") is None, "claiming again is refreshing"
    assert await b.claim("r1") == A
    assert await b.elsewhere("r1") == A and await a.elsewhere("r1") is None
    assert await b.owner("r2") is None, "claims are per room"
    await b.release("r1")
    assert await b.owner("r1") == A, "a node cannot release another node's claim"
    await a.release("r1")
    assert await b.owner("r1") is None
    assert await b.claim("r1") is None and await a.elsewhere("r1") == B


async def test_a_claim_lapses_unless_kept(
    nodes: tuple[MediaOwnership, MediaOwnership], advance: Advance
) -> None:
    a, b = nodes
    await a.claim("kept")
    await a.claim("left")
    for _ in range(3):
        await advance(TTL * 0.6)
        await a.keep(["kept"])
    assert await b.owner("kept") == A
    assert await b.owner("left") is None, "a dead node's claim goes away by itself"
    assert await b.claim("left") is None
    await a.keep(["left"])
    assert await a.owner("left") == B, "keeping does not take a claim from another node"
    await b.release("kept")
    await a.release("kept")
    await a.keep(["kept"])
    assert await b.owner("kept") == A, "keeping a room whose claim vanished claims it again"


async def test_a_value_that_is_not_a_claim_is_nobody_and_is_overwritten(
    stores: tuple[StateStore, StateStore], nodes: tuple[MediaOwnership, MediaOwnership]
) -> None:
    a, _ = nodes
    await stores[0].set(owner_key("odd"), "not a claim")
    assert await a.owner("odd") is None
    assert await a.claim("odd") is None and await a.owner("odd") == A


def test_nodes_validate_and_round_trip() -> None:
    assert Node.parse(A.encode()) == A and Node.parse(B.encode()) == B
    for raw in ("", "x", "id ftp://host", "id http://host/", " http://host"):
        assert Node.parse(raw) is None, raw
    with pytest.raises(ValueError):
        Node("two words", "http://host")
    with pytest.raises(ValueError):
        MediaOwnership(MemoryStore(), A, ttl=0)


async def test_a_restarted_node_forgets_its_previous_runs_claims(
    stores: tuple[StateStore, StateStore],
) -> None:
    before = MediaOwnership(stores[0], A, 30.0)  # killed: its claim would stay 30 s
    assert await before.claim("show") is None
    other = MediaOwnership(stores[1], B, 30.0)
    assert await other.claim("talk") is None
    again = MediaOwnership(stores[1], Node("node-a2", A.url), 30.0)  # same URL, new run
    assert await again.forget_previous_run("show") is True
    assert await again.owner("show") is None
    assert await again.claim("show") is None, "a publisher is accepted at once"
    assert await again.forget_previous_run("show") is False, "its own claim stays"
    assert await again.forget_previous_run("talk") is False, "another node's claim stays"
    assert await again.owner("talk") == B
    assert await again.forget_previous_run("nothing") is False
