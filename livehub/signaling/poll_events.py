"""Poll events of the live namespace: staff create and run polls, viewers vote.

Pushes: ``poll`` (the public view) to the room and ``poll_staff`` (with the
tally, always) to the staff, whenever a poll opens, closes or shows or hides its
results; vote tallies through a Coalescer, at most four times a second per poll.
Drafts go to the staff only, so the question is not out before the poll opens.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any, Literal

import msgspec

from livehub.errors import LivehubError, Unavailable
from livehub.interactions.polls import Ballot, Poll, PollService, PollSpec, poll_view
from livehub.rooms.models import Principal, Room
from livehub.signaling.context import Services
from livehub.signaling.live import Handler, LiveNamespace, Result
from livehub.signaling.payloads import Empty, Payload
from livehub.signaling.throttle import Coalescer

log = logging.getLogger("livehub.polls")
TALLY_INTERVAL = 0.25
TIMER_CHECK_SECONDS = 0.25
TIMER_RETRY_SECONDS = 1.0

PollId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class PollCreateIn(Payload, frozen=True, forbid_unknown_fields=True):
    question: Annotated[str, msgspec.Meta(min_length=1, max_length=1000)]
    kind: Literal["single", "multiple", "rating", "word_cloud"]
    options: Annotated[
        tuple[Annotated[str, msgspec.Meta(max_length=500)], ...], msgspec.Meta(max_length=20)
    ] = ()
    anonymous: bool = False
    timer_seconds: Annotated[int, msgspec.Meta(ge=1, le=86400)] | None = None
    max_choices: Annotated[int, msgspec.Meta(ge=1, le=20)] | None = None
    results_visible: bool = False


class PollRef(Payload, frozen=True, forbid_unknown_fields=True):
    poll_id: PollId


class PollResultsIn(Payload, frozen=True, forbid_unknown_fields=True):
    poll_id: PollId
    visible: bool


class PollVoteIn(Payload, frozen=True, forbid_unknown_fields=True):
    poll_id: PollId
    choices: Annotated[tuple[int, ...], msgspec.Meta(max_length=20)] | None = None
    text: Annotated[str, msgspec.Meta(max_length=400)] | None = None


class PollEvents:
    def __init__(self, services: Services, live: LiveNamespace, polls: PollService) -> None:
        self._s = services
        self._live = live
        self._polls = polls
        self.tallies: Coalescer[tuple[str, str]] = Coalescer(TALLY_INTERVAL, self._push_key)
        # Timers this node started or rebuilt: (room, poll) -> closes_at, pushed when they
        # run out (the close is logged once: every node may hold the same timer).
        self._timers: dict[tuple[str, str], float] = {}
        routes: dict[str, tuple[type[Any], Handler, bool]] = {
            "poll_create": (PollCreateIn, self.create, True),
            "poll_open": (PollRef, self.open, True),
            "poll_close": (PollRef, self.close, True),
            "poll_results": (PollResultsIn, self.results, True),
            "poll_list": (Empty, self.list_polls, True),
            "poll_vote": (PollVoteIn, self.vote, False),
            "poll_state": (Empty, self.state, False),
        }
        for event, (payload, handler, staff_only) in routes.items():
            live.route(event, payload, handler, staff_only=staff_only)

    # -- staff -------------------------------------------------------------------

    async def create(self, who: Principal, data: PollCreateIn) -> Result:
        room = await self._s.rooms.get_open(who.room)
        spec = PollSpec(
            question=data.question,
            kind=data.kind,
            options=data.options,
            anonymous=data.anonymous,
            timer_seconds=data.timer_seconds,
            max_choices=data.max_choices,
            results_visible=data.results_visible,
        )
        poll = await self._polls.create(room, who, spec)
        view = await self._push(poll)
        return {"poll": view}

    async def open(self, who: Principal, data: PollRef) -> Result:
        room = await self._s.rooms.get_open(who.room)
        poll = await self._polls.open(room, who, data.poll_id)
        if poll.closes_at is not None:
            self._timers[(room.id, poll.id)] = poll.closes_at
        return {"poll": await self._push(poll)}

    async def close(self, who: Principal, data: PollRef) -> Result:
        room = await self._s.rooms.get_open(who.room)
        poll = await self._polls.close(room, who, data.poll_id)
        self._timers.pop((room.id, poll.id), None)
        return {"poll": await self._push(poll)}

    async def results(self, who: Principal, data: PollResultsIn) -> Result:
        room = await self._s.rooms.get_open(who.room)
        poll = await self._polls.set_results(room, who, data.poll_id, data.visible)
        return {"poll": await self._push(poll)}

    async def list_polls(self, who: Principal, data: Empty) -> Result:
        now = self._polls.now()
        views = []
        for poll in await self._polls.polls(who.room):
            views.append(poll_view(poll, await self._polls.tally(poll), now, staff=True))
        return {"polls": views}

    # -- viewers -----------------------------------------------------------------

    async def vote(self, who: Principal, data: PollVoteIn) -> Result:
        room = await self._s.rooms.get_open(who.room)
        ballot = Ballot(choices=data.choices or (), text=data.text)
        result = await self._polls.vote(room, who, data.poll_id, ballot)
        self.tallies.mark((room.id, result.poll.id))
        return {
            "poll_id": result.poll.id,
            "choices": list(result.ballot.choices),
            "text": result.ballot.text,
            "held": result.held,
        }

    async def state(self, who: Principal, data: Empty) -> Result:
        now = self._polls.now()
        polls = await self._polls.visible_polls(who.room)
        views = []
        for poll in polls:
            tally = await self._polls.tally(poll)
            views.append(poll_view(poll, tally, now, staff=who.is_staff))
        votes = await self._polls.my_votes(who.room, who.viewer_id, polls)
        return {"polls": views, "votes": msgspec.to_builtins(votes), "server_time": now}

    # -- pushes ------------------------------------------------------------------

    async def _push(self, poll: Poll) -> dict[str, Any]:
        """Send the poll to the room (unless a draft) and to the staff; the staff view."""
        now = self._polls.now()
        tally = await self._polls.tally(poll)
        staff_view = poll_view(poll, tally, now, staff=True)
        if poll.status != "draft":
            await self._live.to_room("poll", poll_view(poll, tally, now, staff=False), poll.room)
        await self._live.to_staff("poll_staff", staff_view, poll.room)
        return staff_view

    async def _push_key(self, key: tuple[str, str]) -> None:
        room_id, poll_id = key
        await self._push(await self._polls.get(room_id, poll_id))

    async def rebuild(self, room_id: str) -> None:
        """Recovery: the room's polls back in the store from the log, and their timers here."""
        for poll in await self._polls.rebuild(room_id):
            key = (room_id, poll.id)
            if poll.status == "open" and poll.closes_at is not None:
                self._timers[key] = poll.closes_at
            else:
                self._timers.pop(key, None)

    async def expire_forever(self) -> None:
        """Close and push the polls whose timers ran out (the timers this node started)."""
        while True:
            await asyncio.sleep(TIMER_CHECK_SECONDS)
            now = self._polls.now()
            for key in [k for k, at in self._timers.items() if at <= now]:
                try:
                    await self._expire(key)
                except Unavailable as exc:
                    self._retry(key, now, exc)
                except LivehubError:  # the room or poll went away meanwhile
                    self._timers.pop(key, None)
                except Exception as exc:  # keep the loop for the other polls
                    self._retry(key, now, exc)
                else:
                    self._timers.pop(key, None)

    def _retry(self, key: tuple[str, str], now: float, error: Exception) -> None:
        """The store or the log cannot be used now: the poll is closed by time all the
        same; its close is logged and pushed once they are back."""
        log.warning("closing poll %s of room %s by its timer failed: %r", key[1], key[0], error)
        self._timers[key] = now + TIMER_RETRY_SECONDS

    async def _expire(self, key: tuple[str, str]) -> None:
        room_id, poll_id = key
        room: Room = await self._s.rooms.get(room_id)
        closed = await self._polls.expire(room, poll_id)
        if closed is not None:
            await self._push(closed)
