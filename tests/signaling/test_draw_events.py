"""Prize draws through a real server and real Socket.IO clients, on both stores:
entry rules, the commitment pushed before the result, the public transcript
checked by draw_proof and by ``livehub verify-draw``, and the REST list.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import msgspec
from processes import NodeClients, ServerProcess, TwoNodes, api, create_room, run_livehub_async
from support import LiveClient, Server, error_code, mint_token, vid

from livehub.interactions import draw_proof as proof
from livehub.interactions.draws import Draw, draws_key, entry_client_id
from livehub.rooms.eventlog import NewEvent

PRESENT = {"kind": "present"}


def track(client: LiveClient, *names: str) -> list[str]:
    """Record the order in which ``names`` arrive (client.events keeps them per name)."""
    order: list[str] = []
    for name in names:

        async def handler(data: Any = None, name: str = name) -> None:
            order.append(name)
            await client._record(name, data)

        client.sio.on(name, handler, namespace="/live")
    return order


async def new_room(server: Server) -> str:
    created = await server.create_room(settings={"max_danmaku_per_second": 0})
    return str(created["room"]["id"])


async def create_draw(staff: LiveClient, **body: Any) -> dict[str, Any]:
    payload = {"prize": "A mug", "winners": 1, "rule": PRESENT, "window_seconds": 60, **body}
    ack = await staff.call("draw_create", payload)
    assert ack["ok"], ack
    return dict(ack["draw"])


async def pick(staff: LiveClient, draw_id: str) -> dict[str, Any]:
    ack = await staff.call("draw_pick", {"draw_id": draw_id})
    assert ack["ok"], ack
    assert ack["draw"]["status"] == "revealed"
    return dict(ack["draw"])


async def transcript(server: Server, room: str, draw_id: str) -> tuple[int, Any]:
    return await server.api("GET", f"/api/rooms/{room}/draws/{draw_id}/transcript", token=None)


async def test_present_draw_end_to_end(server: Server, tmp_path: Path) -> None:
    room = await new_room(server)
    host = await server.client(room, role="host", name="Host")
    mod = await server.client(room, role="moderator", name="Mod")
    ann = await server.client(room, name="Ann")
    bob = await server.client(room, name="Bob")
    order = track(ann, "draw", "draw_commit", "draw_result")

    draw = await create_draw(host, winners=1, prize="A signed mug")
    draw_id = draw["draw_id"]
    assert (draw["status"], draw["rule"], draw["winners_count"]) == ("open", PRESENT, 1)
    assert draw["closes_at"] - draw["created_at"] == 60
    pushed = await ann.wait_for("draw", lambda d: d["draw_id"] == draw_id)
    assert (pushed["prize"], pushed["status"]) == ("A signed mug", "open")

    # Entry: once per viewer, never for staff.
    for viewer in (ann, bob):
        ack = await viewer.call("draw_enter", {"draw_id": draw_id})
        assert ack == {"ok": True, "entered": True, "draw_id": draw_id}
    assert error_code(await ann.call("draw_enter", {"draw_id": draw_id})) == "already_entered"
    for staff in (mod, host):
        assert error_code(await staff.call("draw_enter", {"draw_id": draw_id})) == (
            "staff_not_eligible"
        )
    await mod.wait_for("draw_entries", lambda d: d == {"draw_id": draw_id, "entrant_count": 2})
    state = await ann.call("draw_state")
    assert state["entered"] == [draw_id] and state["draws"][0]["entrant_count"] == 2

    # Close freezes the list; entry afterwards is refused.
    ack = await mod.call("draw_close", {"draw_id": draw_id})
    assert (ack["draw"]["status"], ack["draw"]["entrant_count"]) == ("closed", 2)
    await bob.wait_for("draw", lambda d: d["draw_id"] == draw_id and d["status"] == "closed")
    cat = await server.client(room, name="Cat")
    assert error_code(await cat.call("draw_enter", {"draw_id": draw_id})) == "draw_closed"
    status, body = await transcript(server, room, draw_id)
    assert (status, body["code"]) == (404, "not_revealed")

    # Pick: the commitment reaches viewers before the result.
    picked = await pick(host, draw_id)
    result = await ann.wait_for("draw_result", lambda d: d["draw_id"] == draw_id)
    assert order.index("draw_commit") < order.index("draw_result"), order
    [commit] = ann.events["draw_commit"]
    assert commit["entrant_count"] == 2

    status, record = await transcript(server, room, draw_id)
    assert status == 200
    assert proof.verify(record) == (True, "ok")
    assert record["entrants"] == sorted([vid(ann), vid(bob)])
    assert (record["room"], record["draw_id"], record["prize"]) == (room, draw_id, "A signed mug")
    for name in ("entrants_hash", "seed_hash", "commitment"):
        assert record[name] == commit[name] == picked[name]
    assert result["seed"] == record["seed"] == picked["seed"]
    [winner] = result["winners"]
    assert [winner["viewer_id"]] == record["winners"]
    assert winner["name"] == {vid(ann): "Ann", vid(bob): "Bob"}[winner["viewer_id"]]
    assert result["transcript_url"] == f"/api/rooms/{room}/draws/{draw_id}/transcript"
    assert result["verify_url"] == f"/verify?room={room}&draw={draw_id}"

    # The operator's check agrees, and catches a tampered copy.
    good = tmp_path / "good.json"
    good.write_text(json.dumps(record))
    done = await run_livehub_async("verify-draw", str(good))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith(f"OK: draw {draw_id} in room {room}")
    loser = next(e for e in record["entrants"] if e not in record["winners"])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**record, "winners": [loser]}))
    done = await run_livehub_async("verify-draw", str(bad))
    assert done.returncode == 1
    assert done.stdout.startswith("FAILED: the winners are not the ones the seed picks")

    # Picking again changes nothing; the public list shows the result.
    again = await host.call("draw_pick", {"draw_id": draw_id})
    assert again["draw"]["seed"] == record["seed"]
    assert len(ann.events["draw_result"]) == 1
    status, listed = await server.api("GET", f"/api/rooms/{room}/draws", token=None)
    assert status == 200
    [summary] = listed["draws"]
    assert (summary["draw_id"], summary["status"], summary["entrant_count"]) == (
        draw_id,
        "revealed",
        2,
    )
    assert "entrants" not in summary

    # The log tells the story in order.
    kinds = [e.kind async for e in server.services.log.scan(room) if e.kind.startswith("draw.")]
    assert kinds == [
        "draw.created",
        "draw.entered",
        "draw.entered",
        "draw.closed",
        "draw.committed",
        "draw.revealed",
    ]
    counters = await server.services.counters.viewer(room, "-", winner["viewer_id"])
    assert (counters["draw_entries"], counters["draw_wins"]) == (1, 1)


async def test_keyword_draw_picks_up_chat_senders(server: Server) -> None:
    room = await new_room(server)
    host = await server.client(room, role="host", name="Host")
    ann = await server.client(room, name="Ann")
    bob = await server.client(room, name="Bob")
    draw = await create_draw(host, rule={"kind": "keyword", "keyword": "Lucky"}, winners=5)
    draw_id = draw["draw_id"]

    assert (await ann.chat("feeling LUCKY today"))["ok"]
    assert (await bob.chat("hello everyone"))["ok"]
    assert (await host.chat("lucky lucky"))["ok"]
    ack = await bob.call("draw_enter", {"draw_id": draw_id})
    assert error_code(ack) == "keyword_required"
    assert ack["error"]["details"] == {"keyword": "Lucky"}

    await host.call("draw_close", {"draw_id": draw_id})
    picked = await pick(host, draw_id)
    assert [w["viewer_id"] for w in picked["winners"]] == [vid(ann)]
    status, record = await transcript(server, room, draw_id)
    assert status == 200 and record["entrants"] == [vid(ann)]
    assert proof.verify(record) == (True, "ok")


async def test_watched_draw_refuses_too_little_watch_time(server: Server) -> None:
    room = await new_room(server)
    host = await server.client(room, role="host", name="Host")
    ann = await server.client(room, name="Ann")
    bob = await server.client(room, name="Bob")
    draw = await create_draw(host, rule={"kind": "watched", "minutes": 2})

    ack = await ann.call("draw_enter", {"draw_id": draw["draw_id"]})
    assert error_code(ack) == "not_eligible"
    assert ack["error"]["details"]["needed_seconds"] == 120
    await server.services.counters.add_watch(room, "-", vid(bob), 125.0)
    ack = await bob.call("draw_enter", {"draw_id": draw["draw_id"]})
    assert ack["ok"], ack


async def test_the_window_ends_by_server_time(server: Server) -> None:
    room = await new_room(server)
    host = await server.client(room, role="host", name="Host")
    ann = await server.client(room, name="Ann")
    draw = await create_draw(host, window_seconds=10)
    assert (await ann.call("draw_enter", {"draw_id": draw["draw_id"]}))["ok"]

    # Move the deadline into the past; the server's loop closes the draw by itself.
    store = server.services.store
    stored = msgspec.json.decode(await store.hget(draws_key(room), draw["draw_id"]), type=Draw)
    ended = msgspec.structs.replace(stored, closes_at=time.time() - 1)
    await store.hset(draws_key(room), {ended.id: msgspec.json.encode(ended).decode()})
    closed = await ann.wait_for("draw", lambda d: d["status"] == "closed", timeout=10)
    assert closed["entrant_count"] == 1
    bob = await server.client(room, name="Bob")
    assert error_code(await bob.call("draw_enter", {"draw_id": draw["draw_id"]})) == "draw_closed"


async def test_refusals(server: Server) -> None:
    room = await new_room(server)
    host = await server.client(room, role="host", name="Host")
    ann = await server.client(room, name="Ann")
    payload = {"prize": "Mug", "rule": PRESENT}
    assert error_code(await ann.call("draw_create", payload)) == "forbidden"
    for bad in (
        {**payload, "rule": {"kind": "lottery"}},
        {**payload, "rule": {"kind": "keyword"}},
        {**payload, "rule": {"kind": "watched", "minutes": 0}},
        {**payload, "window_seconds": 5},
        {**payload, "winners": 101},
        {**payload, "viewer_id": "x"},
        {"rule": PRESENT},
    ):
        assert error_code(await host.call("draw_create", bad)) == "bad_payload", bad
    draw = await create_draw(host)
    assert error_code(await ann.call("draw_pick", {"draw_id": draw["draw_id"]})) == "forbidden"
    assert error_code(await ann.call("draw_close", {"draw_id": draw["draw_id"]})) == "forbidden"
    assert error_code(await ann.call("draw_enter", {"draw_id": "d_nope"})) == "not_found"
    assert (await host.call("draw_list"))["draws"][0]["status"] == "open"

    status, body = await transcript(server, room, "d_nope")
    assert (status, body["code"]) == (404, "not_found")
    status, body = await server.api("GET", "/api/rooms/nosuchroom/draws", token=None)
    assert (status, body["code"]) == (404, "room_not_found")
    kinds = [e.kind async for e in server.services.log.scan(room) if e.kind.startswith("draw.")]
    assert kinds == ["draw.created"]


async def test_late_joiner_sees_the_open_draw(server: Server) -> None:
    room = await new_room(server)
    host = await server.client(room, role="host", name="Host")
    draw = await create_draw(host, rule={"kind": "keyword", "keyword": "go"})
    late = await server.client(room, name="Late")
    state = await late.call("draw_state")
    assert state["ok"] and state["entered"] == []
    [shown] = state["draws"]
    assert (shown["draw_id"], shown["status"], shown["rule"]) == (
        draw["draw_id"],
        "open",
        {"kind": "keyword", "keyword": "go"},
    )
    assert abs(state["server_time"] - time.time()) < 60


# -- two nodes ---------------------------------------------------------------------------


async def test_two_nodes_run_one_draw(
    two_nodes: TwoNodes, node_clients: NodeClients, tmp_path: Path
) -> None:
    a, b = two_nodes
    data = tmp_path / "data"
    await create_room(a.url, "two", "Two")

    async def connect(node: ServerProcess, role: str, name: str) -> LiveClient:
        return await node_clients.connect(node, "two", mint_token("two", role, name))

    host = await connect(a, "host", "Host")
    mod_b = await connect(b, "moderator", "Mod")
    viewers = [await connect(a if i % 2 else b, "viewer", f"V{i}") for i in range(8)]
    watcher = viewers[1]  # on A
    order = track(watcher, "draw", "draw_commit", "draw_result")
    draw = await create_draw(host, winners=3)
    draw_id = draw["draw_id"]
    for viewer in viewers:
        await viewer.wait_for("draw", lambda d: d["draw_id"] == draw_id)

    # Everyone enters on their own node, all at once; a second try anywhere is refused.
    acks = await asyncio.gather(*(v.call("draw_enter", {"draw_id": draw_id}) for v in viewers))
    assert all(ack["ok"] for ack in acks), acks
    assert error_code(await viewers[0].call("draw_enter", {"draw_id": draw_id})) == (
        "already_entered"
    )
    # Close from both nodes at once, then pick from both at once: each happens once.
    closes = await asyncio.gather(
        host.call("draw_close", {"draw_id": draw_id}),
        mod_b.call("draw_close", {"draw_id": draw_id}),
    )
    assert [(c["draw"]["status"], c["draw"]["entrant_count"]) for c in closes] == [
        ("closed", 8),
        ("closed", 8),
    ]
    picks = await asyncio.gather(
        host.call("draw_pick", {"draw_id": draw_id}),
        mod_b.call("draw_pick", {"draw_id": draw_id}),
    )
    done = [p for p in picks if p["ok"]]
    assert done, picks
    for p in picks:
        assert p["ok"] or p["error"]["code"] == "pick_in_progress", p
    result = await watcher.wait_for("draw_result", lambda r: r["draw_id"] == draw_id)
    assert order.index("draw_commit") < order.index("draw_result"), order

    status, record = await api(
        b.url, "GET", f"/api/rooms/two/draws/{draw_id}/transcript", token=None
    )
    assert status == 200
    assert proof.verify(record) == (True, "ok")
    assert record["entrants"] == sorted(vid(v) for v in viewers)
    assert record["winners"] == [w["viewer_id"] for w in result["winners"]]
    assert len(watcher.events["draw_result"]) == 1
    with contextlib.closing(sqlite3.connect(data / "livehub.db", timeout=10)) as db:
        kinds = [
            row[0]
            for row in db.execute(
                "SELECT kind FROM events WHERE room = 'two' AND kind LIKE 'draw.%' ORDER BY id"
            )
        ]
    assert kinds == ["draw.created"] + ["draw.entered"] * 8 + [
        "draw.closed",
        "draw.committed",
        "draw.revealed",
    ]


async def test_a_retry_of_an_entry_a_killed_node_recorded_pushes_the_learned_count(
    server: Server,
) -> None:
    room = await new_room(server)
    host = await server.client(room, role="host", name="Host")
    ann = await server.client(room, name="Ann")
    draw_id = (await create_draw(host))["draw_id"]
    # Recorded by a node killed before its store heard of it (or answered).
    recorded = NewEvent(
        room=room, kind="draw.entered", actor=vid(ann), data={"draw_id": draw_id, "name": "Ann"},
        client_id=entry_client_id(draw_id),
    )  # fmt: skip
    await server.services.log.append(recorded)
    assert error_code(await ann.call("draw_enter", {"draw_id": draw_id})) == "already_entered"
    pushed = await host.wait_for("draw_entries", lambda e: e["draw_id"] == draw_id)
    assert pushed["entrant_count"] == 1
    state = await ann.call("draw_state")
    assert state["entered"] == [draw_id]
