"""The python-socketio/engineio internals livehub relies on, checked loudly.

FastEmitManager and RedisManager reach into attributes that are not public API;
pyproject.toml pins the exact versions. If an upgrade moves them, these fail
before anything subtle breaks in production.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
from pathlib import Path

import aiohttp
import engineio
import pytest
import socketio
from engineio.async_socket import AsyncSocket
from support import Server, make_settings, wait_viewers

from livehub.app import LIVE
from livehub.signaling.manager import (
    MAX_BUFFERED_BYTES,
    CapturingWebSocket,
    FastEmitManager,
    RedisManager,
)
from livehub.signaling.socket import build_server


def test_pinned_versions_are_the_ones_the_fast_path_was_written_for() -> None:
    from importlib.metadata import version

    assert version("python-socketio") == "5.18.1"
    assert version("python-engineio") == "4.15.1"
    assert version("aiohttp") == "3.14.5"


def test_engineio_and_socketio_still_have_what_the_fast_path_uses(tmp_path: Path) -> None:
    sio = build_server(make_settings(tmp_path))
    assert isinstance(sio.manager, FastEmitManager)
    assert isinstance(sio.eio.sockets, dict)
    assert "self.queue" in inspect.getsource(AsyncSocket.__init__) or "queue" in inspect.getsource(
        engineio.base_socket.BaseSocket.__init__
    )
    assert inspect.iscoroutinefunction(AsyncSocket.send)
    assert sio.eio._async["websocket"] is CapturingWebSocket
    handler = inspect.getsource(AsyncSocket._websocket_handler)
    assert "self.upgraded = True" in handler and "self.upgrading" in handler
    assert "await self.handler(self)" in inspect.getsource(CapturingWebSocket.__mro__[1].__call__)
    assert hasattr(socketio.AsyncRedisManager, "_redis_connect")
    assert [c.__name__ for c in RedisManager.__mro__][:5] == [
        "RedisManager",
        "AsyncRedisManager",
        "AsyncPubSubManager",
        "FastEmitManager",
        "AsyncManager",
    ]


async def test_room_emits_go_through_the_fast_path_and_reach_everyone(
    memory_server: Server,
) -> None:
    room = (await memory_server.create_room(settings={"max_danmaku_per_second": 0}))["room"]["id"]
    viewers = [await memory_server.client(room, name=f"v{i}") for i in range(5)]
    ack = await viewers[0].chat("through the fast path")
    for viewer in viewers:
        await viewer.wait_until(lambda v=viewer: ack["id"] in [m["id"] for m in v.messages()])


def manager_of(server: Server) -> FastEmitManager:
    manager = server.app[LIVE].server.manager
    assert isinstance(manager, FastEmitManager)
    return manager


async def test_room_frames_are_written_straight_to_websockets(memory_server: Server) -> None:
    room = (await memory_server.create_room(settings={"max_danmaku_per_second": 0}))["room"]["id"]
    viewers = [await memory_server.client(room, name=f"v{i}") for i in range(3)]
    manager = manager_of(memory_server)
    before = manager.direct_frames
    ack = await viewers[0].chat("straight to the socket")
    for viewer in viewers:
        await viewer.wait_until(lambda v=viewer: ack["id"] in [m["id"] for m in v.messages()])
    assert manager.direct_frames >= before + len(viewers)


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 200_000])
async def test_every_websocket_frame_length_form_arrives_whole(
    memory_server: Server, size: int
) -> None:
    """The 7-bit, 16-bit and 64-bit length forms, at and around their limits."""
    room = (await memory_server.create_room())["room"]["id"]
    viewer = await memory_server.client(room)
    text = "x" * max(0, size - len('42/live,["probe",""]') - 1) + "é"
    await memory_server.app[LIVE].emit("probe", text, room=f"room:{room}")
    assert await viewer.wait_for("probe") == text


async def test_polling_clients_get_room_frames_through_the_queue(memory_server: Server) -> None:
    room = (await memory_server.create_room(settings={"max_danmaku_per_second": 0}))["room"]["id"]
    polling = await memory_server.client(room, name="Poll", transport="polling")
    websocket = await memory_server.client(room, name="Web")
    for n in range(5):
        await websocket.chat(f"m{n}")
    for viewer in (polling, websocket):
        await viewer.wait_until(lambda v=viewer: len(v.messages()) == 5)
        assert viewer.message_texts() == [f"m{n}" for n in range(5)]
    # Saying goodbye answers the pending long-poll rather than leaving it to the
    # 40 s ping timeout.
    await asyncio.wait_for(polling.close(), 5)
    await wait_viewers(memory_server, room, 1)


async def test_a_reader_that_stops_skips_frames_and_blocks_nobody(memory_server: Server) -> None:
    room = (await memory_server.create_room())["room"]["id"]
    reader = await memory_server.client(room, name="Reader")
    manager = manager_of(memory_server)
    url = f"ws://127.0.0.1:{memory_server.settings.port}/socket.io/?EIO=4&transport=websocket"
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as stalled:
        assert (await stalled.receive_str()).startswith("0{")
        auth = {"room": room, "token": memory_server.token(room, name="Stalled")}
        await stalled.send_str(f"40/live,{json.dumps(auth)}")
        assert (await stalled.receive_str()).startswith("40/live,")
        # From here the stalled client reads nothing more.
        chunk = "y" * 60_000
        frames = 400  # about 24 MB, far past any socket buffer
        for n in range(frames):  # paced by the reader that keeps up
            await memory_server.app[LIVE].emit("probe", f"{n}:{chunk}", room=f"room:{room}")
            await reader.wait_until(lambda n=n: len(reader.events["probe"]) == n + 1)
        assert [p.split(":")[0] for p in reader.events["probe"]] == [str(n) for n in range(frames)]
        assert manager.skipped_frames > 0
        sockets = memory_server.app[LIVE].server.eio.sockets.values()
        buffered = [s.livehub_ws._writer.transport.get_write_buffer_size() for s in sockets]
        assert max(buffered) <= MAX_BUFFERED_BYTES + len(chunk) + 100


def test_the_stock_disconnect_bookkeeping_is_what_ours_replaces() -> None:
    """FastEmitManager.basic_disconnect redoes BaseManager's without its scan of every
    room; if python-socketio's grows other bookkeeping, this fails first."""
    source = inspect.getsource(socketio.base_manager.BaseManager.basic_disconnect)
    touched = set(re.findall(r"self\.(\w+)", source))
    assert touched == {
        "rooms",
        "basic_leave_room",
        "callbacks",
        "pending_connect",
        "pending_disconnect",
    }


