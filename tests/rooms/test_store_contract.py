"""One contract suite for every StateStore implementation.

Each test runs against MemoryStore (with a fake clock) and RedisStore (on a
real redis-server). Expiry is exercised with ``advance``, which moves the fake
clock for memory and really sleeps for Redis, so TTLs here stay short.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from fake_clock import Clock
from redis.exceptions import ResponseError

from livehub.rooms.memory_store import MemoryStore
from livehub.rooms.redis_store import RedisStore
from livehub.rooms.store import StateStore

Advance = Callable[[float], Awaitable[None]]
# What a store raises for arithmetic on a value that is not a number.
NOT_A_NUMBER = (ValueError, ResponseError)


def expires_within(left: float | None, low: float, high: float) -> bool:
    """A ttl() answer in (low, high], allowing for float rounding."""
    return left is not None and low < left <= high + 1e-9


@pytest.fixture
def clock() -> Clock:
    return Clock(1000.0)


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest, clock: Clock) -> AsyncIterator[StateStore]:
    instance: StateStore
    if request.param == "memory":
        instance = MemoryStore(clock=clock)
    else:
        instance = await RedisStore.connect(request.getfixturevalue("redis_url"))
    try:
        yield instance
    finally:
        await instance.close()


@pytest.fixture
async def peer(request: pytest.FixtureRequest, store: StateStore) -> AsyncIterator[StateStore]:
    """A second handle on the same state: another client (Redis) or the same store."""
    if not isinstance(store, RedisStore):
        yield store
        return
    other = await RedisStore.connect(request.getfixturevalue("redis_url"))
    try:
        yield other
    finally:
        await other.close()


@pytest.fixture
def advance(store: StateStore, clock: Clock) -> Advance:
    async def advance(seconds: float) -> None:
        if isinstance(store, MemoryStore):
            clock.advance(seconds)
        else:
            await asyncio.sleep(seconds)

    return advance


@pytest.fixture
def wrong_type(store: StateStore) -> type[Exception]:
    return TypeError if isinstance(store, MemoryStore) else ResponseError


# -- strings and expiry ------------------------------------------------------


async def test_get_set_overwrite(store: StateStore) -> None:
    assert await store.get("k") is None
    await store.set("k", "one")
    assert await store.get("k") == "one"
    await store.set("k", "two")
    assert await store.get("k") == "two"
    assert await store.get("other") is None
    assert await store.ttl("k") is None


async def test_set_with_ttl_expires(store: StateStore, advance: Advance) -> None:
    await store.set("k", "v", ttl=0.2)
    await store.set("kept", "v")
    left = await store.ttl("k")
    assert expires_within(left, 0, 0.2)
    assert await store.get("k") == "v"
    await advance(0.3)
    assert await store.get("k") is None
    assert await store.ttl("k") is None
    assert await store.delete("k") == 0
    assert await store.get("kept") == "v"


async def test_fractional_ttl_is_kept_in_milliseconds(store: StateStore) -> None:
    await store.set("k", "v", ttl=1.5)
    left = await store.ttl("k")
    assert expires_within(left, 1.4, 1.5)
    assert await store.set_if_absent("n", "v", ttl=2.25)
    left = await store.ttl("n")
    assert expires_within(left, 2.15, 2.25)


async def test_plain_set_clears_expiry(store: StateStore, advance: Advance) -> None:
    await store.set("k", "v", ttl=0.2)
    await store.set("k", "w")
    assert await store.ttl("k") is None
    await advance(0.3)
    assert await store.get("k") == "w"


async def test_ttl_must_be_positive(store: StateStore) -> None:
    with pytest.raises(ValueError):
        await store.set("k", "v", ttl=0)
    with pytest.raises(ValueError):
        await store.set_if_absent("k", "v", ttl=-1)
    assert await store.get("k") is None


async def test_set_if_absent(store: StateStore, advance: Advance) -> None:
    assert await store.set_if_absent("k", "first", ttl=0.2) is True
    assert await store.set_if_absent("k", "second") is False
    assert await store.get("k") == "first"
    left = await store.ttl("k")
    assert expires_within(left, 0, 0.2)
    await advance(0.3)
    assert await store.set_if_absent("k", "third") is True
    assert await store.get("k") == "third"
    assert await store.ttl("k") is None


async def test_set_if_absent_sees_other_types(store: StateStore) -> None:
    await store.sadd("s", "m")
    assert await store.set_if_absent("s", "v") is False
    assert await store.smembers("s") == {"m"}


async def test_set_if_absent_concurrent_has_one_winner(store: StateStore, peer: StateStore) -> None:
    handles = [store, peer]
    results = await asyncio.gather(
        *(handles[i % 2].set_if_absent("lock", f"owner-{i}", ttl=5) for i in range(50))
    )
    assert results.count(True) == 1
    winner = results.index(True)
    assert await store.get("lock") == f"owner-{winner}"
    assert await peer.get("lock") == f"owner-{winner}"


async def test_delete_counts_existing_keys_of_any_type(store: StateStore) -> None:
    await store.set("a", "1")
    await store.set("b", "2")
    await store.hset("h", {"f": "v"})
    await store.sadd("s", "m")
    assert await store.delete() == 0
    assert await store.delete("a", "missing", "h", "s") == 3
    assert await store.get("a") is None
    assert await store.hgetall("h") == {}
    assert await store.smembers("s") == set()
    assert await store.get("b") == "2"
    assert await store.delete("a", "b") == 1


# -- counters ----------------------------------------------------------------


async def test_incr(store: StateStore) -> None:
    assert await store.incr("n") == 1
    assert await store.incr("n", 5) == 6
    assert await store.incr("n", -10) == -4
    assert await store.get("n") == "-4"
    await store.set("m", "41")
    assert await store.incr("m") == 42


async def test_incr_keeps_expiry(store: StateStore) -> None:
    await store.set("n", "5", ttl=10)
    assert await store.incr("n") == 6
    left = await store.ttl("n")
    assert expires_within(left, 9, 10)


async def test_incr_rejects_non_integers(store: StateStore) -> None:
    await store.set("n", "abc")
    with pytest.raises(NOT_A_NUMBER):
        await store.incr("n")
    assert await store.get("n") == "abc"


async def test_incr_concurrent_is_exact(store: StateStore, peer: StateStore) -> None:
    handles = [store, peer]
    results = await asyncio.gather(*(handles[i % 2].incr("n") for i in range(200)))
    assert sorted(results) == list(range(1, 201))
    assert await store.get("n") == "200"


async def test_set_max_is_monotonic(store: StateStore) -> None:
    assert await store.set_max("m", 5) == 5
    assert await store.get("m") == "5"
    assert await store.set_max("m", 3) == 5
    assert await store.get("m") == "5"
    assert await store.set_max("m", 5) == 5
    assert await store.set_max("m", 10**12) == 10**12
    assert await store.get("m") == str(10**12)
    assert await store.set_max("neg", -7) == -7
    assert await store.get("neg") == "-7"


async def test_set_max_keeps_expiry_and_rejects_non_integers(store: StateStore) -> None:
    await store.set("m", "1", ttl=10)
    assert await store.set_max("m", 4) == 4
    left = await store.ttl("m")
    assert expires_within(left, 9, 10)
    await store.set("bad", "x")
    with pytest.raises(NOT_A_NUMBER):
        await store.set_max("bad", 1)
    assert await store.get("bad") == "x"


async def test_set_max_concurrent(store: StateStore, peer: StateStore) -> None:
    values = list(range(200))
    random.Random(7).shuffle(values)
    handles = [store, peer]
    results = await asyncio.gather(
        *(handles[i % 2].set_max("m", value) for i, value in enumerate(values))
    )
    assert all(result >= value for result, value in zip(results, values, strict=True))
    assert max(results) == 199
    assert await store.get("m") == "199"


# -- hashes ------------------------------------------------------------------


async def test_hash_operations(store: StateStore) -> None:
    assert await store.hgetall("h") == {}
    assert await store.hget("h", "a") is None
    assert await store.hlen("h") == 0
    await store.hset("h", {"a": "1", "b": "2"})
    assert await store.hget("h", "a") == "1"
    assert await store.hget("h", "zz") is None
    await store.hset("h", {"a": "3", "c": "4"})
    assert await store.hgetall("h") == {"a": "3", "b": "2", "c": "4"}
    assert await store.hlen("h") == 3
    await store.hset("h", {})
    assert await store.hlen("h") == 3


async def test_hdel_counts_and_empty_hash_vanishes(store: StateStore) -> None:
    assert await store.hdel("h", "a") == 0
    await store.hset("h", {"a": "1", "b": "2", "c": "3"})
    assert await store.hdel("h") == 0
    assert await store.hdel("h", "a", "zz") == 1
    assert await store.hgetall("h") == {"b": "2", "c": "3"}
    assert await store.hdel("h", "b", "c") == 2
    assert await store.hlen("h") == 0
    assert await store.delete("h") == 0


async def test_hset_on_expired_key_starts_a_fresh_hash(store: StateStore, advance: Advance) -> None:
    await store.set("h", "x", ttl=0.2)
    await advance(0.3)
    await store.hset("h", {"a": "1"})
    assert await store.hgetall("h") == {"a": "1"}
    assert await store.ttl("h") is None


async def test_hincr(store: StateStore) -> None:
    assert await store.hincr("h", "n") == 1
    assert await store.hincr("h", "n", 10) == 11
    assert await store.hincr("h", "n", -12) == -1
    assert await store.hget("h", "n") == "-1"
    assert await store.hincr("h", "other", 3) == 3
    assert await store.hgetall("h") == {"n": "-1", "other": "3"}
    await store.hset("h", {"bad": "x"})
    with pytest.raises(NOT_A_NUMBER):
        await store.hincr("h", "bad")


async def test_hincr_concurrent_is_exact(store: StateStore, peer: StateStore) -> None:
    handles = [store, peer]
    results = await asyncio.gather(*(handles[i % 2].hincr("h", "n", 2) for i in range(200)))
    assert sorted(results) == list(range(2, 401, 2))
    assert await store.hget("h", "n") == "400"


async def test_hincr_float(store: StateStore) -> None:
    assert await store.hincr_float("h", "x", 1.5) == 1.5
    assert await store.hincr_float("h", "x", 2.25) == 3.75
    assert await store.hincr_float("h", "x", -4.0) == pytest.approx(-0.25)
    assert float(await store.hget("h", "x") or "nan") == pytest.approx(-0.25)
    assert await store.hincr_float("h", "whole", 1.0) == 1.0
    assert await store.hincr_float("h", "whole", 1.0) == 2.0
    assert await store.hget("h", "whole") == "2"


async def test_hincr_float_concurrent(store: StateStore, peer: StateStore) -> None:
    handles = [store, peer]
    await asyncio.gather(*(handles[i % 2].hincr_float("h", "x", 0.5) for i in range(100)))
    assert float(await store.hget("h", "x") or "nan") == pytest.approx(50.0)


# -- sets --------------------------------------------------------------------


async def test_set_operations(store: StateStore) -> None:
    assert await store.smembers("s") == set()
    assert await store.sismember("s", "a") is False
    assert await store.sadd("s") == 0
    assert await store.sadd("s", "a", "b", "a") == 2
    assert await store.sadd("s", "b", "c") == 1
    assert await store.smembers("s") == {"a", "b", "c"}
    assert await store.sismember("s", "b") is True
    assert await store.sismember("s", "zz") is False
    assert await store.srem("s", "a", "zz") == 1
    assert await store.srem("missing", "a") == 0
    assert await store.smembers("s") == {"b", "c"}
    assert await store.srem("s", "b", "c") == 2
    assert await store.smembers("s") == set()
    assert await store.delete("s") == 0


async def test_smembers_returns_a_copy(store: StateStore) -> None:
    await store.sadd("s", "a")
    members = await store.smembers("s")
    members.add("b")
    assert await store.smembers("s") == {"a"}
    fields = await store.hgetall("h")
    fields["x"] = "1"
    assert await store.hlen("h") == 0


# -- wrong types -------------------------------------------------------------


async def test_wrong_type_raises(store: StateStore, wrong_type: type[Exception]) -> None:
    await store.set("str", "v")
    await store.hset("hash", {"f": "v"})
    await store.sadd("set", "m")
    attempts: list[Callable[[], Awaitable[object]]] = [
        lambda: store.get("hash"),
        lambda: store.incr("set"),
        lambda: store.set_max("hash", 1),
        lambda: store.hget("str", "f"),
        lambda: store.hset("set", {"f": "v"}),
        lambda: store.hgetall("str"),
        lambda: store.hdel("set", "f"),
        lambda: store.hincr("str", "f"),
        lambda: store.hincr_float("set", "f", 1.0),
        lambda: store.hlen("str"),
        lambda: store.sadd("hash", "m"),
        lambda: store.srem("str", "m"),
        lambda: store.sismember("hash", "m"),
        lambda: store.smembers("str"),
        lambda: store.take_token("str", rate=1, burst=1, now=0),
    ]
    for attempt in attempts:
        with pytest.raises(wrong_type):
            await attempt()
    assert await store.get("str") == "v"
    assert await store.hgetall("hash") == {"f": "v"}
    assert await store.smembers("set") == {"m"}


async def test_set_replaces_any_type(store: StateStore, wrong_type: type[Exception]) -> None:
    await store.hset("k", {"f": "v"})
    await store.set("k", "plain")
    assert await store.get("k") == "plain"
    with pytest.raises(wrong_type):
        await store.hgetall("k")


# -- token bucket ------------------------------------------------------------


async def test_bucket_allows_burst_then_refuses(store: StateStore) -> None:
    now = 1_700_000_000.0
    for _ in range(5):
        assert await store.take_token("b", rate=2, burst=5, now=now) == 0.0
    wait = await store.take_token("b", rate=2, burst=5, now=now)
    assert wait == pytest.approx(0.5)
    # The refusal took nothing: asking again says the same.
    assert await store.take_token("b", rate=2, burst=5, now=now) == pytest.approx(0.5)
    assert await store.take_token("b", rate=2, burst=5, now=now + 0.25) == pytest.approx(0.25)
    assert await store.take_token("b", rate=2, burst=5, now=now + 0.5) == 0.0
    assert await store.take_token("b", rate=2, burst=5, now=now + 0.5) == pytest.approx(0.5)


async def test_bucket_refusal_takes_nothing(store: StateStore) -> None:
    now = 500.0
    assert await store.take_token("b", rate=1, burst=3, now=now, cost=2) == 0.0
    assert await store.take_token("b", rate=1, burst=3, now=now, cost=2) == pytest.approx(1.0)
    assert await store.take_token("b", rate=1, burst=3, now=now, cost=1) == 0.0
    assert await store.take_token("b", rate=1, burst=3, now=now, cost=1) == pytest.approx(1.0)
    assert await store.take_token("b", rate=1, burst=3, now=now, cost=0.5) == pytest.approx(0.5)


async def test_bucket_refill_is_capped_at_burst(store: StateStore) -> None:
    now = 10.0
    assert await store.take_token("b", rate=1, burst=2, now=now, cost=2) == 0.0
    later = now + 1000
    assert await store.take_token("b", rate=1, burst=2, now=later, cost=2) == 0.0
    assert await store.take_token("b", rate=1, burst=2, now=later) == pytest.approx(1.0)


async def test_bucket_fractional_refill(store: StateStore) -> None:
    now = 1_700_000_000.125
    assert await store.take_token("b", rate=10, burst=1, now=now) == 0.0
    assert await store.take_token("b", rate=10, burst=1, now=now + 0.04) == pytest.approx(0.06)
    assert await store.take_token("b", rate=10, burst=1, now=now + 0.1) == 0.0


async def test_buckets_are_independent(store: StateStore) -> None:
    assert await store.take_token("a", rate=1, burst=1, now=0) == 0.0
    assert await store.take_token("a", rate=1, burst=1, now=0) > 0
    assert await store.take_token("b", rate=1, burst=1, now=0) == 0.0


async def test_bucket_clock_going_back_mints_nothing(store: StateStore) -> None:
    assert await store.take_token("b", rate=1, burst=1, now=100) == 0.0
    assert await store.take_token("b", rate=1, burst=1, now=50) == pytest.approx(1.0)
    assert await store.take_token("b", rate=1, burst=1, now=100.5) == pytest.approx(0.5)


async def test_bucket_concurrent_takes_exactly_burst(store: StateStore, peer: StateStore) -> None:
    handles = [store, peer]
    results = await asyncio.gather(
        *(handles[i % 2].take_token("b", rate=1, burst=10, now=0) for i in range(50))
    )
    assert results.count(0.0) == 10
    assert all(result > 0 for result in results if result != 0.0)


async def test_bucket_key_expires_once_full(store: StateStore, advance: Advance) -> None:
    assert await store.take_token("b", rate=4, burst=2, now=0) == 0.0
    left = await store.ttl("b")
    # One token short refills in 0.25 s, plus about a second of grace.
    assert expires_within(left, 1.0, 2 / 4 + 1.0)
    assert await store.take_token("c", rate=10, burst=1, now=0, cost=0.0) == 0.0
    left = await store.ttl("c")
    assert expires_within(left, 0.9, 1.0)


async def test_bucket_cost_above_burst_never_fits(store: StateStore) -> None:
    assert await store.take_token("b", rate=1, burst=2, now=0, cost=3) == math.inf
    assert await store.take_token("b", rate=1, burst=2, now=0, cost=2) == 0.0


async def test_bucket_rejects_bad_arguments(store: StateStore) -> None:
    with pytest.raises(ValueError):
        await store.take_token("b", rate=0, burst=1, now=0)
    with pytest.raises(ValueError):
        await store.take_token("b", rate=1, burst=0, now=0)
    with pytest.raises(ValueError):
        await store.take_token("b", rate=1, burst=1, now=math.nan)
    assert await store.get("b") is None


# -- memory only: injected clock and bounded memory --------------------------


async def test_memory_expiry_follows_injected_clock(clock: Clock) -> None:
    store = MemoryStore(clock=clock)
    await store.set("k", "v", ttl=5)
    clock.advance(4.9)
    assert await store.get("k") == "v"
    assert await store.ttl("k") == pytest.approx(0.1)
    clock.advance(0.1)
    assert await store.get("k") is None


async def test_memory_purges_keys_nobody_reads(clock: Clock) -> None:
    store = MemoryStore(clock=clock)
    for i in range(1000):
        await store.set(f"k{i}", "v", ttl=1)
    await store.sadd("kept", "m")
    assert store.size() == 1001
    clock.advance(2)
    for _ in range(100):
        if store.size() == 1:
            break
        await store.sismember("kept", "m")
    assert store.size() == 1


async def test_memory_rewriting_one_key_stays_small(clock: Clock) -> None:
    store = MemoryStore(clock=clock)
    for _ in range(10_000):
        await store.set("k", "v", ttl=60)
        await store.take_token("bucket", rate=1, burst=5, now=clock())
    # Internal expiry index: stale entries must be compacted away.
    assert len(store._heap) < 200
    assert store.size() == 2


async def test_memory_idle_bucket_is_forgotten(clock: Clock) -> None:
    store = MemoryStore(clock=clock)
    assert await store.take_token("b", rate=1, burst=3, now=clock()) == 0.0
    assert store.size() == 1
    clock.advance(1.5)
    assert await store.hlen("b") == 2  # full again after 1 s, kept 1 s longer
    clock.advance(1)
    await store.get("unrelated")
    assert store.size() == 0
    # And it comes back full.
    for _ in range(3):
        assert await store.take_token("b", rate=1, burst=3, now=clock()) == 0.0
