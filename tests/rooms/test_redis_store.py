"""The Redis store as a dependency that fails: bounded, refused as ``unavailable``, back by itself.

Each test runs its own redis-server (killed, restarted on the same port, or
frozen with SIGSTOP), never the session's shared one.
"""

from __future__ import annotations

import asyncio

import pytest
from redis_server import OwnRedis

from livehub.errors import Unavailable
from livehub.rooms.redis_store import RedisStore

BOUND = 15.0  # seconds any one call may take before the test fails


class Health(list[BaseException | None]):
    def __call__(self, error: BaseException | None) -> None:
        self.append(error)


async def test_a_killed_redis_is_refused_at_once_and_the_store_resumes_by_itself(
    own_redis: OwnRedis,
) -> None:
    health = Health()
    store = await RedisStore.connect(own_redis.start().url, on_health=health)
    try:
        await store.set("k", "before")
        for _ in range(8):  # several pooled connections, all stale after the restart
            await asyncio.gather(*(store.incr("n") for _ in range(8)))
        own_redis.kill()
        for call in (store.get("k"), store.incr("n"), store.hgetall("h"), store.sadd("s", "x")):
            with pytest.raises(Unavailable) as refused:
                await asyncio.wait_for(call, BOUND)
            assert refused.value.code == "unavailable"
            assert refused.value.to_dict()["details"]["retryable"] is True
        assert health and health[-1] is not None
        own_redis.start()
        # Every pooled connection is stale now: each is retried once, never surfaced.
        results = await asyncio.gather(*(store.set(f"k{i}", "after") for i in range(16)))
        assert results == [None] * 16
        assert await store.get("k0") == "after"
        assert health[-1] is None
    finally:
        await store.close()


async def test_a_frozen_redis_times_out_every_call(own_redis: OwnRedis) -> None:
    store = await RedisStore.connect(own_redis.start().url, wait_seconds=0.3)
    try:
        await store.set("k", "v")
        own_redis.freeze()
        with pytest.raises(Unavailable):
            await asyncio.wait_for(store.get("k"), BOUND)
        own_redis.thaw()
        assert await asyncio.wait_for(store.get("k"), BOUND) == "v"
    finally:
        await store.close()


async def test_a_burst_larger_than_the_pool_waits_for_connections(own_redis: OwnRedis) -> None:
    store = await RedisStore.connect(own_redis.start().url, pool_size=3)
    try:
        counts = await asyncio.gather(*(store.incr("burst") for _ in range(300)))
        assert sorted(counts) == list(range(1, 301))
    finally:
        await store.close()
