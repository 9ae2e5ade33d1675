"""RoomService over a real SQLite file, the in-memory store and the event log."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
from fake_clock import Clock

from livehub.errors import Conflict, NotFound, ProtocolError
from livehub.rooms.eventlog import Event, EventLog
from livehub.rooms.memory_store import MemoryStore
from livehub.rooms.models import Room, RoomSettings, Rule
from livehub.rooms.repository import RoomRepository
from livehub.rooms.service import RoomService, room_key


class Node:
    """One node's view: its own connections to the shared file, a shared store."""

    def __init__(self, rooms: RoomService, log: EventLog, repo: RoomRepository) -> None:
        self.rooms = rooms
        self.log = log
        self.repo = repo

    async def close(self) -> None:
        await self.rooms.shutdown()
        await self.log.close()


async def open_node(db: Path, store: MemoryStore, clock: Clock) -> Node:
    log = await EventLog.open(db, "NORMAL")
    repo = await RoomRepository.open(db, "NORMAL")
    return Node(RoomService(repo, store, log, RoomSettings(), clock=clock), log, repo)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "livehub.db"


@pytest.fixture
def clock() -> Clock:
    return Clock(1_000.0)


@pytest.fixture
def store(clock: Clock) -> MemoryStore:
    return MemoryStore(clock=clock)


@pytest.fixture
async def node(db: Path, store: MemoryStore, clock: Clock) -> AsyncIterator[Node]:
    opened = await open_node(db, store, clock)
    try:
        yield opened
    finally:
        await opened.close()


async def events(log: EventLog, room: str) -> list[Event]:
    return [e async for e in log.scan(room)]


def stored_room(db: Path, room_id: str) -> Room | None:
    with sqlite3.connect(db) as conn:
        found = conn.execute("SELECT body FROM rooms WHERE id = ?", (room_id,)).fetchall()
    return msgspec.json.decode(found[0][0], type=Room) if found else None


async def test_create_and_get(node: Node, db: Path, store: MemoryStore) -> None:
    room = await node.rooms.create("  Launch day  ", room_id="launch", actor="admin")
    assert (room.id, room.title, room.private, room.closed, room.live) == (
        "launch",
        "Launch day",
        False,
        False,
        False,
    )
    assert room.created_at == 1_000.0
    assert room.settings == RoomSettings()
    assert room.room_key is None
    assert await node.rooms.get("launch") == room
    assert stored_room(db, "launch") == room
    assert await store.get(room_key("launch")) is not None
    [created] = await events(node.log, "launch")
    assert (created.kind, created.actor, created.data) == (
        "room.created",
        "admin",
        {"title": "Launch day", "private": False},
    )


async def test_private_room_gets_a_key_and_random_ids_are_valid(node: Node) -> None:
    room = await node.rooms.create("Secret", private=True)
    assert room.room_key is not None and len(room.room_key) >= 32
    other = await node.rooms.create("Secret")
    assert room.id != other.id
    assert await node.rooms.get(room.id) == room


@pytest.mark.parametrize(
    "room_id", ["Upper", "-lead", "_lead", "has space", "a" * 65, "dot.ted", "ü", "a/b"]
)
async def test_bad_room_ids(node: Node, room_id: str) -> None:
    with pytest.raises(ProtocolError) as info:
        await node.rooms.create("T", room_id=room_id)
    assert info.value.code == "bad_room_id"


@pytest.mark.parametrize("room_id", ["a", "0", "a-b_c", "x" * 64])
async def test_good_room_ids(node: Node, room_id: str) -> None:
    assert (await node.rooms.create("T", room_id=room_id)).id == room_id


@pytest.mark.parametrize("title", ["", "   ", "x" * 121])
async def test_bad_titles(node: Node, title: str) -> None:
    with pytest.raises(ProtocolError) as info:
        await node.rooms.create(title, room_id="r")
    assert info.value.code == "bad_title"


async def test_duplicate_room(node: Node) -> None:
    first = await node.rooms.create("One", room_id="dup")
    with pytest.raises(Conflict) as info:
        await node.rooms.create("Two", room_id="dup")
    assert info.value.code == "room_exists"
    assert await node.rooms.get("dup") == first
    assert [e.kind for e in await events(node.log, "dup")] == ["room.created"]


