"""Viewer events of the live namespace: chat, like, heartbeat."""

from __future__ import annotations

import asyncio

import msgspec

from livehub.errors import LivehubError
from livehub.interactions.messages import Draft
from livehub.rooms.models import Principal
from livehub.signaling import payloads as p
from livehub.signaling.context import Services
from livehub.signaling.live import LiveNamespace, Result


class ChatEvents:
    def __init__(self, services: Services, live: LiveNamespace) -> None:
        self._s = services
        self._live = live
        self._expelling: set[asyncio.Task[None]] = set()
        live.route("chat", p.ChatIn, self.chat)
        live.route("like", p.LikeIn, self.like)
        live.route("heartbeat", p.Empty, self.heartbeat)

    async def chat(self, who: Principal, data: p.ChatIn) -> Result:
        room = await self._s.rooms.get_open(who.room)
        draft = Draft(text=data.text, client_id=data.client_id, mode=data.mode, color=data.color)
        try:
            result = await self._s.chat.send(room, who, draft)
        except LivehubError as err:
            if err.code == "banned":  # a rule banned the sender (or a ban raced this socket)
                await self._expel(room.id, who.viewer_id)
            raise
        if not result.duplicate:
            if result.held:
                await self._live.to_staff("held", msgspec.to_builtins(result.message), room.id)
            else:
                self._live.fanout.message(room, result.message)
        return {
            "id": result.message.id,
            "held": result.held,
            "duplicate": result.duplicate,
            "message": msgspec.to_builtins(result.message),
        }

    async def _expel(self, room_id: str, viewer_id: str) -> None:
        """Tell a banned sender, as a moderator's ban does, and disconnect them
        once this ack is on its way (the task runs after the handler returns)."""
        await self._live.to_viewer("banned", {"reason": "automod"}, room_id, viewer_id)
        task = asyncio.ensure_future(self._live.disconnect_viewer(room_id, viewer_id))
        self._expelling.add(task)
        task.add_done_callback(self._expelling.discard)

    async def like(self, who: Principal, data: p.LikeIn) -> Result:
        room = await self._s.rooms.get_open(who.room)
        total = await self._s.likes.like(room, who, data.count)
        self._live.fanout.touch(room)
        return {"likes": total}

    async def heartbeat(self, who: Principal, data: p.Empty) -> Result:
        room = await self._s.rooms.get_open(who.room)
        await self._s.presence.accrue(room, who.viewer_id)
        return {"server_time": self._s.rooms.now()}
