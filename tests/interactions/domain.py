"""What the interaction services sit on, for their tests: MemoryStore (or Redis), a
real event log and room repository in one SQLite file, counters, moderation and a
controllable clock. ``conftest.py`` builds it as the ``domain`` fixture; each test
module's ``Env`` extends ``Domain`` with its own service.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from fake_clock import Clock

from livehub.interactions.moderation import Moderation
from livehub.rooms.counters import Counters
from livehub.rooms.eventlog import EventLog
from livehub.rooms.models import Principal
from livehub.rooms.repository import RoomRepository
from livehub.rooms.service import RoomService
from livehub.rooms.store import StateStore


def viewer(name: str) -> Principal:
    return Principal(room="r1", viewer_id=f"v_{name.lower()}", name=name, role="viewer")


ANN, BOB, CAT, DAN = viewer("Ann"), viewer("Bob"), viewer("Cat"), viewer("Dan")
HOST = Principal(room="r1", viewer_id="v_host", name="Host", role="host")
MOD = Principal(room="r1", viewer_id="v_mod", name="Mod", role="moderator")


@dataclass
class Domain:
    clock: Clock
    store: StateStore
    log: EventLog
    repo: RoomRepository
    rooms: RoomService
    counters: Counters
    moderation: Moderation

    def parts(self) -> dict[str, Any]:
        """The fields, to build a subclass from: ``Env(**domain.parts(), service=...)``."""
        return {f.name: getattr(self, f.name) for f in fields(Domain)}
