"""Quizzes: Kahoot scoring, streaks, deadlines and standings, on a controllable clock."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
from fake_clock import Clock

from livehub.errors import LivehubError
from livehub.interactions.quiz import (
    AnswerRecord,
    Question,
    Quiz,
    QuizService,
    QuizSpec,
    kahoot_points,
    ranking,
    streak_bonus,
)
from livehub.rooms.eventlog import Event, NewEvent
from livehub.rooms.memory_store import MemoryStore
from livehub.rooms.models import Principal, Room
from livehub.rooms.recovery import RESTORE_LEASE_SECONDS

from .domain import ANN, BOB, CAT, DAN, HOST, Domain


@pytest.fixture
def clock() -> Clock:
    return Clock(50_000.0)


def question(
    correct: tuple[int, ...] = (1,), limit: int = 20, points: int = 1000, options: int = 4
) -> Question:
    return Question(
        text="Which?",
        options=tuple(f"opt {i}" for i in range(options)),
        correct=correct,
        time_limit_seconds=limit,
        points=points,
    )


@dataclass
class Env(Domain):
    quizzes: QuizService
    room: Room

    async def quiz(self, *questions: Question, streak: bool = True) -> Quiz:
        spec = QuizSpec(title="Trivia", questions=questions or (question(),), streak_bonus=streak)
        return await self.quizzes.create(self.room, HOST, spec)

    async def next(self, quiz: Quiz) -> int:
        opened, out = await self.quizzes.next(self.room, HOST, quiz.id)
        assert out.index == opened.index
        return out.index

    async def answer(self, who: Principal, quiz: Quiz, index: int, *choices: int) -> AnswerRecord:
        return await self.quizzes.answer(self.room, who, quiz.id, index, choices)

    async def refused(self, who: Principal, quiz_id: str, index: int, *choices: int) -> str:
        with pytest.raises(LivehubError) as caught:
            await self.quizzes.answer(self.room, who, quiz_id, index, choices)
        return caught.value.code

    async def staff_refused(self, action: str, quiz_id: str) -> str:
        with pytest.raises(LivehubError) as caught:
            await getattr(self.quizzes, action)(self.room, HOST, quiz_id)
        return caught.value.code

    async def events(self, prefix: str = "quiz.") -> list[Event]:
        return [e async for e in self.log.scan("r1") if e.kind.startswith(prefix)]

    async def counter(self, viewer: str, name: str) -> float:
        return (await self.counters.viewer("r1", "-", viewer)).get(name, 0)


@pytest.fixture
async def env(domain: Domain) -> Env:
    d = domain
    quizzes = QuizService(d.store, d.log, d.counters, clock=d.clock)
    room = await d.rooms.create("Room", room_id="r1")
    return Env(**d.parts(), quizzes=quizzes, room=room)


# ---------------------------------------------------------------- scoring


@pytest.mark.parametrize(
    ("points", "response_ms", "limit_ms", "expected"),
    [
        (1000, 10_000, 20_000, 750),  # round((1 - 0.5 / 2) * 1000)
        (1000, 300, 20_000, 1000),  # under half a second: full points
        (1000, 499, 20_000, 1000),
        (1000, 500, 20_000, 988),  # 987.5 rounds half up
        (1000, 19_900, 20_000, 503),  # (1 - 0.995 / 2) * 1000 = 502.5 -> 503
        (1000, 5_000, 20_000, 875),
        (1000, 20_000, 20_000, 500),
        (2000, 2_500, 5_000, 1500),
        (1000, 1_234, 30_000, 979),  # 979.43...
        (0, 1_000, 20_000, 0),
    ],
)
def test_kahoot_points(points: int, response_ms: int, limit_ms: int, expected: int) -> None:
    assert kahoot_points(points, response_ms, limit_ms) == expected


def test_streak_bonus_grows_by_100_up_to_500() -> None:
    assert [streak_bonus(n) for n in range(1, 9)] == [0, 100, 200, 300, 400, 500, 500, 500]


def test_ranking_shares_ranks_on_ties() -> None:
    names = {"a": "Ann", "b": "Bob", "c": "Cat", "d": "Dan"}
    standings = ranking({"a": 500, "b": 900, "c": 500, "d": 100}, names)
    assert [(s.viewer_id, s.score, s.rank) for s in standings] == [
        ("b", 900, 1),
        ("a", 500, 2),
        ("c", 500, 2),
        ("d", 100, 4),
    ]


async def test_points_are_measured_by_server_time_from_the_opening(env: Env) -> None:
    quiz = await env.quiz(question(correct=(1,), limit=20))
    index = await env.next(quiz)
    env.clock.advance(0.3)
    fast = await env.answer(ANN, quiz, index, 1)
    env.clock.advance(9.7)
    half = await env.answer(BOB, quiz, index, 1)
    env.clock.advance(9.9)
    late = await env.answer(CAT, quiz, index, 1)
    wrong = await env.answer(DAN, quiz, index, 0)
    assert [(r.points, r.response_ms) for r in (fast, half, late)] == [
        (1000, 300),
        (750, 10_000),
        (503, 19_900),
    ]
    assert (wrong.correct, wrong.points) == (False, 0)
    answers = {e.actor: e.data for e in await env.events("quiz.answer")}
    assert answers["v_bob"]["points"] == 750 and answers["v_bob"]["response_ms"] == 10_000
    assert answers["v_bob"]["correct"] is True and answers["v_bob"]["choices"] == [1]
    assert answers["v_dan"]["correct"] is False and answers["v_dan"]["points"] == 0


async def test_several_correct_options_need_exactly_that_set(env: Env) -> None:
    quiz = await env.quiz(question(correct=(0, 2)))
    index = await env.next(quiz)
    assert (await env.answer(ANN, quiz, index, 0)).correct is False
    assert (await env.answer(BOB, quiz, index, 2, 0)).correct is True
    assert (await env.answer(CAT, quiz, index, 0, 1, 2)).correct is False
    assert (await env.answer(DAN, quiz, index, 0, 2)).points == 1000


# ---------------------------------------------------------------- streaks


async def play(env: Env, quiz: Quiz, who: Principal, plan: list[int | None]) -> list[int]:
    """Answer each question instantly with the given option (None: no answer)."""
    points: list[int] = []
    for choice in plan:
        index = await env.next(quiz)
        if choice is not None:
            points.append((await env.answer(who, quiz, index, choice)).points)
        await env.quizzes.reveal(env.room, HOST, quiz.id)
    return points


async def test_streak_bonus_adds_up_and_is_capped(env: Env) -> None:
    quiz = await env.quiz(*[question(correct=(0,)) for _ in range(7)])
    points = await play(env, quiz, ANN, [0] * 7)
    assert points == [1000, 1100, 1200, 1300, 1400, 1500, 1500]
    me = await env.quizzes.me("r1", quiz.id, "v_ann")
    assert (me.score, me.rank, me.answered) == (9000, 1, 7)
    bonuses = [e.data["streak_bonus"] for e in await env.events("quiz.answer")]
    assert bonuses == [0, 100, 200, 300, 400, 500, 500]


async def test_a_wrong_or_missing_answer_resets_the_streak(env: Env) -> None:
    quiz = await env.quiz(*[question(correct=(0,)) for _ in range(6)])
    points = await play(env, quiz, ANN, [0, 0, 1, 0, None, 0])
    assert points == [1000, 1100, 0, 1000, 1000]


async def test_without_streak_bonus_every_answer_scores_alone(env: Env) -> None:
    quiz = await env.quiz(*[question(correct=(0,)) for _ in range(3)], streak=False)
    assert await play(env, quiz, ANN, [0, 0, 0]) == [1000, 1000, 1000]


# ---------------------------------------------------------------- deadlines and refusals


async def test_no_answer_after_the_time_limit(env: Env) -> None:
    quiz = await env.quiz(question(limit=5), question(limit=5))
    assert await env.refused(ANN, quiz.id, 0, 1) == "quiz_closed"  # not opened yet
    opened = env.clock.now
    index = await env.next(quiz)
    env.clock.now = opened + 4.999
    assert (await env.answer(ANN, quiz, index, 1)).points == 500
    env.clock.now = opened + 5  # the deadline itself is too late
    assert await env.refused(BOB, quiz.id, index, 1) == "quiz_closed"
    assert await env.refused(BOB, quiz.id, index + 1, 1) == "quiz_closed"
    assert len(await env.events("quiz.answer")) == 1
    assert await env.counter("v_bob", "answers") == 0


async def test_one_answer_per_viewer_per_question(env: Env) -> None:
    quiz = await env.quiz()
    index = await env.next(quiz)
    results = await asyncio.gather(
        *(env.quizzes.answer(env.room, ANN, quiz.id, index, (i % 4,)) for i in range(50)),
        return_exceptions=True,
    )
    accepted = [r for r in results if isinstance(r, AnswerRecord)]
    codes = {r.code for r in results if isinstance(r, LivehubError)}
    assert len(accepted) == 1 and codes == {"already_answered"}
    assert len(await env.events("quiz.answer")) == 1
    assert await env.counter("v_ann", "answers") == 1


@pytest.mark.parametrize("choices", [(), (4,), (-1,), (1, 1), (0, 1)])
async def test_bad_choices_are_refused(env: Env, choices: tuple[int, ...]) -> None:
    quiz = await env.quiz(question(correct=(1,)))
    index = await env.next(quiz)
    assert await env.refused(ANN, quiz.id, index, *choices) == "bad_choice"
    assert await env.events("quiz.answer") == []
    assert (await env.answer(ANN, quiz, index, 1)).correct is True  # may still answer
    assert await env.refused(ANN, "q_nope", 0, 1) == "not_found"


@pytest.mark.parametrize(
    "bad",
    [
        question(limit=4),
        question(limit=121),
        question(options=1, correct=(0,)),
        question(options=7),
        question(correct=()),
        question(correct=(4,)),
        question(correct=(1, 1)),
        question(points=-1),
        Question(text=" ", options=("a", "b"), correct=(0,)),
    ],
)
async def test_bad_quizzes_are_refused(env: Env, bad: Question) -> None:
    with pytest.raises(LivehubError) as caught:
        await env.quiz(question(), bad)
    assert caught.value.code == "bad_quiz"
    assert await env.quizzes.quizzes("r1") == []


async def test_the_staff_steps_in_order(env: Env) -> None:
    quiz = await env.quiz(question(), question())
    assert await env.staff_refused("reveal", quiz.id) == "no_question"
    await env.next(quiz)
    assert await env.staff_refused("next", quiz.id) == "not_revealed"
    await env.quizzes.reveal(env.room, HOST, quiz.id)
    await env.next(quiz)
    await env.quizzes.reveal(env.room, HOST, quiz.id)
    assert await env.staff_refused("next", quiz.id) == "no_more_questions"
    await env.quizzes.end(env.room, HOST, quiz.id)
    assert await env.staff_refused("next", quiz.id) == "quiz_ended"
    assert await env.staff_refused("next", "q_nope") == "not_found"
    kinds = [e.kind for e in await env.events()]
    assert kinds == [
        "quiz.created",
        "quiz.question_opened",
        "quiz.revealed",
        "quiz.question_opened",
        "quiz.revealed",
        "quiz.ended",
    ]


# ---------------------------------------------------------------- reveal, standings, podium


async def test_nothing_is_revealed_before_the_reveal(env: Env) -> None:
    quiz = await env.quiz(question(correct=(2,)), question(correct=(0,)))
    index = await env.next(quiz)
    await env.answer(ANN, quiz, index, 2)
    me = await env.quizzes.me("r1", quiz.id, "v_ann")
    assert (me.score, me.rank, me.answered, me.answered_current) == (0, None, 1, True)
    assert me.current_choices == (2,)
    (state,) = await env.quizzes.state("r1", "v_ann")
    assert state.question is not None and state.reveal is None and state.me.score == 0
    assert "correct" not in state.question.__struct_fields__


async def test_reveal_closes_the_question_and_ranks_everyone(env: Env) -> None:
    quiz = await env.quiz(question(correct=(2,), limit=20), question(correct=(0,)))
    index = await env.next(quiz)
    await env.answer(ANN, quiz, index, 2)  # 1000
    env.clock.advance(10)
    await env.answer(BOB, quiz, index, 2)  # 750
    await env.answer(CAT, quiz, index, 1)  # 0
    reveal, personal = await env.quizzes.reveal(env.room, HOST, quiz.id)
    assert await env.refused(DAN, quiz.id, index, 2) == "quiz_closed"
    assert (reveal.correct, reveal.counts, reveal.answered) == ((2,), (0, 1, 2, 0), 3)
    assert [(s.name, s.score, s.rank) for s in reveal.leaderboard] == [
        ("Ann", 1000, 1),
        ("Bob", 750, 2),
        ("Cat", 0, 3),
    ]
    mine = {viewer: (y.rank, y.score, y.last_points, y.correct) for viewer, y in personal}
    assert mine == {
        "v_ann": (1, 1000, 1000, True),
        "v_bob": (2, 750, 750, True),
        "v_cat": (3, 0, 0, False),
    }
    me = await env.quizzes.me("r1", quiz.id, "v_bob")
    assert (me.score, me.rank, me.participants) == (750, 2, 3)
    nobody = await env.quizzes.me("r1", quiz.id, "v_dan")
    assert (nobody.score, nobody.rank, nobody.answered) == (0, None, 0)
    # a second reveal repeats the same result without scoring or logging twice
    again, _ = await env.quizzes.reveal(env.room, HOST, quiz.id)
    assert again == reveal
    assert len(await env.events("quiz.revealed")) == 1
    # Bob overtakes Ann on the second question; standings move only on its reveal
    index = await env.next(quiz)
    await env.answer(BOB, quiz, index, 0)  # 1000 + 100 streak bonus
    assert (await env.quizzes.me("r1", quiz.id, "v_bob")).score == 750
    await env.quizzes.reveal(env.room, HOST, quiz.id)
    me = await env.quizzes.me("r1", quiz.id, "v_bob")
    assert (me.score, me.rank) == (1850, 1)
    assert await env.counter("v_bob", "quiz_score") == 1850
    assert await env.counter("v_bob", "correct_answers") == 2
    assert await env.counter("v_cat", "answers") == 1
    assert await env.counter("v_cat", "correct_answers") == 0


async def test_the_podium_at_the_end(env: Env) -> None:
    quiz = await env.quiz(question(correct=(0,), limit=20))
    index = await env.next(quiz)
    for who, wait in ((ANN, 0.0), (BOB, 4.0), (CAT, 4.0), (DAN, 4.0)):
        env.clock.advance(wait)
        await env.answer(who, quiz, index, 0)
    podium = await env.quizzes.end(env.room, HOST, quiz.id)
    assert [(s.name, s.score, s.rank) for s in podium.podium] == [
        ("Ann", 1000, 1),
        ("Bob", 900, 2),
        ("Cat", 800, 3),
    ]
    assert [s.name for s in podium.leaderboard] == ["Ann", "Bob", "Cat", "Dan"]
    assert podium.participants == 4
    assert await env.refused(HOST, quiz.id, index, 0) == "quiz_closed"
    assert await env.quizzes.end(env.room, HOST, quiz.id) == podium
    (ended,) = await env.events("quiz.ended")
    assert [s["name"] for s in ended.data["podium"]] == ["Ann", "Bob", "Cat"]
    (state,) = await env.quizzes.state("r1", "v_dan")
    assert state.status == "ended" and state.podium == podium and state.me.rank == 4


# ---------------------------------------------------------------- the log is the truth


async def _restarted(env: Env) -> QuizService:
    """The service of a node started afresh: an empty store over the same log, rebuilt."""
    fresh = QuizService(MemoryStore(clock=env.clock), env.log, env.counters, clock=env.clock)
    await fresh.rebuild("r1")
    return fresh


VIEWERS = ("v_ann", "v_bob", "v_cat", "v_dan")


async def _everything(quizzes: QuizService) -> object:
    """What anyone can read of the room's quizzes: definitions, states, standings, counts."""
    found = await quizzes.quizzes("r1")
    return (
        found,
        [await quizzes.state("r1", viewer) for viewer in VIEWERS],
        [await quizzes.answer_count("r1", q.id, q.index) for q in found],
    )


