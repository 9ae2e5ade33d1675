"""Moderator events of the live namespace (host and moderators only)."""

from __future__ import annotations

from typing import Any

import msgspec

from livehub.rooms.models import Principal, Room, Rule
from livehub.signaling import payloads as p
from livehub.signaling.context import Services
from livehub.signaling.live import Handler, LiveNamespace, Result


class ModerationEvents:
    def __init__(self, services: Services, live: LiveNamespace) -> None:
        self._s = services
        self._live = live
        routes: dict[str, tuple[type[Any], Handler]] = {
            "mod_delete": (p.MessageRef, self.delete),
            "mod_mute": (p.MuteIn, self.mute),
            "mod_unmute": (p.ViewerRef, self.unmute),
            "mod_ban": (p.BanIn, self.ban),
            "mod_unban": (p.ViewerRef, self.unban),
            "mod_rule_add": (p.RuleIn, self.rule_add),
            "mod_rule_remove": (p.RuleRef, self.rule_remove),
            "mod_rules": (p.Empty, self.rules),
            "mod_held": (p.Empty, self.held),
            "mod_approve": (p.MessageRef, self.approve),
            "mod_reject": (p.MessageRef, self.reject),
            "mod_slow": (p.SlowIn, self.slow),
            "mod_pause": (p.PauseIn, self.pause),
            "mod_viewers": (p.Empty, self.viewers),
            "mod_stats": (p.Empty, self.stats),
        }
        for event, (payload, handler) in routes.items():
            live.route(event, payload, handler, staff_only=True)
        services.moderation.on_rule_disabled(self.rule_disabled)

    async def rule_disabled(self, room: Room, rule: Rule) -> None:
        """A rule ran past the matching time budget: the room's staff are told."""
        await self._live.to_staff(
            "rule_disabled", {"rule": msgspec.to_builtins(rule), "reason": "slow"}, room.id
        )

    async def delete(self, who: Principal, data: p.MessageRef) -> Result:
        room = await self._s.rooms.get_open(who.room)
        await self._s.moderation.delete(room, who, data.message_id)
        self._live.fanout.deleted(room, data.message_id)
        await self._live.to_staff(
            "held_resolved", {"id": data.message_id, "approved": False}, room.id
        )
        return None

    async def mute(self, who: Principal, data: p.MuteIn) -> Result:
        room = await self._s.rooms.get_open(who.room)
        until = await self._s.moderation.mute(room, who, data.viewer_id, data.seconds)
        await self._live.to_viewer("muted", {"until": until}, room.id, data.viewer_id)
        return {"until": until}

    async def unmute(self, who: Principal, data: p.ViewerRef) -> Result:
        room = await self._s.rooms.get_open(who.room)
        await self._s.moderation.unmute(room, who, data.viewer_id)
        return None

    async def ban(self, who: Principal, data: p.BanIn) -> Result:
        room = await self._s.rooms.get_open(who.room)
        await self._s.moderation.ban(room, who, data.viewer_id, data.reason)
        # "banned" is a final event: every node disconnects the viewer's sockets.
        await self._live.to_viewer("banned", {"reason": data.reason}, room.id, data.viewer_id)
        return None

    async def unban(self, who: Principal, data: p.ViewerRef) -> Result:
        room = await self._s.rooms.get_open(who.room)
        await self._s.moderation.unban(room, who, data.viewer_id)
        return None

    async def rule_add(self, who: Principal, data: p.RuleIn) -> Result:
        room = await self._s.rooms.get_open(who.room)
        rule = await self._s.moderation.add_rule(
            room, who, data.pattern, data.kind, data.action, data.mute_seconds
        )
        return {"rule": msgspec.to_builtins(rule)}

    async def rule_remove(self, who: Principal, data: p.RuleRef) -> Result:
        room = await self._s.rooms.get_open(who.room)
        await self._s.moderation.remove_rule(room, who, data.rule_id)
        return None

    async def rules(self, who: Principal, data: p.Empty) -> Result:
        room = await self._s.rooms.get_open(who.room)
        return {"rules": msgspec.to_builtins(list(room.rules))}

    async def held(self, who: Principal, data: p.Empty) -> Result:
        room = await self._s.rooms.get_open(who.room)
        return {"messages": msgspec.to_builtins(await self._s.moderation.held(room))}

    async def approve(self, who: Principal, data: p.MessageRef) -> Result:
        room = await self._s.rooms.get_open(who.room)
        message = await self._s.moderation.approve(room, who, data.message_id)
        self._live.fanout.message(room, message)
        await self._live.to_staff(
            "held_resolved", {"id": data.message_id, "approved": True}, room.id
        )
        return None

    async def reject(self, who: Principal, data: p.MessageRef) -> Result:
        room = await self._s.rooms.get_open(who.room)
        await self._s.moderation.reject(room, who, data.message_id)
        await self._live.to_staff(
            "held_resolved", {"id": data.message_id, "approved": False}, room.id
        )
        return None

    async def slow(self, who: Principal, data: p.SlowIn) -> Result:
        room = await self._s.rooms.get_open(who.room)
        updated = await self._s.moderation.slow_mode(room, who, data.seconds)
        await self._live.to_room("room", updated.public_view(), room.id)
        return None

    async def pause(self, who: Principal, data: p.PauseIn) -> Result:
        room = await self._s.rooms.get_open(who.room)
        updated = await self._s.moderation.pause(room, who, data.paused)
        await self._live.to_room("room", updated.public_view(), room.id)
        return None

    async def viewers(self, who: Principal, data: p.Empty) -> Result:
        roster = await self._s.presence.roster(who.room)
        return {"viewers": [w.view() for w in roster]}

    async def stats(self, who: Principal, data: p.Empty) -> Result:
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
