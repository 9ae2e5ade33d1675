"""Redis fails under two live nodes: refused at once, never lost, back by itself.

Real processes throughout: one redis-server of the test's own (killed with
SIGKILL and started again on the same port, with and without an append-only
file), two ``livehub serve`` processes sharing it, real Socket.IO viewers on each.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sqlite3
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from processes import NodeClients, ProcessGroup, ServerProcess, create_room
from redis_server import OwnRedis
from support import LiveClient, error_code, mint_token

ROOM = "outage"
ROOM_SETTINGS = {"chat_rate_per_second": 100, "chat_burst": 100, "max_danmaku_per_second": 0}
OUTAGE = 3.0  # seconds Redis stays down while the viewers keep sending
BOUND = 20.0  # seconds any one recovery may take before the test fails (it takes ~2)


async def wait_health(node: ServerProcess, status: int) -> dict[str, Any]:
    deadline = time.monotonic() + BOUND
    while True:
        code, body = await asyncio.to_thread(node.health, 2.0)
        if code == status:
            return dict(body or {})
        assert time.monotonic() < deadline, f"/healthz stayed {code}, not {status}"
        await asyncio.sleep(0.1)


async def chat_until_accepted(client: LiveClient, text: str) -> dict[str, Any]:
    """Send with one client id until acked: every refusal is the retryable ``unavailable``."""
    deadline = time.monotonic() + BOUND
    client_id = f"retry-{text}"
    while True:
        ack = await client.call("chat", {"text": text, "client_id": client_id})
        if ack.get("ok"):
            return dict(ack)
        assert error_code(ack) == "unavailable", ack
        details = ack["error"]["details"]
        assert details["retryable"] is True and details["retry_after"] > 0, ack
        assert time.monotonic() < deadline, "the node did not resume by itself"
        await asyncio.sleep(0.05)


def chat_texts(data: Path) -> list[tuple[str]]:
    with contextlib.closing(sqlite3.connect(data / "livehub.db", timeout=10)) as db:
        query = "SELECT json_extract(data, '$.text') FROM events WHERE kind = 'chat.message'"
        return list(db.execute(query))


def delivered(client: LiveClient, ids: set[int]) -> bool:
    return ids <= {m["id"] for m in client.messages()}


@pytest.mark.parametrize("persist", [False, True], ids=["no-persistence", "append-only"])
async def test_a_redis_outage_refuses_then_resumes_without_losing_anything(
    persist: bool,
    procs: ProcessGroup,
    node_clients: NodeClients,
    own_redis: OwnRedis,
    tmp_path: Path,
) -> None:
    own_redis.keeps = "persisted" if persist else "empty"
    url = own_redis.start().url
    data = tmp_path / "data"
    a, b = procs.serve(data, redis_url=url), procs.serve(data, redis_url=url)
    pids = (a.pid, b.pid)
    await create_room(a.url, ROOM, "Outage", settings=ROOM_SETTINGS)
    ann = await node_clients.connect(a, ROOM, mint_token(ROOM, "viewer", "Ann", "v_ann"))
    bob = await node_clients.connect(b, ROOM, mint_token(ROOM, "viewer", "Bob", "v_bob"))
    before = {(await ann.chat("before-a"))["id"], (await bob.chat("before-b"))["id"]}
    for viewer in (ann, bob):
        await viewer.wait_until(lambda v=viewer: delivered(v, before), BOUND)

    own_redis.kill()
    # Refused at once with a retryable error, on both nodes, for as long as Redis
    # is away (long enough for the listeners' back-off to reach its cap); nothing
    # is recorded for it, and health names the store.
    for node in (a, b):
        body = await wait_health(node, 503)
        assert "store" in body["failing"], body
    loop = asyncio.get_running_loop()
    until = loop.time() + OUTAGE
    while loop.time() < until:
        for viewer in (ann, bob):
            ack = await asyncio.wait_for(viewer.chat("during"), BOUND)
            assert error_code(ack) == "unavailable", ack
        await asyncio.sleep(0.1)
    seen_batches = len(ann.events["batch"])

    own_redis.start()
    # Each node resumes by itself: the first retry that is accepted counts once,
    # and everything acked from now on reaches both viewers, across the nodes.
    acked = {(await chat_until_accepted(ann, "a-0"))["id"]}
    acked.add((await chat_until_accepted(bob, "b-0"))["id"])
    for i in range(1, 15):
        for viewer, name in ((ann, "a"), (bob, "b")):
            ack = await viewer.chat(f"{name}-{i}")
            assert ack["ok"] is True, ack
            acked.add(ack["id"])
    for viewer in (ann, bob):
        try:
            await viewer.wait_until(lambda v=viewer: delivered(v, acked), BOUND)
        except TimeoutError:
            seen = {m["id"] for m in viewer.messages()}
            raise AssertionError(f"missing {sorted(acked - seen)} of {sorted(acked)}") from None
        texts = [m["text"] for m in viewer.messages()]
        assert "during" not in texts
    # Clients drop ids shown twice (a recovered frame may repeat one); the log has each once.
    logged = Counter(text for (text,) in chat_texts(data))
    assert logged["a-0"] == logged["b-0"] == 1 and "during" not in logged, logged
    assert sum(logged.values()) == len(before) + len(acked)
    for node in (a, b):
        body = await wait_health(node, 200)
        assert body["failing"] == [], body
    assert (a.pid, b.pid) == pids and a.alive() and b.alive()  # no node restart
    # The count is the room's again (within a heartbeat): two viewers, whichever node
    # counts. A batch goes out when something is sent, so keep sending until one says so.
    deadline = loop.time() + BOUND
    for n in itertools.count():
        if any(b.get("viewers") == 2 for b in ann.events["batch"][seen_batches:]):
            break
        assert loop.time() < deadline, [b.get("viewers") for b in ann.events["batch"][-5:]]
        sent = await bob.chat(f"count? {n}")
        assert sent["ok"] is True, sent
        await asyncio.sleep(0.2)


async def test_300_simultaneous_senders_on_redis_are_all_answered(
    procs: ProcessGroup, node_clients: NodeClients, redis_url: str, tmp_path: Path
) -> None:
    # A pool much smaller than the burst: callers wait for a connection, none is dropped.
    pool = ["--redis-pool-size", "20"]
    node = procs.serve(tmp_path / "data", redis_url=redis_url, extra_args=pool)
    await create_room(node.url, ROOM, "Burst", settings={"chat_rate_per_second": 10})
    viewers = await asyncio.gather(
        *(
            node_clients.connect(node, ROOM, mint_token(ROOM, "viewer", f"V{i}", f"v_{i}"))
            for i in range(300)
        )
    )
    acks = await asyncio.gather(*(v.chat(f"hello {i}") for i, v in enumerate(viewers)))
    assert [a.get("ok") for a in acks] == [True] * 300, [a for a in acks if not a.get("ok")][:3]
    assert len({a["id"] for a in acks}) == 300
    assert "never retrieved" not in node.stderr()
