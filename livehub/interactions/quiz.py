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

The log is the truth, the store a cache. Every definition and state change is
an event: ``quiz.created`` (the whole quiz), ``quiz.question_opened`` (with
``opened_at`` and ``deadline``), ``quiz.answer`` (with the answerer's ``name``),
``quiz.revealed`` and ``quiz.ended`` (each with the final ``deadline``).
``rebuild`` folds a room's events back into the store on start and after the
store was emptied, for each quiz the store lost (one rebuilder restores it,
under a claim with a lease; one the store still holds is left to the nodes
keeping it live, but given the settled answers it lacks, those a killed node
had logged and not applied): the quizzes, the current question with its absolute
deadline (so it resumes with the time it had left), every answer, the live
scores, streaks, the standing snapshotted at the last reveal, the last reveal
and the podium. A lost quiz asked for before the rebuild reached it is restored
there and then, or answers ``unavailable`` (retryable) while another node
restores it, never ``not_found``. Creating and opening are logged before the store changes;
reveal and end first close the question in the store (no answer may slip in
after the standing is taken), then log, and put the quiz back as it was when
the log refuses.

One answer per viewer per question, decided by the log's unique key
(``client_id=f"quiz:{quiz_id}:{index}"``). The store marker (``set_if_absent``)
is a fast path only: when it exists the log is asked; if the answer is there
the reply is ``already_answered``, otherwise the marker was left by a crash (or
a twin request still in flight) and the answer is appended now, ``created``
deciding which request counts it. A marker this call set is removed when the
append fails. The once-only reveal and end events use store markers the same
way: a marker whose event is not in the log does not stop the event.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable
from fractions import Fraction
from typing import Literal

import msgspec

from livehub.errors import Conflict, NotFound, Unavailable, UserError
from livehub.interactions.normalise import clean_text
from livehub.rooms.counters import Counters
from livehub.rooms.eventlog import Event, EventLog
from livehub.rooms.models import Principal, Room
from livehub.rooms.recorder import Recorder
from livehub.rooms.recovery import RESTORE_LEASE_SECONDS, RESTORE_RETRY_SECONDS, SETTLE_SECONDS
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

QUIZ_EVENTS = (
    "quiz.created",
    "quiz.question_opened",
    "quiz.answer",
    "quiz.revealed",
    "quiz.ended",
)


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
        self.restoring = f"{base}:restoring"
        self._base = base

    def marker(self, index: int, viewer_id: str) -> str:
        return f"{self._base}:a:{index}:{viewer_id}"

    def answers(self, index: int) -> str:
        return f"{self._base}:answers:{index}"

    def revealed(self, index: int) -> str:
        return f"{self._base}:revealed:{index}"


def _index_key(room: str) -> str:
    return f"quizzes:{room}"


def _seq_key(room: str) -> str:
    return f"{_index_key(room)}:seq"


def _answer_client_id(quiz_id: str, index: int) -> str:
    return f"quiz:{quiz_id}:{index}"


def _already_answered() -> Conflict:
    return Conflict("already_answered", "You already answered this question.")


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
        self._log = log
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
            seq=await self._store.incr(_seq_key(room.id)),
        )
        await self._record(room, who.viewer_id, "quiz.created", {"quiz": msgspec.to_builtins(quiz)})
        await self._save(quiz)
        await self._store.sadd(_index_key(room.id), quiz.id)
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
        await self._record(
            room,
            who.viewer_id,
            "quiz.question_opened",
            {"quiz_id": quiz.id, "index": index, "opened_at": now, "deadline": opened.deadline},
            now,
        )
        await self._save(opened)
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
        before = quiz
        if quiz.status == "question":
            deadline = min(quiz.deadline or now, now)
            quiz = msgspec.structs.replace(quiz, status="revealed", deadline=deadline)
            await self._save(quiz)  # no more answers; put back if the reveal is not logged
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
        data: dict[str, object] = {
            "quiz_id": quiz.id,
            "index": quiz.index,
            "correct": list(question.correct),
            "counts": counts,
            "answered": len(answers),
            "deadline": quiz.deadline,
        }
        try:
            await self._record_once(
                room, who.viewer_id, keys.revealed(quiz.index), "quiz.revealed", data
            )
        except BaseException:
            if before is not quiz:
                await self._save(before)
            raise
        await self._store.set(keys.last_reveal, msgspec.json.encode(out).decode())
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
            if raw is not None and await self._logged(room.id, "quiz.ended", quiz.id):
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
        data: dict[str, object] = {
            "quiz_id": quiz.id,
            "podium": msgspec.to_builtins(podium.podium),
            "participants": podium.participants,
            "deadline": deadline,
        }
        try:
            await self._record_once(room, who.viewer_id, keys.ended, "quiz.ended", data)
        except BaseException:
            await self._save(quiz)  # as it was: the end is not recorded
            raise
        await self._store.set(keys.podium, msgspec.json.encode(podium).decode())
        return podium

    async def _record_once(
        self, room: Room, actor: str, marker: str, kind: str, data: dict[str, object]
    ) -> None:
        """Log a once-only event; a marker whose event is not in the log (a crash) is ignored."""
        claimed = await self._store.set_if_absent(marker, "1")
        index = data.get("index")
        if not claimed and await self._logged(room.id, kind, str(data["quiz_id"]), index):
            return
        try:
            await self._record(room, actor, kind, data)
        except BaseException:
            if claimed:
                await self._store.delete(marker)
            raise

    async def _logged(
        self, room_id: str, kind: str, quiz_id: str, index: object | None = None
    ) -> bool:
        """Whether the log holds ``kind`` for this quiz (and question ``index``)."""
        async for event in self._log.scan_kinds(room_id, (kind,)):
            if event.data.get("quiz_id") == quiz_id and event.data.get("index") == index:
                return True
        return False

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
        client_id = _answer_client_id(quiz.id, index)
        encoded = msgspec.json.encode(picked).decode()
        claimed = await self._store.set_if_absent(marker, encoded)
        if not claimed and await self._log.find(room.id, who.viewer_id, client_id) is not None:
            raise _already_answered()
        # Claimed now, or a marker without its answer in the log (a crash, or a twin
        # request still in flight): the log's unique key decides.
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
                    "name": who.name,
                },
                now,
                client_id=client_id,
            )
        except BaseException:
            if claimed:
                await self._store.delete(marker)  # not recorded: the viewer may try again
            raise
        if not created:
            raise _already_answered()
        if not claimed:
            await self._store.set(marker, encoded)
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
            return await self._lost(room_id, quiz_id)
        return self._quiz_decoder.decode(raw)

    async def _lost(self, room_id: str, quiz_id: str) -> Quiz:
        """A quiz the store does not hold: restored from the log now, unless another is on it."""
        if not await self._created_in_log(room_id, quiz_id):
            raise NotFound("not_found", "No such quiz in this room.")
        keys = _Keys(room_id, quiz_id)
        if not await self._store.set_if_absent(keys.restoring, "1", ttl=RESTORE_LEASE_SECONDS):
            raise Unavailable("This quiz is being restored; try again.", RESTORE_RETRY_SECONDS)
        folded = await self._fold(room_id)
        quiz = folded.quizzes[quiz_id]
        raw = await self._store.get(keys.quiz)
        if raw is not None:  # restored by one whose claim has just run out
            return self._quiz_decoder.decode(raw)
        await self._restore(quiz, folded)
        await self._store.set_max(_seq_key(room_id), quiz.seq)
        return quiz

    async def _created_in_log(self, room_id: str, quiz_id: str) -> bool:
        async for event in self._log.scan_kinds(room_id, ("quiz.created",)):
            if event.data["quiz"]["id"] == quiz_id:
                return True
        return False

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

    # -- recovery ----------------------------------------------------------------

    async def rebuild(self, room_id: str) -> None:
        """Put the room's quizzes the store lost back from the log.

        Each quiz's answers and standings are written before the quiz itself, so on
        an emptied store no answer is taken before the scores it adds to are back.
        """
        folded = await self._fold(room_id)
        quizzes = sorted(folded.quizzes.values(), key=lambda q: (q.seq, q.created_at, q.id))
        settled_before = self._clock() - SETTLE_SECONDS
        for quiz in quizzes:
            keys = _Keys(room_id, quiz.id)
            held_live = await self._store.get(keys.quiz) is not None
            if not await self._store.set_if_absent(keys.restoring, "1", ttl=RESTORE_LEASE_SECONDS):
                continue  # another rebuilder's
            if held_live:
                await self._repair(quiz, folded, settled_before)
            elif await self._store.get(keys.quiz) is None:
                await self._restore(quiz, folded)
        if quizzes:
            await self._store.set_max(_seq_key(room_id), max(q.seq for q in quizzes))

    async def _repair(self, quiz: Quiz, folded: QuizFold, settled_before: float) -> None:
        """Put into a live quiz the settled answers it lacks (their node died applying them).

        Only what is missing is added, on top of what live nodes add meanwhile; an
        answer logged since ``settled_before`` may still be on its way and is left out.
        """
        keys = _Keys(quiz.room, quiz.id)
        logged = folded.logged.get(quiz.id, {})
        settled: dict[int, dict[str, AnswerRecord]] = {}
        for (index, viewer_id), answer in logged.items():
            if answer.ts < settled_before:
                settled.setdefault(index, {})[viewer_id] = answer.record
        names = folded.names.get(quiz.id, {})
        for index, answers in settled.items():
            stored = await self._store.hgetall(keys.answers(index))
            missing = {v: r for v, r in answers.items() if v not in stored}
            if not missing:
                continue
            encoded = {v: msgspec.json.encode(r).decode() for v, r in missing.items()}
            await self._store.hset(keys.answers(index), encoded)
            await self._store.hset(keys.names, {v: names[v] for v in missing if v in names})
            for viewer_id, record in missing.items():
                marker = keys.marker(index, viewer_id)
                await self._store.set(marker, msgspec.json.encode(record.choices).decode())
                last = await self._store.hget(keys.streaks, viewer_id)
                if last is None or int(last.split(":")[0]) < index:
                    streak = logged[(index, viewer_id)].streak
                    await self._store.hset(keys.streaks, {viewer_id: f"{index}:{streak}"})
        totals = ((keys.scores, _scores(settled, None)), (keys.answered, _answered(settled)))
        for key, expected in totals:
            stored = await self._store.hgetall(key)
            for viewer_id, total in expected.items():
                lacking = total - int(stored.get(viewer_id, 0))
                if lacking > 0 or viewer_id not in stored:
                    await self._store.hincr(key, viewer_id, max(lacking, 0))

    async def _fold(self, room_id: str) -> QuizFold:
        folded = QuizFold()
        async for event in self._log.scan_kinds(room_id, QUIZ_EVENTS):
            folded.apply(event)
        return folded

    async def _restore(self, quiz: Quiz, folded: QuizFold) -> None:
        keys = _Keys(quiz.room, quiz.id)
        by_index = folded.answers.get(quiz.id, {})
        for index, answers in by_index.items():
            await self._store.hset(
                keys.answers(index),
                {v: msgspec.json.encode(r).decode() for v, r in answers.items()},
            )
        if quiz.index in by_index:  # who answered the current question (``quiz_me``)
            for viewer_id, record in by_index[quiz.index].items():
                marker = keys.marker(quiz.index, viewer_id)
                await self._store.set(marker, msgspec.json.encode(record.choices).decode())
        scores = _scores(by_index, None)
        await self._store.hset(keys.scores, {v: str(n) for v, n in scores.items()})
        answered = _answered(by_index)
        await self._store.hset(keys.answered, {v: str(n) for v, n in answered.items()})
        await self._store.hset(keys.names, folded.names.get(quiz.id, {}))
        await self._store.hset(keys.streaks, folded.streaks.get(quiz.id, {}))
        revealed = folded.revealed.get(quiz.id, [])
        for index in revealed:
            await self._store.set(keys.revealed(index), "1")
        names = folded.names.get(quiz.id, {})
        ended = quiz.id in folded.ended
        if ended or revealed:
            # the standing viewers see: as snapshotted at the last reveal, or at the end
            shown = ranking(_scores(by_index, None if ended else max(revealed)), names)
            board = {s.viewer_id: f"{s.score}:{s.rank}" for s in shown}
            await self._store.hset(keys.board, board)
        if revealed:
            last = max(revealed)
            shown_then = ranking(_scores(by_index, last), names)
            question = quiz.questions[last]
            counts = [0] * len(question.options)
            for record in by_index.get(last, {}).values():
                for choice in record.choices:
                    counts[choice] += 1
            out = RevealOut(
                quiz_id=quiz.id,
                index=last,
                total=quiz.total,
                correct=question.correct,
                counts=tuple(counts),
                answered=len(by_index.get(last, {})),
                leaderboard=tuple(shown_then[:LEADERBOARD_SIZE]),
            )
            await self._store.set(keys.last_reveal, msgspec.json.encode(out).decode())
        if ended:
            standings = ranking(scores, names)
            podium = PodiumOut(
                quiz_id=quiz.id,
                title=quiz.title,
                podium=tuple(s for s in standings if s.rank <= PODIUM_SIZE)[:PODIUM_SIZE],
                leaderboard=tuple(standings[:LEADERBOARD_SIZE]),
                participants=len(standings),
            )
            await self._store.set(keys.podium, msgspec.json.encode(podium).decode())
            await self._store.set(keys.ended, "1")
        await self._save(quiz)
        await self._store.sadd(_index_key(quiz.room), quiz.id)


