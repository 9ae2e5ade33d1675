"""The chat and danmaku pipeline: normalise, check the rules, rate-limit,
suppress repeats, enforce slow mode, record, and hand back the message.

Acked means in the log. The repeat and slow-mode claims in the store hold the
claiming message's client id, so a claim whose log write never happened (a
crash between the two, a failed commit) never blocks that message's retry: a
retry finding its own claim records the message, and the log's unique key for
(room, viewer, client id) makes it one event however many retries race.

Delivery is not here: the edge batches accepted messages per room and tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Callable

import msgspec

from livehub.errors import RateLimited, UserError
from livehub.interactions.messages import ChatMessage, Draft
from livehub.interactions.moderation import Moderation
from livehub.interactions.normalise import clean_text, compact, skeleton
from livehub.rooms.counters import Counters
from livehub.rooms.eventlog import EventLog
from livehub.rooms.models import Principal, Room
from livehub.rooms.recorder import room_event
from livehub.rooms.store import StateStore

REPEAT_WINDOW_SECONDS = 30.0


def repeat_key(room_id: str, viewer_id: str, text: str) -> str:
    """The store key claiming ``text`` (cleaned) as a viewer's recent message."""
    digest = hashlib.blake2b(compact(skeleton(text)).encode(), digest_size=8).hexdigest()
    return f"rep:{room_id}:{viewer_id}:{digest}"


def slow_key(room_id: str, viewer_id: str) -> str:
    """The store key claiming a viewer's one message per slow-mode interval."""
    return f"slow:{room_id}:{viewer_id}"


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
            # A claim already this client id's is a retry's (of an original still in
            # flight, maybe on another node, or one that never reached the log): it
            # records, and the log keeps one event of the two.
            await self._throttle(room, who, text, draft.client_id)
        try:
            return await self._record(room, who, draft, text, held)
        except Exception:
            if not who.is_staff:
                await self._release_claims(room, who, text, draft.client_id)
            raise

    async def _release_claims(self, room: Room, who: Principal, text: str, client_id: str) -> None:
        """A message that was not recorded claims nothing: another message with the
        same text may be sent (best effort: the store may be what failed)."""
        with contextlib.suppress(Exception):
            if await self._log.find(room.id, who.viewer_id, client_id) is not None:
                return
            for key in (repeat_key(room.id, who.viewer_id, text), slow_key(room.id, who.viewer_id)):
                if await self._store.get(key) == client_id:
                    await self._store.delete(key)

    def _checked_text(self, room: Room, raw: str) -> str:
        text = clean_text(raw)
        if not text:
            raise UserError("empty_message", "The message is empty.")
        limit = room.settings.max_message_chars
        if len(text) > limit:
            raise UserError("message_too_long", f"Messages are at most {limit} characters.")
        return text

    async def _throttle(self, room: Room, who: Principal, text: str, client_id: str) -> None:
        """Rate limit, repeats, slow mode; a claim this client id holds already is
        not a refusal."""
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
        repeat = repeat_key(room.id, who.viewer_id, text)
        if not await self._claim(repeat, client_id, REPEAT_WINDOW_SECONDS):
            raise UserError("repeated_message", "You just sent that message.")
        if settings.slow_mode_seconds:
            key = slow_key(room.id, who.viewer_id)
            if not await self._claim(key, client_id, settings.slow_mode_seconds):
                # Not sent, so not a repeat when retried after the wait.
                await self._store.delete(repeat)
                left = await self._store.ttl(key) or float(settings.slow_mode_seconds)
                raise UserError(
                    "slow_mode",
                    f"Slow mode: one message every {settings.slow_mode_seconds} s.",
                    retry_after=round(left, 3),
                )

    async def _claim(self, key: str, client_id: str, ttl: float) -> bool:
        """Claim ``key`` for this message; True also when this client id holds it."""
        if await self._store.set_if_absent(key, client_id, ttl):
            return True
        return await self._store.get(key) == client_id

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