async def test_the_room_index_matches_the_stock_scan_and_forgets_the_departed(
    memory_server: Server,
) -> None:
    room = (await memory_server.create_room())["room"]["id"]
    host = await memory_server.client(room, role="host", name="Host")
    viewers = [await memory_server.client(room, name=f"v{i}") for i in range(4)]
    manager = manager_of(memory_server)
    namespace = "/live"
    sids = [sid for sid, _ in manager.get_participants(namespace, f"room:{room}")]
    assert len(sids) == 5
    for sid in sids:
        stock = socketio.base_manager.BaseManager.get_rooms(manager, sid, namespace)
        assert sorted(manager.get_rooms(sid, namespace)) == sorted(stock)
        assert f"room:{room}" in stock and sid in stock

    for viewer in viewers[:2]:
        await viewer.close()
    await wait_viewers(memory_server, room, 3)
    left = set(sids) - {sid for sid, _ in manager.get_participants(namespace, f"room:{room}")}
    assert len(left) == 2
    for sid in left:
        assert manager.get_rooms(sid, namespace) == []
        assert all(sid not in members for members in manager.rooms[namespace].values())
    assert (await host.chat("still here"))["ok"] is True  # the rest are untouched
    for viewer in viewers[2:]:
        await viewer.wait_until(lambda v=viewer: "still here" in v.message_texts())
