"""Retention and erasure on a real SQLite file and a real server (MemoryStore):
the purge keeps what is recent, an erased viewer leaves no trace in the log, the
live counters or a rebuilt report, and only the admin key may erase.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from support import LiveClient, Server, make_settings, start_server, stop_server

from livehub.app import DB_FILE
from livehub.interactions import draw_proof as proof
from livehub.reports import source
from livehub.reports.builder import pseudonym
from livehub.reports.model import Report
from livehub.reports.privacy import TOMBSTONE_PREFIX, Privacy, scrub
from livehub.reports.source import build_from_log
from livehub.reports.store import ReportStore
from livehub.rooms.counters import viewer_key
from livehub.rooms.eventlog import EventLog, NewEvent
from livehub.rooms.memory_store import MemoryStore
from livehub.rooms.models import Stream
from livehub.rooms.repository import RoomRepository

DAY = 86400.0
EVE = "eve-0001"
BOB = "bob-0002"


def ok(ack: dict[str, Any]) -> dict[str, Any]:
    assert ack["ok"] is True, ack
    return ack


# ----------------------------------------------------------------------------- retention


@pytest.fixture
async def log(tmp_path: Path) -> AsyncIterator[EventLog]:
    opened = await EventLog.open(tmp_path / DB_FILE, "NORMAL")
    repo = await RoomRepository.open(tmp_path / DB_FILE, "NORMAL")  # the streams table
    await repo.close()
    try:
        yield opened
    finally:
        await opened.close()


async def test_purge_deletes_old_events_and_keeps_recent_ones(
    log: EventLog, tmp_path: Path
) -> None:
    now = 1_800_000_000.0
    old = [
        NewEvent(
            room="r1", kind="chat.message", actor=f"v{i}", data={"text": "x"}, ts=now - 9 * DAY
        )
        for i in range(2500)  # more than one purge batch
    ]
    new = [
        NewEvent(room="r1", kind="chat.message", actor="v1", data={"text": "new"}, ts=now - DAY),
        NewEvent(room="r2", kind="like", actor="v2", data={"count": 1}, ts=now - 6.9 * DAY),
    ]
    for event in [*old[:1000], new[0], *old[1000:], new[1]]:
        await log.append(event)
    store = MemoryStore()
    privacy = Privacy(tmp_path / DB_FILE, store, synchronous="NORMAL", clock=lambda: now)

    result = await privacy.purge_older_than(7 * DAY)

    assert result.events_deleted == 2500
    assert result.cutoff == now - 7 * DAY
    left = [e async for e in log.scan("r1")] + [e async for e in log.scan("r2")]
    assert sorted(e.data.get("text", "like") for e in left) == ["like", "new"]
    again = await privacy.purge_older_than(7 * DAY)
    assert again.events_deleted == 0
    # the freed idempotency keys do not block new appends
    _, created = await log.append(
        NewEvent(room="r1", kind="chat.message", actor="v1", data={}, client_id="c1", ts=now)
    )
    assert created
    await store.close()


async def test_the_server_purges_at_start_when_retention_is_set(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    db = data / DB_FILE
    now = time.time()
    old_start = now - 10 * DAY
    log = await EventLog.open(db, "NORMAL")
    repo = await RoomRepository.open(db, "NORMAL")
    reports = await ReportStore.open(db, "NORMAL")
    old_stream = Stream(id="s_old", room="r1", started_at=old_start, ended_at=old_start + 600)
    await repo.start_stream(Stream(id="s_old", room="r1", started_at=old_start))
    await repo.end_stream("s_old", old_start + 600)
    for offset, kind, actor, body in (
        (0, "stream.started", "host", {"stream_id": "s_old"}),
        (1, "presence.join", "v1", {"name": "Old", "role": "viewer"}),
        (2, "chat.message", "v1", {"name": "Old", "role": "viewer", "text": "long ago"}),
        (600, "stream.stopped", "host", {"stream_id": "s_old"}),
    ):
        event = NewEvent(room="r1", kind=kind, actor=actor, data=body, stream="s_old")
        await log.append(msgspec.structs.replace(event, ts=old_start + offset))
    await log.append(NewEvent(room="r1", kind="like", actor="v2", data={"count": 1}, ts=now))
    stored = await build_from_log(
        log, reports.connection, "r1", "s_old", now=now, record=old_stream
    )
    await reports.save(stored)
    for closing in (reports, repo, log):
        await closing.close()
    # Recordings: one last written 10 days ago (with its sidecar), one today.
    room_dir = data / "recordings" / "r1"
    room_dir.mkdir(parents=True)
    for name in ("s_old.mp4", "s_old.json", "s_new.mp4"):
        (room_dir / name).write_bytes(b"not really a movie")
    for name in ("s_old.mp4", "s_old.json"):
        os.utime(room_dir / name, (old_start, old_start))

    server = await start_server(make_settings(data, retention_days=7))
    try:
        for _ in range(200):
            with sqlite3.connect(db) as conn:
                kinds = [r[0] for r in conn.execute("SELECT kind FROM events ORDER BY id")]
                left = conn.execute("SELECT COUNT(*) FROM reports").fetchone()[0]
            files = sorted(p.name for p in room_dir.iterdir())
            if kinds == ["like"] and left == 0 and files == ["s_new.mp4"]:
                break
            await asyncio.sleep(0.05)
        assert (kinds, left, files) == (["like"], 0, ["s_new.mp4"])
    finally:
        await stop_server(server)


async def test_retention_setting_is_validated() -> None:
    from livehub import settings as settings_mod

    assert settings_mod.load(env={}).retention_days == 0
    assert settings_mod.load(env={"LIVEHUB_RETENTION_DAYS": "30"}).retention_days == 30
    with pytest.raises(ValueError, match="LIVEHUB_RETENTION_DAYS"):
        settings_mod.load(env={"LIVEHUB_RETENTION_DAYS": "-1"})


# ----------------------------------------------------------------------------- scrubbing


def test_scrub_replaces_ids_names_and_texts_about_the_viewer_only() -> None:
    tomb = "erased:0123456789abcdef"
    data = {
        "draw_id": "d1",
        "entrants": ["a", EVE, "z"],
        "names": {"a": "Ann", EVE: "Eve"},
        "message": {"viewer_id": EVE, "name": "Eve", "text": "my secret", "id": 7},
        "other": {"viewer_id": "a", "name": "Ann", "text": "kept"},
        "choices": [EVE],  # not an id field: a value that happens to look the same stays
    }
    out, changed = scrub(data, EVE, tomb)
    assert changed
    assert out["entrants"] == ["a", tomb, "z"]
    assert out["erased_entrants"] == 1
    assert out["names"] == {"a": "Ann", tomb: "(erased)"}
    assert out["message"] == {"viewer_id": tomb, "name": "(erased)", "text": "", "id": 7}
    assert out["other"] == data["other"]
    assert out["choices"] == [EVE]
    _, changed = scrub({"viewer_id": "a", "list": [1, 2]}, EVE, tomb)
    assert not changed


# ----------------------------------------------------------------------------- erasure


async def scripted_stream(server: Server) -> tuple[str, str, str, dict[str, Any]]:
    """A stream where Eve and Bob chat, like, vote, ask, enter a draw, and Eve is muted;
    returns (room, stream, host token, the draw)."""
    created = await server.create_room(settings={"max_danmaku_per_second": 0})
    room, host_token = created["room"]["id"], created["host_token"]
    status, stream = await server.api("POST", f"/api/rooms/{room}/streams", token=host_token)
    assert status == 201, stream
    host = await server.client(room, host_token)
    eve = await server.client(room, name="Eve", viewer_id=EVE)
    bob = await server.client(room, name="Bob", viewer_id=BOB)
    ok(await eve.chat("hello from eve"))
    ok(await bob.chat("hi from bob"))
    ok(await eve.call("like", {"count": 3}))
    ok(await bob.call("like", {"count": 1}))
    question = {"question": "Tea?", "kind": "single", "options": ["Y", "N"]}
    poll = ok(await host.call("poll_create", question))["poll"]
    ok(await host.call("poll_open", {"poll_id": poll["id"]}))
    ok(await eve.call("poll_vote", {"poll_id": poll["id"], "choices": [0]}))
    ok(await bob.call("poll_vote", {"poll_id": poll["id"], "choices": [1]}))
    ok(await host.call("poll_close", {"poll_id": poll["id"]}))
    asked = ok(await eve.call("qa_ask", {"text": "eve wonders?", "client_id": uuid.uuid4().hex}))
    question_id = asked["question"]["id"]
    ok(await bob.call("qa_upvote", {"question_id": question_id}))
    ok(await host.call("qa_answer", {"question_id": question_id}))
    draw = ok(
        await host.call(
            "draw_create",
            {"prize": "Mug", "winners": 2, "rule": {"kind": "present"}, "window_seconds": 60},
        )
    )["draw"]
    ok(await eve.call("draw_enter", {"draw_id": draw["draw_id"]}))
    ok(await bob.call("draw_enter", {"draw_id": draw["draw_id"]}))
    ok(await host.call("draw_close", {"draw_id": draw["draw_id"]}))
    ok(await host.call("draw_pick", {"draw_id": draw["draw_id"]}))
    ok(await host.call("mod_mute", {"viewer_id": EVE, "seconds": 60}))
    ok(await host.call("mod_unmute", {"viewer_id": EVE}))
    for client in (eve, bob):
        await client.close()
    await left(server, room, EVE, BOB)
    status, _ = await server.api("DELETE", f"/api/rooms/{room}/streams/current", token=host_token)
    assert status == 200
    await host.close()
    return room, stream["id"], host_token, draw


async def left(server: Server, room: str, *viewers: str) -> None:
    """Wait until the server has logged each viewer's presence.leave."""
    for _ in range(200):
        gone = {a for k, a, _ in room_events(server, room) if k == "presence.leave"}
        if set(viewers) <= gone:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no presence.leave for {viewers}")


