"""Quizzes scored like Kahoot: one question at a time, fast correct answers score more.

The staff open questions one by one (``next``), reveal each (``reveal``) and end
the quiz (``end``). Server time decides: a question accepts answers from its
opening until ``deadline`` (opened_at + time limit), and the response time is
measured by the server from the opening.

Scoring (exactly Kahoot's): a correct answer given after ``response_time``
seconds of a ``time_limit`` scores
``round((1 - (response_time / time_limit) / 2) * points)`` (rounded half up,
as Kahoot's ``Math.round``; computed exactly on milliseconds), and the full
``points`` when ``response_time < 0.5 s``. A question with several correct
options requires exactly that set. A wrong answer scores 0.

Streak bonus (switchable per quiz): the n-th correct answer in a row adds
``min(100 * (n - 1), 500)`` points: nothing for the first, 100 for the second,
200 for the third ... at most 500. A wrong answer, or no answer to a question,
resets the streak.

Points are added to the live scores when the answer arrives, but what viewers
see (``quiz_me``, leaderboards) is the standing snapshotted at the last reveal,
so nobody learns whether an answer was right before the reveal.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable
from fractions import Fraction
from typing import Literal

import msgspec

from livehub.errors import Conflict, NotFound, UserError
from livehub.interactions.normalise import clean_text
from livehub.rooms.counters import Counters
from livehub.rooms.eventlog import EventLog
from livehub.rooms.models import Principal, Room
from livehub.rooms.recorder import Recorder
from livehub.rooms.store import StateStore

QuizStatus = Literal["ready", "question", "revealed", "ended"]

MAX_TITLE_CHARS = 120
MAX_QUESTION_CHARS = 300
MAX_OPTION_CHARS = 120
MIN_OPTIONS = 2
MAX_OPTIONS = 6
MIN_QUESTIONS = 1
MAX_QUESTIONS = 100
MIN_TIME_LIMIT = 5
MAX_TIME_LIMIT = 120
DEFAULT_POINTS = 1000
MAX_POINTS = 10_000
FULL_POINTS_MS = 500
STREAK_STEP = 100
STREAK_CAP = 500
LEADERBOARD_SIZE = 10
PODIUM_SIZE = 3
MAX_QUIZZES_PER_ROOM = 200
STATE_QUIZZES = 5


def kahoot_points(points: int, response_ms: int, limit_ms: int) -> int:
    """Points for a correct answer after ``response_ms`` of a ``limit_ms`` question."""
    if response_ms < FULL_POINTS_MS:
        return points
    elapsed = min(response_ms, limit_ms)
    exact = Fraction(points) * (1 - Fraction(elapsed, 2 * limit_ms))
    return math.floor(exact + Fraction(1, 2))


def streak_bonus(streak: int) -> int:
    """Bonus for the ``streak``-th correct answer in a row (1 = the first)."""
    return min(STREAK_STEP * max(streak - 1, 0), STREAK_CAP)


class Question(msgspec.Struct, frozen=True):
    text: str
    options: tuple[str, ...]
    correct: tuple[int, ...]
    time_limit_seconds: int = 20
    points: int = DEFAULT_POINTS

    @property
    def multiple(self) -> bool:
        return len(self.correct) > 1


class QuizSpec(msgspec.Struct, frozen=True):
    title: str
    questions: tuple[Question, ...]
    streak_bonus: bool = True


class Quiz(msgspec.Struct, frozen=True):
    id: str
    room: str
    title: str
    questions: tuple[Question, ...]
    streak_bonus: bool
    created_at: float
    seq: int = 0
    status: QuizStatus = "ready"
    index: int = -1
    opened_at: float | None = None
    deadline: float | None = None

    @property
    def total(self) -> int:
        return len(self.questions)

    def accepts(self, index: int, now: float) -> bool:
        return (
            self.status == "question"
            and index == self.index
            and self.deadline is not None
            and now < self.deadline
        )


class Standing(msgspec.Struct, frozen=True):
    viewer_id: str
    name: str
    score: int
    rank: int


class QuestionOut(msgspec.Struct, frozen=True):
    """A question as the viewers see it: never the correct options."""

    quiz_id: str
    index: int
    total: int
    text: str
    options: tuple[str, ...]
    multiple: bool
    points: int
    time_limit: int
    deadline: float
    server_time: float


class RevealOut(msgspec.Struct, frozen=True):
    quiz_id: str
    index: int
    total: int
    correct: tuple[int, ...]
    counts: tuple[int, ...]
    answered: int
    leaderboard: tuple[Standing, ...]


class YouOut(msgspec.Struct, frozen=True):
    """One participant's own result after a reveal."""

    quiz_id: str
    index: int
    rank: int | None
    score: int
    last_points: int
    correct: bool