async def test_a_fresh_store_is_rebuilt_from_the_log_at_every_step(env: Env) -> None:
    quiz = await env.quiz(question(correct=(1,)), question(correct=(0,)), question(correct=(2,)))
    index = await env.next(quiz)
    await env.answer(ANN, quiz, index, 1)  # 1000
    await env.answer(BOB, quiz, index, 0)  # wrong
    env.clock.advance(10)
    await env.answer(CAT, quiz, index, 1)  # 750
    await env.quizzes.reveal(env.room, HOST, quiz.id)
    assert await _everything(await _restarted(env)) == await _everything(env.quizzes)
    index = await env.next(quiz)
    env.clock.advance(0.3)
    await env.answer(ANN, quiz, index, 0)  # 1000 + 100 for a streak of two
    env.clock.advance(4.7)
    await env.answer(BOB, quiz, index, 0)  # 875
    env.clock.advance(3)
    before = await _everything(env.quizzes)

    fresh = await _restarted(env)  # 8 s into a 20 s question

    assert await _everything(fresh) == before
    rebuilt = await fresh.get("r1", quiz.id)
    assert (rebuilt.status, rebuilt.index) == ("question", 1)
    assert rebuilt.deadline == (await env.quizzes.get("r1", quiz.id)).deadline  # 12 s left
    with pytest.raises(LivehubError) as caught:
        await fresh.answer(env.room, ANN, quiz.id, index, (0,))
    assert caught.value.code == "already_answered"
    late = await fresh.answer(env.room, DAN, quiz.id, index, (0,))
    assert (late.response_ms, late.points) == (8000, 800)  # timed from the first opening
    reveal, _ = await fresh.reveal(env.room, HOST, quiz.id)
    assert [(s.name, s.score, s.rank) for s in reveal.leaderboard] == [
        ("Ann", 2100, 1),
        ("Bob", 875, 2),
        ("Dan", 800, 3),
        ("Cat", 750, 4),
    ]
    again = await _restarted(env)  # revealed: the same reveal and standings come back
    assert await _everything(again) == await _everything(fresh)
    await again.next(env.room, HOST, quiz.id)
    streak = await again.answer(env.room, ANN, quiz.id, 2, (2,))
    assert streak.points == 1000 + 200  # the third correct answer in a row
    broken = await again.answer(env.room, CAT, quiz.id, 2, (2,))
    assert broken.points == 1000  # Cat missed the second question
    podium = await again.end(env.room, HOST, quiz.id)
    ended = await _restarted(env)
    assert await _everything(ended) == await _everything(again)
    assert await ended.end(env.room, HOST, quiz.id) == podium
    kinds = [e.kind for e in await env.events() if e.kind != "quiz.answer"]
    assert kinds.count("quiz.revealed") == 2 and kinds.count("quiz.ended") == 1


