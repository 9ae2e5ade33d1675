"""kill -9 of a server on Redis in the middle of a chat flood, then a restart.

Acked means in the log: every message acked before the crash is in the log exactly
once, and every message not acked is accepted exactly once when its sender retries
it with the same client id on the restarted server, even where the crash left the
store's claim on it (the repeat claim is in Redis) without its log event.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path
from typing import Any

from processes import NodeClients, ProcessGroup, create_room
from support import mint_token

from livehub.interactions.chat import REPEAT_WINDOW_SECONDS, repeat_key
from livehub.interactions.normalise import clean_text
from livehub.rooms.redis_store import RedisStore

ROOM = "crash"
# Generous limits: the test is about the crash, not the rate limiter.
SETTINGS = {"chat_rate_per_second": 100, "chat_burst": 100, "max_danmaku_per_second": 0}
SENDERS = 8
ACKED_BEFORE_KILL = 60
BOUND_SECONDS = 60


class Message:
    __slots__ = ("cid", "id", "text", "viewer")

    def __init__(self, viewer: str, n: int) -> None:
        self.viewer = viewer
        self.cid = f"{viewer}-{n}"
        self.text = f"{viewer} says {n}"
        self.id: int | None = None  # once acked

    @property
    def uid(self) -> str:
        return f"{ROOM}|{self.viewer}|{self.cid}"

    def payload(self) -> dict[str, str]:
        return {"text": self.text, "client_id": self.cid}


def logged(data_dir: Path) -> dict[str, list[int]]:
    """The chat events in the log, by idempotency key: the ids stored under each."""
    with contextlib.closing(sqlite3.connect(data_dir / "livehub.db", timeout=10)) as db:
        rows = db.execute(
            "SELECT uid, id FROM events WHERE room = ? AND kind = 'chat.message'", (ROOM,)
        )
        found: dict[str, list[int]] = {}
        for uid, event_id in rows:
            found.setdefault(uid, []).append(event_id)
        return found


async def cancel_all(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel the senders, again until they stop (a cancellation that lands while the
    Socket.IO client is sending can be lost)."""
    while pending := [t for t in tasks if not t.done()]:
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=0.2)
    for task in tasks:
        assert task.cancelled(), task.exception()


def token(viewer: str) -> str:
    return mint_token(ROOM, "viewer", viewer, viewer)


async def test_kill_9_mid_flood_then_every_unacked_retry_is_accepted_once(
    procs: ProcessGroup, node_clients: NodeClients, redis_url: str, tmp_path: Path
) -> None:
    async with asyncio.timeout(BOUND_SECONDS):
        await crash_and_retry(procs, node_clients, redis_url, tmp_path / "data")


async def crash_and_retry(
    procs: ProcessGroup, node_clients: NodeClients, redis_url: str, data: Path
) -> None:
    node = procs.serve(data, redis_url=redis_url)
    await create_room(node.url, ROOM, "Crash", settings=SETTINGS)
    viewers = [f"v_s{i}" for i in range(SENDERS)]
    clients = [await node_clients.connect(node, ROOM, token(v)) for v in viewers]
    sent: list[Message] = []
    enough = asyncio.Event()

    async def flood(client: Any, viewer: str) -> None:
        for n in range(10_000):
            message = Message(viewer, n)
            sent.append(message)  # before the call: in flight from here on
            ack = await client.call("chat", message.payload())
            assert ack["ok"], ack
            message.id = ack["id"]
            if sum(m.id is not None for m in sent) >= ACKED_BEFORE_KILL:
                enough.set()

    floods = [asyncio.create_task(flood(c, v)) for c, v in zip(clients, viewers, strict=True)]
    await asyncio.wait(
        [asyncio.ensure_future(enough.wait()), *floods], return_when="FIRST_COMPLETED"
    )
    node.kill()  # SIGKILL with every sender's next message in flight
    await cancel_all(floods)

    acked = [m for m in sent if m.id is not None]
    unacked = [m for m in sent if m.id is None]
    assert len(acked) >= ACKED_BEFORE_KILL and len(unacked) >= SENDERS - 1
    before = logged(data)
    for message in acked:  # acked means in the log
        assert before.get(message.uid) == [message.id], message.uid

    # The crash window: the store holds the message's claim, the log has no event. Where
    # the kill did not leave a claim behind, make the one the crash could have left.
    store = await RedisStore.connect(redis_url)
    try:
        lost = [m for m in unacked if m.uid not in before]
        for message in lost:
            key = repeat_key(ROOM, message.viewer, clean_text(message.text))
            await store.set_if_absent(key, message.cid, REPEAT_WINDOW_SECONDS)
            assert await store.get(key) == message.cid
    finally:
        await store.close()

    restarted = procs.serve(data, redis_url=redis_url)
    again = {v: await node_clients.connect(restarted, ROOM, token(v)) for v in viewers}

    async def retry(message: Message) -> dict[str, Any]:
        ack: dict[str, Any] = await again[message.viewer].call("chat", message.payload())
        return ack

    retried = await asyncio.gather(*(retry(m) for m in unacked))
    for message, ack in zip(unacked, retried, strict=True):
        assert ack["ok"], (message.uid, ack)  # never repeated_message
        if message.uid in before:  # committed, but the ack died with the server
            assert (ack["id"], ack["duplicate"]) == (before[message.uid][0], True), ack
        else:
            assert ack["duplicate"] is False, ack
        message.id = ack["id"]
    # A second retry of anything, acked before the crash or after, is the same message.
    for message in [*acked[:5], *unacked]:
        ack = await retry(message)
        assert (ack["ok"], ack["id"], ack["duplicate"]) == (True, message.id, True), ack

    after = logged(data)
    assert after == {m.uid: [m.id] for m in sent}  # each message exactly once
