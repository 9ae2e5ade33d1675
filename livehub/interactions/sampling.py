"""Fair sampling of danmaku in hot rooms.

Each tick a room's new messages are sampled once, down to the per-viewer cap,
and the one sample is encoded once and shared by every viewer. Staff messages
(``priority``) always get through; the rest of the budget goes round-robin over
senders, so one spammer cannot crowd everybody else out.

A budget of ``None`` means unlimited. ``0`` is a real budget: only priority
messages get through. (A tick of a low cap, e.g. 5/s at 100 ms ticks, often has
a budget of 0, and that must not mean "everything".)
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import TypeVar

T = TypeVar("T")

# Caps and tick lengths are decimal settings (0.1 s); keep them exact, so ten
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


class TickBudget:
    """A per-viewer cap of ``max_per_second`` messages, handed out one tick at a time.

    Fractions of a message carry over to later ticks, so a cap of 5/s at 100 ms
    ticks gives 1, 0, 1, 0... rather than 0 every tick. The carry starts at one
    half, which rounds to the nearest message instead of down. Unused budget is
    not banked: a quiet room does not earn a burst. A cap of 0 means unlimited.
    """

    __slots__ = ("_carry", "_per_tick", "max_per_second", "tick_seconds")

    def __init__(self, max_per_second: float, tick_seconds: float) -> None:
        if max_per_second < 0:
            raise ValueError(f"max_per_second must be >= 0, not {max_per_second}")
        if tick_seconds <= 0:
            raise ValueError(f"tick_seconds must be > 0, not {tick_seconds}")
        self.max_per_second = max_per_second
        self.tick_seconds = tick_seconds
        self._per_tick = _exact(max_per_second) * _exact(tick_seconds)
        self._carry = Fraction(1, 2)

    @property
    def unlimited(self) -> bool:
        return self.max_per_second == 0

    def take(self) -> int | None:
        """This tick's budget for :func:`sample_fair`: ``None`` when unlimited."""
        if self.unlimited:
            return None
        self._carry += self._per_tick
        whole = math.floor(self._carry)
        self._carry -= whole
        return whole


def _exact(value: float) -> Fraction:
    return Fraction(value).limit_denominator(_MAX_DENOMINATOR)
