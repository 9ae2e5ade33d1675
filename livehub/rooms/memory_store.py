"""In-memory StateStore for a single process.

Every method is ``async`` but never awaits, so each call is atomic under
asyncio. Keys behave like Redis keys: a key holds one type (string, hash or
set), empty hashes and sets disappear, and keys may carry an expiry measured on
the injected clock. Expired keys are dropped lazily when touched, and a small
amount of purging of expired keys runs on every call so that keys nobody reads
again do not pile up.
"""

from __future__ import annotations

import builtins
import heapq
import math
import time
from collections.abc import Callable

from livehub.rooms.store import BUCKET_GRACE, BUCKET_SLACK, check_bucket

_Value = str | dict[str, str] | set[str]

# How many due expiry entries one call may purge, so no call stalls when many
# keys expire at once; the rest go on the following calls.
_PURGE_BUDGET = 128
# The expiry heap is rebuilt when stale entries (keys deleted or given a new
# expiry) outnumber live ones by this factor, so rewriting one key forever
# cannot grow it.
_HEAP_STALE_FACTOR = 2
_HEAP_MIN_REBUILD = 64

_BUCKET_TOKENS = "tokens"
_BUCKET_TS = "ts"


class MemoryStore:
    """StateStore held in this process's memory."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._data: dict[str, _Value] = {}
        self._expires: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []

    def size(self) -> int:
        """Keys held, counting expired keys that were not purged yet."""
        return len(self._data)

    # -- strings -----------------------------------------------------------

    async def get(self, key: str) -> str | None:
        return self._read_str(key, self._now())

    async def set(self, key: str, value: str, ttl: float | None = None) -> None:
        self._put(key, value, _check_ttl(ttl), self._now())

    async def set_if_absent(self, key: str, value: str, ttl: float | None = None) -> bool:
        ttl = _check_ttl(ttl)
        now = self._now()
        if self._lookup(key, now) is not None:
            return False
        self._put(key, value, ttl, now)
        return True

    async def delete(self, *keys: str) -> int:
        now = self._now()
        removed = 0
        for key in keys:
            if self._lookup(key, now) is not None:
                self._remove(key)
                removed += 1
        return removed

    async def ttl(self, key: str) -> float | None:
        now = self._now()
        if self._lookup(key, now) is None:
            return None
        deadline = self._expires.get(key)
        return None if deadline is None else deadline - now

    async def incr(self, key: str, by: int = 1) -> int:
        now = self._now()
        current = self._read_str(key, now)
        result = (0 if current is None else _parse_int(current, key)) + by
        self._data[key] = str(result)
        return result

    async def set_max(self, key: str, value: int) -> int:
        now = self._now()
        current = self._read_str(key, now)
        if current is not None:
            stored = _parse_int(current, key)
            if stored >= value:
                return stored
        self._data[key] = str(value)
        return value

    # -- hashes ------------------------------------------------------------

    async def hget(self, key: str, field: str) -> str | None:
        found = self._read_hash(key, self._now())
        return None if found is None else found.get(field)

    async def hset(self, key: str, mapping: dict[str, str]) -> None:
        if mapping:
            self._write_hash(key, self._now()).update(mapping)

    async def hgetall(self, key: str) -> dict[str, str]:
        found = self._read_hash(key, self._now())
        return {} if found is None else dict(found)

    async def hdel(self, key: str, *fields: str) -> int:
        found = self._read_hash(key, self._now())
        if found is None:
            return 0
        removed = 0
        for field in fields:
            if found.pop(field, None) is not None:
                removed += 1
        if not found:
            self._remove(key)
        return removed

    async def hincr(self, key: str, field: str, by: int = 1) -> int:
        found = self._write_hash(key, self._now())
        current = found.get(field)
        result = (0 if current is None else _parse_int(current, key)) + by
        found[field] = str(result)
        return result

    async def hincr_float(self, key: str, field: str, by: float) -> float:
        found = self._write_hash(key, self._now())
        current = found.get(field)
        result = (0.0 if current is None else _parse_float(current, key)) + by
        if not math.isfinite(result):
            raise ValueError(f"increment on {key!r} would produce {result}")
        found[field] = _format_float(result)
        return result

    async def hlen(self, key: str) -> int:
        found = self._read_hash(key, self._now())
        return 0 if found is None else len(found)

    # -- sets --------------------------------------------------------------

    async def sadd(self, key: str, *members: str) -> int:
        if not members:
            return 0
        found = self._write_set(key, self._now())
        before = len(found)
        found.update(members)
        return len(found) - before

    async def srem(self, key: str, *members: str) -> int:
        found = self._read_set(key, self._now())
        if found is None:
            return 0
        before = len(found)
        found.difference_update(members)
        removed = before - len(found)
        if not found:
            self._remove(key)
        return removed

    async def sismember(self, key: str, member: str) -> bool:
        found = self._read_set(key, self._now())
        return found is not None and member in found

    async def smembers(self, key: str) -> builtins.set[str]:
        found = self._read_set(key, self._now())
        return set() if found is None else set(found)

    # -- token bucket ------------------------------------------------------

    async def take_token(
        self, key: str, rate: float, burst: float, now: float, cost: float = 1.0
    ) -> float:
        check_bucket(rate, burst, now, cost)
        if cost > burst:
            return math.inf
        clock_now = self._now()
        state = self._read_hash(key, clock_now) or {}
        tokens, last = _bucket_state(state, key, burst, now)
        tokens = min(burst, tokens + max(0.0, now - last) * rate)
        wait = 0.0
        if tokens + rate * BUCKET_SLACK >= cost:
            tokens = max(0.0, tokens - cost)
        else:
            wait = (cost - tokens) / rate
        bucket = {_BUCKET_TOKENS: repr(tokens), _BUCKET_TS: repr(max(now, last))}
        self._put(key, bucket, (burst - tokens) / rate + BUCKET_GRACE, clock_now)
        return wait

    async def close(self) -> None:
        self._data.clear()
        self._expires.clear()
        self._heap.clear()

    # -- internals ---------------------------------------------------------

    def _now(self) -> float:
        """Read the clock and purge a bounded number of expired keys."""
        now = self._clock()
        heap = self._heap
        for _ in range(_PURGE_BUDGET):
            if not heap or heap[0][0] > now:
                break
            deadline, key = heapq.heappop(heap)
            if self._expires.get(key) == deadline:
                self._remove(key)
        return now

    def _lookup(self, key: str, now: float) -> _Value | None:
        deadline = self._expires.get(key)
        if deadline is not None and deadline <= now:
            self._remove(key)
            return None
        return self._data.get(key)

    def _put(self, key: str, value: _Value, ttl: float | None, now: float) -> None:
        self._data[key] = value
        if ttl is None:
            self._expires.pop(key, None)
            return
        deadline = now + ttl
        self._expires[key] = deadline
        heapq.heappush(self._heap, (deadline, key))
        if len(self._heap) > _HEAP_MIN_REBUILD + _HEAP_STALE_FACTOR * len(self._expires):
            self._heap = [(when, name) for name, when in self._expires.items()]
            heapq.heapify(self._heap)

    def _remove(self, key: str) -> None:
        self._data.pop(key, None)
        self._expires.pop(key, None)

    def _read_str(self, key: str, now: float) -> str | None:
        value = self._lookup(key, now)
        if value is None or isinstance(value, str):
            return value
        raise _wrong_type(key, value, "string")

    def _read_hash(self, key: str, now: float) -> dict[str, str] | None:
        value = self._lookup(key, now)
        if value is None or isinstance(value, dict):
            return value
        raise _wrong_type(key, value, "hash")

    def _write_hash(self, key: str, now: float) -> dict[str, str]:
        found = self._read_hash(key, now)
        if found is None:
            found = {}
            self._data[key] = found
        return found

    def _read_set(self, key: str, now: float) -> builtins.set[str] | None:
        value = self._lookup(key, now)
        if value is None or isinstance(value, set):
            return value
        raise _wrong_type(key, value, "set")

    def _write_set(self, key: str, now: float) -> builtins.set[str]:
        found = self._read_set(key, now)
        if found is None:
            found = set()
            self._data[key] = found
        return found


def _type_name(value: _Value) -> str:
    if isinstance(value, str):
        return "string"
    return "hash" if isinstance(value, dict) else "set"


def _wrong_type(key: str, value: _Value, wanted: str) -> TypeError:
    return TypeError(f"key {key!r} holds a {_type_name(value)}, not a {wanted}")


def _check_ttl(ttl: float | None) -> float | None:
    if ttl is not None and not ttl > 0:
        raise ValueError(f"ttl must be positive seconds, got {ttl!r}")
    return ttl


def _bucket_state(state: dict[str, str], key: str, burst: float, now: float) -> tuple[float, float]:
    """Tokens and last refill time of a bucket; a new bucket is full."""
    tokens = state.get(_BUCKET_TOKENS)
    last = state.get(_BUCKET_TS)
    if tokens is None or last is None:
        return burst, now
    return _parse_float(tokens, key), _parse_float(last, key)


def _parse_int(text: str, key: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"value at {key!r} is not an integer: {text!r}") from None


def _parse_float(text: str, key: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"value at {key!r} is not a number: {text!r}") from None


def _format_float(value: float) -> str:
    """Format like Redis does: integral values without a fractional part."""
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(value)
