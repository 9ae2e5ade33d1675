"""The Socket.IO namespace ``/live``: connect with a token, then one handler per event.

Every event is dispatched through ``trigger_event``, which validates the payload
into its struct, calls the handler with the caller's session, and turns any
LivehubError into an error ack. Handlers never see raw payloads or format errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import socketio

from livehub.errors import Forbidden, LivehubError, ProtocolError
from livehub.interactions.messages import VISIBLE_KINDS, ChatMessage, Draft
from livehub.rooms.models import Principal, Room
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
ACCRUE_EVERY_SECONDS = 30.0

Result = dict[str, Any] | None
Handler = Callable[[Principal, Any], Awaitable[Result]]


class LiveNamespace(socketio.AsyncNamespace):  # type: ignore[misc]
    def __init__(self, services: Services, fanout: Fanout) -> None:
        super().__init__(NAMESPACE)
        self._s = services
        self._fanout = fanout
        self._sessions: dict[str, Principal] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        viewer: dict[str, tuple[type[Any], Handler]] = {
            "chat": (p.ChatIn, self.chat),
            "like": (p.LikeIn, self.like),
            "heartbeat": (p.Empty, self.heartbeat),
        }
        staff: dict[str, tuple[type[Any], Handler]] = {
            "mod_delete": (p.MessageRef, self.mod_delete),
            "mod_mute": (p.MuteIn, self.mod_mute),
            "mod_unmute": (p.ViewerRef, self.mod_unmute),
            "mod_ban": (p.BanIn, self.mod_ban),
            "mod_unban": (p.ViewerRef, self.mod_unban),
            "mod_rule_add": (p.RuleIn, self.mod_rule_add),
            "mod_rule_remove": (p.RuleRef, self.mod_rule_remove),
            "mod_rules": (p.Empty, self.mod_rules),
            "mod_held": (p.Empty, self.mod_held),
            "mod_approve": (p.MessageRef, self.mod_approve),
            "mod_reject": (p.MessageRef, self.mod_reject),
            "mod_slow": (p.SlowIn, self.mod_slow),
            "mod_pause": (p.PauseIn, self.mod_pause),
            "mod_viewers": (p.Empty, self.mod_viewers),
            "mod_stats": (p.Empty, self.mod_stats),
        }
        self._viewer_events = viewer
        self._staff_events = staff

    # -- dispatch ------------------------------------------------------------------

    async def trigger_event(self, event: str, *args: Any) -> Any:
        if event == "connect":
            return await self._connect(*args)
        if event == "disconnect":
            return await self._disconnect(args[0])
        try:
            return ack_ok(await self._dispatch(event, args))
        except LivehubError as err:
            log.debug("event %s refused: %s", event, err.code)
            return ack_error(err)

    async def _dispatch(self, event: str, args: tuple[Any, ...]) -> Result:
        who = self._sessions.get(args[0])
        if who is None:
            raise ProtocolError("not_connected", "Connect first.")
        entry = self._viewer_events.get(event)
        if entry is None:
            entry = self._staff_events.get(event)
            if entry is None:
                raise ProtocolError("unknown_event", "Unknown event.")
            if not who.is_staff:
                raise Forbidden("forbidden", "Only the host and moderators can do that.")
        if len(args) > 2:
            raise ProtocolError("bad_payload", "Send one payload object.")
        kind, handler = entry
        return await handler(who, p.parse(kind, args[1] if len(args) == 2 else None))

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
        await self._s.presence.join(room, who)
        self._fanout.touch(room)
        return who, room, await self._welcome(room, who, request.last_event_id)

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
        with contextlib.suppress(LivehubError):
            room = await self._s.rooms.get(who.room)
            await self._s.presence.leave(room, who)
            self._fanout.touch(room)
        log.info("%s %s left %s", who.role, who.viewer_id, who.room)

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def accrue_forever(self) -> None:
        """Accrue watch time of the viewers connected to this node, periodically."""
        while True:
            await asyncio.sleep(ACCRUE_EVERY_SECONDS)
            for room_id, viewer_id in {(w.room, w.viewer_id) for w in self._sessions.values()}:
                with contextlib.suppress(LivehubError):
                    await self._s.presence.accrue(await self._s.rooms.get(room_id), viewer_id)

    async def close_room(self, room: Room) -> None:
        """Tell everyone the room closed and disconnect this node's sockets in it."""
        await self.emit("room", room.public_view(), room=room_channel(room.id))
        for sid in [s for s, w in self._sessions.items() if w.room == room.id]:
            await self.disconnect(sid)
        self._fanout.forget(room.id)

    # -- viewer events -----------------------------------------------------------------

    async def chat(self, who: Principal, data: p.ChatIn) -> Result:
        room = await self._s.rooms.get_open(who.room)
        draft = Draft(text=data.text, client_id=data.client_id, mode=data.mode, color=data.color)
        result = await self._s.chat.send(room, who, draft)
        if not result.duplicate:
            if result.held:
                await self.emit(
                    "held", msgspec.to_builtins(result.message), room=staff_channel(room.id)
                )
            else:
                self._fanout.message(room, result.message)
        return {
            "id": result.message.id,
            "held": result.held,
            "duplicate": result.duplicate,
            "message": msgspec.to_builtins(result.message),
        }

    async def like(self, who: Principal, data: p.LikeIn) -> Result:
        room = await self._s.rooms.get_open(who.room)
        total = await self._s.likes.like(room, who, data.count)
        self._fanout.touch(room)
        return {"likes": total}

    async def heartbeat(self, who: Principal, data: p.Empty) -> Result:
        room = await self._s.rooms.get_open(who.room)
        await self._s.presence.accrue(room, who.viewer_id)
        return {"server_time": self._s.rooms.now()}

    # -- moderator events -----------------------------------------------------------------

    async def mod_delete(self, who: Principal, data: p.MessageRef) -> Result:
        room = await self._s.rooms.get_open(who.room)
        await self._s.moderation.delete(room, who, data.message_id)
        self._fanout.deleted(room, data.message_id)
        await self.emit(
            "held_resolved", {"id": data.message_id, "approved": False}, room=staff_channel(room.id)
        )
        return None

    async def mod_mute(self, who: Principal, data: p.MuteIn) -> Result:
        room = await self._s.rooms.get_open(who.room)
        until = await self._s.moderation.mute(room, who, data.viewer_id, data.seconds)
        await self.emit("muted", {"until": until}, room=viewer_channel(room.id, data.viewer_id))
        return {"until": until}

    async def mod_unmute(self, who: Principal, data: p.ViewerRef) -> Result:
        room = await self._s.rooms.get_open(who.room)
        await self._s.moderation.unmute(room, who, data.viewer_id)
        return None

    async def mod_ban(self, who: Principal, data: p.BanIn) -> Result:
        room = await self._s.rooms.get_open(who.room)
        await self._s.moderation.ban(room, who, data.viewer_id, data.reason)
        await self.emit(
            "banned", {"reason": data.reason}, room=viewer_channel(room.id, data.viewer_id)
        )
        for sid in [
            s
            for s, w in self._sessions.items()
            if w.room == room.id and w.viewer_id == data.viewer_id
        ]:
            await self.disconnect(sid)
        return None

    async def mod_unban(self, who: Principal, data: p.ViewerRef) -> Result:
        room = await self._s.rooms.get_open(who.room)
        await self._s.moderation.unban(room, who, data.viewer_id)
        return None

    async def mod_rule_add(self, who: Principal, data: p.RuleIn) -> Result:
        room = await self._s.rooms.get_open(who.room)
        rule = await self._s.moderation.add_rule(
            room, who, data.pattern, data.kind, data.action, data.mute_seconds
        )
        return {"rule": msgspec.to_builtins(rule)}

    async def mod_rule_remove(self, who: Principal, data: p.RuleRef) -> Result:
        room = await self._s.rooms.get_open(who.room)
        await self._s.moderation.remove_rule(room, who, data.rule_id)
        return None

    async def mod_rules(self, who: Principal, data: p.Empty) -> Result:
        room = await self._s.rooms.get_open(who.room)
        return {"rules": msgspec.to_builtins(list(room.rules))}

    async def mod_held(self, who: Principal, data: p.Empty) -> Result:
        room = await self._s.rooms.get_open(who.room)
        return {"messages": msgspec.to_builtins(await self._s.moderation.held(room))}

    async def mod_approve(self, who: Principal, data: p.MessageRef) -> Result:
        room = await self._s.rooms.get_open(who.room)
        message = await self._s.moderation.approve(room, who, data.message_id)
        self._fanout.message(room, message)
        await self.emit(
            "held_resolved", {"id": data.message_id, "approved": True}, room=staff_channel(room.id)
        )
        return None

    async def mod_reject(self, who: Principal, data: p.MessageRef) -> Result:
        room = await self._s.rooms.get_open(who.room)
        await self._s.moderation.reject(room, who, data.message_id)
        await self.emit(
            "held_resolved", {"id": data.message_id, "approved": False}, room=staff_channel(room.id)
        )
        return None

    async def mod_slow(self, who: Principal, data: p.SlowIn) -> Result:
        room = await self._s.rooms.get_open(who.room)
        updated = await self._s.moderation.slow_mode(room, who, data.seconds)
        await self.emit("room", updated.public_view(), room=room_channel(room.id))
        return None

    async def mod_pause(self, who: Principal, data: p.PauseIn) -> Result:
        room = await self._s.rooms.get_open(who.room)
        updated = await self._s.moderation.pause(room, who, data.paused)
        await self.emit("room", updated.public_view(), room=room_channel(room.id))
        return None

    async def mod_viewers(self, who: Principal, data: p.Empty) -> Result:
        roster = await self._s.presence.roster(who.room)
        return {"viewers": [w.view() for w in roster]}

    async def mod_stats(self, who: Principal, data: p.Empty) -> Result:
        room = await self._s.rooms.get_open(who.room)
        stats = await self._s.presence.stats(room)
        totals = await self._s.counters.room(room.id, room.scope)
        return {
            "viewers": stats.viewers,
            "peak": stats.peak,
            "likes": stats.likes,
            "messages": totals.get("messages", 0),
            "sampled_away": totals.get("sampled_away", 0),
        }
