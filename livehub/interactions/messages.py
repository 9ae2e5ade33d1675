"""The chat message as stored in the log and sent on the wire."""

from __future__ import annotations

import re
from typing import Literal

import msgspec

from livehub.rooms.eventlog import Event

Mode = Literal["scroll", "top", "bottom"]
COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
VISIBLE_KINDS = ("chat.message", "mod.approve")
MESSAGE_KINDS = ("chat.message", "chat.held")


class ChatMessage(msgspec.Struct, frozen=True):
    id: int
    viewer_id: str
    name: str
    role: str
    text: str
    mode: Mode
    color: str
    offset_ms: int | None
    ts: float

    def body(self) -> dict[str, object]:
        """What the log stores besides the event's own id, actor and time."""
        return {
            "name": self.name,
            "role": self.role,
            "text": self.text,
            "mode": self.mode,
            "color": self.color,
            "offset_ms": self.offset_ms,
        }

    @classmethod
    def from_event(cls, event: Event) -> ChatMessage:
        """A message from its ``chat.*`` event, or from the ``mod.approve`` that released it."""
        if event.kind == "mod.approve":
            return msgspec.convert(event.data["message"], ChatMessage)
        data = event.data
        return cls(
            id=event.id,
            viewer_id=event.actor,
            name=data["name"],
            role=data["role"],
            text=data["text"],
            mode=data["mode"],
            color=data["color"],
            offset_ms=data.get("offset_ms"),
            ts=event.ts,
        )


class Draft(msgspec.Struct, frozen=True):
    """What a sender asks to post."""

    text: str
    client_id: str
    mode: Mode = "scroll"
    color: str = "#ffffff"
