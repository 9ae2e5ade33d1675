"""The event log on a real SQLite file: durability, idempotency, group commit, queries."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from livehub.errors import Unavailable
from livehub.rooms.eventlog import Event, EventLog, NewEvent, _Pending


class CountingLog(EventLog):
    """An EventLog that counts its write transactions and the events in each."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batches: list[int] = []

    async def _write(
        self, batch: list[_Pending], *, probe: bool = False
    ) -> list[tuple[Event, bool]]:
        self.batches.append(len(batch))
        return await super()._write(batch, probe=probe)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "livehub.db"


@pytest.fixture
async def log(db: Path) -> AsyncIterator[CountingLog]:
    opened = await CountingLog.open(db)
    assert isinstance(opened, CountingLog)
    try:
        yield opened
    finally:
        await opened.close()


def chat(
    room: str = "r1",
    actor: str = "v_1",
    text: str = "hi",
    *,
    kind: str = "chat.message",
    stream: str | None = None,
    client_id: str | None = None,
) -> NewEvent:
    return NewEvent(
        room=room,
        kind=kind,
        actor=actor,
        data={"text": text},
        stream=stream,
        client_id=client_id,
    )


def rows(db: Path, query: str, args: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Read the file with a separate, plain sqlite3 connection."""
    with sqlite3.connect(db) as conn:
        return list(conn.execute(query, args))


async def test_append_returns_increasing_ids_and_created(log: CountingLog) -> None:
    results = [await log.append(chat(text=f"m{i}")) for i in range(5)]
    ids = [event.id for event, _ in results]
    assert ids == sorted(ids)
    assert len(set(ids)) == 5
    assert all(created for _, created in results)
    first = results[0][0]
    assert (first.room, first.kind, first.actor, first.data) == (
        "r1",
        "chat.message",
        "v_1",
        {"text": "m0"},
    )
    assert first.ts > 0


async def test_row_is_on_disk_when_append_returns(log: CountingLog, db: Path) -> None:
    event, _ = await log.append(chat(text="durable", stream="s_1", client_id="c1"))
    found = rows(
        db, "SELECT id, room, stream, kind, actor, data, uid FROM events WHERE id = ?", (event.id,)
    )
    assert found == [
        (event.id, "r1", "s_1", "chat.message", "v_1", b'{"text":"durable"}', "r1|v_1|c1")
    ]


async def test_same_client_id_twice_is_the_same_event(log: CountingLog, db: Path) -> None:
    first, created = await log.append(chat(text="once", client_id="c1"))
    again, created_again = await log.append(chat(text="changed", client_id="c1"))
    assert created is True
    assert created_again is False
    assert again == first
    assert again.data == {"text": "once"}
    assert rows(db, "SELECT COUNT(*) FROM events") == [(1,)]
    assert await log.find("r1", "v_1", "c1") == first
    assert await log.find("r1", "v_2", "c1") is None


async def test_client_id_is_scoped_by_room_and_actor(log: CountingLog) -> None:
    a, _ = await log.append(chat(room="r1", actor="v_1", client_id="c"))
    b, _ = await log.append(chat(room="r1", actor="v_2", client_id="c"))
    c, _ = await log.append(chat(room="r2", actor="v_1", client_id="c"))
    assert len({a.id, b.id, c.id}) == 3


async def test_concurrent_appends_with_one_client_id_make_one_row(
    log: CountingLog, db: Path
) -> None:
    results = await asyncio.gather(
        *(log.append(chat(text=f"try {i}", client_id="same")) for i in range(200))
    )
    assert len({event.id for event, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert rows(db, "SELECT COUNT(*) FROM events") == [(1,)]


async def test_group_commit_shares_transactions(log: CountingLog, db: Path) -> None:
    results = await asyncio.gather(*(log.append(chat(text=f"m{i}")) for i in range(1000)))
    assert all(created for _, created in results)
    assert len({event.id for event, _ in results}) == 1000
    assert rows(db, "SELECT COUNT(*) FROM events") == [(1000,)]
    assert sum(log.batches) == 1000
    assert len(log.batches) < 1000
    assert len(log.batches) <= 10, log.batches


async def test_by_kinds(log: CountingLog) -> None:
    ids = []
    for i in range(6):
        kind = "chat.message" if i % 2 == 0 else "like"
        event, _ = await log.append(chat(text=str(i), kind=kind))
        ids.append(event.id)
    await log.append(chat(room="other", kind="chat.message"))

    chats = await log.by_kinds("r1", ["chat.message"])
    assert [e.data["text"] for e in chats] == ["0", "2", "4"]
    both = await log.by_kinds("r1", ["chat.message", "like"])
    assert [e.id for e in both] == ids
    after = await log.by_kinds("r1", ["chat.message", "like"], after_id=ids[2])
    assert [e.id for e in after] == ids[3:]
    limited = await log.by_kinds("r1", ["chat.message", "like"], limit=2)
    assert [e.id for e in limited] == ids[:2]
    newest = await log.by_kinds("r1", ["chat.message", "like"], newest=True, limit=2)
    assert [e.id for e in newest] == ids[-2:]
    newest_after = await log.by_kinds("r1", ["like"], after_id=ids[0], newest=True, limit=10)
    assert [e.data["text"] for e in newest_after] == ["1", "3", "5"]
    assert await log.by_kinds("r1", ["poll.vote"]) == []
    assert await log.by_kinds("nope", ["chat.message"]) == []


async def test_scan_kinds_reads_every_batch(log: CountingLog) -> None:
    ids = []
    for i in range(11):
        event, _ = await log.append(chat(text=str(i), kind="like" if i % 3 else "chat.message"))
        ids.append(event.id)
    await log.append(chat(room="other", kind="like"))
    likes = [e async for e in log.scan_kinds("r1", ["like"], batch=3)]
    assert [e.data["text"] for e in likes] == [str(i) for i in range(11) if i % 3]
    later = [e.id async for e in log.scan_kinds("r1", ["like", "chat.message"], after_id=ids[4])]
    assert later == ids[5:]
    assert [e async for e in log.scan_kinds("r1", ["poll.vote"], batch=2)] == []


async def test_get(log: CountingLog) -> None:
    event, _ = await log.append(chat())
    assert await log.get(event.id) == event
    assert await log.get(event.id + 1000) is None


async def test_scan_by_room_and_stream(log: CountingLog) -> None:
    for i in range(7):
        await log.append(chat(text=str(i), stream="s_a" if i < 4 else "s_b"))
        await log.append(chat(room="other", text=str(i), stream="s_a"))
    await log.append(chat(text="offline"))

    whole = [e async for e in log.scan("r1", batch=3)]
    assert [e.data["text"] for e in whole] == [*map(str, range(7)), "offline"]
    assert [e.id for e in whole] == sorted(e.id for e in whole)
    assert {e.room for e in whole} == {"r1"}

    a = [e.data["text"] async for e in log.scan("r1", "s_a", batch=2)]
    b = [e.data["text"] async for e in log.scan("r1", "s_b")]
    assert a == ["0", "1", "2", "3"]
    assert b == ["4", "5", "6"]
    assert [e async for e in log.scan("r1", "s_none")] == []


async def test_two_instances_on_one_file_keep_ids_unique(db: Path) -> None:
    one = await EventLog.open(db)
    two = await EventLog.open(db)
    try:
        results = await asyncio.gather(
            *(
                log.append(chat(actor=f"v_{n}", text=f"{n}-{i}"))
                for i in range(100)
                for n, log in enumerate((one, two))
            )
        )
        ids = [event.id for event, _ in results]
        assert len(set(ids)) == 200
        # Each node reads what the other wrote.
        assert len([e async for e in one.scan("r1")]) == 200
        assert len(await two.by_kinds("r1", ["chat.message"], limit=1000)) == 200
    finally:
        await one.close()
        await two.close()
    assert rows(db, "SELECT COUNT(*), COUNT(DISTINCT id) FROM events") == [(200, 200)]


async def test_idempotency_across_two_instances(db: Path) -> None:
    one = await EventLog.open(db)
    two = await EventLog.open(db)
    try:
        results = await asyncio.gather(
            *(
                log.append(chat(text=f"attempt {i}", client_id="shared"))
                for i in range(50)
                for log in (one, two)
            )
        )
        assert len({event.id for event, _ in results}) == 1
        assert sum(created for _, created in results) == 1
        found = await two.find("r1", "v_1", "shared")
        assert found is not None
        assert found.id == results[0][0].id
    finally:
        await one.close()
        await two.close()
    assert rows(db, "SELECT COUNT(*) FROM events") == [(1,)]


async def test_wal_mode(log: CountingLog, db: Path) -> None:
    await log.append(chat())
    assert rows(db, "PRAGMA journal_mode") == [("wal",)]


async def test_reopen_keeps_events_and_idempotency(db: Path) -> None:
    first = await EventLog.open(db)
    try:
        event, _ = await first.append(chat(client_id="c1"))
    finally:
        await first.close()
    second = await EventLog.open(db)
    try:
        again, created = await second.append(chat(text="retry", client_id="c1"))
        later, _ = await second.append(chat(text="new"))
    finally:
        await second.close()
    assert (again, created) == (event, False)
    assert later.id > event.id


class FailingLog(EventLog):
    """An EventLog whose write transaction stops halfway, then fails (as on a full disk)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.inside = asyncio.Event()
        self.release = asyncio.Event()

    async def _stored_by_uid(self, uids: list[str]) -> dict[str, tuple[Event, str]]:
        self.inside.set()
        await self.release.wait()
        raise OSError("disk full")


async def test_readers_never_see_an_uncommitted_event(db: Path) -> None:
    log = await FailingLog.open(db)
    assert isinstance(log, FailingLog)
    try:
        append = asyncio.create_task(log.append(chat(text="doomed", client_id="c1")))
        await log.inside.wait()
        reads = asyncio.gather(
            log.get(1),
            log.find("r1", "v_1", "c1"),
            log.by_kinds("r1", ["chat.message"]),
        )
        await asyncio.sleep(0.05)  # let the reads run while the transaction is open
        log.release.set()
        with pytest.raises(Unavailable) as refused:
            await append
        assert refused.value.code == "unavailable"
        assert await reads == [None, None, []]
    finally:
        await log.close()
    assert rows(db, "SELECT COUNT(*) FROM events") == [(0,)]


# -- faults: a commit that fails or stalls is refused in bounded time, the writer goes on


class Health(list[str | None]):
    """What the log told its ``on_health`` hook, in order."""

    def __call__(self, error: str | None) -> None:
        self.append(error)


BOUND = 10.0  # generous: how long any refusal may take on a loaded machine


async def refused(append: Any) -> Unavailable:
    with pytest.raises(Unavailable) as caught:
        await asyncio.wait_for(append, BOUND)
    assert caught.value.code == "unavailable"
    assert caught.value.details["retryable"] is True
    assert caught.value.retry_after > 0
    return caught.value


async def test_a_locked_database_is_refused_by_the_deadline_and_the_writer_goes_on(
    db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    health = Health()
    log = await EventLog.open(db, commit_deadline=0.3, on_health=health)
    await log.append(chat(text="before"))
    holder = sqlite3.connect(db, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
        with caplog.at_level("WARNING", logger="livehub.eventlog"):
            for i in range(3):
                await refused(log.append(chat(text=f"locked {i}", client_id=f"c{i}")))
            await refused(log.probe())
            assert health and health[-1] is not None
            assert log.failing is not None
            holder.execute("ROLLBACK")
            again, created = await asyncio.wait_for(log.append(chat(text="after")), BOUND)
        assert created
        assert health[-1] is None and log.failing is None
        # Told once when it began and once when it ended, not per refused event.
        streak = [r.getMessage() for r in caplog.records if r.name == "livehub.eventlog"]
        assert len(streak) == 2, streak
        assert "fail" in streak[0] and "work again" in streak[1]
        assert [h is None for h in health] == [False] * (len(health) - 1) + [True]
        # A refused event was not recorded: its retry is accepted, once.
        for i in range(3):
            retry, created = await log.append(chat(text=f"locked {i}", client_id=f"c{i}"))
            assert retry.data == {"text": f"locked {i}"}
        await log.probe()
    finally:
        holder.close()
        await log.close()
    assert rows(db, "SELECT COUNT(*), COUNT(DISTINCT uid) FROM events WHERE uid LIKE 'r1|%'") == [
        (3, 3)
    ]
    assert again.id > 1


class StallingLog(EventLog):
    """An EventLog whose next write stops inside its transaction until released
    (a disk that does not answer), then goes on and commits."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stall = True
        self.inside = asyncio.Event()
        self.release = asyncio.Event()

    async def _stored_by_uid(self, uids: list[str]) -> dict[str, tuple[Event, str]]:
        if self.stall:
            self.inside.set()
            await self.release.wait()
            self.stall = False
        return await super()._stored_by_uid(uids)


async def test_a_stalled_commit_is_refused_at_the_deadline_and_a_retry_is_idempotent(
    db: Path,
) -> None:
    health = Health()
    log = await StallingLog.open(db, commit_deadline=0.3, on_health=health)
    assert isinstance(log, StallingLog)
    try:
        first = asyncio.create_task(log.append(chat(text="in flight", client_id="c1")))
        await log.inside.wait()
        # Queued behind the stalled batch: refused at the deadline, never written.
        await refused(log.append(chat(text="queued", client_id="c2")))
        await refused(log.probe())
        await refused(first)
        assert health == [health[0]] and health[0] is not None  # stalled, told once
        assert await log.find("r1", "v_1", "c1") is None  # not committed: not reported
        log.release.set()
        # The batch that was in flight commits after all (its caller was told "try
        # again"): the retry finds it instead of recording it twice.
        retry, created = await asyncio.wait_for(
            log.append(chat(text="in flight", client_id="c1")), BOUND
        )
        assert created is False
        assert retry.data == {"text": "in flight"}
        # The one refused while still queued was dropped: its retry records it now.
        queued, created = await log.append(chat(text="queued", client_id="c2"))
        assert created is True
        assert health[-1] is None
    finally:
        await log.close()
    assert rows(db, "SELECT uid FROM events ORDER BY id") == [("r1|v_1|c1",), ("r1|v_1|c2",)]
    assert queued.id > retry.id


async def test_a_full_database_fails_batches_until_there_is_room_again(db: Path) -> None:
    """SQLITE_FULL for real: the file may not grow past its page limit."""
    health = Health()
    log = await EventLog.open(db, on_health=health)
    writer = log._conn  # the limit is per connection: set it on the writer's
    try:
        pages = next(iter(await writer.execute_fetchall("PRAGMA page_count")))[0]
        await writer.execute(f"PRAGMA max_page_count = {pages}")
        accepted: list[int] = []
        for i in range(2000):
            try:
                event, _ = await log.append(chat(text=f"m{i} " + "x" * 200, client_id=f"c{i}"))
            except Unavailable:
                break
            accepted.append(event.id)
        else:
            pytest.fail("2000 events fitted a database that may not grow")
        full = i
        await refused(log.append(chat(text=f"m{full} " + "x" * 200)))
        assert health[-1] is not None and "full" in health[-1]
        await writer.execute(f"PRAGMA max_page_count = {pages * 100}")
        retry, created = await log.append(chat(text=f"m{full} " + "x" * 200, client_id=f"c{full}"))
        assert created is True
        await log.probe()
        assert health[-1] is None
    finally:
        await log.close()
    stored = rows(db, "SELECT id FROM events ORDER BY id")
    assert stored == [(event_id,) for event_id in [*accepted, retry.id]]


async def test_an_event_that_cannot_be_encoded_fails_only_its_own_append(
    log: CountingLog,
) -> None:
    bad = NewEvent(room="r1", kind="chat.message", actor="v_1", data={"x": object()})
    results = await asyncio.gather(
        log.append(chat(text="a")),
        log.append(bad),
        log.append(chat(text="b")),
        return_exceptions=True,
    )
    assert isinstance(results[1], TypeError)
    assert [r[0].data for r in (results[0], results[2]) if isinstance(r, tuple)] == [
        {"text": "a"},
        {"text": "b"},
    ]


async def test_probe_commits_through_the_writer(log: CountingLog, db: Path) -> None:
    await asyncio.gather(log.probe(), log.append(chat()), log.probe())
    assert rows(db, "SELECT COUNT(*) FROM probe") == [(1,)]
    assert log.failing is None


async def test_the_commit_deadline_must_be_positive(db: Path) -> None:
    with pytest.raises(ValueError, match="deadline"):
        await EventLog.open(db, commit_deadline=0)
