"""Sends each room one frame per tick with everything new, encoded once.

The tick never dies: a room that went away drops its batch; a store that does
not answer (Redis restarting) does not stop delivery: the batch goes out with
the room's last known counts, and the failure is logged once per streak. The
messages themselves are already in the log, so what was acknowledged is sent.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import msgspec
import socketio

from livehub.errors import GONE, Unavailable
from livehub.interactions.batcher import Batch, Batcher
from livehub.interactions.cap_share import CapShares
from livehub.interactions.messages import ChatMessage
from livehub.rooms.counters import Counters
from livehub.rooms.eventlog import EventLog, NewEvent
from livehub.rooms.models import Room
from livehub.rooms.presence import Presence, RoomStats
from livehub.rooms.service import RoomService

log = logging.getLogger("livehub.fanout")
NAMESPACE = "/live"


ROOM_CHANNEL = "room:"


def room_channel(room_id: str) -> str:
    return f"{ROOM_CHANNEL}{room_id}"


def room_of_channel(channel: object) -> str | None:
    """The room id of a room channel; None for any other channel."""
    if isinstance(channel, str) and channel.startswith(ROOM_CHANNEL):
        return channel[len(ROOM_CHANNEL) :]
    return None


def staff_channel(room_id: str) -> str:
    return f"staff:{room_id}"


def viewer_channel(room_id: str, viewer_id: str) -> str:
    return f"viewer:{room_id}:{viewer_id}"


class Fanout:
    def __init__(
        self,
        sio: socketio.AsyncServer,
        batcher: Batcher,
        rooms: RoomService,
        presence: Presence,
        counters: Counters,
        tick_seconds: float,
        log_: EventLog | None = None,
        shares: CapShares | None = None,
    ) -> None:
        self._sio = sio
        self._batcher = batcher
        self._rooms = rooms
        self._presence = presence
        self._counters = counters
        self._tick = tick_seconds
        self._log = log_
        self._shares = shares  # several nodes: each takes its share of a room's cap
        self._logging: set[asyncio.Task[None]] = set()
        self._known: dict[str, tuple[Room, RoomStats]] = {}  # last answer of the store
        self._failing = False
        self._sharing_failed = False

    def message(self, room: Room, message: ChatMessage) -> None:
        self._batcher.add_message(room.id, room.settings.max_danmaku_per_second, message)

    def deleted(self, room: Room, message_id: int) -> None:
        self._batcher.add_deleted(room.id, room.settings.max_danmaku_per_second, message_id)

    def touch(self, room: Room) -> None:
        self._batcher.touch(room.id, room.settings.max_danmaku_per_second)

    def forget(self, room_id: str) -> None:
        self._batcher.forget(room_id)
        self._known.pop(room_id, None)
        if self._shares is not None:
            self._shares.forget(room_id)

    async def emit(self, event: str, data: Any, channel: str) -> None:
        await self._sio.emit(event, data, room=channel, namespace=NAMESPACE)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_tick = loop.time()
        while True:
            next_tick += self._tick
            await asyncio.sleep(max(0.0, next_tick - loop.time()))
            await self._share_caps()
            for batch in self._batcher.drain():
                try:
                    await self._send(batch)
                except GONE as err:  # the room went away between ticks
                    log.info("dropping batch for %s: %s", batch.room, err.code)
                    self.forget(batch.room)
                except Exception:  # a bug or a broken socket: this batch, not the loop
                    log.exception("sending the batch of %s failed", batch.room)
            if loop.time() > next_tick + self._tick:  # fell behind: do not burst to catch up
                next_tick = loop.time()

    async def _share_caps(self) -> None:
        if self._shares is None:
            return
        try:
            shares = await self._shares.update(self._batcher.demand())
        except Exception:  # the store is unreachable: keep the last shares this tick
            if not self._sharing_failed:
                log.exception("sharing room caps between nodes failed; keeping the last shares")
            self._sharing_failed = True
            return
        self._sharing_failed = False
        for room, share in shares.items():
            self._batcher.set_share(room, share)

    async def _room_and_stats(self, room_id: str) -> tuple[Room, RoomStats]:
        """The room and its counts from the store, or the last known ones while it fails."""
        try:
            room = await self._rooms.get(room_id)
            stats = await self._presence.stats(room)
        except Unavailable:
            known = self._known.get(room_id)
            if known is None:
                raise
            if not self._failing:
                log.warning("the store is not answering: batches go out with the last counts")
            self._failing = True
            return known
        if self._failing:
            log.info("the store answers again: batches carry fresh counts")
        self._failing = False
        self._known[room_id] = (room, stats)
        return room, stats

    async def _send(self, batch: Batch) -> None:
        try:
            room, stats = await self._room_and_stats(batch.room)
        except Unavailable:  # never seen and the store is down: the messages still go
            room, stats = None, RoomStats(viewers=0, peak=0, likes=0)
        payload = {
            "messages": msgspec.to_builtins(batch.messages),
            "deleted": batch.deleted,
            "likes": stats.likes,
            "dropped": batch.dropped,
            "viewers": stats.viewers,
            "peak": stats.peak,
        }
        await self.emit("batch", payload, room_channel(batch.room))
        if room is not None and batch.dropped:
            await self._count_sampled(room, batch.dropped)

    async def _count_sampled(self, room: Room, dropped: int) -> None:
        """The report's count of sampled-away messages; short, not fatal, while the store fails."""
        try:
            await self._counters.add_room(room.id, room.scope, "sampled_away", dropped)
        except Unavailable:
            return
        self._record_sampled(room, dropped)

    def _record_sampled(self, room: Room, dropped: int) -> None:
        """Log ``chat.sampled`` {dropped} for the report, without holding up the tick."""
        if self._log is None:
            return
        event = NewEvent(
            room=room.id,
            kind="chat.sampled",
            actor="system",
            data={"dropped": dropped},
            stream=room.stream.id if room.stream else None,
        )
        task = asyncio.ensure_future(self._append(event))
        self._logging.add(task)
        task.add_done_callback(self._logging.discard)

    async def _append(self, event: NewEvent) -> None:
        assert self._log is not None
        try:
            await self._log.append(event)
        except Exception:  # the frame went out; only the report's count is short
            log.exception("recording %s for %s failed", event.kind, event.room)