async def test_get_unknown_room(node: Node) -> None:
    for room_id in ("nope", "Not Valid", ""):
        with pytest.raises(NotFound) as info:
            await node.rooms.get(room_id)
        assert info.value.code == "room_not_found"


async def test_create_with_bad_settings(node: Node) -> None:
    with pytest.raises(ProtocolError) as info:
        await node.rooms.create("T", room_id="r", settings=RoomSettings(chat_burst=0))
    assert info.value.code == "bad_settings"
    with pytest.raises(NotFound):
        await node.rooms.get("r")


async def test_update_title_and_settings(node: Node, db: Path) -> None:
    await node.rooms.create("Old", room_id="r")
    updated = await node.rooms.update(
        "r", "v_host", title=" New ", settings={"slow_mode_seconds": 5}
    )
    assert updated.title == "New"
    assert updated.settings == RoomSettings(slow_mode_seconds=5)
    assert await node.rooms.get("r") == updated
    assert stored_room(db, "r") == updated
    again = await node.rooms.update("r", "v_host", settings={"chat_paused": True})
    assert again.settings == RoomSettings(slow_mode_seconds=5, chat_paused=True)
    last = (await events(node.log, "r"))[-1]
    assert (last.kind, last.actor, last.data) == (
        "room.updated",
        "v_host",
        {"settings": {"chat_paused": True}},
    )


async def test_update_with_nothing_changes_nothing(node: Node) -> None:
    room = await node.rooms.create("Same", room_id="r")
    assert await node.rooms.update("r", "admin") == room
    assert [e.kind for e in await events(node.log, "r")] == ["room.created"]


@pytest.mark.parametrize(
    "settings",
    [
        {"slow_mode_seconds": -1},
        {"slow_mode_seconds": 3601},
        {"slow_mode_seconds": "5"},
        {"slow_mode_seconds": True},
        {"max_message_chars": 0},
        {"max_message_chars": 501},
        {"chat_rate_per_second": 0},
        {"chat_burst": 1001},
        {"max_danmaku_per_second": -1},
        {"chat_paused": "yes"},
        {"unknown_setting": 1},
    ],
)
async def test_update_bad_settings(node: Node, settings: dict[str, object]) -> None:
    room = await node.rooms.create("T", room_id="r")
    with pytest.raises(ProtocolError) as info:
        await node.rooms.update("r", "admin", settings=settings)
    assert info.value.code == "bad_settings"
    assert await node.rooms.get("r") == room


async def test_update_bad_title(node: Node) -> None:
    await node.rooms.create("T", room_id="r")
    with pytest.raises(ProtocolError) as info:
        await node.rooms.update("r", "admin", title="  ")
    assert info.value.code == "bad_title"


async def test_start_and_stop_stream(node: Node, clock: Clock, db: Path) -> None:
    await node.rooms.create("Show", room_id="show")
    clock.now = 2_000.0
    live, stream = await node.rooms.start_stream("show", "v_host")
    assert live.live and live.stream == stream
    assert (stream.room, stream.started_at, stream.ended_at) == ("show", 2_000.0, None)
    assert live.scope == stream.id
    assert (await node.rooms.get("show")).stream == stream
    assert stored_room(db, "show") == live
    with pytest.raises(Conflict) as info:
        await node.rooms.start_stream("show", "v_host")
    assert info.value.code == "already_live"

    clock.now = 2_600.0
    stopped = await node.rooms.stop_stream("show", "v_host")
    assert not stopped.live
    assert (await node.rooms.get("show")).stream is None
    with pytest.raises(Conflict) as info:
        await node.rooms.stop_stream("show", "v_host")
    assert info.value.code == "not_live"

    [past] = await node.rooms.streams("show")
    assert (past.id, past.started_at, past.ended_at) == (stream.id, 2_000.0, 2_600.0)
    log = [(e.kind, e.stream, e.data) for e in await events(node.log, "show")]
    assert log == [
        ("room.created", None, {"title": "Show", "private": False}),
        ("stream.started", stream.id, {"stream_id": stream.id}),
        ("stream.stopped", stream.id, {"stream_id": stream.id}),
    ]

    _, second = await node.rooms.start_stream("show", "v_host")
    assert second.id != stream.id
    assert [s.id for s in await node.rooms.streams("show")] == [stream.id, second.id]


