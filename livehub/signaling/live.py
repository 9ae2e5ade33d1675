"""The Socket.IO namespace ``/live``: connect with a token, then one handler per event.

Every event is dispatched through ``trigger_event``, which validates the payload
into its struct, calls the handler with the caller's session, and turns any
LivehubError into an error ack. Handlers never see raw payloads or format errors.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import socketio

from livehub.errors import Forbidden, LivehubError, ProtocolError
from livehub.interactions.messages import VISIBLE_KINDS, ChatMessage
from livehub.rooms.models import Principal, Room
from livehub.rooms.node_presence import NodePresence
from livehub.signaling import payloads as p
from livehub.signaling.context import Services
from livehub.signaling.fanout import (
    NAMESPACE,
    Fanout,
    room_channel,
    staff_channel,
    viewer_channel,
)
from livehub.signaling.replies import ack_error, ack_ok

log = logging.getLogger("livehub.live")
RECENT_MESSAGES = 50
MAX_RESUME = 500

Result = dict[str, Any] | None
Handler = Callable[[Principal, Any], Awaitable[Result]]


class Route(msgspec.Struct, frozen=True):
    payload: type[Any]
    handler: Handler
    staff_only: bool


class LiveNamespace(socketio.AsyncNamespace):  # type: ignore[misc]
    def __init__(self, services: Services, fanout: Fanout, node: NodePresence) -> None:
        super().__init__(NAMESPACE)
        self._s = services
        self._fanout = fanout
        self._node = node
        self._sessions: dict[str, Principal] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._routes: dict[str, Route] = {}

    # -- dispatch ------------------------------------------------------------------

    async def trigger_event(self, event: str, *args: Any) -> Any:
        if event == "connect" and self._from_server(event, args):
            return await self._connect(*args)
        if event == "disconnect" and self._from_server(event, args):
            return await self._disconnect(args[0])
        try:
            return ack_ok(await self._dispatch(event, args))
        except LivehubError as err:
            log.debug("event %s refused: %s", event, err.code)
            await self._tell_sanctioned(args[0] if args else None, err)
            return ack_error(err)

    async def _tell_sanctioned(self, sid: Any, err: LivehubError) -> None:
        """A refusal that banned or muted the sender (a room rule) is told to all of
        the viewer's tabs, as a moderator's ban or mute is; so is a ban that raced
        this socket. "banned" is a final event: the sockets close after this ack."""
        who = self._sessions.get(sid)
        if who is None:
            return
        if err.code == "banned":
            reason = "automod" if err.details.get("by") == "automod" else "banned"
            await self.to_viewer("banned", {"reason": reason}, who.room, who.viewer_id)
        elif err.code == "muted" and err.details.get("by") == "automod":
            until = err.details["until"]
            await self.to_viewer("muted", {"until": until}, who.room, who.viewer_id)

    def _from_server(self, event: str, args: tuple[Any, ...]) -> bool:
        """True for python-socketio's own connect and disconnect calls.

        A client can send events named "connect" or "disconnect", and they arrive
        here the same way; those come from a connected socket, while the server's
        own calls come while it is connecting (with the server's environ) or
        disconnecting. Client-sent ones are then acked as unknown events.
        """
        sid = args[0] if args else None
        if self.server.manager.is_connected(sid, self.namespace):
            return False
        environ = self.server.get_environ(sid, namespace=self.namespace)
        return event == "disconnect" or (len(args) >= 2 and args[1] is environ)

    def route(
        self, event: str, payload: type[Any], handler: Handler, *, staff_only: bool = False
    ) -> None:
        """Register the one handler for ``event`` (feature modules call this)."""
        if event in self._routes or event in ("connect", "disconnect"):
            raise ValueError(f"event {event!r} is already routed")
        self._routes[event] = Route(payload, handler, staff_only)

    async def _dispatch(self, event: str, args: tuple[Any, ...]) -> Result:
        who = self._sessions.get(args[0])
        if who is None:
            raise ProtocolError("not_connected", "Connect first.")
        route = self._routes.get(event) if isinstance(event, str) else None
        if route is None:
            raise ProtocolError("unknown_event", "Unknown event.")
        if route.staff_only and not who.is_staff:
            raise Forbidden("forbidden", "Only the host and moderators can do that.")
        if len(args) > 2:
            raise ProtocolError("bad_payload", "Send one payload object.")
        self._node.active(who.room, who.viewer_id)
        return await route.handler(who, p.parse(route.payload, args[1] if len(args) == 2 else None))

    # -- what feature modules use to reach clients -------------------------------------

    @property
    def fanout(self) -> Fanout:
        return self._fanout

    async def to_room(self, event: str, data: Any, room_id: str) -> None:
        await self.emit(event, data, room=room_channel(room_id))

    async def to_staff(self, event: str, data: Any, room_id: str) -> None:
        await self.emit(event, data, room=staff_channel(room_id))

    async def to_viewer(self, event: str, data: Any, room_id: str, viewer_id: str) -> None:
        await self.emit(event, data, room=viewer_channel(room_id, viewer_id))

    # -- connect and disconnect ----------------------------------------------------------

    async def _connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> bool:
        try:
            who, room, welcome = await self._admit(auth)
        except LivehubError as err:
            log.info("connect refused: %s", err.code)
            raise socketio.exceptions.ConnectionRefusedError(err.message, err.to_dict()) from err
        self._sessions[sid] = who
        log.info("%s %s joined %s", who.role, who.viewer_id, room.id)
        self._spawn(self._greet(sid, who, welcome))
        return True

    async def _admit(self, auth: Any) -> tuple[Principal, Room, dict[str, Any]]:
        request = p.parse(p.ConnectAuth, auth)
        room = await self._s.rooms.get_open(request.room)
        who = self._s.auth.principal(request.token, room)
        if await self._s.moderation.is_banned(room.id, who.viewer_id):
            raise Forbidden("banned", "You are banned from this room.")
        await self._node.connected(room, who)
        try:
            welcome = await self._welcome(room, who, request.last_event_id)
        except BaseException:
            await self._node.disconnected(who)
            raise
        self._fanout.touch(room)
        return who, room, welcome

    async def _welcome(self, room: Room, who: Principal, last_id: int | None) -> dict[str, Any]:
        log_ = self._s.log
        if last_id is None:
            events = await log_.by_kinds(room.id, VISIBLE_KINDS, limit=RECENT_MESSAGES, newest=True)
            deleted_events = await log_.by_kinds(
                room.id, ("mod.delete",), after_id=events[0].id - 1 if events else 0
            )
        else:
            events = await log_.by_kinds(room.id, VISIBLE_KINDS, after_id=last_id, limit=MAX_RESUME)
            deleted_events = await log_.by_kinds(room.id, ("mod.delete",), after_id=last_id)
        deleted = {int(e.data["message_id"]) for e in deleted_events}
        messages = [ChatMessage.from_event(e) for e in events]
        stats = await self._s.presence.stats(room)
        return {
            "you": who.view(),
            "room": room.public_view(),
            "stats": msgspec.to_builtins(stats),
            "messages": msgspec.to_builtins([m for m in messages if m.id not in deleted]),
            "deleted": sorted(deleted) if last_id is not None else [],
            "resumed": last_id is not None,
        }

    async def _greet(self, sid: str, who: Principal, welcome: dict[str, Any]) -> None:
        await self.enter_room(sid, room_channel(who.room))
        await self.enter_room(sid, viewer_channel(who.room, who.viewer_id))
        if who.is_staff:
            await self.enter_room(sid, staff_channel(who.room))
        await self.emit("welcome", welcome, to=sid)

    async def _disconnect(self, sid: str) -> None:
        who = self._sessions.pop(sid, None)
        if who is None:
            return
        await self._node.disconnected(who)  # a store failure: kept, recorded later
        try:
            self._fanout.touch(await self._s.rooms.get(who.room))
        except Exception as exc:  # the count goes out with the room's next batch
            log.info("no viewer-count push for %s now: %r", who.room, exc)
        log.info("%s %s left %s", who.role, who.viewer_id, who.room)

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def leave_everyone(self) -> None:
        """A graceful stop: every viewer connected here leaves now, recorded in one batch
        before the sockets close (their disconnects then have nothing left to record)."""
        await self._node.leave_all()

    async def close_room(self, room: Room) -> None:
        """Tell everyone the room closed and disconnect this node's sockets in it."""
        await self.emit("room", room.public_view(), room=room_channel(room.id))
        for sid in [s for s, w in self._sessions.items() if w.room == room.id]:
            await self.disconnect(sid)
        self._fanout.forget(room.id)
