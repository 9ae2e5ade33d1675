"""The domain services the edges call, built once by the composition root."""

from __future__ import annotations

from dataclasses import dataclass

from livehub.interactions.chat import ChatService
from livehub.interactions.likes import Likes
from livehub.interactions.moderation import Moderation
from livehub.rooms.counters import Counters
from livehub.rooms.eventlog import EventLog
from livehub.rooms.presence import Presence
from livehub.rooms.service import RoomService
from livehub.rooms.store import StateStore
from livehub.settings import Settings
from livehub.signaling.auth import Auth
from livehub.supervisor import Supervisor


@dataclass(frozen=True)
class Services:
    settings: Settings
    store: StateStore
    log: EventLog
    rooms: RoomService
    counters: Counters
    presence: Presence
    chat: ChatService
    likes: Likes
    moderation: Moderation
    auth: Auth
    supervisor: Supervisor
