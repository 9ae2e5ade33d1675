"""Test support: a real livehub on a free port and real Socket.IO clients."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import av
import pytest
import socketio
from aiohttp import web

from livehub.app import SERVICES, create_app
from livehub.rooms import tokens
from livehub.settings import Settings
from livehub.signaling.context import Services

ADMIN_KEY = "test-admin-key"
SECRET = "test-secret-0123456789abcdef0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    port = overrides.pop("port", None) or free_port()
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "data_dir": data_dir,
        "secret": SECRET,
        "admin_key": ADMIN_KEY,
        "demo": False,
        "tick_ms": 50,
        "sqlite_synchronous": "NORMAL",
    }
    values.update(overrides)
    return Settings(**values)


def mint_token(
    room: str, role: str = "viewer", name: str = "Ann", viewer_id: str | None = None, **kw: Any
) -> str:
    """A token signed with the test servers' secret."""
    token, _, _ = tokens.mint(
        SECRET,
        room=room,
        role=role,  # type: ignore[arg-type]
        name=name,
        viewer_id=viewer_id,
        **kw,
    )
    return token


@dataclass
class Server:
    settings: Settings
    runner: web.AppRunner
    app: web.Application
    http: aiohttp.ClientSession
    clients: list[LiveClient] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.settings.base_url

    @property
    def services(self) -> Services:
        return self.app[SERVICES]

    async def api(
        self,
        method: str,
        path: str,
        *,
        token: str | None = ADMIN_KEY,
        json: Any = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        h = dict(headers or {})
        if token:
            h["Authorization"] = f"Bearer {token}"
        async with self.http.request(
            method, self.url + path, json=json, data=data, headers=h
        ) as resp:
            body = await resp.json(content_type=None)
            return resp.status, body

    async def create_room(self, room_id: str | None = None, **body: Any) -> dict[str, Any]:
        room_id = room_id or "r" + uuid.uuid4().hex[:8]
        status, created = await self.api(
            "POST", "/api/rooms", json={"id": room_id, "title": "Test room", **body}
        )
        assert status == 201, created
        return dict(created)

    def token(
        self,
        room: str,
        role: str = "viewer",
        name: str = "Ann",
        viewer_id: str | None = None,
        **kw: Any,
    ) -> str:
        return mint_token(room, role, name, viewer_id, **kw)

    async def client(
        self,
        room: str,
        token: str | None = None,
        *,
        role: str = "viewer",
        name: str = "Ann",
        viewer_id: str | None = None,
        last_event_id: int | None = None,
        transport: str = "websocket",
    ) -> LiveClient:
        token = token or self.token(room, role, name, viewer_id)
        client = LiveClient(self.url, room, token, last_event_id, transport)
        await client.connect()
        self.clients.append(client)
        return client


class Refused(Exception):
    def __init__(self, data: Any) -> None:
        super().__init__(data)
        self.data = data


class LiveClient:
    """A real python-socketio client that records everything it receives."""

    def __init__(
        self,
        url: str,
        room: str,
        token: str,
        last_event_id: int | None = None,
        transport: str = "websocket",
    ) -> None:
        self.url = url
        self.transport = transport
        self.auth: dict[str, Any] = {"room": room, "token": token}
        if last_event_id is not None:
            self.auth["last_event_id"] = last_event_id
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events: dict[str, list[Any]] = defaultdict(list)
        self._changed = asyncio.Event()
        self._refused: Any = None
        self.sio.on("*", self._record, namespace="/live")
        self.sio.on("connect_error", self._on_refused, namespace="/live")

    async def _record(self, event: str, data: Any = None) -> None:
        self.events[event].append(data)
        self._changed.set()

    async def _on_refused(self, data: Any) -> None:
        self._refused = data

    async def connect(self) -> None:
        try:
            await self.sio.connect(
                self.url,
                namespaces=["/live"],
                auth=self.auth,
                transports=[self.transport],
                wait_timeout=5,
            )
        except socketio.exceptions.ConnectionError as exc:
            raise Refused(self._refused) from exc
        await self.wait_for("welcome")

    @property
    def welcome(self) -> dict[str, Any]:
        return dict(self.events["welcome"][0])

    async def call(self, event: str, payload: Any = None, *args: Any) -> Any:
        data = (payload, *args) if args else payload
        if payload is None and not args:
            return await self.sio.call(event, namespace="/live", timeout=10)
        return await self.sio.call(event, data, namespace="/live", timeout=10)

    async def chat(self, text: str, **kw: Any) -> Any:
        return await self.call("chat", {"text": text, "client_id": uuid.uuid4().hex, **kw})

    def messages(self) -> list[dict[str, Any]]:
        """Every message seen in batches, in arrival order."""
        return [m for b in self.events["batch"] for m in b["messages"]]

    def message_texts(self) -> list[str]:
        return [m["text"] for m in self.messages()]

    def deleted(self) -> list[int]:
        return [i for b in self.events["batch"] for i in b["deleted"]]

    async def wait_for(
        self, event: str, predicate: Callable[[Any], bool] | None = None, timeout: float = 10.0
    ) -> Any:
        async def scan() -> Any:
            while True:
                for item in self.events.get(event, []):
                    if predicate is None or predicate(item):
                        return item
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(scan(), timeout)

    async def wait_until(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        async def loop() -> None:
            while not condition():
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(loop(), timeout)

    async def close(self) -> None:
        if self.sio.connected:
            await self.sio.disconnect()


async def new_room(server: Server) -> str:
    """A new room's id."""
    created = await server.create_room()
    return str(created["room"]["id"])


def vid(client: LiveClient) -> str:
    return str(client.welcome["you"]["viewer_id"])


def ok(ack: dict[str, Any]) -> dict[str, Any]:
    assert ack["ok"] is True, ack
    return ack


def error_of(ack: dict[str, Any]) -> dict[str, Any]:
    assert ack["ok"] is False, ack
    return dict(ack["error"])


def error_code(ack: dict[str, Any]) -> str:
    return str(error_of(ack)["code"])


def refusal_code(refused: pytest.ExceptionInfo[Refused]) -> str:
    """The error code in a refused connect (the body is the ``data`` of connect_error)."""
    data = refused.value.data
    assert isinstance(data, dict) and isinstance(data.get("data"), dict), data
    return str(data["data"]["code"])


async def wait_disconnected(client: LiveClient, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while client.sio.connected and "/live" in client.sio.namespaces:
        assert loop.time() < deadline, "the server did not disconnect the socket"
        await asyncio.sleep(0.02)


async def viewers_now(server: Server, room: str) -> int:
    stats = await server.services.presence.stats(await server.services.rooms.get(room))
    return stats.viewers


async def wait_viewers(server: Server, room: str, count: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while await viewers_now(server, room) != count:
        assert time.monotonic() < deadline, (
            f"viewer count stuck at {await viewers_now(server, room)}"
        )
        await asyncio.sleep(0.02)


async def start_server(settings: Settings) -> Server:
    app = await create_app(settings)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    await site.start()
    return Server(settings, runner, app, aiohttp.ClientSession())


async def stop_server(server: Server) -> None:
    for client in server.clients:
        await client.close()
    await asyncio.sleep(0.05)
    await server.http.close()
    await server.runner.cleanup()


# video frames whose pixels spell their number (media tests)

COUNTER_W, COUNTER_H = 160, 128


def counter_frame(n: int) -> av.VideoFrame:
    """A ``COUNTER_W`` x ``COUNTER_H`` frame whose luma spells ``n`` in 16 blocks."""
    frame = av.VideoFrame(COUNTER_W, COUNTER_H, "yuv420p")
    for plane in frame.planes[1:]:
        plane.update(b"\x80" * (plane.line_size * plane.height))
    stride = frame.planes[0].line_size
    luma = bytearray(b"\x80" * (stride * COUNTER_H))
    for bit in range(16):
        value = 235 if n >> bit & 1 else 16
        x, y = bit % 8 * 16, bit // 8 * 16
        for row in range(y, y + 16):
            luma[row * stride + x : row * stride + x + 16] = bytes([value]) * 16
    frame.planes[0].update(bytes(luma))
    return frame


def read_counter(frame: av.VideoFrame) -> int:
    """The number ``counter_frame`` spelled, read back from a decoded frame."""
    plane = frame.planes[0]
    data, stride = bytes(plane), plane.line_size
    return sum(
        1 << bit for bit in range(16) if data[(bit // 8 * 16 + 8) * stride + bit % 8 * 16 + 8] > 128
    )


def store_redis_url(request: pytest.FixtureRequest, store: str) -> str | None:
    """For a test parametrized over ``store`` ("memory" or "redis"): the session
    Redis's URL (emptied for the test) on "redis", None (the memory store) otherwise."""
    return str(request.getfixturevalue("redis_url")) if store == "redis" else None
