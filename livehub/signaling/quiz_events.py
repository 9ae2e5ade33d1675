"""Quiz events of the live namespace: staff run a quiz, viewers answer.

Pushes: ``quiz_question`` (never the correct options) to the room when a
question opens; ``quiz_reveal`` to the room and ``quiz_you`` to each viewer who
answered, on reveal; ``quiz_podium`` to the room at the end; ``quiz_answers``
(how many answered the current question) to the staff, coalesced.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from livehub.interactions.quiz import Question, Quiz, QuizService, QuizSpec
from livehub.rooms.models import Principal
from livehub.signaling.context import Services
from livehub.signaling.live import Handler, LiveNamespace, Result
from livehub.signaling.payloads import Empty, Payload
from livehub.signaling.throttle import Coalescer

COUNT_INTERVAL = 0.25

QuizId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class QuestionIn(Payload, frozen=True, forbid_unknown_fields=True):
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=1000)]
    options: Annotated[
        tuple[Annotated[str, msgspec.Meta(max_length=500)], ...], msgspec.Meta(max_length=6)
    ]
    correct: Annotated[tuple[int, ...], msgspec.Meta(max_length=6)]
    time_limit_seconds: Annotated[int, msgspec.Meta(ge=1, le=3600)] = 20
    points: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)] = 1000


class QuizCreateIn(Payload, frozen=True, forbid_unknown_fields=True):
    title: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
    questions: Annotated[tuple[QuestionIn, ...], msgspec.Meta(max_length=100)]
    streak_bonus: bool = True


class QuizRef(Payload, frozen=True, forbid_unknown_fields=True):
    quiz_id: QuizId


class QuizAnswerIn(Payload, frozen=True, forbid_unknown_fields=True):
    quiz_id: QuizId
    index: Annotated[int, msgspec.Meta(ge=0, le=1000)]
    choices: Annotated[tuple[int, ...], msgspec.Meta(max_length=6)]


def staff_view(quiz: Quiz) -> dict[str, Any]:
    """The whole quiz, correct options included (staff only)."""
    view: dict[str, Any] = msgspec.to_builtins(quiz)
    view["total"] = quiz.total
    return view


class QuizEvents:
    def __init__(self, services: Services, live: LiveNamespace, quizzes: QuizService) -> None:
        self._s = services
        self._live = live
        self._quizzes = quizzes
        self.counts: Coalescer[tuple[str, str, int]] = Coalescer(COUNT_INTERVAL, self._push_count)
        routes: dict[str, tuple[type[Any], Handler, bool]] = {
            "quiz_create": (QuizCreateIn, self.create, True),
            "quiz_next": (QuizRef, self.next, True),
            "quiz_reveal": (QuizRef, self.reveal, True),
            "quiz_end": (QuizRef, self.end, True),
            "quiz_list": (Empty, self.list_quizzes, True),
            "quiz_answer": (QuizAnswerIn, self.answer, False),
            "quiz_me": (QuizRef, self.me, False),
            "quiz_state": (Empty, self.state, False),
        }
        for event, (payload, handler, staff_only) in routes.items():
            live.route(event, payload, handler, staff_only=staff_only)

    # -- staff -------------------------------------------------------------------

    async def create(self, who: Principal, data: QuizCreateIn) -> Result:
        room = await self._s.rooms.get_open(who.room)
        questions = tuple(
            Question(
                text=q.text,
                options=q.options,
                correct=q.correct,
                time_limit_seconds=q.time_limit_seconds,
                points=q.points,
            )
            for q in data.questions
        )
        spec = QuizSpec(title=data.title, questions=questions, streak_bonus=data.streak_bonus)
        quiz = await self._quizzes.create(room, who, spec)
        view = staff_view(quiz)
        await self._live.to_staff("quiz_staff", view, room.id)
        return {"quiz": view}

    async def next(self, who: Principal, data: QuizRef) -> Result:
        room = await self._s.rooms.get_open(who.room)
        quiz, question = await self._quizzes.next(room, who, data.quiz_id)
        await self._live.to_room("quiz_question", msgspec.to_builtins(question), room.id)
        await self._live.to_staff("quiz_staff", staff_view(quiz), room.id)
        return {"question": msgspec.to_builtins(question), "quiz": staff_view(quiz)}

    async def reveal(self, who: Principal, data: QuizRef) -> Result:
        room = await self._s.rooms.get_open(who.room)
        reveal, personal = await self._quizzes.reveal(room, who, data.quiz_id)
        out = msgspec.to_builtins(reveal)
        await self._live.to_room("quiz_reveal", out, room.id)
        for viewer_id, you in personal:
            await self._live.to_viewer("quiz_you", msgspec.to_builtins(you), room.id, viewer_id)
        quiz = await self._quizzes.get(room.id, data.quiz_id)
        await self._live.to_staff("quiz_staff", staff_view(quiz), room.id)
        return {"reveal": out}

    async def end(self, who: Principal, data: QuizRef) -> Result:
        room = await self._s.rooms.get_open(who.room)
        podium = msgspec.to_builtins(await self._quizzes.end(room, who, data.quiz_id))
        await self._live.to_room("quiz_podium", podium, room.id)
        quiz = await self._quizzes.get(room.id, data.quiz_id)
        await self._live.to_staff("quiz_staff", staff_view(quiz), room.id)
        return {"podium": podium}

    async def list_quizzes(self, who: Principal, data: Empty) -> Result:
        views = []
        for quiz in await self._quizzes.quizzes(who.room):
            view = staff_view(quiz)
            view["answered"] = (
                await self._quizzes.answer_count(who.room, quiz.id, quiz.index)
                if quiz.index >= 0
                else 0
            )
            views.append(view)
        return {"quizzes": views}

    # -- viewers -----------------------------------------------------------------

    async def answer(self, who: Principal, data: QuizAnswerIn) -> Result:
        room = await self._s.rooms.get_open(who.room)
        await self._quizzes.answer(room, who, data.quiz_id, data.index, data.choices)
        self.counts.mark((room.id, data.quiz_id, data.index))
        return {"accepted": True, "quiz_id": data.quiz_id, "index": data.index}

    async def me(self, who: Principal, data: QuizRef) -> Result:
        return dict(
            msgspec.to_builtins(await self._quizzes.me(who.room, data.quiz_id, who.viewer_id))
        )

    async def state(self, who: Principal, data: Empty) -> Result:
        states = await self._quizzes.state(who.room, who.viewer_id)
        return {"quizzes": msgspec.to_builtins(states), "server_time": self._quizzes.now()}

    # -- pushes ------------------------------------------------------------------

    async def _push_count(self, key: tuple[str, str, int]) -> None:
        room_id, quiz_id, index = key
        answered = await self._quizzes.answer_count(room_id, quiz_id, index)
        await self._live.to_staff(
            "quiz_answers", {"quiz_id": quiz_id, "index": index, "answered": answered}, room_id
        )
