"""Live engagement counters, per viewer and per room, kept in the state store.

These are for live display. The report is computed from the event log; the
counters must agree with it (a test checks that after a scripted stream).
"""

from __future__ import annotations

from typing import Literal

from livehub.rooms.store import StateStore

ViewerCounter = Literal[
    "messages",
    "likes",
    "votes",
    "answers",
    "correct_answers",
    "quiz_score",
    "questions",
    "upvotes",
    "draw_entries",
    "draw_wins",
    "offer_clicks",
]
RoomCounter = Literal["likes", "messages", "sampled_away"]


def viewer_key(room: str, scope: str, viewer_id: str) -> str:
    return f"vc:{room}:{scope}:{viewer_id}"


def room_key(room: str, scope: str) -> str:
    return f"rs:{room}:{scope}"


class Counters:
    def __init__(self, store: StateStore) -> None:
        self._store = store

    async def add(
        self, room: str, scope: str, viewer_id: str, counter: ViewerCounter, by: int = 1
    ) -> None:
        await self._store.hincr(viewer_key(room, scope, viewer_id), counter, by)

    async def add_room(self, room: str, scope: str, counter: RoomCounter, by: int = 1) -> int:
        return await self._store.hincr(room_key(room, scope), counter, by)

    async def seen(self, room: str, scope: str, viewer_id: str, now: float) -> None:
        key = viewer_key(room, scope, viewer_id)
        await self._store.set_if_absent(f"{key}:first", repr(now))
        await self._store.hset(key, {"last_seen": repr(now)})

    async def add_watch(self, room: str, scope: str, viewer_id: str, seconds: float) -> None:
        await self._store.hincr_float(viewer_key(room, scope, viewer_id), "watch_seconds", seconds)

    async def viewer(self, room: str, scope: str, viewer_id: str) -> dict[str, float]:
        key = viewer_key(room, scope, viewer_id)
        raw = await self._store.hgetall(key)
        values = {name: float(value) for name, value in raw.items()}
        first = await self._store.get(f"{key}:first")
        if first is not None:
            values["first_seen"] = float(first)
        return values

    async def room(self, room: str, scope: str) -> dict[str, int]:
        raw = await self._store.hgetall(room_key(room, scope))
        return {name: int(value) for name, value in raw.items()}
