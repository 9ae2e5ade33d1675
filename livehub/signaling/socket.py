"""The Socket.IO server, attached to the aiohttp app.

permessage-deflate is refused: batching already makes frames few and large, and
compressing each frame for each viewer costs more CPU than it saves here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import socketio
from aiohttp import web

from livehub.rooms.redis_store import client_pool
from livehub.settings import Settings
from livehub.signaling.catchup import Catchup
from livehub.signaling.manager import CapturingWebSocket, FastEmitManager, Health, RedisManager
from livehub.tasks import cancel_and_wait

SOCKET_PATH = "/socket.io/"
log = logging.getLogger("livehub.socket")


CLOSE_WAIT = 3.0  # seconds a graceful stop gives clients to take their close packet


class LiveServer(socketio.AsyncServer):  # type: ignore[misc]
    """python-socketio's server, closing connections that send malformed packets.

    The stock server logs a traceback for a packet it cannot decode (bad JSON,
    JSON nested past the recursion limit, an unknown packet type, an event that
    is not a list) and drops it, leaving the sender waiting for an ack that never
    comes. Such a client is broken or hostile: close its connection instead.
    Its websockets are served by CapturingWebSocket, for FastEmitManager.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.eio._async = {**self.eio._async, "websocket": CapturingWebSocket}

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        try:
            await super()._handle_eio_message(eio_sid, data)
        except (ValueError, TypeError, LookupError, RecursionError) as exc:
            log.info("closing %s: malformed packet: %r", eio_sid, exc)
            await self.eio.disconnect(eio_sid)

    async def _handle_eio_disconnect(self, eio_sid: str, reason: Any) -> None:
        await super()._handle_eio_disconnect(eio_sid, reason)
        # A long-polling client that says goodbye still has a GET waiting for
        # packets, which python-engineio leaves hanging until the ping timeout
        # (holding up the client's disconnect and the server's shutdown).
        # Answer it now with an empty payload.
        socket = self.eio.sockets.get(eio_sid)
        if socket is not None and not socket.upgraded and reason == self.reason.CLIENT_DISCONNECT:
            socket.queue.put_nowait(None)

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


def build_server(
    settings: Settings, catchup: Catchup | None = None, on_health: Health | None = None
) -> socketio.AsyncServer:
    """The Socket.IO server; with Redis, ``catchup`` recovers what a pub/sub cut-off lost."""
    manager: Any = FastEmitManager()
    if settings.redis_url:
        assert catchup is not None, "a Redis deployment recovers pub/sub cut-offs from the log"
        manager = RedisManager(
            settings.redis_url,
            pool=client_pool(
                settings.redis_url, settings.redis_pool_size, settings.redis_timeout, decode=False
            ),
            channel="livehub",
            catchup=catchup,
            on_health=on_health,
        )
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


def attach(
    sio: socketio.AsyncServer,
    app: web.Application,
    before_close: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Serve the socket on ``app``; a graceful stop runs ``before_close`` (every viewer's
    leave recorded in one batch), then closes every connection."""

    async def handle(request: web.Request) -> Any:
        if "Sec-WebSocket-Extensions" in request.headers:
            headers = request.headers.copy()
            del headers["Sec-WebSocket-Extensions"]
            request = request.clone(headers=headers)
        return await sio.handle_request(request)

    async def close_connections(app: web.Application) -> None:
        if before_close is not None:
            try:
                await before_close()
            except Exception:  # the connections close all the same; each leave then alone
                log.exception("recording the leaves before closing failed")
        await disconnect_everyone(sio)

    app.on_shutdown.append(close_connections)
    app.router.add_route("GET", SOCKET_PATH, handle)
    app.router.add_route("POST", SOCKET_PATH, handle)
    app.router.add_route("OPTIONS", SOCKET_PATH, handle)


async def close_socket(socket: Any) -> None:
    """Close one Engine.IO socket from the server's side: the close packet, then
    the websocket itself (python-engineio otherwise waits for the client to close
    it, and a client need not)."""
    await socket.close()
    socket.queue.put_nowait(None)  # its websocket writer exits and closes the websocket


async def disconnect_everyone(sio: socketio.AsyncServer) -> None:
    """Close every connection, as a graceful stop begins.

    aiohttp waits for open requests before it stops, and a websocket or a
    long-poll never finishes by itself; closing them here lets each viewer's
    leave be recorded, and their clients reconnect elsewhere. A client that does
    not take its close packet within CLOSE_WAIT seconds is cut off by aiohttp.
    """
    sockets = list(sio.eio.sockets.values())
    if sockets:
        closing = [asyncio.ensure_future(close_socket(socket)) for socket in sockets]
        await asyncio.wait(closing, timeout=CLOSE_WAIT)
        await cancel_and_wait([task for task in closing if not task.done()])
    await sio.shutdown()


async def shutdown(sio: socketio.AsyncServer) -> None:
    if isinstance(sio.manager, RedisManager):
        await sio.manager.close()
