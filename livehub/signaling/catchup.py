"""Recover the frames a node missed while its pub/sub listener was cut off from Redis.

Redis pub/sub keeps nothing: whatever the other nodes published while this node
was not subscribed is gone. Every message in those frames is in the log, so when
the listener is back the node sends its own viewers, room by room, one extra
``batch`` with the visible messages logged after the last one it had delivered
before the cut (a room it had not delivered any to starts at the log's newest id
at the cut). The frame goes to this node's sockets only; clients drop ids they
have already shown, as they do when a viewer resumes.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import msgspec

from livehub.interactions.messages import VISIBLE_KINDS, ChatMessage
from livehub.rooms.eventlog import EventLog
from livehub.signaling.fanout import room_of_channel

log = logging.getLogger("livehub.catchup")

Emit = Callable[[str, Any, str], Awaitable[None]]  # (event, data, channel), this node only

MAX_CATCHUP = 500  # messages per room, as a resuming viewer gets at most


class Catchup:
    def __init__(self, log_: EventLog) -> None:
        self._log = log_
        self._delivered: dict[str, int] = {}  # room channel -> newest message id sent here
        self._marks: dict[str, int] | None = None  # the delivered ids at the cut
        self._floor = 0  # the log's newest id at the cut
        self.recovered = 0

    def delivered(self, channel: str, data: Any) -> None:
        """A ``batch`` frame went to ``channel`` on this node (local or from another)."""
        messages = data.get("messages") if isinstance(data, dict) else None
        if messages:
            newest = messages[-1].get("id")
            if isinstance(newest, int) and newest > self._delivered.get(channel, 0):
                self._delivered[channel] = newest

    async def cut_off(self) -> None:
        if self._marks is None:
            self._marks = dict(self._delivered)
            self._floor = await self._log.newest_id()

    async def rejoined(self, emit: Emit, channels: Iterable[object]) -> int:
        """Send each room channel of ``channels`` (those with viewers here) what it missed."""
        marks, self._marks = self._marks, None
        if marks is None:
            return 0
        sent = 0
        for channel in channels:
            room = room_of_channel(channel)
            if room is None or not isinstance(channel, str):
                continue
            after = marks.get(channel, self._floor)
            messages = await self._missed(room, after)
            if messages:
                payload = {"messages": msgspec.to_builtins(messages), "deleted": [], "dropped": 0}
                await emit("batch", payload, channel)
                sent += len(messages)
        self.recovered += sent
        if sent:
            log.info("recovered %d messages missed while cut off from the other nodes", sent)
        return sent

    async def _missed(self, room: str, after: int) -> list[ChatMessage]:
        events = await self._log.by_kinds(room, VISIBLE_KINDS, after_id=after, limit=MAX_CATCHUP)
        if not events:
            return []
        deleted = await self._log.by_kinds(room, ("mod.delete",), after_id=after)
        gone = {int(e.data["message_id"]) for e in deleted}
        return [m for m in map(ChatMessage.from_event, events) if m.id not in gone]
