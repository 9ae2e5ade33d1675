"""Q&A events of the live namespace: viewers ask and upvote, staff run the board.

Viewers (and staff): qa_ask, qa_upvote, qa_unvote, qa_list. Staff: qa_approve,
qa_reject, qa_answer, qa_highlight, qa_dismiss, qa_queue, qa_settings.

Pushes: ``question`` (the public view of a new or changed question) to the room,
``question_pending`` (the staff view of a question entering or leaving the
approval queue) and ``qa_settings`` to the staff, ``question_highlight``
(``{"question": view | null}``) to the room, and vote tallies as ``qa_votes``
(``{"<id>": votes, ...}``, only the questions that changed) through a Coalescer,
at most four times a second per room.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from livehub.errors import Conflict
from livehub.interactions.questions import (
    QuestionService,
    QuestionState,
    question_view,
    similar_view,
)
from livehub.rooms.models import Principal
from livehub.signaling.context import Services
from livehub.signaling.live import Handler, LiveNamespace, Result
from livehub.signaling.payloads import ClientId, Empty, EventId, Payload
from livehub.signaling.throttle import Coalescer

VOTES_INTERVAL = 0.25


class QaAskIn(Payload, frozen=True, forbid_unknown_fields=True):
    text: Annotated[str, msgspec.Meta(max_length=2000)]
    client_id: ClientId
    anonymous: bool = False
    force: bool = False


class QuestionRef(Payload, frozen=True, forbid_unknown_fields=True):
    question_id: EventId


class QaHighlightIn(Payload, frozen=True, forbid_unknown_fields=True):
    question_id: EventId | None


class QaListIn(Payload, frozen=True, forbid_unknown_fields=True):
    sort: Literal["votes", "recent"] = "votes"


class QaSettingsIn(Payload, frozen=True, forbid_unknown_fields=True):
    require_approval: bool


class QuestionEvents:
    def __init__(self, services: Services, live: LiveNamespace, questions: QuestionService) -> None:
        self._s = services
        self._live = live
        self._qa = questions
        self.votes: Coalescer[str] = Coalescer(VOTES_INTERVAL, self._push_votes)
        # Questions whose tally moved on this node since the last push, per room.
        self._moved: dict[str, set[int]] = {}
        routes: dict[str, tuple[type[Any], Handler, bool]] = {
            "qa_ask": (QaAskIn, self.ask, False),
            "qa_upvote": (QuestionRef, self.upvote, False),
            "qa_unvote": (QuestionRef, self.unvote, False),
            "qa_list": (QaListIn, self.list_questions, False),
            "qa_approve": (QuestionRef, self.approve, True),
            "qa_reject": (QuestionRef, self.reject, True),
            "qa_answer": (QuestionRef, self.answer, True),
            "qa_highlight": (QaHighlightIn, self.highlight, True),
            "qa_dismiss": (QuestionRef, self.dismiss, True),
            "qa_queue": (Empty, self.queue, True),
            "qa_settings": (QaSettingsIn, self.settings, True),
        }
        for event, (payload, handler, staff_only) in routes.items():
            live.route(event, payload, handler, staff_only=staff_only)

    # -- everyone ----------------------------------------------------------------

    async def ask(self, who: Principal, data: QaAskIn) -> Result:
        room = await self._s.rooms.get_open(who.room)
        result = await self._qa.ask(
            room,
            who,
            data.text,
            anonymous=data.anonymous,
            client_id=data.client_id,
            force=data.force,
        )
        state = result.question
        if state is None:
            return {"similar": similar_view(result.similar)}
        if not result.duplicate:
            if state.status == "pending":
                await self._live.to_staff("question_pending", _staff(state), room.id)
            else:
                await self._live.to_room("question", _public(state), room.id)
        view = question_view(state, staff=who.is_staff, caller=who.viewer_id)
        return {"question": view, "duplicate": result.duplicate}

    async def upvote(self, who: Principal, data: QuestionRef) -> Result:
        room = await self._s.rooms.get_open(who.room)
        try:
            votes = await self._qa.upvote(room, who, data.question_id)
        except Conflict:  # a retry may have taught the store a vote a killed node recorded
            self._moved_votes(room.id, data.question_id)
            raise
        self._moved_votes(room.id, data.question_id)
        return {"question_id": data.question_id, "votes": votes, "upvoted": True}

    async def unvote(self, who: Principal, data: QuestionRef) -> Result:
        room = await self._s.rooms.get_open(who.room)
        try:
            votes = await self._qa.unvote(room, who, data.question_id)
        except Conflict:
            self._moved_votes(room.id, data.question_id)
            raise
        self._moved_votes(room.id, data.question_id)
        return {"question_id": data.question_id, "votes": votes, "upvoted": False}

    async def list_questions(self, who: Principal, data: QaListIn) -> Result:
        states = await self._qa.visible(who.room, data.sort)
        mine = await self._qa.upvoted(who.room, who.viewer_id)
        views = [
            question_view(s, staff=who.is_staff, caller=who.viewer_id, upvoted=s.id in mine)
            for s in states
        ]
        highlight = next((s for s in states if s.highlighted), None)
        return {
            "questions": views,
            "highlight": _public(highlight) if highlight else None,
            "sort": data.sort,
            "require_approval": await self._qa.require_approval(who.room),
            "server_time": self._qa.now(),
        }

    # -- staff -------------------------------------------------------------------

    async def approve(self, who: Principal, data: QuestionRef) -> Result:
        room = await self._s.rooms.get_open(who.room)
        state = await self._qa.approve(room, who, data.question_id)
        await self._live.to_room("question", _public(state), room.id)
        await self._live.to_staff("question_pending", _staff(state), room.id)
        return {"question": _staff(state)}

    async def reject(self, who: Principal, data: QuestionRef) -> Result:
        room = await self._s.rooms.get_open(who.room)
        state = await self._qa.reject(room, who, data.question_id)
        await self._live.to_staff("question_pending", _staff(state), room.id)
        return {"question": _staff(state)}

    async def answer(self, who: Principal, data: QuestionRef) -> Result:
        room = await self._s.rooms.get_open(who.room)
        state = await self._qa.answer(room, who, data.question_id)
        await self._live.to_room("question", _public(state), room.id)
        return {"question": _staff(state)}

    async def highlight(self, who: Principal, data: QaHighlightIn) -> Result:
        room = await self._s.rooms.get_open(who.room)
        state = await self._qa.highlight(room, who, data.question_id)
        shown = _public(state) if state else None
        await self._live.to_room("question_highlight", {"question": shown}, room.id)
        return {"question": _staff(state) if state else None}

    async def dismiss(self, who: Principal, data: QuestionRef) -> Result:
        room = await self._s.rooms.get_open(who.room)
        state, was_highlighted = await self._qa.dismiss(room, who, data.question_id)
        await self._live.to_room("question", _public(state), room.id)
        if was_highlighted:
            await self._live.to_room("question_highlight", {"question": None}, room.id)
        return {"question": _staff(state)}

    async def queue(self, who: Principal, data: Empty) -> Result:
        return {"questions": [_staff(s) for s in await self._qa.queue(who.room)]}

    async def settings(self, who: Principal, data: QaSettingsIn) -> Result:
        room = await self._s.rooms.get_open(who.room)
        required = await self._qa.set_require_approval(room, who, data.require_approval)
        await self._live.to_staff("qa_settings", {"require_approval": required}, room.id)
        return {"require_approval": required}

    # -- pushes ------------------------------------------------------------------

    def _moved_votes(self, room_id: str, question_id: int) -> None:
        self._moved.setdefault(room_id, set()).add(question_id)
        self.votes.mark(room_id)

    async def _push_votes(self, room_id: str) -> None:
        moved = self._moved.pop(room_id, set())
        if not moved:
            return
        votes = await self._qa.votes(room_id, sorted(moved))
        await self._live.to_room("qa_votes", {str(q): n for q, n in votes.items()}, room_id)


def _public(state: QuestionState) -> dict[str, object]:
    return question_view(state, staff=False)


def _staff(state: QuestionState) -> dict[str, object]:
    return question_view(state, staff=True)
