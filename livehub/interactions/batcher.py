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


class _Pending:
    __slots__ = ("budget", "deleted", "dirty", "messages")

    def __init__(self, budget: TickBudget) -> None:
        self.messages: list[ChatMessage] = []
        self.deleted: list[int] = []
        self.dirty = False
        self.budget = budget


def _is_priority(message: ChatMessage) -> bool:
    return message.role in STAFF_ROLES


def _sender(message: ChatMessage) -> str:
    return message.viewer_id


class Batcher:
    def __init__(self, tick_seconds: float, rng: random.Random | None = None) -> None:
        self._tick = tick_seconds
        self._rng = rng or random.Random()
        self._rooms: dict[str, _Pending] = {}

    def _room(self, room: str, cap: int) -> _Pending:
        pending = self._rooms.get(room)
        if pending is None or pending.budget.max_per_second != cap:
            budget = TickBudget(cap, self._tick)
            if pending is None:
                pending = self._rooms[room] = _Pending(budget)
            pending.budget = budget
        return pending

    def add_message(self, room: str, cap: int, message: ChatMessage) -> None:
        pending = self._room(room, cap)
        pending.messages.append(message)
        pending.dirty = True

    def add_deleted(self, room: str, cap: int, message_id: int) -> None:
        pending = self._room(room, cap)
        pending.deleted.append(message_id)
        pending.dirty = True

    def touch(self, room: str, cap: int) -> None:
        """Something shown with the batch changed (likes, viewers): send a frame."""
        self._room(room, cap).dirty = True

    def drain(self) -> list[Batch]:
        """Everything due this tick, one batch per changed room."""
        batches = []
        for room, pending in self._rooms.items():
            budget = pending.budget.take()
            if not pending.dirty:
                continue
            kept, dropped = sample_fair(pending.messages, budget, _sender, _is_priority, self._rng)
            batches.append(Batch(room, kept, pending.deleted, dropped))
            pending.messages = []
            pending.deleted = []
            pending.dirty = False
        return batches

    def forget(self, room: str) -> None:
        self._rooms.pop(room, None)
