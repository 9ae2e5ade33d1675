"""Per-room batching of what viewers should see: one frame per room per tick.

Accepted messages, deletions and changed totals queue here; every tick the edge
drains each changed room into one batch, encodes it once and sends it to the
room. Each room's per-viewer cap is a token bucket refilled at the cap rate and
holding one second's worth, so a burst below the cap per second goes out whole
and sampling starts only when the sustained rate exceeds the cap; then the batch
is sampled fairly down to what the bucket holds. Host and moderator messages
are never sampled away.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import msgspec

from livehub.interactions.messages import ChatMessage
from livehub.interactions.sampling import TokenBucket, sample_fair
from livehub.rooms.models import STAFF_ROLES


class Batch(msgspec.Struct, frozen=True):
    room: str
    messages: list[ChatMessage]
    deleted: list[int]
    dropped: int


STATS_EVERY_SECONDS = 1.0


#: the smallest cap a share leaves a node (a cap of 0 would mean unlimited)
MIN_SHARED_CAP = 0.1


class _Pending:
    __slots__ = (
        "budget",
        "cap",
        "deleted",
        "demand",
        "messages",
        "quiet_ticks",
        "share",
        "stats_changed",
    )

    def __init__(self, cap: int, budget: TokenBucket, quiet_ticks: int) -> None:
        self.messages: list[ChatMessage] = []
        self.deleted: list[int] = []
        self.stats_changed = False
        self.quiet_ticks = quiet_ticks  # a new room's first change goes out at once
        self.cap = cap
        self.share = 1.0
        self.budget = budget
        self.demand = 0  # messages that could be sampled away, since demand() last ran

    @property
    def has_news(self) -> bool:
        return bool(self.messages or self.deleted)


def _is_priority(message: ChatMessage) -> bool:
    return message.role in STAFF_ROLES


def _sender(message: ChatMessage) -> str:
    return message.viewer_id


def _rate(cap: int, share: float) -> float:
    """This node's messages a second of a room's cap (0: unlimited)."""
    if cap == 0 or share >= 1.0:
        return cap
    return max(MIN_SHARED_CAP, cap * share)


class Batcher:
    def __init__(
        self,
        tick_seconds: float,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stats_every = max(1, round(STATS_EVERY_SECONDS / tick_seconds))
        self._rng = rng or random.Random()
        self._clock = clock
        self._rooms: dict[str, _Pending] = {}

    def _room(self, room: str, cap: int) -> _Pending:
        pending = self._rooms.get(room)
        if pending is None:
            budget = TokenBucket(cap, self._clock())
            pending = self._rooms[room] = _Pending(cap, budget, self._stats_every)
        elif pending.cap != cap:
            pending.cap = cap
            pending.budget.set_rate(_rate(cap, pending.share), self._clock())
        return pending

    def add_message(self, room: str, cap: int, message: ChatMessage) -> None:
        pending = self._room(room, cap)
        pending.messages.append(message)
        if not _is_priority(message):
            pending.demand += 1

    def set_share(self, room: str, share: float) -> None:
        """This node's share (0-1] of the room's cap, when several nodes fan the room
        out (each samples only the messages it accepted; together they keep the cap).
        The share scales the room's bucket, its rate and its one-second burst alike."""
        pending = self._rooms.get(room)
        if pending is None or pending.share == share:
            return
        pending.share = share
        pending.budget.set_rate(_rate(pending.cap, share), self._clock())

    def demand(self) -> dict[str, int]:
        """For each capped room, the messages that could be sampled away added since
        the last call; the counts restart."""
        counts = {}
        for room, pending in self._rooms.items():
            if pending.cap:
                counts[room] = pending.demand
                pending.demand = 0
        return counts

    def add_deleted(self, room: str, cap: int, message_id: int) -> None:
        self._room(room, cap).deleted.append(message_id)

    def touch(self, room: str, cap: int) -> None:
        """A total shown with batches changed (likes, viewers).

        Messages and deletions go out on the next tick and carry the totals;
        a change of totals alone goes out at most once a second, so a join
        storm or a like storm does not send every viewer ten frames a second.
        """
        self._room(room, cap).stats_changed = True

    def drain(self) -> list[Batch]:
        """Everything due this tick, one batch per room that has something to send."""
        batches = []
        now = self._clock()
        for room, pending in self._rooms.items():
            pending.quiet_ticks += 1
            stats_due = pending.stats_changed and pending.quiet_ticks >= self._stats_every
            if not (pending.has_news or stats_due):
                continue
            budget = pending.budget.available(now)
            kept, dropped = sample_fair(pending.messages, budget, _sender, _is_priority, self._rng)
            pending.budget.spend(len(kept))
            batches.append(Batch(room, kept, pending.deleted, dropped))
            pending.messages = []
            pending.deleted = []
            pending.stats_changed = False
            pending.quiet_ticks = 0
        return batches

    def forget(self, room: str) -> None:
        self._rooms.pop(room, None)
