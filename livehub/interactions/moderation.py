"""Moderation: delete, mute, ban, the rule chain, the hold-for-review queue,
slow mode and pausing chat. Every action is an event in the log with who did it.

A rule that runs past the per-message matching budget (see
:mod:`livehub.interactions.rules`) is disabled by ``automod``: kept in the room's
rules with ``disabled: true``, recorded as ``mod.rule_disabled``, logged, and
passed to every listener given to :meth:`Moderation.on_rule_disabled` (the edge
tells the room's staff).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable

import msgspec

from livehub.errors import Forbidden, NotFound, ProtocolError, UserError
from livehub.interactions.messages import MESSAGE_KINDS, ChatMessage
from livehub.interactions.rules import DEFAULT_BUDGET_SECONDS, RuleChain, validate_rule
from livehub.rooms.counters import Counters
from livehub.rooms.eventlog import EventLog
from livehub.rooms.models import Principal, Room, Rule
from livehub.rooms.recorder import Recorder
from livehub.rooms.repository import RoomRepository
from livehub.rooms.service import RoomService
from livehub.rooms.store import StateStore

log = logging.getLogger("livehub.moderation")

AUTOMOD = "automod"
MAX_RULES = 200

RuleListener = Callable[[Room, Rule], Awaitable[None]]


def _mute_key(room: str, viewer_id: str) -> str:
    return f"mute:{room}:{viewer_id}"


def _bans_key(room: str) -> str:
    return f"bans:{room}"


def _held_key(room: str) -> str:
    return f"held:{room}"


def _rule_off_key(room: str, rule_id: str) -> str:
    """Claimed by the one node that disables a slow rule (rule ids are never reused)."""
    return f"ruleoff:{room}:{rule_id}"


RULE_OFF_CLAIM_SECONDS = 60  # a node that failed midway leaves it to another after this


class Moderation:
    def __init__(
        self,
        store: StateStore,
        log: EventLog,
        rooms: RoomService,
        repo: RoomRepository,
        counters: Counters,
        clock: Callable[[], float] = time.time,
        *,
        rule_budget: float = DEFAULT_BUDGET_SECONDS,
        rule_clock: Callable[[], float] = time.thread_time,
    ) -> None:
        self._store = store
        self._log = log
        self._rooms = rooms
        self._repo = repo
        self._counters = counters
        self._clock = clock
        self._record = Recorder(log, clock)
        self._chains: dict[tuple[str, int], RuleChain] = {}
        self._rule_budget = rule_budget
        self._rule_clock = rule_clock
        self._rule_listeners: list[RuleListener] = []

    def on_rule_disabled(self, listener: RuleListener) -> None:
        """Call ``listener(room, rule)`` after a rule of a room is disabled for being slow."""
        self._rule_listeners.append(listener)

    # -- checks on every message -------------------------------------------------

    async def ensure_may_post(self, room: Room, who: Principal) -> None:
        if room.settings.chat_paused:
            raise UserError("chat_paused", "Chat is paused by the moderators.")
        if await self._store.sismember(_bans_key(room.id), who.viewer_id):
            raise Forbidden("banned", "You are banned from this room.")
        left = await self._store.ttl(_mute_key(room.id, who.viewer_id))
        if left is not None:
            until = round(self._clock() + left, 3)
            raise UserError("muted", "You are muted for now.", until=until)

    async def apply_rules(self, room: Room, who: Principal, text: str) -> bool:
        """Run the rule chain; raises for block, mute and ban; True when the text is held
        (by a hold rule, or because the rules ran out of time on it)."""
        verdict = self._chain(room).check(text)
        if verdict.slow is not None:
            await self._disable_rule(room, verdict.slow)
        rule = verdict.rule
        if verdict.action == "hold":
            return True
        if verdict.action == "allow" or rule is None:
            return False
        await self._record(
            room,
            AUTOMOD,
            f"automod.{verdict.action}",
            {
                "viewer_id": who.viewer_id,
                "rule_id": rule.id,
                "text": text,
            },
        )
        if verdict.action == "mute":
            until = await self._mute(room, AUTOMOD, who.viewer_id, rule.mute_seconds)
            raise UserError(
                "muted",
                "That message broke a room rule; you are muted.",
                until=until,
                by="automod",
            )
        if verdict.action == "ban":
            await self._ban(room, AUTOMOD, who.viewer_id, "automod")
            raise Forbidden(
                "banned", "That message broke a room rule; you are banned.", by="automod"
            )
        raise UserError("blocked", "That message is not allowed in this room.")

    def _chain(self, room: Room) -> RuleChain:
        key = (room.id, room.rules_version)
        chain = self._chains.get(key)
        if chain is None:
            for stale in [k for k in self._chains if k[0] == room.id]:
                del self._chains[stale]
            chain = self._chains[key] = RuleChain(room.rules, self._rule_budget, self._rule_clock)
        return chain

    async def _disable_rule(self, room: Room, slow: Rule) -> None:
        """Disable ``slow`` in the room's current rules and tell the listeners: once,
        by the one node (and task) that claims it, however many ran past the budget."""
        claim = _rule_off_key(room.id, slow.id)
        if not await self._store.set_if_absent(claim, AUTOMOD, RULE_OFF_CLAIM_SECONDS):
            return
        current = await self._rooms.get(room.id)
        rule = next((r for r in current.rules if r.id == slow.id), None)
        if rule is None or rule.disabled:
            return
        disabled = msgspec.structs.replace(rule, disabled=True)
        rules = tuple(disabled if r.id == rule.id else r for r in current.rules)
        updated = await self._rooms.set_rules(current, rules, AUTOMOD)
        budget_ms = round(self._rule_budget * 1000, 3)
        await self._record(
            updated,
            AUTOMOD,
            "mod.rule_disabled",
            {**msgspec.to_builtins(disabled), "reason": "slow", "budget_ms": budget_ms},
        )
        log.warning(
            "mod.rule_disabled room=%s rule=%s kind=%s: over the %s ms matching budget",
            room.id,
            rule.id,
            rule.kind,
            budget_ms,
        )
        for listener in self._rule_listeners:
            await listener(updated, disabled)

    # -- actions -----------------------------------------------------------------

    async def delete(self, room: Room, actor: Principal, message_id: int) -> None:
        event = await self._log.get(message_id)
        if event is None or event.room != room.id or event.kind not in MESSAGE_KINDS:
            raise NotFound("not_found", "No such message in this room.")
        await self._store.hdel(_held_key(room.id), str(message_id))
        await self._record(
            room,
            actor.viewer_id,
            "mod.delete",
            {
                "message_id": message_id,
                "viewer_id": event.actor,
            },
        )

    async def mute(self, room: Room, actor: Principal, viewer_id: str, seconds: int) -> float:
        self._not_self(actor, viewer_id)
        if not 1 <= seconds <= 86400:
            raise ProtocolError("bad_payload", "seconds must be 1-86400.")
        until = await self._mute(room, actor.viewer_id, viewer_id, seconds)
        await self._record(
            room,
            actor.viewer_id,
            "mod.mute",
            {
                "viewer_id": viewer_id,
                "seconds": seconds,
                "until": until,
            },
        )
        return until

    async def _mute(self, room: Room, by: str, viewer_id: str, seconds: int) -> float:
        """Mute in the store (checked on every message) and in SQLite (kept across
        restarts); returns when the mute ends."""
        until = round(self._clock() + seconds, 3)
        await self._repo.mute(room.id, viewer_id, by, until)
        await self._store.set(_mute_key(room.id, viewer_id), by, seconds)
        return until

    async def restore_mutes(self) -> int:
        """Put the mutes still running back in the store (after a restart on the
        in-memory store; a no-op in effect on Redis); returns how many."""
        now = self._clock()
        mutes = await self._repo.mutes_after(now)
        for mute in mutes:
            await self._store.set(_mute_key(mute.room, mute.viewer_id), mute.by, mute.until - now)
        return len(mutes)

    async def unmute(self, room: Room, actor: Principal, viewer_id: str) -> None:
        await self._repo.unmute(room.id, viewer_id)
        await self._store.delete(_mute_key(room.id, viewer_id))
        await self._record(room, actor.viewer_id, "mod.unmute", {"viewer_id": viewer_id})

    async def ban(self, room: Room, actor: Principal, viewer_id: str, reason: str) -> None:
        self._not_self(actor, viewer_id)
        await self._ban(room, actor.viewer_id, viewer_id, reason)

    async def unban(self, room: Room, actor: Principal, viewer_id: str) -> None:
        await self._repo.unban(room.id, viewer_id)
        await self._store.srem(_bans_key(room.id), viewer_id)
        await self._record(room, actor.viewer_id, "mod.unban", {"viewer_id": viewer_id})

    async def is_banned(self, room_id: str, viewer_id: str) -> bool:
        if await self._store.sismember(_bans_key(room_id), viewer_id):
            return True
        return await self._repo.is_banned(room_id, viewer_id)

    async def _ban(self, room: Room, by: str, viewer_id: str, reason: str) -> None:
        reason = reason.strip()[:200]
        await self._repo.ban(room.id, viewer_id, by, reason, self._clock())
        await self._store.sadd(_bans_key(room.id), viewer_id)
        await self._record(room, by, "mod.ban", {"viewer_id": viewer_id, "reason": reason})

    @staticmethod
    def _not_self(actor: Principal, viewer_id: str) -> None:
        if actor.viewer_id == viewer_id:
            raise UserError("not_yourself", "You cannot do that to yourself.")

    # -- rules -------------------------------------------------------------------

    async def add_rule(
        self,
        room: Room,
        actor: Principal,
        pattern: str,
        kind: str,
        action: str,
        mute_seconds: int = 600,
    ) -> Rule:
        validate_rule(pattern, kind, action, mute_seconds)
        if len(room.rules) >= MAX_RULES:
            raise UserError("too_many_rules", f"A room has at most {MAX_RULES} rules.")
        rule = msgspec.convert(
            {
                "id": "r_" + secrets.token_hex(4),
                "pattern": pattern,
                "kind": kind,
                "action": action,
                "mute_seconds": mute_seconds,
            },
            Rule,
        )
        await self._rooms.set_rules(room, (*room.rules, rule), actor.viewer_id)
        await self._record(room, actor.viewer_id, "mod.rule_add", msgspec.to_builtins(rule))
        return rule

    async def remove_rule(self, room: Room, actor: Principal, rule_id: str) -> None:
        kept = tuple(r for r in room.rules if r.id != rule_id)
        if len(kept) == len(room.rules):
            raise NotFound("not_found", "No such rule.")
        await self._rooms.set_rules(room, kept, actor.viewer_id)
        await self._record(room, actor.viewer_id, "mod.rule_remove", {"rule_id": rule_id})

    # -- the hold-for-review queue -------------------------------------------------

    async def hold(self, room: Room, message: ChatMessage) -> None:
        await self._store.hset(_held_key(room.id), {str(message.id): _encode(message)})

    async def held(self, room: Room) -> list[ChatMessage]:
        raw = await self._store.hgetall(_held_key(room.id))
        decoder = msgspec.json.Decoder(ChatMessage)
        return sorted((decoder.decode(v) for v in raw.values()), key=lambda m: m.id)

    async def approve(self, room: Room, actor: Principal, message_id: int) -> ChatMessage:
        message = await self._take_held(room, message_id)
        await self._record(
            room,
            actor.viewer_id,
            "mod.approve",
            {
                "message_id": message_id,
                "message": msgspec.to_builtins(message),
            },
        )
        await self._counters.add(room.id, room.scope, message.viewer_id, "messages")
        await self._counters.add_room(room.id, room.scope, "messages")
        return message

    async def reject(self, room: Room, actor: Principal, message_id: int) -> None:
        message = await self._take_held(room, message_id)
        await self._record(
            room,
            actor.viewer_id,
            "mod.reject",
            {
                "message_id": message_id,
                "viewer_id": message.viewer_id,
            },
        )

    async def _take_held(self, room: Room, message_id: int) -> ChatMessage:
        key = _held_key(room.id)
        raw = await self._store.hget(key, str(message_id))
        if raw is None or not await self._store.hdel(key, str(message_id)):
            raise NotFound("not_found", "No such held message.")
        return msgspec.json.decode(raw, type=ChatMessage)

    # -- room-wide switches --------------------------------------------------------

    async def slow_mode(self, room: Room, actor: Principal, seconds: int) -> Room:
        updated = await self._rooms.update(
            room.id, actor.viewer_id, settings={"slow_mode_seconds": seconds}
        )
        await self._record(room, actor.viewer_id, "mod.slow", {"seconds": seconds})
        return updated

    async def pause(self, room: Room, actor: Principal, paused: bool) -> Room:
        updated = await self._rooms.update(
            room.id, actor.viewer_id, settings={"chat_paused": paused}
        )
        await self._record(room, actor.viewer_id, "mod.pause", {"paused": paused})
        return updated


def _encode(message: ChatMessage) -> str:
    return msgspec.json.encode(message).decode()