async def test_rebuilding_over_the_same_store_changes_nothing(env: Env) -> None:
    quiz = await env.quiz(question(correct=(1,)), question())
    index = await env.next(quiz)
    await env.answer(ANN, quiz, index, 1)
    await env.answer(BOB, quiz, index, 1)
    await env.quizzes.reveal(env.room, HOST, quiz.id)
    await env.next(quiz)
    before = await _everything(env.quizzes)
    await env.quizzes.rebuild("r1")
    await env.quizzes.rebuild("r1")
    assert await _everything(env.quizzes) == before
    assert (await env.quizzes.me("r1", quiz.id, "v_ann")).answered == 1


async def test_a_marker_left_by_a_crash_does_not_refuse_the_answer(env: Env) -> None:
    quiz = await env.quiz(question(correct=(1,)))
    index = await env.next(quiz)
    # a node set Ann's marker and died before her answer reached the log
    await env.store.set(f"quiz:r1:{quiz.id}:a:{index}:v_ann", "[3]")
    record = await env.answer(ANN, quiz, index, 1)
    assert record.correct and record.points == 1000
    assert await env.refused(ANN, quiz.id, index, 2) == "already_answered"
    assert [e.actor for e in await env.events("quiz.answer")] == ["v_ann"]
    me = await env.quizzes.me("r1", quiz.id, "v_ann")
    assert (me.answered, me.current_choices) == (1, (1,))
    assert await env.counter("v_ann", "answers") == 1


