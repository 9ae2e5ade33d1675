"""Redis StateStore, shared by every node of a deployment.

Single commands are atomic in Redis already; the read-modify-write operations
(``set_max``, ``take_token``) run as Lua scripts registered once per instance.
Redis raises its own ``ResponseError`` when a key holds another type.

Redis is a dependency that fails. The pool waits for a free connection (a
``BlockingConnectionPool``: a burst larger than the pool queues instead of
raising) for at most ``wait_seconds``, and every command is bounded by the
same socket timeout. A stale pooled connection (Redis restarted under it) is
retried once on a fresh one. Anything else that means "Redis is not answering"
(refused, reset, timed out, still loading its data set, no free connection in
time) is raised as ``Unavailable``: the caller refuses the event at once with a
retryable error and records nothing. ``on_health`` hears each change between
reachable and not (the node's health names the store while it fails).
"""

from __future__ import annotations

import builtins
import functools
import logging
import math
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, TypeVar

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.typing import EncodableT, FieldT

from livehub.errors import Unavailable
from livehub.rooms.store import BUCKET_GRACE, BUCKET_SLACK, check_bucket

log = logging.getLogger("livehub.store")

DEFAULT_POOL_SIZE = 200
DEFAULT_WAIT_SECONDS = 2.0
RETRY_AFTER = 1.0

HealthHook = Callable[[BaseException | None], None]  # None: answering again
P = ParamSpec("P")
R = TypeVar("R")

# KEYS[1] = key, ARGV[1] = integer; keeps any expiry, returns the stored maximum
# as a string so Lua's doubles never round it on the way out.
_SET_MAX = """
local current = redis.call('GET', KEYS[1])
if current then
  local stored = tonumber(current)
  if stored == nil then
    return redis.error_reply('ERR value is not an integer')
  end
  if stored >= tonumber(ARGV[1]) then
    return current
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'KEEPTTL')
return ARGV[1]
"""

# KEYS[1] = bucket hash {tokens, ts}; ARGV = rate, burst, now, cost, grace, slack.
# Returns the seconds to wait as a string (0 when taken). A take short by at
# most ``slack`` seconds of refill succeeds (float rounding of wall-clock
# timestamps). The key expires ``grace`` seconds after the bucket is full again.
_TAKE_TOKEN = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local grace = tonumber(ARGV[5])
local slack = tonumber(ARGV[6])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local last = tonumber(state[2])
if tokens == nil or last == nil then
  tokens = burst
  last = now
end
local elapsed = now - last
if elapsed < 0 then
  elapsed = 0
end
tokens = math.min(burst, tokens + elapsed * rate)
local wait = 0
if tokens + rate * slack >= cost then
  tokens = math.max(0, tokens - cost)
else
  wait = (cost - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens),
  'ts', string.format('%.17g', math.max(now, last)))
