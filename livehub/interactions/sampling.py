"""Fair sampling of danmaku in hot rooms.

Each tick a room's new messages are sampled once, down to what the room's
per-viewer cap (a :class:`TokenBucket`) has left, and the one sample is encoded
once and shared by every viewer. Staff messages (``priority``) always get
through; the rest of the budget goes round-robin over senders, so one spammer
cannot crowd everybody else out.

A budget of ``None`` means unlimited. ``0`` is a real budget: only priority
messages get through. (A tick of a hot room with a low cap often has a budget
of 0, and that must not mean "everything".)
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import TypeVar

T = TypeVar("T")

# Caps, shares and tick lengths are decimals (0.1 s); keep them exact, so ten
# ticks of 0.3 messages make 3 messages and not 2.9999999.
_MAX_DENOMINATOR = 1_000_000


def sample_fair(
    messages: Sequence[T],
    budget: int | None,
    sender: Callable[[T], str],
    priority: Callable[[T], bool],
    rng: random.Random,
) -> tuple[list[T], int]:
    """(the kept messages in their original order, how many were dropped).

    Priority messages are always kept and count against ``budget``; the rest of
    the budget is shared round-robin over the other messages' senders, taken in
    a random order from ``rng``, each sender's oldest message first.
    ``budget=None`` keeps everything.
    """
    if budget is not None and budget < 0:
        raise ValueError(f"budget must be None or >= 0, not {budget}")
    if budget is None or len(messages) <= budget:
        return list(messages), 0
    keep = [priority(message) for message in messages]
    spare = budget - sum(keep)
    if spare > 0:
        for index in _round_robin(_queues(messages, keep, sender), spare, rng):
            keep[index] = True
    kept = [message for message, wanted in zip(messages, keep, strict=True) if wanted]
    return kept, len(messages) - len(kept)


def _queues(
    messages: Sequence[T], taken: list[bool], sender: Callable[[T], str]
) -> list[list[int]]:
    """Indices of the messages not yet taken, grouped by sender, oldest first."""
    queues: dict[str, list[int]] = {}
    for index, message in enumerate(messages):
        if not taken[index]:
            queues.setdefault(sender(message), []).append(index)
    return list(queues.values())


def _round_robin(queues: list[list[int]], spare: int, rng: random.Random) -> list[int]:
    """Up to ``spare`` indices: one per sender per round, senders in a random order."""
    rng.shuffle(queues)
    chosen: list[int] = []
    depth = 0
    while spare > 0 and queues:
        queues = [queue for queue in queues if len(queue) > depth]
        round_ = [queue[depth] for queue in queues[:spare]]
        chosen.extend(round_)
        spare -= len(round_)
        depth += 1
    return chosen


#: how much unused budget a bucket holds: one second's worth of its rate
BURST_SECONDS = 1


class TokenBucket:
    """A per-viewer cap of ``rate`` messages a second, as a token bucket.

    The bucket refills at ``rate`` with the time that passes (``now`` comes from
    the caller's clock) and holds at most one second's worth (never less than one
    message), so a burst below the cap per second goes out whole while a rate
    above it is held to it. It starts full. Fractions of a message carry over, so
    5/s drained every 100 ms gives 1, 0, 1, 0... rather than 0 every tick.
    A ``rate`` of 0 means unlimited.
    """

    __slots__ = ("_last", "_rate", "_tokens")

    def __init__(self, rate: float, now: float) -> None:
        _check_rate(rate)
        self._rate = _exact(rate)
        self._last = now
        self._tokens = self._capacity()

    @property
    def unlimited(self) -> bool:
        return self._rate == 0

    def _capacity(self) -> Fraction:
        return max(Fraction(1), self._rate * BURST_SECONDS)

    def _refill(self, now: float) -> None:
        elapsed = _exact(max(0.0, now - self._last))
        self._last = max(self._last, now)
        self._tokens = min(self._capacity(), _exact(self._tokens + self._rate * elapsed))

    def available(self, now: float) -> int | None:
        """The whole messages the bucket holds now, the budget for :func:`sample_fair`;
        ``None`` when unlimited."""
        if self.unlimited:
            return None
        self._refill(now)
        return math.floor(self._tokens)

    def spend(self, count: int) -> None:
        """``count`` messages went out (priority ones beyond the budget leave no debt)."""
        if not self.unlimited:
            self._tokens = max(Fraction(0), self._tokens - count)

    def set_rate(self, rate: float, now: float) -> None:
        """A new rate from ``now`` on (the cap changed, or this node's share of it).

        The time until ``now`` refills at the old rate; the bucket then keeps how
        full it is, so budget that was not used under one share is not lost, nor
        multiplied, under another: buckets of shares that add up to one hold one
        second of the cap between them. A bucket that was unlimited starts full.
        """
        _check_rate(rate)
        exact = _exact(rate)
        if exact == self._rate:
            return
        if self.unlimited or exact == 0:
            self._rate, self._last = exact, now
            self._tokens = self._capacity()
            return
        self._refill(now)
        fill = self._tokens / self._capacity()
        self._rate = exact
        self._tokens = _exact(fill * self._capacity())


def _check_rate(rate: float) -> None:
    if rate < 0:
        raise ValueError(f"rate must be >= 0, not {rate}")


def _exact(value: float | Fraction) -> Fraction:
    return Fraction(value).limit_denominator(_MAX_DENOMINATOR)
