"""Rooms, streams, roles and the principal a token stands for."""

from __future__ import annotations

from typing import Literal

import msgspec

Role = Literal["host", "moderator", "viewer"]
RuleKind = Literal["word", "regex"]
RuleAction = Literal["block", "hold", "mute", "ban"]
STAFF_ROLES: frozenset[str] = frozenset({"host", "moderator"})
NO_STREAM = "-"
MAX_PUBLISHER_GRACE = 600
MediaState = Literal["live", "paused", "ended"]


class Rule(msgspec.Struct, frozen=True):
    """A moderation rule of a room (matched by ``livehub.interactions.rules.RuleChain``)."""

    id: str
    pattern: str
    kind: RuleKind
    action: RuleAction
    mute_seconds: int = 600
    disabled: bool = False  # ran past the matching time budget; kept to show staff


class RoomSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    slow_mode_seconds: int = 0
    chat_paused: bool = False
    max_danmaku_per_second: int = 30
    max_message_chars: int = 200
    chat_rate_per_second: float = 1.5
    chat_burst: int = 5
    question_interval_seconds: int = 60  # one question per viewer per this; 0: no limit
    # A publisher that is lost (connection closed or failed, a server restart) may come
    # back within this many seconds and continue the same stream; 0: its stream ends at once.
    publisher_grace_seconds: int = 30

    def validate(self) -> None:
        from livehub.errors import ProtocolError

        checks = [
            (0 <= self.slow_mode_seconds <= 3600, "slow_mode_seconds must be 0-3600"),
            (0 <= self.max_danmaku_per_second <= 10_000, "max_danmaku_per_second must be 0-10000"),
            (1 <= self.max_message_chars <= 500, "max_message_chars must be 1-500"),
            (0.01 <= self.chat_rate_per_second <= 100, "chat_rate_per_second must be 0.01-100"),
            (1 <= self.chat_burst <= 1000, "chat_burst must be 1-1000"),
            (
                0 <= self.question_interval_seconds <= 3600,
                "question_interval_seconds must be 0-3600",
            ),
            (
                0 <= self.publisher_grace_seconds <= MAX_PUBLISHER_GRACE,
                f"publisher_grace_seconds must be 0-{MAX_PUBLISHER_GRACE}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ProtocolError("bad_settings", message)


class Stream(msgspec.Struct, frozen=True):
    id: str
    room: str
    started_at: float
    ended_at: float | None = None
    # Set while the publisher is lost and may come back (``publisher_grace_seconds``).
    paused_at: float | None = None

    @property
    def paused(self) -> bool:
        return self.paused_at is not None


class Mute(msgspec.Struct, frozen=True):
    """A viewer muted in a room until a time (by a moderator, or "automod")."""

    room: str
    viewer_id: str
    by: str
    until: float


class Room(msgspec.Struct, frozen=True):
    id: str
    title: str
    private: bool
    created_at: float
    settings: RoomSettings = RoomSettings()
    closed: bool = False
    stream: Stream | None = None
    rules: tuple[Rule, ...] = ()
    rules_version: int = 0
    room_key: str | None = None

    @property
    def live(self) -> bool:
        return self.stream is not None

    @property
    def paused(self) -> bool:
        """Live, but the publisher is lost and may come back within the grace period."""
        return self.stream is not None and self.stream.paused

    @property
    def media_state(self) -> MediaState:
        if self.stream is None:
            return "ended"
        return "paused" if self.stream.paused else "live"

    @property
    def scope(self) -> str:
        """What live counters are keyed on: the current stream, or none."""
        return self.stream.id if self.stream else NO_STREAM

    def public_view(self) -> dict[str, object]:
        return {
            "id": self.id,
            "title": self.title,
            "private": self.private,
            "closed": self.closed,
            "live": self.live,
            "stream_id": self.stream.id if self.stream else None,
            "paused": self.paused,
            "created_at": self.created_at,
            "settings": msgspec.to_builtins(self.settings),
        }


class Principal(msgspec.Struct, frozen=True):
    """Who a verified token stands for."""

    room: str
    viewer_id: str
    name: str
    role: Role

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF_ROLES

    def view(self) -> dict[str, str]:
        return {"viewer_id": self.viewer_id, "name": self.name, "role": self.role}