async def test_get_reads_through_the_store(node: Node, store: MemoryStore, db: Path) -> None:
    room = await node.rooms.create("Cached", room_id="c")
    # The store is what get() reads: change it there and get() sees the change.
    cached = msgspec.structs.replace(room, title="From the store")
    await store.set(room_key("c"), msgspec.json.encode(cached).decode())
    assert (await node.rooms.get("c")).title == "From the store"
    # Drop the cache key and get() reloads from SQLite (and caches it again).
    assert await store.delete(room_key("c")) == 1
    assert await node.rooms.get("c") == room
    assert await store.get(room_key("c")) == msgspec.json.encode(room).decode()


async def test_get_after_store_loss_sees_later_updates(node: Node, store: MemoryStore) -> None:
    await node.rooms.create("T", room_id="r")
    live, _ = await node.rooms.start_stream("r", "h")
    updated = await node.rooms.update("r", "h", settings={"slow_mode_seconds": 9})
    await store.delete(room_key("r"))
    reloaded = await node.rooms.get("r")
    assert reloaded == updated
    assert reloaded.stream == live.stream


async def test_two_nodes_share_rooms(db: Path, store: MemoryStore, clock: Clock) -> None:
    one = await open_node(db, store, clock)
    two = await open_node(db, store, clock)
    try:
        await one.rooms.create("Shared", room_id="shared")
        assert (await two.rooms.get("shared")).title == "Shared"
        await two.rooms.update("shared", "h", title="Renamed")
        assert (await one.rooms.get("shared")).title == "Renamed"
        _, stream = await one.rooms.start_stream("shared", "h")
        with pytest.raises(Conflict):
            await two.rooms.start_stream("shared", "h")
        stopped = await two.rooms.stop_stream("shared", "h")
        assert (await one.rooms.get("shared")) == stopped
        await store.delete(room_key("shared"))
        assert (await one.rooms.get("shared")) == stopped
        with pytest.raises(Conflict) as info:
            await two.rooms.create("Again", room_id="shared")
        assert info.value.code == "room_exists"
        kinds = [e.kind for e in await events(two.log, "shared")]
        assert kinds == ["room.created", "room.updated", "stream.started", "stream.stopped"]
        assert [s.id for s in await two.rooms.streams("shared")] == [stream.id]
    finally:
        await one.close()
        await two.close()


async def test_close(node: Node, db: Path) -> None:
    await node.rooms.create("Bye", room_id="bye")
    closed = await node.rooms.close("bye", "admin")
    assert closed.closed
    assert (await node.rooms.get("bye")).closed
    assert stored_room(db, "bye") == closed
    for attempt in (
        node.rooms.get_open("bye"),
        node.rooms.update("bye", "admin", title="X"),
        node.rooms.start_stream("bye", "admin"),
    ):
        with pytest.raises(Conflict) as info:
            await attempt
        assert info.value.code == "room_closed"
    assert [e.kind for e in await events(node.log, "bye")] == ["room.created", "room.closed"]


async def test_close_when_live_stops_the_stream_first(node: Node, clock: Clock) -> None:
    await node.rooms.create("Live", room_id="live")
    _, stream = await node.rooms.start_stream("live", "v_host")
    clock.now = 1_500.0
    closed = await node.rooms.close("live", "admin")
    assert closed.closed and not closed.live
    [past] = await node.rooms.streams("live")
    assert past.ended_at == 1_500.0
    log = [(e.kind, e.stream) for e in await events(node.log, "live")]
    assert log == [
        ("room.created", None),
        ("stream.started", stream.id),
        ("stream.stopped", stream.id),
        ("room.closed", None),
    ]


async def test_set_rules_bumps_the_version(node: Node) -> None:
    room = await node.rooms.create("R", room_id="r")
    rule = Rule(id="r_1", pattern="bad", kind="word", action="block")
    updated = await node.rooms.set_rules(room, (rule,), "h")
    assert (updated.rules, updated.rules_version) == ((rule,), 1)
    assert await node.rooms.get("r") == updated


