"""Disk full: a real server process with its data directory on a 2 MB tmpfs.

The disk is filled with a file while viewers chat. Every chat must then be
answered promptly, with ``unavailable`` once commits fail (never left hanging,
never acknowledged unrecorded), ``/healthz`` must answer 503 naming "database",
and once the file is deleted the node must accept chat and answer 200 again by
itself. Afterwards every acknowledged message is in the log exactly once, and no
refused one is in the log or was delivered to anyone.
"""

from __future__ import annotations

import asyncio
import errno
import os
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import socketio
from processes import NodeClients, ProcessGroup, ServerProcess, api, create_room
from support import LiveClient, Refused, mint_token

ROOM = "diskfull"
DISK_SIZE = "2m"
# Generous bounds (a loaded machine): the commit deadline is 5 s by default.
ANSWER_BOUND = 12.0
HEALTH_BOUND = 15.0
RECOVERY_BOUND = 20.0
# Messages sent while full before giving up on ever seeing "unavailable".
MAX_SENDS_WHILE_FULL = 50
# No cap on danmaku: every accepted message is delivered (the cap samples, by design).
ROOM_SETTINGS = {"chat_rate_per_second": 100, "chat_burst": 100, "max_danmaku_per_second": 0}


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A fresh 2 MB tmpfs, unmounted (lazily, so a process still on it cannot block) after."""
    mount = tmp_path / "disk"
    mount.mkdir()
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={DISK_SIZE}", "tmpfs", str(mount)],
            check=True,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", None) or exc
        pytest.skip(f"cannot mount a {DISK_SIZE} tmpfs here (needs root): {detail}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False, timeout=10)


def fill(disk: Path) -> Path:
    """Write a file until the disk refuses even one more byte; return its path."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        for size in (1 << 16, 1 << 12, 1 << 8, 1):
            chunk = b"\0" * size
            while True:
                try:
                    os.write(fd, chunk)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
                    break
    finally:
        os.close(fd)
    return filler


@dataclass
class Chat:
    """What each sent message got: an ack with its id, or a refusal."""

    client: LiveClient
    sent: dict[str, str] = field(default_factory=dict)  # client_id -> text
    acked: dict[str, int] = field(default_factory=dict)  # client_id -> event id
    refused: dict[str, dict[str, Any]] = field(default_factory=dict)  # client_id -> error
    count: int = 0

    async def send(self, label: str) -> dict[str, Any]:
        """Send one new message; fail the test if it gets no answer within the bound."""
        self.count += 1
        client_id = f"{label}-{self.count}"
        text = f"{label} message {self.count}"
        self.sent[client_id] = text
        payload = {"text": text, "client_id": client_id}
        try:
            ack = await self.client.sio.call(
                "chat", payload, namespace="/live", timeout=ANSWER_BOUND
            )
        except socketio.exceptions.TimeoutError:
            pytest.fail(f"chat {client_id!r} got no answer within {ANSWER_BOUND} s")
        assert isinstance(ack, dict), ack
        if ack.get("ok"):
            self.acked[client_id] = int(ack["id"])
        else:
            self.refused[client_id] = dict(ack["error"])
        return dict(ack)


async def health(server: ServerProcess) -> tuple[int, Any]:
    return await api(server.url, "GET", "/healthz", token=None)


