"""Quizzes through a real server and real Socket.IO clients, on both stores."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from support import (
    LiveClient,
    Server,
    error_code,
    make_settings,
    new_room,
    ok,
    start_server,
    stop_server,
)

QUESTIONS = [
    {"text": "2 + 2?", "options": ["3", "4", "5"], "correct": [1], "time_limit_seconds": 30},
    {"text": "Primes?", "options": ["2", "4", "5", "9"], "correct": [0, 2]},
]


async def create_quiz(host: LiveClient, questions: list[dict[str, Any]] | None = None) -> str:
    body = {"title": "Maths", "questions": questions or QUESTIONS, "streak_bonus": True}
    quiz = ok(await host.call("quiz_create", body))["quiz"]
    assert quiz["questions"][0]["correct"] == (questions or QUESTIONS)[0]["correct"]
    return str(quiz["id"])


def at(index: int) -> Any:
    return lambda item: item["index"] == index


async def test_a_quiz_from_question_to_podium(server: Server) -> None:
    room = await new_room(server)
    host = await server.client(room, role="host", name="Host")
    ann = await server.client(room, name="Ann", viewer_id="v_ann")
    bob = await server.client(room, name="Bob", viewer_id="v_bob")
    quiz_id = await create_quiz(host)
    assert error_code(await ann.call("quiz_create", {"title": "x", "questions": QUESTIONS})) == (
        "forbidden"
    )
    for event in ("quiz_next", "quiz_reveal", "quiz_end"):
        assert error_code(await ann.call(event, {"quiz_id": quiz_id})) == "forbidden"
    assert (
        error_code(await ann.call("quiz_answer", {"quiz_id": quiz_id, "index": 0, "choices": [1]}))
        == "quiz_closed"
    )

    ok(await host.call("quiz_next", {"quiz_id": quiz_id}))
    question = await ann.wait_for("quiz_question", at(0))
    assert question["text"] == "2 + 2?" and question["options"] == ["3", "4", "5"]
    assert question["total"] == 2 and question["time_limit"] == 30 and question["multiple"] is False
    assert abs(question["deadline"] - question["server_time"] - 30) < 1e-6
    assert "correct" not in question

    answer = ok(await ann.call("quiz_answer", {"quiz_id": quiz_id, "index": 0, "choices": [1]}))
    assert answer == {"ok": True, "accepted": True, "quiz_id": quiz_id, "index": 0}
    assert (
        error_code(await ann.call("quiz_answer", {"quiz_id": quiz_id, "index": 0, "choices": [0]}))
        == "already_answered"
    )
    assert (
        error_code(await bob.call("quiz_answer", {"quiz_id": quiz_id, "index": 0, "choices": [3]}))
        == "bad_choice"
    )
    assert (
        error_code(await bob.call("quiz_answer", {"quiz_id": "q_nope", "index": 0, "choices": [0]}))
        == "not_found"
    )
    ok(await bob.call("quiz_answer", {"quiz_id": quiz_id, "index": 0, "choices": [0]}))
    counted = await host.wait_for("quiz_answers", lambda c: c["answered"] == 2)
    assert counted["quiz_id"] == quiz_id and counted["index"] == 0
    # nothing tells anyone who was right before the reveal
    assert ok(await ann.call("quiz_me", {"quiz_id": quiz_id}))["rank"] is None
    assert "quiz_you" not in ann.events

    ok(await host.call("quiz_reveal", {"quiz_id": quiz_id}))
    reveal = await bob.wait_for("quiz_reveal", at(0))
    assert reveal["correct"] == [1] and reveal["counts"] == [1, 1, 0] and reveal["answered"] == 2
    board = [(s["name"], s["rank"]) for s in reveal["leaderboard"]]
    assert board == [("Ann", 1), ("Bob", 2)]
    assert reveal["leaderboard"][1]["score"] == 0
    ann_you = await ann.wait_for("quiz_you", at(0))
    bob_you = await bob.wait_for("quiz_you", at(0))
    assert (ann_you["correct"], ann_you["rank"]) == (True, 1)
    assert 900 < ann_you["last_points"] <= 1000 and ann_you["score"] == ann_you["last_points"]
    assert (bob_you["correct"], bob_you["rank"], bob_you["last_points"]) == (False, 2, 0)
    bob_me = ok(await bob.call("quiz_me", {"quiz_id": quiz_id}))
    assert (bob_me["rank"], bob_me["score"], bob_me["answered"]) == (2, 0, 1)

    ok(await host.call("quiz_next", {"quiz_id": quiz_id}))
    question = await bob.wait_for("quiz_question", at(1))
    assert question["multiple"] is True
    ok(await bob.call("quiz_answer", {"quiz_id": quiz_id, "index": 1, "choices": [2, 0]}))
    ok(await host.call("quiz_end", {"quiz_id": quiz_id}))
    podium = await ann.wait_for("quiz_podium")
    assert podium["quiz_id"] == quiz_id and podium["participants"] == 2
    assert [s["name"] for s in podium["podium"]] == [s["name"] for s in podium["leaderboard"]]
    assert {s["name"] for s in podium["podium"]} == {"Ann", "Bob"}
    assert (
        error_code(
            await ann.call("quiz_answer", {"quiz_id": quiz_id, "index": 1, "choices": [0, 2]})
        )
        == "quiz_closed"
    )

    # a viewer who joins late sees where the quiz is
    late = await server.client(room, name="Late")
    (state,) = ok(await late.call("quiz_state"))["quizzes"]
    assert state["status"] == "ended" and state["podium"] == podium
    assert state["me"]["rank"] is None

    kinds = [e.kind async for e in server.services.log.scan(room) if e.kind.startswith("quiz.")]
    assert kinds.count("quiz.answer") == 3 and kinds[0] == "quiz.created"
    assert kinds[-1] == "quiz.ended" and "quiz.revealed" in kinds
    counters = await server.services.counters.viewer(room, "-", "v_ann")
    assert counters["answers"] == 1 and counters["correct_answers"] == 1
    assert counters["quiz_score"] == ann_you["last_points"]


async def test_bad_quizzes_are_refused(server: Server) -> None:
    room = await new_room(server)
    host = await server.client(room, role="host", name="Host")
    short = [{**QUESTIONS[0], "time_limit_seconds": 4}]
    one_option = [{**QUESTIONS[0], "options": ["only"], "correct": [0]}]
    assert (
        error_code(await host.call("quiz_create", {"title": "T", "questions": short})) == "bad_quiz"
    )
    assert (
        error_code(await host.call("quiz_create", {"title": "T", "questions": one_option}))
        == "bad_quiz"
    )
    assert error_code(await host.call("quiz_create", {"title": "T", "questions": []})) == "bad_quiz"
    assert ok(await host.call("quiz_list"))["quizzes"] == []


async def run_timers(server: Server) -> None:
    """A poll with a 5 s timer and a quiz question with a 5 s limit, closed by server time."""
    room = await new_room(server)
    host = await server.client(room, role="host", name="Host")
    ann = await server.client(room, name="Ann")
    quiz_id = await create_quiz(
        host, [{"text": "Fast?", "options": ["yes", "no"], "correct": [0], "time_limit_seconds": 5}]
    )
    ok(await host.call("quiz_next", {"quiz_id": quiz_id}))
    # the poll opens after the question, so its deadline is the later one
    poll = ok(
        await host.call(
            "poll_create",
            {"question": "Quick?", "kind": "rating", "timer_seconds": 5},
        )
    )["poll"]
    ok(await host.call("poll_open", {"poll_id": poll["id"]}))
    # nobody closes anything: the poll timer runs out and the server pushes the closed poll
    closed = await ann.wait_for(
        "poll", lambda p: p["id"] == poll["id"] and p["status"] == "closed", timeout=15
    )
    assert closed["closes_at"] is not None
    late_vote = await ann.call("poll_vote", {"poll_id": poll["id"], "choices": [4]})
    assert error_code(late_vote) == "poll_closed"
    late_answer = await ann.call("quiz_answer", {"quiz_id": quiz_id, "index": 0, "choices": [0]})
    assert error_code(late_answer) == "quiz_closed"
    reveal = ok(await host.call("quiz_reveal", {"quiz_id": quiz_id}))["reveal"]
    assert reveal["answered"] == 0


async def test_server_time_closes_polls_and_questions_on_both_stores(
    tmp_path: Path, redis_url: str
) -> None:
    # both stores at once, so the 5 s wait is paid once
    servers = [
        await start_server(make_settings(tmp_path / "memory")),
        await start_server(make_settings(tmp_path / "redis", redis_url=redis_url)),
    ]
    try:
        await asyncio.gather(*(run_timers(s) for s in servers))
    finally:
        for s in servers:
            await stop_server(s)
