"""Two server processes behind one Redis and one data directory act as one service.

Each node is a real ``python -m livehub serve`` process; viewers connect to
different nodes with real Socket.IO clients. Redis carries the state and the
Socket.IO fan-out between nodes; both nodes write the same SQLite file (WAL).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from processes import NodeClients, TwoNodes, api, create_room
from support import Refused, mint_token, refusal_code, wait_disconnected

ROOM = "multi"
# Generous chat limits: the tests below are about nodes, not the rate limiter.
ROOM_SETTINGS = {"chat_rate_per_second": 100, "chat_burst": 100}


def has_message(message_id: int) -> Any:
    return lambda batch: any(m["id"] == message_id for m in batch["messages"])


def db_rows(data_dir: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(data_dir / "livehub.db", timeout=10)) as db:
        return list(db.execute(sql, args))


async def test_nodes_report_redis_and_distinct_ids(two_nodes: TwoNodes) -> None:
    health = [node.health()[1] for node in two_nodes]
    assert [h["store"] for h in health] == ["redis", "redis"]
    assert health[0]["node"] != health[1]["node"]


async def test_two_nodes_serve_one_room(
    two_nodes: TwoNodes, node_clients: NodeClients, tmp_path: Path
) -> None:
    a, b = two_nodes
    await create_room(a.url, ROOM, "Multi", settings=ROOM_SETTINGS)
    status, room = await api(b.url, "GET", f"/api/rooms/{ROOM}", token=None)
    assert status == 200 and room["id"] == ROOM, room

    ann_token = mint_token(ROOM, "viewer", "Ann", "v_ann")
    ann = await node_clients.connect(a, ROOM, ann_token)
    bob = await node_clients.connect(b, ROOM, mint_token(ROOM, "viewer", "Bob", "v_bob"))

    # A message sent on A reaches the viewer on B in a batch, and the other way round;
    # the viewer count in each batch is the room's, across both nodes.
    from_a = await ann.chat("hello from A")
    assert from_a["ok"] is True, from_a
    batch = await bob.wait_for("batch", has_message(from_a["id"]))
    assert [m["text"] for m in batch["messages"] if m["id"] == from_a["id"]] == ["hello from A"]
    assert batch["viewers"] == 2, batch

    from_b = await bob.chat("hello from B")
    assert from_b["ok"] is True, from_b
    assert from_b["id"] > from_a["id"]
    batch = await ann.wait_for("batch", has_message(from_b["id"]))
    assert [m["name"] for m in batch["messages"] if m["id"] == from_b["id"]] == ["Bob"]
    assert batch["viewers"] == 2, batch
    # each side also sees its own message once
    await ann.wait_for("batch", has_message(from_a["id"]))
    await bob.wait_for("batch", has_message(from_b["id"]))

    # Likes are one room-wide total whichever node counts them.
    assert await ann.call("like", {"count": 3}) == {"ok": True, "likes": 3}
    assert await bob.call("like", {"count": 4}) == {"ok": True, "likes": 7}
    for viewer in (ann, bob):
        await viewer.wait_for("batch", lambda batch: batch["likes"] == 7)

    # Ann opens a second connection on B: still two viewers, and a retry of her
    # message through the other node is recognised as the same message.
    ann_on_b = await node_clients.connect(b, ROOM, ann_token)
    assert ann_on_b.welcome["stats"]["viewers"] == 2
    payload = {"text": "sent once, retried elsewhere", "client_id": "retry-1"}
    first = await ann.call("chat", payload)
    retry = await ann_on_b.call("chat", payload)
    assert first["ok"] is True and first["duplicate"] is False, first
    assert retry["ok"] is True, retry
    assert (retry["id"], retry["duplicate"]) == (first["id"], True)
    data = tmp_path / "data"
    uid = f"{ROOM}|v_ann|retry-1"
    assert db_rows(data, "SELECT id FROM events WHERE uid = ?", uid) == [(first["id"],)]
    texts = db_rows(
        data, "SELECT data FROM events WHERE room = ? AND kind = ?", ROOM, "chat.message"
    )
    assert sum(b"sent once, retried elsewhere" in bytes(row[0]) for row in texts) == 1

    # A moderator on B deletes A's message: the viewer on A is told.
    mod_token = mint_token(ROOM, "moderator", "Mo", "v_mod")
    mod_b = await node_clients.connect(b, ROOM, mod_token)
    assert await mod_b.call("mod_delete", {"message_id": from_a["id"]}) == {"ok": True}
    await ann.wait_for("batch", lambda batch: from_a["id"] in batch["deleted"])
    await bob.wait_for("batch", lambda batch: from_a["id"] in batch["deleted"])
    late = await node_clients.connect(a, ROOM, mint_token(ROOM, "viewer", "Cy", "v_cy"))
    assert from_a["id"] not in [m["id"] for m in late.welcome["messages"]]
    assert from_b["id"] in [m["id"] for m in late.welcome["messages"]]

    # Slow mode switched on through A holds on B.
    mod_a = await node_clients.connect(a, ROOM, mod_token)
    assert await mod_a.call("mod_slow", {"seconds": 30}) == {"ok": True}
    await bob.wait_for("room", lambda room: room["settings"]["slow_mode_seconds"] == 30)
    status, room = await api(b.url, "GET", f"/api/rooms/{ROOM}", token=None)
    assert status == 200 and room["settings"]["slow_mode_seconds"] == 30, room
    assert (await bob.chat("first under slow mode"))["ok"] is True
    refused = await bob.chat("second under slow mode")
    assert refused["ok"] is False and refused["error"]["code"] == "slow_mode", refused
    assert 0 < refused["error"]["details"]["retry_after"] <= 30


async def test_concurrent_retry_on_both_nodes_records_once(
    two_nodes: TwoNodes, node_clients: NodeClients, tmp_path: Path
) -> None:
    """The same client id sent to both nodes at once is one message, not an error."""
    a, b = two_nodes
    await create_room(a.url, ROOM, "Multi", settings=ROOM_SETTINGS)
    ann_token = mint_token(ROOM, "viewer", "Ann", "v_ann")
    on_a = await node_clients.connect(a, ROOM, ann_token)
    on_b = await node_clients.connect(b, ROOM, ann_token)
    for n in range(10):
        payload = {"text": f"raced {n}", "client_id": f"race-{n}"}
        acks = await asyncio.gather(on_a.call("chat", payload), on_b.call("chat", payload))
        assert all(ack["ok"] is True for ack in acks), acks
        assert acks[0]["id"] == acks[1]["id"], acks
        assert sorted(ack["duplicate"] for ack in acks) == [False, True], acks
    rows = db_rows(
        tmp_path / "data",
        "SELECT uid FROM events WHERE room = ? AND kind = ?",
        ROOM,
        "chat.message",
    )
    assert sorted(row[0] for row in rows) == sorted(f"{ROOM}|v_ann|race-{n}" for n in range(10))


async def test_a_ban_on_one_node_disconnects_the_viewer_on_every_node(
    two_nodes: TwoNodes, node_clients: NodeClients
) -> None:
    a, b = two_nodes
    await create_room(a.url, ROOM, "Multi", settings=ROOM_SETTINGS)
    dan_token = mint_token(ROOM, "viewer", "Dan", "v_dan")
    dan_on_a = await node_clients.connect(a, ROOM, dan_token)
    dan_on_b = await node_clients.connect(b, ROOM, dan_token)
    eve = await node_clients.connect(b, ROOM, mint_token(ROOM, "viewer", "Eve", "v_eve"))
    mod_a = await node_clients.connect(a, ROOM, mint_token(ROOM, "moderator", "Mo", "v_mod"))

    ban = {"viewer_id": "v_dan", "reason": "spam"}
    assert await mod_a.call("mod_ban", ban) == {"ok": True}
    for tab in (dan_on_a, dan_on_b):
        assert await tab.wait_for("banned") == {"reason": "spam"}
        await wait_disconnected(tab)
    for node in (a, b):
        with pytest.raises(Refused) as refused:
            await node_clients.connect(node, ROOM, dan_token)
        assert refusal_code(refused) == "banned"
    # Everyone else stays.
    assert eve.sio.connected and mod_a.sio.connected
    assert (await eve.chat("still here"))["ok"] is True


async def test_a_hot_room_keeps_one_cap_across_both_nodes(
    two_nodes: TwoNodes, node_clients: NodeClients
) -> None:
    """Each node samples what it accepted; together they keep the room's cap instead
    of each sending a viewer up to the whole cap.

    Asserted against the time the flood took, however slowly the machine ran it: all
    the danmaku both nodes delivered fit in one cap for that time (plus the bursts the
    nodes' buckets start with); both nodes delivered and both sampled."""
    nodes = two_nodes
    cap, window = 10, 4.0
    settings = {**ROOM_SETTINGS, "max_danmaku_per_second": cap}
    await create_room(nodes[0].url, "hot", "Hot", settings=settings)
    watchers = [
        await node_clients.connect(node, "hot", mint_token("hot", "viewer", "W", f"v_w{i}"))
        for i, node in enumerate(nodes)
    ]
    host_token = mint_token("hot", "host", "Host", "v_host")
    hosts = [await node_clients.connect(node, "hot", host_token) for node in nodes]
    senders = [
        [
            await node_clients.connect(
                node, "hot", mint_token("hot", "viewer", f"S{i}", f"v_s{n}{i}")
            )
            for i in range(6)
        ]
        for n, node in enumerate(nodes)
    ]
    accepted: list[set[int]] = [set(), set()]  # by the node that accepted them
    sending = True

    async def flood(sender: Any, node: int, tag: str) -> None:
        n = 0
        while sending:
            ack = await sender.chat(f"{tag}-{n}")
            n += 1
            if ack["ok"]:
                accepted[node].add(ack["id"])
            else:  # the flood outran the per-viewer rate limit: wait as told
                assert ack["error"]["code"] == "rate_limited", ack
                await asyncio.sleep(ack["error"]["details"].get("retry_after", 0.05))

    loop = asyncio.get_running_loop()
    started = loop.time()  # before the first message: the nodes cannot deliver earlier
    floods = [
        asyncio.create_task(flood(s, n, f"{n}.{i}"))
        for n, group in enumerate(senders)
        for i, s in enumerate(group)
    ]
    try:
        await asyncio.sleep(window)
    finally:
        sending = False
        await asyncio.gather(*floods)
    # A host message (never sampled) behind each node's flood: once a watcher has both,
    # it has every batch that carried the flood.
    markers = [(await host.chat(f"end of flood {n}"))["id"] for n, host in enumerate(hosts)]
    for watcher in watchers:
        await watcher.wait_until(lambda w=watcher: set(markers) <= seen_ids(w), timeout=15)
    elapsed = loop.time() - started  # at least the time the nodes spent delivering it

    flooded = accepted[0] | accepted[1]
    seen = [seen_ids(w) & flooded for w in watchers]
    assert seen[0] == seen[1], "every viewer gets every node's batches"
    delivered = [len(seen[0] & accepted[n]) for n in range(2)]
    sampled = [len(accepted[n]) - delivered[n] for n in range(2)]
    figures = {"delivered": delivered, "sampled": sampled, "elapsed": round(elapsed, 2)}
    assert all(d > 0 for d in delivered), figures  # both nodes delivered
    assert all(s > 0 for s in sampled), figures  # both nodes sampled
    assert sum(sampled) > sum(delivered), figures  # the room really was hot
    for watcher in watchers:  # every message either delivered or counted as dropped
        assert sum(b["dropped"] for b in watcher.events["batch"]) == sum(sampled), figures
    # one cap for the room over the time it took, not one per node: each node's bucket
    # starts with a second of the cap, then the shares add up to one (a tick's lag aside)
    budget = cap * elapsed * 1.1 + 2 * cap
    assert cap <= sum(delivered) <= budget, figures


def seen_ids(client: Any) -> set[int]:
    return {m["id"] for m in client.messages()}
