"""Viewer events of the live namespace: chat, like, heartbeat."""

from __future__ import annotations

import msgspec

from livehub.interactions.messages import Draft
from livehub.rooms.models import Principal
from livehub.signaling import payloads as p
from livehub.signaling.context import Services
from livehub.signaling.live import LiveNamespace, Result


class ChatEvents:
    def __init__(self, services: Services, live: LiveNamespace) -> None:
        self._s = services
        self._live = live
        live.route("chat", p.ChatIn, self.chat)
        live.route("like", p.LikeIn, self.like)
        live.route("heartbeat", p.Empty, self.heartbeat)

    async def chat(self, who: Principal, data: p.ChatIn) -> Result:
        room = await self._s.rooms.get_open(who.room)
        draft = Draft(text=data.text, client_id=data.client_id, mode=data.mode, color=data.color)
        result = await self._s.chat.send(room, who, draft)
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

    async def like(self, who: Principal, data: p.LikeIn) -> Result:
        room = await self._s.rooms.get_open(who.room)
        total = await self._s.likes.like(room, who, data.count)
        self._live.fanout.touch(room)
        return {"likes": total}

    async def heartbeat(self, who: Principal, data: p.Empty) -> Result:
        room = await self._s.rooms.get_open(who.room)
        await self._s.presence.accrue(room, who.viewer_id)
        return {"server_time": self._s.rooms.now()}
