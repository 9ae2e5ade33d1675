"""The kill -9 promise: an acknowledged message is in the log, exactly once.

A real server process (default settings: SQLite synchronous=FULL) takes a burst
of chat from several clients and is SIGKILLed while messages are still being
sent. Every message that was acknowledged must then be in the database file
exactly once with its text, a restarted server must replay them to a client
resuming from the start, and a retry of an acknowledged message after the
restart must be recognised as a duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from processes import NodeClients, ProcessGroup, ServerProcess, create_room
from support import LiveClient, mint_token

ROOM = "durable"
CLIENTS = 5
PER_CLIENT = 60
SEND_SECONDS = 1.0
# Kill once half is sent and some acks are back (a loaded machine may lag behind).
KILL_AFTER_SENT = CLIENTS * PER_CLIENT // 2
KILL_AFTER_ACKED = 20
ACK_TIMEOUT = 3.0
# Each client sends 60 messages a second: keep it well under the room's rate limit.
ROOM_SETTINGS = {"chat_rate_per_second": 100, "chat_burst": 100}


@dataclass
class Burst:
    sent: dict[str, tuple[str, str]] = field(default_factory=dict)  # client_id -> (viewer, text)
    acked: dict[str, int] = field(default_factory=dict)  # client_id -> message id
    refused: list[Any] = field(default_factory=list)
    sent_at_kill: int | None = None
    acked_at_kill: int | None = None


def viewer_token(viewer_id: str) -> str:
    return mint_token(ROOM, name=viewer_id, viewer_id=viewer_id)


async def send_burst(server: ServerProcess, senders: list[LiveClient]) -> Burst:
    """Send from every client at a steady pace; SIGKILL the server half-way through."""
    burst = Burst()
    killed = asyncio.Event()
    pending: set[asyncio.Task[None]] = set()

    async def send_one(client: LiveClient, viewer_id: str, client_id: str, text: str) -> None:
        payload = {"text": text, "client_id": client_id}
        try:
            ack = await client.sio.call("chat", payload, namespace="/live", timeout=ACK_TIMEOUT)
        except Exception:  # the server died under this message: no ack, no promise
            return
        if ack.get("ok"):
            burst.acked[client_id] = int(ack["id"])
        elif not killed.is_set():
            burst.refused.append(ack)

    async def sender(k: int, client: LiveClient) -> None:
        viewer_id = f"v_{k}"
        for i in range(PER_CLIENT):
            if killed.is_set():
                return
            client_id = f"c{k}-{i}"
            text = f"client {k} message {i}"
            burst.sent[client_id] = (viewer_id, text)
            task = asyncio.create_task(send_one(client, viewer_id, client_id, text))
            pending.add(task)
            ready = len(burst.sent) >= KILL_AFTER_SENT and len(burst.acked) >= KILL_AFTER_ACKED
            if ready and not killed.is_set():
                burst.sent_at_kill = len(burst.sent)
                burst.acked_at_kill = len(burst.acked)
                os.kill(server.pid, signal.SIGKILL)
                killed.set()
                return
            await asyncio.sleep(SEND_SECONDS / PER_CLIENT)

    await asyncio.gather(*(sender(k, c) for k, c in enumerate(senders)))
    if not killed.is_set():  # everything sent before enough acks came back: kill anyway
        burst.sent_at_kill = len(burst.sent)
        burst.acked_at_kill = len(burst.acked)
        os.kill(server.pid, signal.SIGKILL)
        killed.set()
    server.process.wait(timeout=5)
    # Acks already on the wire may still arrive; none can once every client has
    # seen its connection drop.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ACK_TIMEOUT
    while any(not t.done() for t in pending) and loop.time() < deadline:
        if not any(c.sio.connected for c in senders):
            break
        await asyncio.sleep(0.02)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    return burst


def chat_rows(data_dir: Path) -> list[tuple[int, str, str, dict[str, Any]]]:
    """(id, uid, actor, data) of every chat message, read straight from the file."""
    with contextlib.closing(sqlite3.connect(data_dir / "livehub.db", timeout=10)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        rows = db.execute(
            "SELECT id, uid, actor, data FROM events WHERE room = ? AND kind = ? ORDER BY id",
            (ROOM, "chat.message"),
        ).fetchall()
    return [(i, uid, actor, json.loads(data)) for i, uid, actor, data in rows]


async def test_acknowledged_messages_survive_sigkill(
    procs: ProcessGroup, node_clients: NodeClients, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    server = procs.serve(data)  # no --sqlite-synchronous: the default, FULL
    await create_room(server.url, ROOM, "Durable", settings=ROOM_SETTINGS)
    senders = [
        await node_clients.connect(server, ROOM, viewer_token(f"v_{k}")) for k in range(CLIENTS)
    ]

    burst = await send_burst(server, senders)

    assert server.process.returncode == -signal.SIGKILL
    assert not burst.refused, burst.refused[:5]
    assert burst.sent_at_kill is not None
    assert burst.sent_at_kill < CLIENTS * PER_CLIENT, "killed only after the last send"
    assert burst.acked_at_kill, "nothing was acknowledged before the kill"
    assert len(burst.acked) >= burst.acked_at_kill

    # 1. The file itself, opened with the stdlib after the crash.
    rows = chat_rows(data)
    by_uid: dict[str, list[tuple[int, str, dict[str, Any]]]] = {}
    for event_id, uid, actor, body in rows:
        by_uid.setdefault(uid, []).append((event_id, actor, body))
    for client_id, message_id in burst.acked.items():
        viewer_id, text = burst.sent[client_id]
        stored = by_uid.get(f"{ROOM}|{viewer_id}|{client_id}", [])
        assert len(stored) == 1, (client_id, message_id, stored)
        event_id, actor, body = stored[0]
        assert (event_id, actor, body["text"]) == (message_id, viewer_id, text)
    texts = [body["text"] for _, _, _, body in rows]
    assert len(texts) == len(set(texts)), "a message was recorded twice"
    sent_texts = {text for _, text in burst.sent.values()}
    assert set(texts) <= sent_texts
    assert len(rows) >= len(burst.acked)

    # 2. A restarted server on the same directory replays them to a resuming client.
    for client in node_clients:
        await client.close()
    restarted = procs.serve(data)
    resumed = await node_clients.connect(restarted, ROOM, viewer_token("v_late"), last_event_id=0)
    welcome = resumed.welcome
    assert welcome["resumed"] is True
    replayed = {m["id"]: m["text"] for m in welcome["messages"]}
    assert len(replayed) == len(welcome["messages"])
    for client_id, message_id in burst.acked.items():
        assert replayed.get(message_id) == burst.sent[client_id][1], client_id

    # 3. A retry of an acknowledged message after the restart is the same message.
    client_id, message_id = sorted(burst.acked.items())[0]
    viewer_id, text = burst.sent[client_id]
    retrier = await node_clients.connect(restarted, ROOM, viewer_token(viewer_id))
    ack = await retrier.call("chat", {"text": text, "client_id": client_id})
    assert ack["ok"] is True, ack
    assert (ack["id"], ack["duplicate"], ack["message"]["text"]) == (message_id, True, text)
    assert len(chat_rows(data)) == len(rows)