async def wait_health(
    server: ServerProcess, accept: Callable[[int, Any], bool], bound: float
) -> tuple[int, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + bound
    while True:
        status, body = await health(server)
        if accept(status, body):
            return status, body
        assert loop.time() < deadline, f"/healthz still {status} {body} after {bound} s"
        await asyncio.sleep(0.2)


def logged(db: Path) -> dict[str, list[tuple[int, str]]]:
    """client_id -> [(event id, text)] of every chat message in the database file."""
    found: dict[str, list[tuple[int, str]]] = {}
    with sqlite3.connect(db) as conn:
        for event_id, uid, data in conn.execute(
            "SELECT id, uid, json_extract(data, '$.text') FROM events "
            "WHERE kind = 'chat.message' AND room = ?",
            (ROOM,),
        ):
            found.setdefault(str(uid).rsplit("|", 1)[-1], []).append((event_id, data))
    return found


async def test_disk_full_refuses_with_unavailable_goes_503_and_recovers(
    small_disk: Path, procs: ProcessGroup, node_clients: NodeClients
) -> None:
    data = small_disk / "data"
    server = procs.serve(data)
    await create_room(server.url, ROOM, "Disk full", settings=ROOM_SETTINGS)
    sender = await node_clients.connect(server, ROOM, mint_token(ROOM, name="Ann"))
    watcher = await node_clients.connect(server, ROOM, mint_token(ROOM, name="Bob"))
    chat = Chat(sender)
    for _ in range(3):
        assert (await chat.send("before"))["ok"] is True

    filler = fill(small_disk)
    loop = asyncio.get_running_loop()
    refusal: dict[str, Any] | None = None
    for _ in range(MAX_SENDS_WHILE_FULL):
        ack = await chat.send("full")
        if not ack["ok"]:
            refusal = ack["error"]
            break
    assert refusal is not None, f"{MAX_SENDS_WHILE_FULL} messages accepted on a full disk"
    assert refusal["code"] == "unavailable", refusal
    assert refusal["details"]["retryable"] is True
    assert refusal["details"]["retry_after"] > 0
    # Refused again, each one answered (not one left hanging), while the disk is full.
    started = loop.time()
    for _ in range(5):
        ack = await chat.send("full")
        assert ack["ok"] is False and ack["error"]["code"] == "unavailable", ack
    assert loop.time() - started < 5 * ANSWER_BOUND
    # A viewer arriving now is answered too: let in, or refused as unavailable.
    try:
        await asyncio.wait_for(
            node_clients.connect(server, ROOM, mint_token(ROOM, name="Cy")), ANSWER_BOUND
        )
    except Refused as late:
        assert late.data["data"]["code"] == "unavailable", late.data
    # A host's room change (a direct write on the same file) is refused the same way.
    status, refused = await api(
        server.url,
        "PATCH",
        f"/api/rooms/{ROOM}",
        token=mint_token(ROOM, role="host", name="Host"),
        json={"title": "Renamed on a full disk"},
    )
    assert (status, refused["code"]) == (503, "unavailable"), refused

    _, body = await wait_health(
        server, lambda status, body: status == 503 and "database" in body["failing"], HEALTH_BOUND
    )
    assert body["parts"]["database"]["ok"] is False
    assert body["parts"]["database"]["error"]

    filler.unlink()
    deadline = loop.time() + RECOVERY_BOUND
    while not (await chat.send("after"))["ok"]:
        assert loop.time() < deadline, f"chat still refused {RECOVERY_BOUND} s after the disk freed"
        await asyncio.sleep(0.2)
    await wait_health(server, lambda status, body: status == 200, HEALTH_BOUND)
    for _ in range(3):
        assert (await chat.send("later"))["ok"] is True
    status, renamed = await api(
        server.url,
        "PATCH",
        f"/api/rooms/{ROOM}",
        token=mint_token(ROOM, role="host", name="Host"),
        json={"title": "Renamed"},
    )
    assert (status, renamed["title"]) == (200, "Renamed"), renamed

    # Every acked message reaches the other viewer; no refused one ever does.
    acked_texts = {chat.sent[c] for c in chat.acked}
    refused_texts = {chat.sent[c] for c in chat.refused}
    await watcher.wait_until(lambda: acked_texts <= set(watcher.message_texts()), timeout=10)
    assert not refused_texts & set(watcher.message_texts())

    assert server.stop() == 0, server.output()
    assert "Task exception was never retrieved" not in server.output()
    found = logged(data / "livehub.db")
    for client_id, event_id in chat.acked.items():
        assert found.get(client_id) == [(event_id, chat.sent[client_id])], client_id
    for client_id in chat.refused:
        assert client_id not in found, f"refused {client_id} is in the log"
    assert set(found) == set(chat.acked)


async def test_a_locked_database_answers_unavailable_and_503_until_released(
    tmp_path: Path, procs: ProcessGroup, node_clients: NodeClients
) -> None:
    """Another process holds the write lock: refused by the (configured) deadline."""
    data = tmp_path / "data"
    server = procs.serve(data, extra_args=["--commit-deadline-seconds", "1"])
    await create_room(server.url, ROOM, "Locked", settings=ROOM_SETTINGS)
    chat = Chat(await node_clients.connect(server, ROOM, mint_token(ROOM, name="Ann")))
    assert (await chat.send("before"))["ok"] is True
    loop = asyncio.get_running_loop()

    holder = sqlite3.connect(data / "livehub.db", isolation_level=None, timeout=10)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        for _ in range(3):
            ack = await chat.send("locked")
            assert ack["ok"] is False and ack["error"]["code"] == "unavailable", ack
        await wait_health(
            server,
            lambda status, body: status == 503 and "database" in body["failing"],
            HEALTH_BOUND,
        )
    finally:
        holder.execute("ROLLBACK")
        holder.close()

    deadline = loop.time() + RECOVERY_BOUND
    while not (await chat.send("after"))["ok"]:
        assert loop.time() < deadline, f"chat still refused {RECOVERY_BOUND} s after the unlock"
        await asyncio.sleep(0.2)
    await wait_health(server, lambda status, body: status == 200, HEALTH_BOUND)
    assert server.stop() == 0, server.output()
    found = logged(data / "livehub.db")
    for client_id, event_id in chat.acked.items():
        assert found.get(client_id) == [(event_id, chat.sent[client_id])], client_id
    # A refusal at the deadline may still have committed (the retry would find it),
    # but never twice, and nothing is in the log that was not sent.
    assert all(len(found[c]) == 1 for c in found)
    assert set(found) <= set(chat.sent)