redis.call('PEXPIRE', KEYS[1], math.ceil(((burst - tokens) / rate + grace) * 1000))
return string.format('%.17g', wait)
"""


def _guarded(
    method: Callable[Concatenate[RedisStore, P], Awaitable[R]],
) -> Callable[Concatenate[RedisStore, P], Coroutine[Any, Any, R]]:
    """Redis not answering becomes ``Unavailable``; each change is told to ``on_health``."""

    @functools.wraps(method)
    async def call(self: RedisStore, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            result = await method(self, *args, **kwargs)
        except (RedisConnectionError, RedisTimeoutError, TimeoutError) as exc:
            self._health(exc)
            raise Unavailable(
                "The state store is not answering; try again shortly.", retry_after=RETRY_AFTER
            ) from exc
        if self._failing:
            self._health(None)
        return result

    return call


class RedisStore:
    """StateStore on a Redis server through redis-py's asyncio client.

    The client must be created with ``decode_responses=True``.
    """

    def __init__(self, client: Redis, on_health: HealthHook | None = None) -> None:
        self._client = client
        self._on_health = on_health
        self._failing = False
        self._set_max: AsyncScript = client.register_script(_SET_MAX)
        self._take_token: AsyncScript = client.register_script(_TAKE_TOKEN)

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        pool_size: int = DEFAULT_POOL_SIZE,
        wait_seconds: float = DEFAULT_WAIT_SECONDS,
        on_health: HealthHook | None = None,
    ) -> RedisStore:
        """Connect to ``url`` and check the server answers."""
        client = Redis.from_pool(client_pool(url, pool_size, wait_seconds))
        try:
            await client.ping()
        except BaseException:
            await client.aclose()
            raise
        return cls(client, on_health)

    def _health(self, error: BaseException | None) -> None:
        if error is not None and not self._failing and self._on_health is None:
            log.error("the state store stopped answering: %r", error)
        self._failing = error is not None
        if self._on_health is not None:
            self._on_health(error)

    # -- strings -----------------------------------------------------------

    @_guarded
    async def get(self, key: str) -> str | None:
        return _opt_str(await self._client.get(key))

    @_guarded
    async def set(self, key: str, value: str, ttl: float | None = None) -> None:
        await self._client.set(key, value, px=_ttl_ms(ttl))

    @_guarded
    async def set_if_absent(self, key: str, value: str, ttl: float | None = None) -> bool:
        return bool(await self._client.set(key, value, px=_ttl_ms(ttl), nx=True))

    @_guarded
    async def delete(self, *keys: str) -> int:
        if not keys:
            return 0
        return int(await self._client.delete(*keys))

    @_guarded
    async def ttl(self, key: str) -> float | None:
        millis = int(await self._client.pttl(key))
        return None if millis < 0 else millis / 1000

    @_guarded
    async def incr(self, key: str, by: int = 1) -> int:
        return int(await self._client.incrby(key, by))

    @_guarded
    async def set_max(self, key: str, value: int) -> int:
        return int(await self._set_max(keys=[key], args=[int(value)]))

    # -- hashes ------------------------------------------------------------

    @_guarded
    async def hget(self, key: str, field: str) -> str | None:
        return _opt_str(await self._client.hget(key, field))

    @_guarded
    async def hset(self, key: str, mapping: dict[str, str]) -> None:
        if mapping:
            fields: dict[FieldT, EncodableT] = {name: text for name, text in mapping.items()}
            await self._client.hset(key, mapping=fields)

    @_guarded
    async def hgetall(self, key: str) -> dict[str, str]:
        found = await self._client.hgetall(key)
        return {str(field): str(value) for field, value in found.items()}

    @_guarded
    async def hdel(self, key: str, *fields: str) -> int:
        if not fields:
            return 0
        return int(await self._client.hdel(key, *fields))

    @_guarded
    async def hincr(self, key: str, field: str, by: int = 1) -> int:
        return int(await self._client.hincrby(key, field, by))

    @_guarded
    async def hincr_float(self, key: str, field: str, by: float) -> float:
        return float(await self._client.hincrbyfloat(key, field, by))

    @_guarded
    async def hlen(self, key: str) -> int:
        return int(await self._client.hlen(key))

    # -- sets --------------------------------------------------------------

    @_guarded
    async def sadd(self, key: str, *members: str) -> int:
        if not members:
            return 0
        return int(await self._client.sadd(key, *members))

    @_guarded
    async def srem(self, key: str, *members: str) -> int:
        if not members:
            return 0
        return int(await self._client.srem(key, *members))

    @_guarded
    async def sismember(self, key: str, member: str) -> bool:
        return bool(await self._client.sismember(key, member))

    @_guarded
    async def smembers(self, key: str) -> builtins.set[str]:
        return {str(member) for member in await self._client.smembers(key)}

    # -- token bucket ------------------------------------------------------

    async def take_token(
        self, key: str, rate: float, burst: float, now: float, cost: float = 1.0
    ) -> float:
        check_bucket(rate, burst, now, cost)
        if cost > burst:
            return math.inf
        args = [repr(float(x)) for x in (rate, burst, now, cost, BUCKET_GRACE, BUCKET_SLACK)]
        return float(await self._take_token(keys=[key], args=args))

    async def close(self) -> None:
        await self._client.aclose()


def client_pool(
    url: str, size: int, wait_seconds: float, *, decode: bool = True
) -> BlockingConnectionPool:
    """A pool that waits up to ``wait_seconds`` for a connection, and as long for each command.

    One retry, at once and only on a broken connection: after a Redis restart every
    pooled connection is stale and the first command on each would fail.
    ``decode``: replies as str (the store) or bytes (python-socketio's pub/sub).
    """
    return BlockingConnectionPool.from_url(
        url,
        decode_responses=decode,
        max_connections=size,
        timeout=wait_seconds,
        socket_timeout=wait_seconds,
        socket_connect_timeout=wait_seconds,
        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        health_check_interval=30,
    )


def _ttl_ms(ttl: float | None) -> int | None:
    """Seconds to whole milliseconds (rounded up, at least 1) for PX."""
    if ttl is None:
        return None
    if not ttl > 0:
        raise ValueError(f"ttl must be positive seconds, got {ttl!r}")
    return max(1, math.ceil(ttl * 1000))


def _opt_str(value: bytes | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise TypeError("RedisStore needs a client created with decode_responses=True")