class PodiumOut(msgspec.Struct, frozen=True):
    quiz_id: str
    title: str
    podium: tuple[Standing, ...]
    leaderboard: tuple[Standing, ...]
    participants: int


class Me(msgspec.Struct, frozen=True):
    quiz_id: str
    score: int
    rank: int | None
    answered: int
    answered_current: bool
    current_choices: tuple[int, ...] | None
    participants: int


class AnswerRecord(msgspec.Struct, frozen=True):
    choices: tuple[int, ...]
    correct: bool
    points: int
    response_ms: int


class QuizState(msgspec.Struct, frozen=True):
    """What a late or returning viewer needs to show a quiz."""

    quiz_id: str
    title: str
    status: QuizStatus
    index: int
    total: int
    question: QuestionOut | None
    reveal: RevealOut | None
    podium: PodiumOut | None
    me: Me


def ranking(scores: dict[str, int], names: dict[str, str]) -> list[Standing]:
    """Everyone by score, highest first; equal scores share a rank (1, 2, 2, 4)."""
    order = sorted(scores.items(), key=lambda s: (-s[1], names.get(s[0], "").casefold(), s[0]))
    standings: list[Standing] = []
    for position, (viewer_id, score) in enumerate(order, start=1):
        rank = standings[-1].rank if standings and standings[-1].score == score else position
        standings.append(Standing(viewer_id, names.get(viewer_id, "?"), score, rank))
    return standings


class _Keys:
    def __init__(self, room: str, quiz_id: str) -> None:
        base = f"quiz:{room}:{quiz_id}"
        self.quiz = base
        self.scores = f"{base}:scores"
        self.names = f"{base}:names"
        self.streaks = f"{base}:streaks"
        self.board = f"{base}:board"
        self.answered = f"{base}:answered"
        self.last_reveal = f"{base}:last_reveal"
        self.podium = f"{base}:podium"
        self.ended = f"{base}:ended"
        self._base = base

    def marker(self, index: int, viewer_id: str) -> str:
        return f"{self._base}:a:{index}:{viewer_id}"

    def answers(self, index: int) -> str:
        return f"{self._base}:answers:{index}"

    def revealed(self, index: int) -> str:
        return f"{self._base}:revealed:{index}"


def _index_key(room: str) -> str:
    return f"quizzes:{room}"


def _bad_quiz(message: str) -> UserError:
    return UserError("bad_quiz", message)


def _closed() -> UserError:
    return UserError("quiz_closed", "This question does not take answers now.")