async def test_reveal_and_end_markers_left_by_a_crash_do_not_stop_their_events(
    env: Env,
) -> None:
    quiz = await env.quiz(question())
    index = await env.next(quiz)
    await env.store.set(f"quiz:r1:{quiz.id}:revealed:{index}", "1")
    await env.store.set(f"quiz:r1:{quiz.id}:ended", "1")
    await env.quizzes.reveal(env.room, HOST, quiz.id)
    await env.quizzes.reveal(env.room, HOST, quiz.id)
    await env.quizzes.end(env.room, HOST, quiz.id)
    await env.quizzes.end(env.room, HOST, quiz.id)
    kinds = [e.kind for e in await env.events()]
    assert kinds == ["quiz.created", "quiz.question_opened", "quiz.revealed", "quiz.ended"]


async def test_events_of_older_versions_rebuild_too(env: Env) -> None:
    """``question_opened`` without ``opened_at``, ``revealed`` without ``deadline``."""
    quiz = await env.quiz(question(limit=20))
    old = [
        ("quiz.question_opened", {"quiz_id": quiz.id, "index": 0, "deadline": env.clock() + 20}),
        ("quiz.revealed", {"quiz_id": quiz.id, "index": 0, "correct": [1], "counts": [0] * 4}),
    ]
    for after, (kind, data) in zip((0.0, 6.0), old, strict=True):
        stamp = env.clock() + after
        await env.log.append(NewEvent(room="r1", kind=kind, actor="v_host", data=data, ts=stamp))
    rebuilt = await (await _restarted(env)).get("r1", quiz.id)
    assert (rebuilt.status, rebuilt.opened_at, rebuilt.deadline) == (
        "revealed",
        env.clock(),
        env.clock() + 6,
    )


