"""The python-socketio/engineio internals livehub relies on, checked loudly.

FastEmitManager and RedisManager reach into attributes that are not public API;
pyproject.toml pins the exact versions. If an upgrade moves them, these fail
before anything subtle breaks in production.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import engineio
import socketio
from engineio.async_socket import AsyncSocket
from support import Server, make_settings

from livehub.signaling.socket import FastEmitManager, RedisManager, build_server


def test_pinned_versions_are_the_ones_the_fast_path_was_written_for() -> None:
    from importlib.metadata import version

    assert version("python-socketio") == "5.18.1"
    assert version("python-engineio") == "4.15.1"


def test_engineio_and_socketio_still_have_what_the_fast_path_uses(tmp_path: Path) -> None:
    sio = build_server(make_settings(tmp_path))
    assert isinstance(sio.manager, FastEmitManager)
    assert isinstance(sio.eio.sockets, dict)
    assert "self.queue" in inspect.getsource(AsyncSocket.__init__) or "queue" in inspect.getsource(
        engineio.base_socket.BaseSocket.__init__
    )
    assert inspect.iscoroutinefunction(AsyncSocket.send)
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
