"""Per-room batching of what viewers should see: one frame per room per tick.

Accepted messages, deletions and changed totals queue here; every tick the edge
drains each changed room into one batch, encodes it once and sends it to the
room. In a hot room the batch is sampled fairly down to the per-viewer cap;
host and moderator messages are never sampled away.
"""

from __future__ import annotations

import random

import msgspec

from livehub.interactions.messages import ChatMessage
from livehub.interactions.sampling import TickBudget, sample_fair
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

    def __init__(self, cap: int, budget: TickBudget, quiet_ticks: int) -> None:
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


class Batcher:
    def __init__(self, tick_seconds: float, rng: random.Random | None = None) -> None:
        self._tick = tick_seconds
        self._stats_every = max(1, round(STATS_EVERY_SECONDS / tick_seconds))
        self._rng = rng or random.Random()
        self._rooms: dict[str, _Pending] = {}

    def _room(self, room: str, cap: int) -> _Pending:
        pending = self._rooms.get(room)
        if pending is None:
            budget = TickBudget(cap, self._tick)
            pending = self._rooms[room] = _Pending(cap, budget, self._stats_every)
        elif pending.cap != cap:
            pending.cap = cap
            pending.budget = self._budget(cap, pending.share)
        return pending

    def _budget(self, cap: int, share: float) -> TickBudget:
        if cap == 0 or share >= 1.0:
            return TickBudget(cap, self._tick)
        return TickBudget(max(MIN_SHARED_CAP, cap * share), self._tick)

    def add_message(self, room: str, cap: int, message: ChatMessage) -> None:
        pending = self._room(room, cap)
        pending.messages.append(message)
        if not _is_priority(message):
            pending.demand += 1

    def set_share(self, room: str, share: float) -> None:
        """This node's share (0-1] of the room's cap, when several nodes fan the room
        out (each samples only the messages it accepted; together they keep the cap)."""
        pending = self._rooms.get(room)
        if pending is None or pending.share == share:
            return
        pending.share = share
        pending.budget = self._budget(pending.cap, share)

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
        for room, pending in self._rooms.items():
            budget = pending.budget.take()
            pending.quiet_ticks += 1
            stats_due = pending.stats_changed and pending.quiet_ticks >= self._stats_every
            if not (pending.has_news or stats_due):
                continue
            kept, dropped = sample_fair(pending.messages, budget, _sender, _is_priority, self._rng)
            batches.append(Batch(room, kept, pending.deleted, dropped))
            pending.messages = []
            pending.deleted = []
            pending.stats_changed = False
            pending.quiet_ticks = 0
        return batches

    def forget(self, room: str) -> None:
        self._rooms.pop(room, None)