async def test_a_lost_quiz_comes_back_at_the_first_ask_or_is_unavailable_meanwhile(
    env: Env,
) -> None:
    quiz = await env.quiz(question(correct=(1,)))
    index = await env.next(quiz)
    await env.answer(ANN, quiz, index, 1)
    emptied = MemoryStore(clock=env.clock)
    node = QuizService(emptied, env.log, env.counters, clock=env.clock)
    await emptied.set(f"quiz:r1:{quiz.id}:restoring", "1", ttl=RESTORE_LEASE_SECONDS)
    with pytest.raises(LivehubError) as caught:
        await node.answer(env.room, BOB, quiz.id, index, (1,))
    assert (caught.value.code, caught.value.status) == ("unavailable", 503)  # try again
    with pytest.raises(LivehubError) as caught:
        await node.answer(env.room, BOB, "q_nothing", index, (1,))
    assert caught.value.code == "not_found"
    env.clock.advance(RESTORE_LEASE_SECONDS)  # that node died: its claim runs out (in 20 s)
    assert (await node.answer(env.room, BOB, quiz.id, index, (1,))).correct
    assert await node.answer_count("r1", quiz.id, index) == 2
    with pytest.raises(LivehubError) as caught:
        await node.answer(env.room, ANN, quiz.id, index, (1,))
    assert caught.value.code == "already_answered"