async def test_concurrent_go_live_makes_exactly_one_stream(tmp_path: Path) -> None:
    store = MemoryStore()
    log = await EventLog.open(tmp_path / "db.sqlite")
    repo = await RoomRepository.open(tmp_path / "db.sqlite")
    try:
        rooms = RoomService(repo, store, log, RoomSettings())
        await rooms.create("Race", room_id="race")
        outcomes = await asyncio.gather(
            *(rooms.start_stream("race", "host") for _ in range(5)), return_exceptions=True
        )
        started = [o for o in outcomes if not isinstance(o, BaseException)]
        refused = [o for o in outcomes if isinstance(o, Conflict)]
        assert len(started) == 1 and len(refused) == 4
        assert all(r.code == "already_live" for r in refused)
        assert len(await rooms.streams("race")) == 1
    finally:
        await log.close()
        await repo.close()


async def test_a_paused_stream_resumes_as_the_same_stream_and_remembers_its_times(
    node: Node, clock: Clock, db: Path, store: MemoryStore
) -> None:
    await node.rooms.create("Show", room_id="show")
    clock.now = 2_000.0
    _, stream = await node.rooms.start_stream("show", "v_host")
    assert await node.rooms.last_seen(stream) is None, "no media seen yet"
    clock.now = 2_030.0
    await node.rooms.stream_seen(stream.id)
    assert await node.rooms.last_seen(stream) == 2_030.0

    clock.now = 2_040.0
    paused = await node.rooms.pause_stream("show", stream.id)
    assert paused is not None and paused.live and paused.paused
    assert paused.media_state == "paused" and paused.public_view()["paused"] is True
    assert paused.stream is not None and paused.stream.paused_at == 2_040.0
    assert await node.rooms.last_seen(paused.stream) == 2_040.0
    assert stored_room(db, "show") == paused, "the pause is durable (a restart finds it)"
    assert await node.rooms.pause_stream("show", stream.id) is None, "paused already"
    assert await node.rooms.pause_stream("show", "s_other") is None, "not that stream"

    resumed = await node.rooms.resume_stream("show", "v_host")
    assert resumed is not None and resumed.media_state == "live" and not resumed.paused
    assert resumed.stream is not None and resumed.stream.id == stream.id
    assert await node.rooms.resume_stream("show", "v_host") is None, "not paused"
    await node.rooms.stop_stream("show", "v_host")
    assert (await node.rooms.get("show")).media_state == "ended"
    log = [(e.kind, e.data) for e in await events(node.log, "show")][1:]
    assert log == [
        ("stream.started", {"stream_id": stream.id}),
        ("stream.paused", {"stream_id": stream.id, "at": 2_040.0}),
        ("stream.resumed", {"stream_id": stream.id}),
        ("stream.stopped", {"stream_id": stream.id}),
    ]
    await node.rooms.stream_seen(stream.id)  # ended: no longer touched
    [past] = await node.rooms.streams("show")
    assert await node.repo.stream_seen_at(past.id) == 2_030.0


async def test_publisher_grace_seconds_is_a_validated_room_setting(node: Node) -> None:
    room = await node.rooms.create("Show", room_id="show")
    assert room.settings.publisher_grace_seconds == 30
    updated = await node.rooms.update("show", "admin", settings={"publisher_grace_seconds": 0})
    assert updated.settings.publisher_grace_seconds == 0
    for bad in (-1, 601):
        with pytest.raises(ProtocolError) as info:
            await node.rooms.update("show", "admin", settings={"publisher_grace_seconds": bad})
        assert "publisher_grace_seconds" in info.value.message


async def test_a_database_from_before_streams_were_seen_is_migrated(tmp_path: Path) -> None:
    old = tmp_path / "old.db"
    with sqlite3.connect(old) as conn:
        conn.execute(
            "CREATE TABLE streams (id TEXT PRIMARY KEY, room TEXT NOT NULL,"
            " started_at REAL NOT NULL, ended_at REAL)"
        )
        conn.execute("INSERT INTO streams VALUES ('s_old', 'show', 1.0, NULL)")
    repo = await RoomRepository.open(old, "NORMAL")
    try:
        assert await repo.stream_seen_at("s_old") is None
        await repo.touch_stream("s_old", 5.0)
        assert await repo.stream_seen_at("s_old") == 5.0
    finally:
        await repo.close()
    reopened = await RoomRepository.open(old, "NORMAL")  # migrating twice is harmless
    try:
        assert await reopened.stream_seen_at("s_old") == 5.0
    finally:
        await reopened.close()
