"""Events of a room, in the stream it is live with (none between streams)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from livehub.rooms.eventlog import Event, EventLog, NewEvent
from livehub.rooms.models import Room


def room_event(
    room: Room,
    kind: str,
    actor: str,
    data: dict[str, Any],
    *,
    ts: float = 0.0,
    client_id: str | None = None,
) -> NewEvent:
    """``NewEvent`` of ``room``'s current stream; ``ts`` 0 is stamped when appended."""
    return NewEvent(
        room=room.id,
        kind=kind,
        actor=actor,
        data=data,
        stream=room.stream.id if room.stream else None,
        client_id=client_id,
        ts=ts,
    )


class Recorder:
    """Appends a room's events to the log, stamped by ``clock`` unless given ``ts``."""

    def __init__(self, log: EventLog, clock: Callable[[], float] = time.time) -> None:
        self._log = log
        self._clock = clock

    async def __call__(
        self,
        room: Room,
        actor: str,
        kind: str,
        data: dict[str, Any],
        ts: float | None = None,
        *,
        client_id: str | None = None,
    ) -> tuple[Event, bool]:
        """Durably record the event; (stored event, created) as ``EventLog.append``."""
        stamp = self._clock() if ts is None else ts
        event = room_event(room, kind, actor, data, ts=stamp, client_id=client_id)
        return await self._log.append(event)