async def stored(server: Server, room: str, token: str) -> None:
    """Wait until the report of the stopped stream is stored (built in the background)."""
    for _ in range(200):
        status, body = await server.api("GET", f"/api/rooms/{room}/reports", token=token)
        if status == 200 and body["reports"]:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the report was never stored")


def rebuilt(server: Server, room: str, stream: str) -> Report:
    conn = source.connect_file(server.settings.data_dir / DB_FILE)
    try:
        record = source.stream_record(conn, room, stream)
        return source.build_from_file(conn, room, stream, now=time.time(), record=record)
    finally:
        conn.close()


def room_events(server: Server, room: str) -> list[tuple[str, str, bytes]]:
    with sqlite3.connect(server.settings.data_dir / DB_FILE) as conn:
        rows = conn.execute(
            "SELECT kind, actor, data FROM events WHERE room = ? ORDER BY id", (room,)
        ).fetchall()
    return [(str(k), str(a), bytes(d)) for k, a, d in rows]


def report_row_pids(report: Report) -> set[str]:
    return {row.pid for row in report.viewers}


async def test_erase_viewer_leaves_no_trace(server: Server) -> None:
    room, stream, host_token, draw = await scripted_stream(server)
    before = rebuilt(server, room, stream)
    eve_pid, bob_pid = pseudonym(stream, EVE), pseudonym(stream, BOB)
    assert {eve_pid, bob_pid} <= report_row_pids(before)
    assert any(EVE.encode() in data or actor == EVE for _, actor, data in room_events(server, room))
    mine = [kind for kind, actor, _ in room_events(server, room) if actor == EVE]
    counters = server.services.counters
    assert (await counters.viewer(room, stream, EVE)).get("messages") == 1.0
    bob_counters = await counters.viewer(room, stream, BOB)

    report_path = f"/api/rooms/{room}/streams/{stream}/report"
    await stored(server, room, host_token)
    status, served = await server.api("GET", report_path, token=host_token)
    assert status == 200 and "Eve" in {row["name"] for row in served["viewers"]}

    status, body = await server.api("DELETE", f"/api/rooms/{room}/viewers/{EVE}")

    assert status == 200, body
    assert (body["reports_rebuilt"], body["reports_deleted"]) == (1, 0)
    tomb = body["tombstone"]
    assert tomb.startswith(TOMBSTONE_PREFIX) and EVE not in tomb
    assert body["events_deleted"] == len(mine) == 7  # join, chat, like, vote, ask, entry, leave
    assert body["events_scrubbed"] >= 4  # mute, unmute, draw closed, draw revealed
    assert body["counters_deleted"] >= 1
    # the log: none of her events, her id nowhere, her words gone
    events = room_events(server, room)
    assert all(actor != EVE for _, actor, _ in events)
    assert not [kind for kind, _, data in events if EVE.encode() in data]
    assert not [kind for kind, _, data in events if b"eve wonders" in data or b"from eve" in data]
    assert any(kind == "chat.message" and b"hi from bob" in data for kind, _, data in events)
    # the live counters: hers gone, Bob's untouched
    assert await counters.viewer(room, stream, EVE) == {}
    assert await server.services.store.hgetall(viewer_key(room, stream, EVE)) == {}
    assert await counters.viewer(room, stream, BOB) == bob_counters
    # a rebuilt report: she is not in it, Bob is, and totals lost her share
    after = rebuilt(server, room, stream)
    assert eve_pid not in report_row_pids(after)
    assert bob_pid in report_row_pids(after)
    encoded = msgspec.json.encode(after)
    assert EVE.encode() not in encoded and b'"Eve"' not in encoded
    assert after.summary.chat_messages == before.summary.chat_messages - 1
    assert after.summary.poll_votes == before.summary.poll_votes - 1
    # the stored report was rebuilt: what the API serves (JSON and CSV) has no Eve
    status, served = await server.api("GET", report_path, token=host_token)
    assert status == 200 and served["meta"]["events_hash"] == after.meta.events_hash
    assert "Eve" not in {row["name"] for row in served["viewers"]}
    async with server.http.get(
        server.url + report_path + "?format=csv",
        headers={"Authorization": f"Bearer {host_token}"},
    ) as resp:
        csv_text = await resp.text()
    assert resp.status == 200 and "Bob" in csv_text and "Eve" not in csv_text
    # the draw transcript is kept, with a tombstone: it names who won, and says why it
    # no longer verifies against its entrants_hash
    status, record = await server.api(
        "GET", f"/api/rooms/{room}/draws/{draw['draw_id']}/transcript", token=None
    )
    assert status == 200
    assert EVE not in record["entrants"] and tomb in record["entrants"]
    assert sorted(record["winners"]) == sorted([BOB, tomb])
    assert record["erased_entrants"] == 1
    verified, reason = proof.verify(record)
    assert not verified and "entrants_hash" in reason
    status, listed = await server.api("GET", f"/api/rooms/{room}/draws", token=None)
    assert EVE not in msgspec.json.encode(listed).decode()
    # the live Q&A list no longer has her question
    bob = await server.client(room, name="Bob", viewer_id=BOB)
    listed = ok(await bob.call("qa_list", {}))
    assert "eve wonders" not in msgspec.json.encode(listed).decode()


