"""The ``domain`` fixture (see ``domain.py``); a module overrides ``clock`` or ``store``
to start the clock elsewhere or to run on other stores."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fake_clock import Clock

from livehub.interactions.moderation import Moderation
from livehub.rooms.counters import Counters
from livehub.rooms.eventlog import EventLog
from livehub.rooms.memory_store import MemoryStore
from livehub.rooms.models import RoomSettings
from livehub.rooms.redis_store import RedisStore
from livehub.rooms.repository import RoomRepository
from livehub.rooms.service import RoomService
from livehub.rooms.store import StateStore

from .domain import Domain


@pytest.fixture
def clock() -> Clock:
    return Clock(10_000.0)


@pytest.fixture
async def store(clock: Clock) -> AsyncIterator[StateStore]:
    memory = MemoryStore(clock=clock)
    try:
        yield memory
    finally:
        await memory.close()


@pytest.fixture(params=["memory", "redis"])
async def both_stores(request: pytest.FixtureRequest, clock: Clock) -> AsyncIterator[StateStore]:
    """The in-memory store, then a real Redis: a module that must hold on both
    overrides ``store`` with this."""
    store: StateStore
    if request.param == "redis":
        store = await RedisStore.connect(request.getfixturevalue("redis_url"))
    else:
        store = MemoryStore(clock=clock)
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def domain(tmp_path: Path, clock: Clock, store: StateStore) -> AsyncIterator[Domain]:
    db = tmp_path / "livehub.db"
    log = await EventLog.open(db, "NORMAL")
    repo = await RoomRepository.open(db, "NORMAL")
    rooms = RoomService(repo, store, log, RoomSettings(), clock=clock)
    counters = Counters(store)
    moderation = Moderation(store, log, rooms, repo, counters, clock=clock)
    try:
        yield Domain(clock, store, log, repo, rooms, counters, moderation)
    finally:
        await repo.close()
        await log.close()
