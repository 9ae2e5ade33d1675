"""The Socket.IO client manager: who is in which room, and room emits.

``FastEmitManager`` is python-socketio's manager with three costs taken out of
it, for rooms of thousands of viewers: a room emit is one WebSocket frame built
once and written straight to every upgraded websocket (no task, queue or writer
wake-up per viewer); a client's rooms are found from a reverse index rather
than by testing every room (every viewer has a room of its own); and the lists
of clients connecting and disconnecting are ordered sets. It relies on
internals of the exact python-socketio, python-engineio and aiohttp versions
pinned in pyproject.toml, checked in tests/signaling/test_socket_internals.py.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import socketio
from engineio import packet as eio_packet
from engineio.async_drivers import aiohttp as eio_aiohttp
from socketio import packet

from livehub.tasks import cancel_and_wait

MAX_BACKLOG_FRAMES = 50
MAX_BUFFERED_BYTES = 256 * 1024
#: events after which their recipients are disconnected, on every node
FINAL_EVENTS = frozenset({"banned"})
FINAL_ACK_WAIT = 5.0  # seconds a final event's disconnect waits for the emitter's ack
TEXT_FRAME = 0x81  # FIN + text opcode; server frames are never masked


def websocket_text_frame(text: str) -> bytes:
    """One unmasked, uncompressed WebSocket text frame (RFC 6455 section 5.2)."""
    payload = text.encode()
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", TEXT_FRAME, size)
    elif size < 65536:
        header = struct.pack("!BBH", TEXT_FRAME, 126, size)
    else:
        header = struct.pack("!BBQ", TEXT_FRAME, 127, size)
    return header + payload


class CapturingWebSocket(eio_aiohttp.WebSocket):  # type: ignore[misc]
    """python-engineio's aiohttp websocket driver, remembering the socket it serves.

    While the connection is open the Engine.IO socket (the handler's owner) holds
    the aiohttp WebSocketResponse as `livehub_ws`, so FastEmitManager can write a
    room frame to it directly.
    """

    def __init__(self, handler: Callable[[Any], Awaitable[None]], server: Any) -> None:
        owner = getattr(handler, "__self__", None)

        async def serve(ws: CapturingWebSocket) -> None:
            if owner is not None:
                owner.livehub_ws = ws._sock
            try:
                await handler(ws)
            finally:
                if owner is not None:
                    owner.livehub_ws = None

        super().__init__(serve, server)


def direct_transport(socket: Any) -> Any:
    """The transport a room frame can be written to right now, or None.

    Writing straight to the transport is only in order when Engine.IO's own
    writer has nothing pending: the socket is upgraded to a websocket, its queue
    is empty, and the websocket is open and uncompressed.
    """
    ws = getattr(socket, "livehub_ws", None)
    if ws is None or not socket.upgraded or socket.upgrading or not socket.queue.empty():
        return None
    writer = ws._writer
    if writer is None or writer.compress or ws.closed:
        return None
    transport = writer.transport
    if transport is None or transport.is_closing():
        return None
    return transport


class _SidList(dict[str, None]):
    """The list of sids python-socketio keeps per namespace while clients connect or
    disconnect, as an ordered set: ``in`` no longer scans every pending sid (a
    disconnect storm made each check cost as much as the storm was big)."""

    def append(self, sid: str) -> None:
        self[sid] = None

    def remove(self, sid: str) -> None:
        del self[sid]


class _PendingSids(dict[str, _SidList]):
    """``pending_connect``/``pending_disconnect``: the stock code stores a new ``[]``
    per namespace; each becomes a :class:`_SidList`."""

    def __setitem__(self, namespace: str, sids: Any) -> None:
        pending = _SidList()
        for sid in sids:
            pending.append(sid)
        super().__setitem__(namespace, pending)


class FastEmitManager(socketio.AsyncManager):  # type: ignore[misc]
    """Room emits encoded once and written without a task or a queue per recipient.

    python-socketio encodes a room emit once but then creates one task per
    recipient, and python-engineio then puts the frame on each socket's queue for
    that socket's writer task to wake up and send: tens of microseconds a viewer,
    which dominates fanning a batch out to thousands of viewers. Here the
    WebSocket frame is built once and written straight to every upgraded
    websocket whose Engine.IO queue is empty; other sockets (long-polling, or
    with packets already queued) get it on their queue, in order. A viewer more
    than MAX_BUFFERED_BYTES or MAX_BACKLOG_FRAMES behind skips the frame, so
    one slow connection never blocks the others or grows memory without bound.
    Emits with a callback keep the stock path. Relies on internals pinned by the
    exact python-socketio/python-engineio/aiohttp versions in pyproject.toml.

    A FINAL_EVENTS event is its recipients' last: once it is on its way, the
    manager disconnects them. With Redis every node runs this for its own
    sockets, so a ban reaches the viewer's connections on every node.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.skipped_frames = 0
        self.direct_frames = 0
        self._closing: set[asyncio.Task[None]] = set()
        # (namespace, sid) -> the rooms it is in, None (every client) included
        self._rooms_of: dict[tuple[str, str], set[Any]] = {}
        self.pending_connect = _PendingSids()
        self.pending_disconnect = _PendingSids()

    # python-socketio finds a client's rooms by testing every room in the
    # namespace, and each viewer has a room of its own: a disconnect cost time in
    # proportion to the audience (10,000 viewers leaving at once: minutes of CPU).
    # These keep a reverse index instead; _PendingSids does the same for the
    # lists of clients connecting and disconnecting.

    def basic_enter_room(
        self, sid: str, namespace: str, room: Any, eio_sid: str | None = None
    ) -> None:
        super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)
        self._rooms_of.setdefault((namespace, sid), set()).add(room)

    def basic_leave_room(self, sid: str, namespace: str, room: Any) -> None:
        super().basic_leave_room(sid, namespace, room)
        rooms = self._rooms_of.get((namespace, sid))
        if rooms is not None:
            rooms.discard(room)
            if not rooms:
                del self._rooms_of[(namespace, sid)]

    def get_rooms(self, sid: str, namespace: str) -> list[Any]:
        return [r for r in self._rooms_of.get((namespace, sid), ()) if r is not None]

    def basic_disconnect(self, sid: str, namespace: str, **kwargs: Any) -> None:
        """The stock method, with the rooms from the index instead of a scan."""
        if namespace not in self.rooms:
            return
        for room in list(self._rooms_of.get((namespace, sid), ())):
            self.basic_leave_room(sid, namespace, room)
        self.callbacks.pop(sid, None)
        for pending in (self.pending_connect, self.pending_disconnect):
            sids = pending.get(namespace)
            if sids is not None and sid in sids:
                sids.remove(sid)
                if not sids:
                    del pending[namespace]

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
        wire = websocket_text_frame(frames[0].encode()) if len(frames) == 1 else None
        skip = set(skip_sid) if isinstance(skip_sid, list) else {skip_sid}
        sockets = self.server.eio.sockets
        recipients = self.get_participants(namespace, room)  # over a copy of the room
        if event in FINAL_EVENTS:
            recipients = list(recipients)
            self._disconnect_later([sid for sid, _ in recipients if sid not in skip], namespace)
        direct = skipped = 0
        for sid, eio_sid in recipients:
            socket = sockets.get(eio_sid)
            if sid in skip or socket is None or socket.closed or socket.closing:
                continue
            transport = direct_transport(socket) if wire is not None else None
            if transport is not None:
                if transport.get_write_buffer_size() > MAX_BUFFERED_BYTES:
                    skipped += 1
                else:
                    transport.write(wire)
                    direct += 1
            elif socket.queue.qsize() >= MAX_BACKLOG_FRAMES:
                skipped += 1
            else:
                for frame in frames:
                    await socket.send(frame)
        self.direct_frames += direct
        self.skipped_frames += skipped

    def _disconnect_later(self, sids: list[str], namespace: str) -> None:
        """Disconnect this node's `sids` once the emitting task is done.

        An event handler runs in its own task, which sends the handler's ack
        last: waiting for it lets a sender banned by a rule still get the ack
        that says so. An emit arriving from another node (the Redis listener, a
        task that never ends) has no ack to wait for.
        """
        emitter = asyncio.current_task()
        if emitter is getattr(self, "thread", None):
            emitter = None

        async def close() -> None:
            if emitter is not None:
                await asyncio.wait({emitter}, timeout=FINAL_ACK_WAIT)
            for sid in sids:
                await self.server.disconnect(sid, namespace=namespace, ignore_queue=True)

        task = asyncio.ensure_future(close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)


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