async def test_erase_during_draws_keeps_the_id_out(memory_server: Server) -> None:
    """An open draw loses the entry; a closed one not yet picked is committed over its
    entrant list with the tombstone: the erased id is never published."""
    server = memory_server
    created = await server.create_room()
    room, host_token = created["room"]["id"], created["host_token"]
    host = await server.client(room, host_token)
    eve = await server.client(room, name="Eve", viewer_id=EVE)
    bob = await server.client(room, name="Bob", viewer_id=BOB)
    rule = {"kind": "present"}
    draws = []
    for prize in ("Open", "Closed"):
        body = {"prize": prize, "winners": 2, "rule": rule, "window_seconds": 60}
        draw_id = ok(await host.call("draw_create", body))["draw"]["draw_id"]
        for viewer in (eve, bob):
            ok(await viewer.call("draw_enter", {"draw_id": draw_id}))
        draws.append(draw_id)
    open_draw, closed_draw = draws
    ok(await host.call("draw_close", {"draw_id": closed_draw}))
    await eve.close()
    await left(server, room, EVE)

    status, _ = await server.api("DELETE", f"/api/rooms/{room}/viewers/{EVE}")
    assert status == 200

    picked = ok(await host.call("draw_pick", {"draw_id": open_draw}))["draw"]
    assert [w["viewer_id"] for w in picked["winners"]] == [BOB]
    picked = ok(await host.call("draw_pick", {"draw_id": closed_draw}))["draw"]
    winners = sorted(w["viewer_id"] for w in picked["winners"])
    assert winners[0] == BOB and winners[1].startswith(TOMBSTONE_PREFIX)
    status, record = await server.api(
        "GET", f"/api/rooms/{room}/draws/{closed_draw}/transcript", token=None
    )
    assert proof.verify(record) == (True, "ok")  # committed over the scrubbed list
    events = room_events(server, room)
    assert all(actor != EVE and EVE.encode() not in data for _, actor, data in events)