class QuizFold:
    """A room's quizzes and answers folded from its ``QUIZ_EVENTS``, oldest first.

    Events of older versions read as well: a question opened without ``opened_at``
    opened its time limit before its deadline; a reveal or an end without
    ``deadline`` closed the question at the event's time (or at its deadline, if
    earlier); an answer without ``name`` leaves the name to a later answer.
    """

    def __init__(self) -> None:
        self.quizzes: dict[str, Quiz] = {}
        # quiz id -> question index -> viewer id -> answer (the log keeps one each)
        self.answers: dict[str, dict[int, dict[str, AnswerRecord]]] = {}
        self.logged: dict[str, dict[tuple[int, str], LoggedAnswer]] = {}  # with streak and time
        self.names: dict[str, dict[str, str]] = {}
        self.streaks: dict[str, dict[str, str]] = {}  # viewer -> "index:streak" of the last
        self.revealed: dict[str, list[int]] = {}
        self.ended: set[str] = set()

    def apply(self, event: Event) -> None:
        data = event.data
        if event.kind == "quiz.created":
            quiz = msgspec.convert(data["quiz"], Quiz)
            self.quizzes[quiz.id] = quiz
            return
        found = self.quizzes.get(str(data.get("quiz_id")))
        if found is None:
            return
        if event.kind == "quiz.question_opened":
            self._opened(found, data)
        elif event.kind == "quiz.answer":
            self._answer(found, event)
        elif event.kind == "quiz.revealed":
            index = int(data["index"])
            self.revealed.setdefault(found.id, []).append(index)
            if found.status == "question" and found.index == index:
                deadline = data.get("deadline") or _closed_at(found, event.ts)
                self.quizzes[found.id] = msgspec.structs.replace(
                    found, status="revealed", deadline=deadline
                )
        elif event.kind == "quiz.ended":
            self.ended.add(found.id)
            deadline = data.get("deadline", _closed_at(found, event.ts))
            self.quizzes[found.id] = msgspec.structs.replace(
                found, status="ended", deadline=deadline
            )

    def _opened(self, quiz: Quiz, data: dict[str, object]) -> None:
        index = int(str(data["index"]))
        deadline = float(str(data["deadline"]))
        limit = quiz.questions[index].time_limit_seconds
        opened_at = data.get("opened_at")
        self.quizzes[quiz.id] = msgspec.structs.replace(
            quiz,
            status="question",
            index=index,
            opened_at=deadline - limit if opened_at is None else float(str(opened_at)),
            deadline=deadline,
        )

    def _answer(self, quiz: Quiz, event: Event) -> None:
        data = event.data
        index = int(data["index"])
        viewer_id = event.actor
        record = AnswerRecord(
            tuple(data["choices"]),
            bool(data["correct"]),
            int(data["points"]),
            int(data["response_ms"]),
        )
        self.answers.setdefault(quiz.id, {}).setdefault(index, {}).setdefault(viewer_id, record)
        streak = int(data.get("streak", 0))
        self.streaks.setdefault(quiz.id, {})[viewer_id] = f"{index}:{streak}"
        answer = LoggedAnswer(record, streak, event.ts)
        self.logged.setdefault(quiz.id, {}).setdefault((index, viewer_id), answer)
        if data.get("name"):
            self.names.setdefault(quiz.id, {})[viewer_id] = str(data["name"])


def _answered(by_index: dict[int, dict[str, AnswerRecord]]) -> dict[str, int]:
    """How many of the questions each viewer answered."""
    answered: dict[str, int] = {}
    for answers in by_index.values():
        for viewer_id in answers:
            answered[viewer_id] = answered.get(viewer_id, 0) + 1
    return answered


class LoggedAnswer(msgspec.Struct, frozen=True):
    record: AnswerRecord
    streak: int
    ts: float


def _closed_at(quiz: Quiz, at: float) -> float | None:
    return min(quiz.deadline, at) if quiz.deadline is not None else at


def _scores(by_index: dict[int, dict[str, AnswerRecord]], through: int | None) -> dict[str, int]:
    """Everyone's points from the answers to questions up to ``through`` (None: all)."""
    scores: dict[str, int] = {}
    for index, answers in by_index.items():
        if through is not None and index > through:
            continue
        for viewer_id, record in answers.items():
            scores[viewer_id] = scores.get(viewer_id, 0) + record.points
    return scores


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
