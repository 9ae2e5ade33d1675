"""Redis StateStore, shared by every node of a deployment.

Single commands are atomic in Redis already; the read-modify-write operations
(``set_max``, ``take_token``) run as Lua scripts registered once per instance.
Redis raises its own ``ResponseError`` when a key holds another type.
"""

from __future__ import annotations

import builtins
import math

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.typing import EncodableT, FieldT

from livehub.rooms.store import BUCKET_GRACE, BUCKET_SLACK, check_bucket

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


class RedisStore:
    """StateStore on a Redis server through redis-py's asyncio client.

    The client must be created with ``decode_responses=True``.
    """

    def __init__(self, client: Redis) -> None:
        self._client = client
        self._set_max: AsyncScript = client.register_script(_SET_MAX)
        self._take_token: AsyncScript = client.register_script(_TAKE_TOKEN)

    @classmethod
    async def connect(cls, url: str) -> RedisStore:
        """Connect to ``url`` and check the server answers."""
        client = Redis.from_url(url, decode_responses=True)
        try:
            await client.ping()
        except BaseException:
            await client.aclose()
            raise
        return cls(client)

    # -- strings -----------------------------------------------------------

    async def get(self, key: str) -> str | None:
        return _opt_str(await self._client.get(key))

    async def set(self, key: str, value: str, ttl: float | None = None) -> None:
        await self._client.set(key, value, px=_ttl_ms(ttl))

    async def set_if_absent(self, key: str, value: str, ttl: float | None = None) -> bool:
        return bool(await self._client.set(key, value, px=_ttl_ms(ttl), nx=True))

    async def delete(self, *keys: str) -> int:
        if not keys:
            return 0
        return int(await self._client.delete(*keys))

    async def ttl(self, key: str) -> float | None:
        millis = int(await self._client.pttl(key))
        return None if millis < 0 else millis / 1000

    async def incr(self, key: str, by: int = 1) -> int:
        return int(await self._client.incrby(key, by))

    async def set_max(self, key: str, value: int) -> int:
        return int(await self._set_max(keys=[key], args=[int(value)]))

    # -- hashes ------------------------------------------------------------

    async def hget(self, key: str, field: str) -> str | None:
        return _opt_str(await self._client.hget(key, field))

    async def hset(self, key: str, mapping: dict[str, str]) -> None:
        if mapping:
            fields: dict[FieldT, EncodableT] = {name: text for name, text in mapping.items()}
            await self._client.hset(key, mapping=fields)

    async def hgetall(self, key: str) -> dict[str, str]:
        found = await self._client.hgetall(key)
        return {str(field): str(value) for field, value in found.items()}

    async def hdel(self, key: str, *fields: str) -> int:
        if not fields:
            return 0
        return int(await self._client.hdel(key, *fields))

    async def hincr(self, key: str, field: str, by: int = 1) -> int:
        return int(await self._client.hincrby(key, field, by))

    async def hincr_float(self, key: str, field: str, by: float) -> float:
        return float(await self._client.hincrbyfloat(key, field, by))

    async def hlen(self, key: str) -> int:
        return int(await self._client.hlen(key))

    # -- sets --------------------------------------------------------------

    async def sadd(self, key: str, *members: str) -> int:
        if not members:
            return 0
        return int(await self._client.sadd(key, *members))

    async def srem(self, key: str, *members: str) -> int:
        if not members:
            return 0
        return int(await self._client.srem(key, *members))

    async def sismember(self, key: str, member: str) -> bool:
        return bool(await self._client.sismember(key, member))

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