async def test_erase_of_a_host_keeps_the_stream_history(memory_server: Server) -> None:
    server = memory_server
    created = await server.create_room()
    room = created["room"]["id"]
    host_token = server.token(room, "host", "Hana", viewer_id="host-9")
    status, stream = await server.api("POST", f"/api/rooms/{room}/streams", token=host_token)
    assert status == 201
    host: LiveClient = await server.client(room, host_token)
    poll = ok(
        await host.call("poll_create", {"question": "Q?", "kind": "single", "options": ["a", "b"]})
    )["poll"]
    ok(await host.call("poll_open", {"poll_id": poll["id"]}))
    ok(await host.chat("host says hi"))
    await host.close()
    await left(server, room, "host-9")

    status, body = await server.api("DELETE", f"/api/rooms/{room}/viewers/host-9")

    assert status == 200, body
    events = room_events(server, room)
    kinds = [kind for kind, _, _ in events]
    assert "poll.created" in kinds and "poll.opened" in kinds and "stream.started" in kinds
    assert "chat.message" not in kinds  # what she said as a person is gone
    assert all(actor != "host-9" and b"host-9" not in data for _, actor, data in events)
    report = rebuilt(server, room, stream["id"])
    assert [p.question for p in report.interactions.polls] == ["Q?"]


async def test_erase_is_admin_only(memory_server: Server) -> None:
    server = memory_server
    created = await server.create_room()
    room = created["room"]["id"]
    viewer = await server.client(room, name="Vic", viewer_id="vic-1")
    ok(await viewer.chat("still here"))
    await viewer.close()
    await left(server, room, "vic-1")
    path = f"/api/rooms/{room}/viewers/vic-1"

    status, body = await server.api("DELETE", path, token=None)
    assert (status, body["code"]) == (401, "admin_required")
    for token in (created["host_token"], created["moderator_token"], "wrong-key"):
        status, body = await server.api("DELETE", path, token=token)
        assert (status, body["code"]) == (403, "admin_required")
    status, body = await server.api("DELETE", f"/api/rooms/nope{room}/viewers/vic-1")
    assert status == 404
    status, body = await server.api("DELETE", f"/api/rooms/{room}/viewers/{'x' * 65}")
    assert (status, body["code"]) == (400, "bad_viewer_id")
    # nothing happened along the way
    assert any(actor == "vic-1" for _, actor, _ in room_events(server, room))
    status, body = await server.api("DELETE", path)
    assert status == 200 and body["events_deleted"] >= 2
    assert not any(actor == "vic-1" for _, actor, _ in room_events(server, room))
