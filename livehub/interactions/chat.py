"""The chat and danmaku pipeline: normalise, check the rules, rate-limit,
suppress repeats, enforce slow mode, record, and hand back the message.

Delivery is not here: the edge batches accepted messages per room and tick.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable

import msgspec

from livehub.errors import RateLimited, UserError
from livehub.interactions.messages import ChatMessage, Draft
from livehub.interactions.moderation import Moderation
from livehub.interactions.normalise import clean_text, compact, skeleton
from livehub.rooms.counters import Counters
from livehub.rooms.eventlog import Event, EventLog
from livehub.rooms.models import Principal, Room
from livehub.rooms.recorder import room_event
from livehub.rooms.store import StateStore

REPEAT_WINDOW_SECONDS = 30.0
# How long a retry racing its original on another node waits for it to be recorded.
RACING_RETRY_WAIT_SECONDS = 2.0


class ChatResult(msgspec.Struct, frozen=True):
    message: ChatMessage
    held: bool
    duplicate: bool


class ChatService:
    def __init__(
        self,
        store: StateStore,
        log: EventLog,
        counters: Counters,
        moderation: Moderation,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._log = log
        self._counters = counters
        self._moderation = moderation
        self._clock = clock
        self._in_flight: dict[tuple[str, str, str], asyncio.Future[ChatResult]] = {}

    async def send(self, room: Room, who: Principal, draft: Draft) -> ChatResult:
        """Post a message; a retry with the same client id gets the first result."""
        key = (room.id, who.viewer_id, draft.client_id)
        running = self._in_flight.get(key)
        if running is not None:
            result = await asyncio.shield(running)
            return msgspec.structs.replace(result, duplicate=True)
        task = asyncio.ensure_future(self._send(room, who, draft))
        self._in_flight[key] = task
        try:
            return await asyncio.shield(task)
        finally:
            if task.done():
                self._in_flight.pop(key, None)
            else:
                task.add_done_callback(lambda _t: self._in_flight.pop(key, None))

    async def _send(self, room: Room, who: Principal, draft: Draft) -> ChatResult:
        earlier = await self._log.find(room.id, who.viewer_id, draft.client_id)
        if earlier is not None:
            return ChatResult(ChatMessage.from_event(earlier), earlier.kind == "chat.held", True)
        text = self._checked_text(room, draft.text)
        held = False
        if not who.is_staff:
            await self._moderation.ensure_may_post(room, who)
            held = await self._moderation.apply_rules(room, who, text)
            if await self._throttle(room, who, text, draft.client_id):
                earlier = await self._recorded_elsewhere(room, who, draft.client_id)
                if earlier is None:
                    raise UserError("repeated_message", "You just sent that message.")
                return ChatResult(
                    ChatMessage.from_event(earlier), earlier.kind == "chat.held", True
                )
        return await self._record(room, who, draft, text, held)

    async def _recorded_elsewhere(self, room: Room, who: Principal, client_id: str) -> Event | None:
        """The original of a retry that raced it through another node, once recorded."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RACING_RETRY_WAIT_SECONDS
        while True:
            earlier = await self._log.find(room.id, who.viewer_id, client_id)
            if earlier is not None or loop.time() >= deadline:
                return earlier
            await asyncio.sleep(0.02)

    def _checked_text(self, room: Room, raw: str) -> str:
        text = clean_text(raw)
        if not text:
            raise UserError("empty_message", "The message is empty.")
        limit = room.settings.max_message_chars
        if len(text) > limit:
            raise UserError("message_too_long", f"Messages are at most {limit} characters.")
        return text

    async def _throttle(self, room: Room, who: Principal, text: str, client_id: str) -> bool:
        """Rate limit, repeats, slow mode; True when this text's claim is this very
        client id's (a retry racing its original, in flight on another node)."""
        now = self._clock()
        settings = room.settings
        wait = await self._store.take_token(
            f"rl:chat:{room.id}:{who.viewer_id}",
            settings.chat_rate_per_second,
            settings.chat_burst,
            now,
        )
        if wait:
            raise RateLimited("Too many messages; wait a moment.", wait)
        digest = hashlib.blake2b(compact(skeleton(text)).encode(), digest_size=8).hexdigest()
        repeat_key = f"rep:{room.id}:{who.viewer_id}:{digest}"
        if not await self._store.set_if_absent(repeat_key, client_id, REPEAT_WINDOW_SECONDS):
            if await self._store.get(repeat_key) == client_id:
                return True
            raise UserError("repeated_message", "You just sent that message.")
        if settings.slow_mode_seconds:
            key = f"slow:{room.id}:{who.viewer_id}"
            if not await self._store.set_if_absent(key, "1", settings.slow_mode_seconds):
                # Not sent, so not a repeat when retried after the wait.
                await self._store.delete(repeat_key)
                left = await self._store.ttl(key) or float(settings.slow_mode_seconds)
                raise UserError(
                    "slow_mode",
                    f"Slow mode: one message every {settings.slow_mode_seconds} s.",
                    retry_after=round(left, 3),
                )
        return False

    async def _record(
        self, room: Room, who: Principal, draft: Draft, text: str, held: bool
    ) -> ChatResult:
        now = self._clock()
        offset = round((now - room.stream.started_at) * 1000) if room.stream else None
        body = {
            "name": who.name,
            "role": who.role,
            "text": text,
            "mode": draft.mode,
            "color": draft.color.lower(),
            "offset_ms": offset,
        }
        kind = "chat.held" if held else "chat.message"
        event, created = await self._log.append(
            room_event(room, kind, who.viewer_id, body, ts=now, client_id=draft.client_id)
        )
        message = ChatMessage.from_event(event)
        if created and not held:
            await self._counters.add(room.id, room.scope, who.viewer_id, "messages")
            await self._counters.add_room(room.id, room.scope, "messages")
        if created and held:
            await self._moderation.hold(room, message)
        return ChatResult(message, event.kind == "chat.held", not created)