class QuizService:
    def __init__(
        self,
        store: StateStore,
        log: EventLog,
        counters: Counters,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._counters = counters
        self._clock = clock
        self._record = Recorder(log, clock)
        self._quiz_decoder = msgspec.json.Decoder(Quiz)
        self._answer_decoder = msgspec.json.Decoder(AnswerRecord)
        self._reveal_decoder = msgspec.json.Decoder(RevealOut)
        self._podium_decoder = msgspec.json.Decoder(PodiumOut)

    def now(self) -> float:
        return self._clock()

    # -- staff -------------------------------------------------------------------

    async def create(self, room: Room, who: Principal, spec: QuizSpec) -> Quiz:
        title = clean_text(spec.title)
        if not 1 <= len(title) <= MAX_TITLE_CHARS:
            raise _bad_quiz(f"A title is 1-{MAX_TITLE_CHARS} characters.")
        if not MIN_QUESTIONS <= len(spec.questions) <= MAX_QUESTIONS:
            raise _bad_quiz(f"A quiz has {MIN_QUESTIONS}-{MAX_QUESTIONS} questions.")
        questions = tuple(_checked_question(n, q) for n, q in enumerate(spec.questions, 1))
        if len(await self._store.smembers(_index_key(room.id))) >= MAX_QUIZZES_PER_ROOM:
            raise UserError("too_many_quizzes", f"A room has at most {MAX_QUIZZES_PER_ROOM}.")
        quiz = Quiz(
            id="q_" + secrets.token_hex(5),
            room=room.id,
            title=title,
            questions=questions,
            streak_bonus=spec.streak_bonus,
            created_at=self._clock(),
            seq=await self._store.incr(f"{_index_key(room.id)}:seq"),
        )
        await self._save(quiz)
        await self._store.sadd(_index_key(room.id), quiz.id)
        await self._record(room, who.viewer_id, "quiz.created", {"quiz": msgspec.to_builtins(quiz)})
        return quiz

    async def next(self, room: Room, who: Principal, quiz_id: str) -> tuple[Quiz, QuestionOut]:
        """Open the next question."""
        quiz = await self.get(room.id, quiz_id)
        if quiz.status == "ended":
            raise Conflict("quiz_ended", "This quiz has ended.")
        if quiz.status == "question":
            raise Conflict("not_revealed", "Reveal the current question first.")
        if quiz.index + 1 >= quiz.total:
            raise Conflict("no_more_questions", "That was the last question.")
        now = self._clock()
        index = quiz.index + 1
        limit = quiz.questions[index].time_limit_seconds
        opened = msgspec.structs.replace(
            quiz, status="question", index=index, opened_at=now, deadline=now + limit
        )
        await self._save(opened)
        await self._record(
            room,
            who.viewer_id,
            "quiz.question_opened",
            {"quiz_id": quiz.id, "index": index, "deadline": opened.deadline},
        )
        return opened, self._question_out(opened, now)

    async def reveal(
        self, room: Room, who: Principal, quiz_id: str
    ) -> tuple[RevealOut, list[tuple[str, YouOut]]]:
        """Close the current question if still open; the public reveal and each answerer's own."""
        quiz = await self.get(room.id, quiz_id)
        if quiz.status == "ended":
            raise Conflict("quiz_ended", "This quiz has ended.")
        if quiz.status == "ready":
            raise Conflict("no_question", "No question was opened yet.")
        now = self._clock()
        if quiz.status == "question":
            deadline = min(quiz.deadline or now, now)
            quiz = msgspec.structs.replace(quiz, status="revealed", deadline=deadline)
            await self._save(quiz)
        keys = _Keys(room.id, quiz.id)
        question = quiz.questions[quiz.index]
        answers = {
            viewer: self._answer_decoder.decode(raw)
            for viewer, raw in (await self._store.hgetall(keys.answers(quiz.index))).items()
        }
        counts = [0] * len(question.options)
        for record in answers.values():
            for choice in record.choices:
                counts[choice] += 1
        standings = await self._snapshot(keys)
        out = RevealOut(
            quiz_id=quiz.id,
            index=quiz.index,
            total=quiz.total,
            correct=question.correct,
            counts=tuple(counts),
            answered=len(answers),
            leaderboard=tuple(standings[:LEADERBOARD_SIZE]),
        )
        await self._store.set(keys.last_reveal, msgspec.json.encode(out).decode())
        if await self._store.set_if_absent(keys.revealed(quiz.index), "1"):
            await self._record(
                room,
                who.viewer_id,
                "quiz.revealed",
                {
                    "quiz_id": quiz.id,
                    "index": quiz.index,
                    "correct": list(question.correct),
                    "counts": counts,
                    "answered": len(answers),
                },
            )
        by_viewer = {s.viewer_id: s for s in standings}
        personal: list[tuple[str, YouOut]] = []
        for viewer_id, record in answers.items():
            standing = by_viewer.get(viewer_id)
            you = YouOut(
                quiz_id=quiz.id,
                index=quiz.index,
                rank=standing.rank if standing else None,
                score=standing.score if standing else 0,
                last_points=record.points,
                correct=record.correct,
            )
            personal.append((viewer_id, you))
        return out, personal

    async def end(self, room: Room, who: Principal, quiz_id: str) -> PodiumOut:
        quiz = await self.get(room.id, quiz_id)
        keys = _Keys(room.id, quiz.id)
        if quiz.status == "ended":
            raw = await self._store.get(keys.podium)
            if raw is not None:
                return self._podium_decoder.decode(raw)
        now = self._clock()
        deadline = min(quiz.deadline, now) if quiz.deadline is not None else None
        await self._save(msgspec.structs.replace(quiz, status="ended", deadline=deadline))
        standings = await self._snapshot(keys)
        podium = PodiumOut(
            quiz_id=quiz.id,
            title=quiz.title,
            podium=tuple(s for s in standings if s.rank <= PODIUM_SIZE)[:PODIUM_SIZE],
            leaderboard=tuple(standings[:LEADERBOARD_SIZE]),
            participants=len(standings),
        )
        await self._store.set(keys.podium, msgspec.json.encode(podium).decode())
        if await self._store.set_if_absent(keys.ended, "1"):
            await self._record(
                room,
                who.viewer_id,
                "quiz.ended",
                {
                    "quiz_id": quiz.id,
                    "podium": msgspec.to_builtins(podium.podium),
                    "participants": podium.participants,
                },
            )
        return podium

    async def _snapshot(self, keys: _Keys) -> list[Standing]:
        """Rank the live scores and store that standing as what viewers see."""
        scores = {v: int(s) for v, s in (await self._store.hgetall(keys.scores)).items()}
        names = await self._store.hgetall(keys.names)
        standings = ranking(scores, names)
        await self._store.hset(keys.board, {s.viewer_id: f"{s.score}:{s.rank}" for s in standings})
        return standings

    # -- viewers -----------------------------------------------------------------

    async def answer(
        self, room: Room, who: Principal, quiz_id: str, index: int, choices: tuple[int, ...]
    ) -> AnswerRecord:
        quiz = await self.get(room.id, quiz_id)
        now = self._clock()
        if not quiz.accepts(index, now) or quiz.opened_at is None:
            raise _closed()
        question = quiz.questions[index]
        picked = _checked_choices(question, choices)
        keys = _Keys(room.id, quiz.id)
        marker = keys.marker(index, who.viewer_id)
        response_ms = max(0, round((now - quiz.opened_at) * 1000))
        correct = set(picked) == set(question.correct)
        points = (
            kahoot_points(question.points, response_ms, question.time_limit_seconds * 1000)
            if correct
            else 0
        )
        record = AnswerRecord(picked, correct, points, response_ms)
        if not await self._store.set_if_absent(marker, msgspec.json.encode(picked).decode()):
            raise Conflict("already_answered", "You already answered this question.")
        try:
            streak, bonus = await self._streak(keys, quiz, index, who.viewer_id, correct)
            record = AnswerRecord(picked, correct, points + bonus, response_ms)
            _, created = await self._record(
                room,
                who.viewer_id,
                "quiz.answer",
                {
                    "quiz_id": quiz.id,
                    "index": index,
                    "choices": list(picked),
                    "correct": correct,
                    "points": record.points,
                    "base_points": points,
                    "streak_bonus": bonus,
                    "streak": streak,
                    "response_ms": response_ms,
                },
                now,
                client_id=f"quiz:{quiz.id}:{index}",
            )
        except BaseException:
            await self._store.delete(marker)  # not recorded: the viewer may try again
            raise
        if not created:
            raise Conflict("already_answered", "You already answered this question.")
        await self._apply(room, who, keys, index, record, streak)
        return record

    async def _streak(
        self, keys: _Keys, quiz: Quiz, index: int, viewer_id: str, correct: bool
    ) -> tuple[int, int]:
        """The viewer's streak including this answer, and its bonus (0 when switched off)."""
        if not correct:
            return 0, 0
        raw = await self._store.hget(keys.streaks, viewer_id)
        last, previous = (int(x) for x in raw.split(":")) if raw else (-2, 0)
        streak = previous + 1 if last == index - 1 else 1
        return streak, streak_bonus(streak) if quiz.streak_bonus else 0

    async def _apply(
        self,
        room: Room,
        who: Principal,
        keys: _Keys,
        index: int,
        record: AnswerRecord,
        streak: int,
    ) -> None:
        viewer = who.viewer_id
        await self._store.hset(keys.streaks, {viewer: f"{index}:{streak}"})
        await self._store.hset(keys.answers(index), {viewer: msgspec.json.encode(record).decode()})
        await self._store.hset(keys.names, {viewer: who.name})
        await self._store.hincr(keys.scores, viewer, record.points)
        await self._store.hincr(keys.answered, viewer)
        await self._counters.add(room.id, room.scope, viewer, "answers")
        if record.correct:
            await self._counters.add(room.id, room.scope, viewer, "correct_answers")
        if record.points:
            await self._counters.add(room.id, room.scope, viewer, "quiz_score", record.points)

    async def me(self, room_id: str, quiz_id: str, viewer_id: str) -> Me:
        quiz = await self.get(room_id, quiz_id)
        keys = _Keys(room_id, quiz.id)
        standing = await self._store.hget(keys.board, viewer_id)
        score, rank = (int(x) for x in standing.split(":")) if standing else (0, None)
        answered = int(await self._store.hget(keys.answered, viewer_id) or 0)
        mine = (
            await self._store.get(keys.marker(quiz.index, viewer_id)) if quiz.index >= 0 else None
        )
        return Me(
            quiz_id=quiz.id,
            score=score,
            rank=rank,
            answered=answered,
            answered_current=mine is not None,
            current_choices=msgspec.json.decode(mine, type=tuple[int, ...]) if mine else None,
            participants=await self._store.hlen(keys.board),
        )

    async def answer_count(self, room_id: str, quiz_id: str, index: int) -> int:
        return await self._store.hlen(_Keys(room_id, quiz_id).answers(index))

    async def state(self, room_id: str, viewer_id: str) -> list[QuizState]:
        """The started quizzes of the room (the latest few), as this viewer should see them."""
        now = self._clock()
        started = [q for q in await self.quizzes(room_id) if q.status != "ready"]
        states: list[QuizState] = []
        for quiz in started[-STATE_QUIZZES:]:
            keys = _Keys(room_id, quiz.id)
            reveal = podium = None
            if quiz.status == "revealed":
                raw = await self._store.get(keys.last_reveal)
                reveal = self._reveal_decoder.decode(raw) if raw else None
            if quiz.status == "ended":
                raw = await self._store.get(keys.podium)
                podium = self._podium_decoder.decode(raw) if raw else None
            states.append(
                QuizState(
                    quiz_id=quiz.id,
                    title=quiz.title,
                    status=quiz.status,
                    index=quiz.index,
                    total=quiz.total,
                    question=self._question_out(quiz, now) if quiz.status == "question" else None,
                    reveal=reveal,
                    podium=podium,
                    me=await self.me(room_id, quiz.id, viewer_id),
                )
            )
        return states

    # -- reading -----------------------------------------------------------------

    async def get(self, room_id: str, quiz_id: str) -> Quiz:
        raw = await self._store.get(_Keys(room_id, quiz_id).quiz)
        if raw is None:
            raise NotFound("not_found", "No such quiz in this room.")
        return self._quiz_decoder.decode(raw)

    async def quizzes(self, room_id: str) -> list[Quiz]:
        """Every quiz of the room, oldest first."""
        found: list[Quiz] = []
        for quiz_id in await self._store.smembers(_index_key(room_id)):
            raw = await self._store.get(_Keys(room_id, quiz_id).quiz)
            if raw is not None:
                found.append(self._quiz_decoder.decode(raw))
        return sorted(found, key=lambda q: (q.seq, q.created_at, q.id))

    def _question_out(self, quiz: Quiz, now: float) -> QuestionOut:
        question = quiz.questions[quiz.index]
        return QuestionOut(
            quiz_id=quiz.id,
            index=quiz.index,
            total=quiz.total,
            text=question.text,
            options=question.options,
            multiple=question.multiple,
            points=question.points,
            time_limit=question.time_limit_seconds,
            deadline=quiz.deadline or now,
            server_time=now,
        )

    async def _save(self, quiz: Quiz) -> None:
        await self._store.set(_Keys(quiz.room, quiz.id).quiz, msgspec.json.encode(quiz).decode())


def _checked_question(number: int, question: Question) -> Question:
    text = clean_text(question.text)
    if not 1 <= len(text) <= MAX_QUESTION_CHARS:
        raise _bad_quiz(f"Question {number}: the text is 1-{MAX_QUESTION_CHARS} characters.")
    options = tuple(clean_text(o) for o in question.options)
    if not MIN_OPTIONS <= len(options) <= MAX_OPTIONS:
        raise _bad_quiz(f"Question {number}: {MIN_OPTIONS}-{MAX_OPTIONS} options.")
    if any(not 1 <= len(o) <= MAX_OPTION_CHARS for o in options):
        raise _bad_quiz(f"Question {number}: an option is 1-{MAX_OPTION_CHARS} characters.")
    correct = question.correct
    if not correct or len(set(correct)) != len(correct):
        raise _bad_quiz(f"Question {number}: mark one or more different correct options.")
    if any(not 0 <= c < len(options) for c in correct):
        raise _bad_quiz(f"Question {number}: a correct option does not exist.")
    if not MIN_TIME_LIMIT <= question.time_limit_seconds <= MAX_TIME_LIMIT:
        raise _bad_quiz(
            f"Question {number}: the time limit is {MIN_TIME_LIMIT}-{MAX_TIME_LIMIT} s."
        )
    if not 0 <= question.points <= MAX_POINTS:
        raise _bad_quiz(f"Question {number}: points are 0-{MAX_POINTS}.")
    return Question(
        text, options, tuple(sorted(correct)), question.time_limit_seconds, question.points
    )


def _checked_choices(question: Question, choices: tuple[int, ...]) -> tuple[int, ...]:
    if not choices:
        raise UserError("bad_choice", "Choose an option.")
    if len(set(choices)) != len(choices):
        raise UserError("bad_choice", "An option was chosen twice.")
    if any(not 0 <= c < len(question.options) for c in choices):
        raise UserError("bad_choice", "No such option.")
    if not question.multiple and len(choices) != 1:
        raise UserError("bad_choice", "Choose one option.")
    return tuple(sorted(choices))
