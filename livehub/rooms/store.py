"""The state store: live state and counters shared by every node.

One small interface of atomic primitives, an in-memory implementation (the
default, one process) and a Redis implementation (several processes). The
domain composes these primitives under its own key names; nothing here knows
about rooms. Redis holds live state only: the durable copy of everything is the
event log.

Both implementations pass the same contract suite (tests/rooms/test_store_contract.py).
"""

from __future__ import annotations

import builtins
import math
from typing import Protocol

# Token buckets (``take_token``) work alike in every implementation. A bucket's key
# lives this long after it would be full again:
BUCKET_GRACE = 1.0
# and a take may be short by this many seconds of refill and still succeed: wall-clock
# timestamps near 1.7e9 only resolve to ~0.2 µs, so exact periods round short.
BUCKET_SLACK = 1e-6


class StateStore(Protocol):
    """Atomic key/value, counter, hash and set operations with optional expiry.

    ``ttl`` values are seconds. Every method is atomic on its own: two nodes
    calling ``set_if_absent`` on one key at the same instant see exactly one
    ``True``.
    """

    async def get(self, key: str) -> str | None: ...

    async def set(self, key: str, value: str, ttl: float | None = None) -> None: ...

    async def set_if_absent(self, key: str, value: str, ttl: float | None = None) -> bool:
        """Set only when the key does not exist; True when this call set it."""
        ...

    async def delete(self, *keys: str) -> int:
        """Delete keys; returns how many existed."""
        ...

    async def ttl(self, key: str) -> float | None:
        """Seconds left before the key expires; None when absent or without expiry."""
        ...

    async def incr(self, key: str, by: int = 1) -> int: ...

    async def set_max(self, key: str, value: int) -> int:
        """Raise the integer at key to ``value`` if lower; returns the stored maximum."""
        ...

    async def hget(self, key: str, field: str) -> str | None: ...

    async def hset(self, key: str, mapping: dict[str, str]) -> None: ...

    async def hgetall(self, key: str) -> dict[str, str]: ...

    async def hdel(self, key: str, *fields: str) -> int: ...

    async def hincr(self, key: str, field: str, by: int = 1) -> int: ...

    async def hincr_float(self, key: str, field: str, by: float) -> float: ...

    async def hlen(self, key: str) -> int: ...

    async def sadd(self, key: str, *members: str) -> int: ...

    async def srem(self, key: str, *members: str) -> int: ...

    async def sismember(self, key: str, member: str) -> bool: ...

    async def smembers(self, key: str) -> builtins.set[str]: ...

    async def take_token(
        self, key: str, rate: float, burst: float, now: float, cost: float = 1.0
    ) -> float:
        """Token bucket: take ``cost`` tokens refilled at ``rate``/s up to ``burst``.

        Returns 0.0 when the tokens were taken, otherwise the seconds to wait
        before enough tokens will be there (nothing is taken then).
        """
        ...

    async def close(self) -> None: ...


def check_bucket(rate: float, burst: float, now: float, cost: float) -> None:
    """Refuse ``take_token`` arguments no bucket can work with."""
    if not all(map(math.isfinite, (rate, burst, now, cost))):
        raise ValueError("token bucket arguments must be finite")
    if not (rate > 0 and burst > 0 and cost >= 0):
        raise ValueError(f"bad token bucket: rate={rate!r} burst={burst!r} cost={cost!r}")