async def test_a_rebuild_leaves_the_quizzes_the_store_holds_to_the_live_nodes(env: Env) -> None:
    quiz = await env.quiz(question(correct=(1,)))
    index = await env.next(quiz)
    await env.answer(ANN, quiz, index, 1)
    await env.store.hset(f"quiz:r1:{quiz.id}:scores", {"v_ann": "4321"})  # counted meanwhile
    await QuizService(env.store, env.log, env.counters, clock=env.clock).rebuild("r1")
    await env.quizzes.reveal(env.room, HOST, quiz.id)
    assert (await env.quizzes.me("r1", quiz.id, "v_ann")).score == 4321


async def test_a_live_quiz_gets_the_settled_answers_a_killed_node_never_applied(
    env: Env,
) -> None:
    quiz = await env.quiz(question(correct=(1,)), question(correct=(0,)))
    index = await env.next(quiz)
    await env.answer(ANN, quiz, index, 1)
    # Bob's answer was logged, then its node died before applying it
    await env.store.set(f"quiz:r1:{quiz.id}:a:{index}:v_bob", "[1]")
    data = {
        "quiz_id": quiz.id,
        "index": index,
        "choices": [1],
        "correct": True,
        "points": 1000,
        "base_points": 1000,
        "streak_bonus": 0,
        "streak": 1,
        "response_ms": 200,
        "name": "Bob",
    }
    client_id = f"quiz:{quiz.id}:{index}"
    await env.log.append(NewEvent("r1", "quiz.answer", "v_bob", data, None, client_id, env.clock()))
    env.clock.advance(2)
    restarted = QuizService(env.store, env.log, env.counters, clock=env.clock)
    await restarted.rebuild("r1")
    await restarted.rebuild("r1")  # within the lease: left alone
    env.clock.advance(RESTORE_LEASE_SECONDS)
    await restarted.rebuild("r1")  # nothing lacking any more: nothing added twice
    assert await env.quizzes.answer_count("r1", quiz.id, index) == 2
    reveal, _ = await env.quizzes.reveal(env.room, HOST, quiz.id)
    assert [(s.name, s.score) for s in reveal.leaderboard] == [("Ann", 1000), ("Bob", 1000)]
    index = await env.next(quiz)
    streak = await env.answer(BOB, quiz, index, 0)
    assert streak.points == 1000 + 100  # his streak went on from the repaired answer
    assert (await env.quizzes.me("r1", quiz.id, "v_bob")).answered == 2
