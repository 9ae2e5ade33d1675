"""The Socket.IO server, attached to the aiohttp app.

permessage-deflate is refused: batching already makes frames few and large, and
compressing each frame for each viewer costs more CPU than it saves here.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import socketio
from aiohttp import web
from engineio import packet as eio_packet
from socketio import packet

from livehub.settings import Settings
from livehub.tasks import cancel_and_wait

SOCKET_PATH = "/socket.io/"
log = logging.getLogger("livehub.socket")


MAX_BACKLOG_FRAMES = 50


class FastEmitManager(socketio.AsyncManager):  # type: ignore[misc]
    """Room emits without a task per recipient.

    python-socketio encodes a room emit once but then creates one task per
    recipient, which dominates the cost of fanning a batch out to thousands of
    viewers. Putting a packet on a socket's queue never blocks, so this awaits
    the puts one after another instead. A viewer whose queue already holds
    MAX_BACKLOG_FRAMES frames (several seconds behind) skips this one, so one
    slow connection never grows memory without bound. Emits with a callback
    keep the stock path. Relies on internals pinned by the exact
    python-socketio/python-engineio versions in pyproject.toml.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.skipped_frames = 0

    async def emit(
        self,
        event: str,
        data: Any,
        namespace: str,
        room: str | None = None,
        skip_sid: Any = None,
        callback: Any = None,
        to: str | None = None,
        **kwargs: Any,
    ) -> None:
        room = to or room
        if callback is not None or namespace not in self.rooms:
            await super().emit(
                event, data, namespace, room=room, skip_sid=skip_sid, callback=callback, **kwargs
            )
            return
        args = list(data) if isinstance(data, tuple) else ([] if data is None else [data])
        encoded = self.server.packet_class(
            packet.EVENT, namespace=namespace, data=[event, *args]
        ).encode()
        frames = [
            eio_packet.Packet(eio_packet.MESSAGE, p)
            for p in (encoded if isinstance(encoded, list) else [encoded])
        ]
        skip = set(skip_sid) if isinstance(skip_sid, list) else {skip_sid}
        sockets = self.server.eio.sockets
        for sid, eio_sid in list(self.get_participants(namespace, room)):
            socket = sockets.get(eio_sid)
            if sid in skip or socket is None or socket.closed:
                continue
            if socket.queue.qsize() >= MAX_BACKLOG_FRAMES:
                self.skipped_frames += 1
                continue
            for frame in frames:
                await socket.send(frame)


class RedisManager(socketio.AsyncRedisManager, FastEmitManager):  # type: ignore[misc]
    """python-socketio's Redis manager, closable.

    The stock manager connects once for publishing and again for listening,
    dropping the first client unclosed, and has no close. This keeps every client
    it made and closes them all. It reaches into attributes pinned by the exact
    python-socketio version in pyproject.toml (tests cover it: warnings are errors).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: list[Any] = []

    def _redis_connect(self) -> None:
        super()._redis_connect()
        self._clients.append(self.redis)

    async def close(self) -> None:
        task = getattr(self, "thread", None)
        if isinstance(task, asyncio.Task):
            await cancel_and_wait([task])
        if self.pubsub is not None:
            await self.pubsub.aclose()
        for client in self._clients:
            await client.aclose()


class LiveServer(socketio.AsyncServer):  # type: ignore[misc]
    """python-socketio's server, closing connections that send malformed packets.

    The stock server logs a traceback for a packet it cannot decode (bad JSON,
    JSON nested past the recursion limit, an unknown packet type, an event that
    is not a list) and drops it, leaving the sender waiting for an ack that never
    comes. Such a client is broken or hostile: close its connection instead.
    """

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        try:
            await super()._handle_eio_message(eio_sid, data)
        except (ValueError, TypeError, LookupError, RecursionError) as exc:
            log.info("closing %s: malformed packet: %r", eio_sid, exc)
            await self.eio.disconnect(eio_sid)

    async def handle_request(self, request: web.Request) -> Any:
        try:
            return await super().handle_request(request)
        except (ValueError, LookupError):
            # An undecodable Engine.IO packet escapes python-engineio's websocket
            # loop without closing the session, which then lingers (the viewer
            # counted as present) until the ping timeout. Close it now.
            for eio_sid, environ in list(self.environ.items()):
                if environ.get("aiohttp.request") is request:
                    await self.eio.disconnect(eio_sid)
            raise


def build_server(settings: Settings) -> socketio.AsyncServer:
    manager: Any = FastEmitManager()
    if settings.redis_url:
        manager = RedisManager(settings.redis_url, channel="livehub")
    return LiveServer(
        async_mode="aiohttp",
        client_manager=manager,
        cors_allowed_origins=settings.origins,
        max_http_buffer_size=settings.max_frame_bytes,
        ping_interval=20,
        ping_timeout=20,
        logger=False,
        engineio_logger=False,
    )


def attach(sio: socketio.AsyncServer, app: web.Application) -> None:
    async def handle(request: web.Request) -> Any:
        if "Sec-WebSocket-Extensions" in request.headers:
            headers = request.headers.copy()
            del headers["Sec-WebSocket-Extensions"]
            request = request.clone(headers=headers)
        return await sio.handle_request(request)

    app.router.add_route("GET", SOCKET_PATH, handle)
    app.router.add_route("POST", SOCKET_PATH, handle)
    app.router.add_route("OPTIONS", SOCKET_PATH, handle)


async def shutdown(sio: socketio.AsyncServer) -> None:
    if isinstance(sio.manager, RedisManager):
        await sio.manager.close()
