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
import contextlib
import logging
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import socketio
from engineio import packet as eio_packet
from engineio.async_drivers import aiohttp as eio_aiohttp
from redis.asyncio import Redis
from socketio import packet

from livehub.signaling.catchup import Catchup
from livehub.signaling.fanout import NAMESPACE
from livehub.tasks import cancel_and_wait

log = logging.getLogger("livehub.manager")

MAX_BACKLOG_FRAMES = 50
LISTEN_RETRY_FIRST = 0.1  # seconds before listening again after losing Redis, doubling
LISTEN_RETRY_MAX = 2.0

Health = Callable[[str | None], None]  # the listener's error, or None when it listens again
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
    """python-socketio's Redis manager, closable, and cut off from Redis only briefly.

    The stock manager makes a new client on every reconnect, backs off up to 60 s
    before listening again, and logs every publish that fails. Here one client
    (a waiting pool with bounded commands, as the state store's) lives as long as
    the node; the listener resubscribes after at most ``LISTEN_RETRY_MAX`` seconds;
    a failing publish is logged once per streak (this node's viewers got the frame
    already: only other nodes miss it). While the listener has lost Redis, what other
    nodes sent in between is lost to pub/sub, and ``catchup`` recovers it from
    the log. It reaches into attributes pinned by the
    exact python-socketio version in pyproject.toml (tests cover it).
    """

    def __init__(
        self,
        url: str,
        *,
        pool: Any,
        channel: str,
        catchup: Catchup,
        on_health: Health | None = None,
    ) -> None:
        super().__init__(url, channel=channel)
        self._pool = pool
        self._catchup = catchup
        self._on_health = on_health
        self._publish_failing = False
        self.cut_offs = 0
        self._stopping = False
        self.redis: Any = None

    def _redis_connect(self) -> None:
        if self.redis is None:
            self.redis = Redis.from_pool(self._pool)
        self.pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        self.connected = True

    async def _publish(self, data: Any) -> Any:
        if self.redis is None:
            self._redis_connect()
        try:
            result = await self.redis.publish(self.channel, self.json.dumps(data))
        except Exception as exc:  # Redis is down: other nodes miss this frame
            if not self._publish_failing:
                log.error("publishing to the other nodes failed (%r); retrying per frame", exc)
            self._publish_failing = True
            return None
        if self._publish_failing:
            log.info("publishing to the other nodes works again")
        self._publish_failing = False
        return result

    async def _redis_listen_with_retries(self) -> AsyncIterator[Any]:
        delay = LISTEN_RETRY_FIRST
        subscribed = cut_off = False
        while True:
            try:
                if not subscribed:
                    self._redis_connect()
                    await self.pubsub.subscribe(self.channel)
                    subscribed, delay = True, LISTEN_RETRY_FIRST
                    if cut_off:
                        cut_off = False
                        log.info("listening to the other nodes again")
                        self._health(None)
                        await self._call(self._rejoined)
                async for message in self.pubsub.listen():
                    yield message
            except (Exception, asyncio.CancelledError) as exc:  # Redis went away
                if isinstance(exc, asyncio.CancelledError):
                    if self._stopping:
                        raise
                    _forget_cancel()  # a library's swallowed timeout, not a stop
                if not cut_off:
                    cut_off = True
                    self.cut_offs += 1
                    log.error("cut off from the other nodes (%r); listening again", exc)
                    self._health(f"{type(exc).__name__}: {exc}")
                    await self._call(self._catchup.cut_off)
                subscribed = False
                await self._drop_pubsub()
                await asyncio.sleep(delay)
                delay = min(delay * 2, LISTEN_RETRY_MAX)

    def _health(self, error: str | None) -> None:
        if self._on_health is not None:
            self._on_health(error)

    async def _handle_emit(self, message: Any) -> None:
        if message.get("event") == "batch" and message.get("data"):
            self._catchup.delivered(message.get("room"), message["data"][0])
        await super()._handle_emit(message)

    async def _rejoined(self) -> None:
        async def emit(event: str, data: Any, channel: str) -> None:
            await self.server.emit(
                event, data, room=channel, namespace=NAMESPACE, ignore_queue=True
            )

        await self._catchup.rejoined(emit, list(self.rooms.get(NAMESPACE, {})))

    async def _call(self, hook: Callable[[], Awaitable[None]]) -> None:
        try:
            await hook()
        except Exception:  # a failed catch-up must not stop the listener
            log.exception("recovering from a pub/sub cut-off failed")

    async def _drop_pubsub(self) -> None:
        if self.pubsub is not None:
            with contextlib.suppress(Exception):
                await self.pubsub.aclose()

    async def close(self) -> None:
        self._stopping = True
        task = getattr(self, "thread", None)
        if isinstance(task, asyncio.Task):
            await cancel_and_wait([task])
        await self._drop_pubsub()
        if self.redis is not None:
            await self.redis.aclose()  # the pool with it (Redis.from_pool)


def _forget_cancel() -> None:
    """Clear a cancellation the listener's task got but did not ask for.

    A timeout inside redis-py that swallows its own cancellation leaves the
    task's cancel count behind; every later timeout in that task would then
    cancel it instead of timing out, and python-socketio ends its listener on
    a cancellation: the node would never hear the other nodes again.
    """
    task = asyncio.current_task()
    while task is not None and task.uncancel() > 0:
        pass
