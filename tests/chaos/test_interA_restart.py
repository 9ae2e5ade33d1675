"""Polls and quizzes survive restarts: the log is the truth, the store a cache.

Real server processes on both stores. An open poll (with its timer and tally),
a draft, a closed poll with its results shown and a quiz with a question open
(its deadline, answers, scores and standings) must read the same after a
graceful restart and after kill -9, on the memory store (empty after any
restart) and on Redis, and after Redis itself restarts empty under a running
node, which rebuilds them within a bound without being restarted. A poll timer
that was running resumes: the poll is closed by its timer at its own
``closes_at``. Killed in the middle of a voting burst, every acknowledged vote
and answer is in the log exactly once and every retry of an unacknowledged one
is taken once: ``already_voted`` / ``already_answered`` only for what the log
holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from processes import NodeClients, ProcessGroup, ServerProcess, create_room
from redis_server import OwnRedis
from support import LiveClient, mint_token, store_redis_url

from livehub.rooms.recovery import SETTLE_SECONDS

ROOM = "show"
LONG_TIMER = 3600
SHORT_TIMER = 5  # the shortest a poll takes
QUESTION_SECONDS = 120  # the longest a quiz question takes: it outlives the test
REBUILD_BOUND = 20.0  # seconds for a node to rebuild after Redis came back empty
TIMER_BOUND = SHORT_TIMER + 20.0
VOTERS = 40  # all at once: many claims wait in Redis for the commit the kill cuts
KILL_AFTER_ACKS = 10
ACK_TIMEOUT = 3.0


def token(viewer_id: str, role: str = "viewer") -> str:
    return mint_token(
        ROOM, role=role, name=viewer_id.removeprefix("v_").title(), viewer_id=viewer_id
    )


async def ok(client: LiveClient, event: str, payload: Any = None) -> dict[str, Any]:
    ack = await client.call(event, {} if payload is None else payload)
    assert ack["ok"] is True, (event, payload, ack)
    return dict(ack)


async def refused(client: LiveClient, event: str, payload: Any) -> str:
    ack = await client.call(event, payload)
    assert ack["ok"] is False, (event, payload, ack)
    return str(ack["error"]["code"])


def timeless(value: Any) -> Any:
    """``value`` without its ``server_time`` fields (the one thing that moves)."""
    if isinstance(value, dict):
        return {k: timeless(v) for k, v in value.items() if k != "server_time"}
    if isinstance(value, list):
        return [timeless(v) for v in value]
    return value


def logged(data_dir: Path, kind: str) -> list[tuple[str, dict[str, Any]]]:
    """(actor, data) of every ``kind`` event of the room, read straight from the file."""
    with contextlib.closing(sqlite3.connect(data_dir / "livehub.db", timeout=10)) as db:
        rows = db.execute(
            "SELECT actor, data FROM events WHERE room = ? AND kind = ? ORDER BY id", (ROOM, kind)
        ).fetchall()
    return [(actor, json.loads(data)) for actor, data in rows]


def question(correct: int) -> dict[str, Any]:
    return {
        "text": f"Which is {correct}?",
        "options": ["zero", "one", "two"],
        "correct": [correct],
        "time_limit_seconds": QUESTION_SECONDS,
    }


class Show:
    """A room with every kind of poll and a quiz half-way through, run by Host, Ann and Bob."""

    def __init__(self, clients: NodeClients) -> None:
        self.clients = clients
        self.ids: dict[str, str] = {}

    async def connect(
        self, node: ServerProcess, viewer_id: str, role: str = "viewer"
    ) -> LiveClient:
        return await self.clients.connect(node, ROOM, token(viewer_id, role))

    async def stage(self, node: ServerProcess) -> None:
        await create_room(node.url, ROOM, "Show")
        host = await self.connect(node, "v_host", "host")
        ann, bob = await self.connect(node, "v_ann"), await self.connect(node, "v_bob")

        async def poll(question: str, **spec: Any) -> str:
            body = {"question": question, "kind": "single", "options": ["A", "B", "C"], **spec}
            return str((await ok(host, "poll_create", body))["poll"]["id"])

        ids = self.ids
        ids["draft"] = await poll("Draft?")
        ids["timed"] = await poll("Timed?", timer_seconds=LONG_TIMER)
        ids["closed"] = await poll("Closed?", results_visible=True)
        ids["short"] = await poll("Short?", timer_seconds=SHORT_TIMER)
        for name in ("timed", "closed"):
            await ok(host, "poll_open", {"poll_id": ids[name]})
        await ok(ann, "poll_vote", {"poll_id": ids["timed"], "choices": [1]})
        await ok(bob, "poll_vote", {"poll_id": ids["timed"], "choices": [2]})
        await ok(bob, "poll_vote", {"poll_id": ids["closed"], "choices": [0]})
        await ok(host, "poll_close", {"poll_id": ids["closed"]})
        quiz = {"title": "Trivia", "questions": [question(1), question(2), question(0)]}
        ids["quiz"] = str((await ok(host, "quiz_create", quiz))["quiz"]["id"])
        await ok(host, "quiz_next", {"quiz_id": ids["quiz"]})
        await ok(ann, "quiz_answer", {"quiz_id": ids["quiz"], "index": 0, "choices": [1]})
        await ok(bob, "quiz_answer", {"quiz_id": ids["quiz"], "index": 0, "choices": [0]})
        await ok(host, "quiz_reveal", {"quiz_id": ids["quiz"]})
        await ok(host, "quiz_next", {"quiz_id": ids["quiz"]})
        await ok(ann, "quiz_answer", {"quiz_id": ids["quiz"], "index": 1, "choices": [2]})

    async def seen(self, node: ServerProcess) -> dict[str, Any]:
        """Everything the staff and the viewers can read (the short poll aside: it runs out)."""
        host = await self.connect(node, "v_host", "host")
        seen: dict[str, Any] = {
            "polls": [
                p for p in (await ok(host, "poll_list"))["polls"] if p["id"] != self.ids["short"]
            ],
            "quizzes": (await ok(host, "quiz_list"))["quizzes"],
        }
        for viewer_id in ("v_ann", "v_bob"):
            viewer = await self.connect(node, viewer_id)
            state = await ok(viewer, "poll_state")
            state["polls"] = [p for p in state["polls"] if p["id"] != self.ids["short"]]
            seen[viewer_id] = {
                "polls": state,
                "quiz": await ok(viewer, "quiz_state"),
                "me": await ok(viewer, "quiz_me", {"quiz_id": self.ids["quiz"]}),
            }
        for client in self.clients:
            await client.close()
        return dict(timeless(seen))

    async def goes_on(self, node: ServerProcess) -> None:
        """After the restart: one vote and one answer each, and the newcomer's count on top."""
        ids = self.ids
        ann, cat = await self.connect(node, "v_ann"), await self.connect(node, "v_cat")
        host = await self.connect(node, "v_host", "host")
        assert await refused(ann, "poll_vote", {"poll_id": ids["timed"], "choices": [0]}) == (
            "already_voted"
        )
        await ok(cat, "poll_vote", {"poll_id": ids["timed"], "choices": [2]})
        answer = {"quiz_id": ids["quiz"], "index": 1, "choices": [2]}
        assert await refused(ann, "quiz_answer", answer) == "already_answered"
        await ok(cat, "quiz_answer", answer)
        polls = {p["id"]: p for p in (await ok(host, "poll_list"))["polls"]}
        assert (polls[ids["timed"]]["turnout"], polls[ids["timed"]]["tally"]["counts"]) == (
            3,
            [0, 1, 2],
        )
        reveal = (await ok(host, "quiz_reveal", {"quiz_id": ids["quiz"]}))["reveal"]
        board = [(s["name"], s["rank"]) for s in reveal["leaderboard"]]
        # Ann: two right (the second with a streak bonus), Cat one right later, Bob none
        assert board == [("Ann", 1), ("Cat", 2), ("Bob", 3)], board
        assert reveal["answered"] == 2

    async def open_short_timer(self, node: ServerProcess) -> float:
        host = await self.connect(node, "v_host", "host")
        opened = await ok(host, "poll_open", {"poll_id": self.ids["short"]})
        await host.close()
        return float(opened["poll"]["closes_at"])

    async def short_timer_ran_out(self, node: ServerProcess, data: Path, closes_at: float) -> None:
        """The rebuilt timer closes the poll at its own ``closes_at`` and logs it once."""
        short = self.ids["short"]
        deadline = time.monotonic() + TIMER_BOUND
        while not [d for a, d in logged(data, "poll.closed") if d["poll_id"] == short]:
            assert time.monotonic() < deadline, "the poll's timer did not resume after the restart"
            await asyncio.sleep(0.1)
        ((actor, closed),) = [
            (a, d) for a, d in logged(data, "poll.closed") if d["poll_id"] == short
        ]
        assert (actor, closed["by"], closed["closes_at"]) == ("timer", "timer", closes_at)
        host = await self.connect(node, "v_host", "host")
        polls = {p["id"]: p for p in (await ok(host, "poll_list"))["polls"]}
        assert (polls[short]["status"], polls[short]["closes_at"]) == ("closed", closes_at)


@pytest.mark.parametrize("how", ["graceful", "kill"])
@pytest.mark.parametrize("store", ["memory", "redis"])
async def test_polls_and_quizzes_survive_a_restart(
    store: str,
    how: str,
    procs: ProcessGroup,
    node_clients: NodeClients,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    data, redis_url = tmp_path / "data", store_redis_url(request, store)
    node = procs.serve(data, redis_url=redis_url)
    show = Show(node_clients)
    await show.stage(node)
    before = await show.seen(node)
    closes_at = await show.open_short_timer(node)

    if how == "kill":
        node.kill()
    else:
        assert node.stop() == 0, node.output()
    node = procs.serve(data, redis_url=redis_url)

    assert await show.seen(node) == before
    await show.short_timer_ran_out(node, data, closes_at)
    await show.goes_on(node)


async def test_a_node_rebuilds_polls_and_quizzes_when_redis_restarts_empty(
    procs: ProcessGroup, node_clients: NodeClients, tmp_path: Path, own_redis: OwnRedis
) -> None:
    data = tmp_path / "data"
    node = procs.serve(data, redis_url=own_redis.start().url)
    show = Show(node_clients)
    await show.stage(node)
    before = await show.seen(node)
    closes_at = await show.open_short_timer(node)

    own_redis.kill()
    own_redis.start()  # empty: no persistence

    await _until(lambda: _same(show, node, before), REBUILD_BOUND, "rebuilt after Redis")
    assert node.alive(), node.output()
    await show.short_timer_ran_out(node, data, closes_at)
    await show.goes_on(node)


async def _same(show: Show, node: ServerProcess, before: dict[str, Any]) -> bool:
    try:
        return await show.seen(node) == before
    except Exception:  # the node may still be finding Redis again: ask again
        return False


async def _until(check: Callable[[], Awaitable[bool]], bound: float, what: str) -> None:
    deadline = time.monotonic() + bound
    while not await check():
        assert time.monotonic() < deadline, f"not {what} within {bound:.0f} s"
        await asyncio.sleep(0.25)


@pytest.mark.parametrize("store", ["memory", "redis"])
async def test_kill_mid_voting_keeps_every_acked_vote_once_and_takes_every_retry(
    store: str,
    procs: ProcessGroup,
    node_clients: NodeClients,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    data, redis_url = tmp_path / "data", store_redis_url(request, store)
    node = procs.serve(data, redis_url=redis_url)
    await create_room(node.url, ROOM, "Show")
    host = await node_clients.connect(node, ROOM, token("v_host", "host"))
    body = {"question": "Best?", "kind": "single", "options": ["A", "B", "C"]}
    poll_id = (await ok(host, "poll_create", body))["poll"]["id"]
    await ok(host, "poll_open", {"poll_id": poll_id})
    quiz = {"title": "Quick", "questions": [question(1)]}
    quiz_id = (await ok(host, "quiz_create", quiz))["quiz"]["id"]
    await ok(host, "quiz_next", {"quiz_id": quiz_id})
    viewers = [f"v_{k}" for k in range(VOTERS)]
    clients = [await node_clients.connect(node, ROOM, token(v)) for v in viewers]

    def acts(k: int) -> list[tuple[str, str, dict[str, Any]]]:
        return [
            ("poll.vote", "poll_vote", {"poll_id": poll_id, "choices": [k % 3]}),
            ("quiz.answer", "quiz_answer", {"quiz_id": quiz_id, "index": 0, "choices": [k % 3]}),
        ]

    acked: set[tuple[str, str]] = set()  # (viewer, event kind)
    wrong: list[Any] = []
    killed = asyncio.Event()
    killed_at = 0.0

    async def burst(k: int, client: LiveClient) -> None:
        for kind, event, payload in acts(k):
            try:
                ack = await client.sio.call(event, payload, namespace="/live", timeout=ACK_TIMEOUT)
            except Exception:  # the node died under this call: no ack, no promise
                return
            if not ack.get("ok"):
                wrong.append(ack)
                return
            acked.add((viewers[k], kind))
            if len(acked) >= KILL_AFTER_ACKS and not killed.is_set():
                killed.set()
                node.kill()
                nonlocal killed_at
                killed_at = time.monotonic()

    await asyncio.gather(*(burst(k, c) for k, c in enumerate(clients)))
    assert killed.is_set(), "every call failed before enough acks came back"
    assert not wrong, wrong[:3]
    kinds = ("poll.vote", "quiz.answer")
    in_log = {kind: Counter(actor for actor, _ in logged(data, kind)) for kind in kinds}
    for kind in kinds:
        assert all(n == 1 for n in in_log[kind].values()), (kind, in_log[kind])
    for viewer_id, kind in acked:
        assert in_log[kind][viewer_id] == 1, (viewer_id, kind)

    await node_clients.close_all()
    # down at least as long as a vote takes to settle: one the dead node logged and
    # never counted is then told from one a live node is still counting
    await asyncio.sleep(max(0.0, killed_at + SETTLE_SECONDS - time.monotonic()))
    node = procs.serve(data, redis_url=redis_url)
    already = {"poll.vote": "already_voted", "quiz.answer": "already_answered"}
    for k, viewer_id in enumerate(viewers):
        client = await node_clients.connect(node, ROOM, token(viewer_id))
        for kind, event, payload in acts(k):
            ack = await client.call(event, payload)
            if ack["ok"]:  # a retry of one the log lacks: taken now
                assert in_log[kind][viewer_id] == 0, (viewer_id, kind)
            else:  # refused only when the log has it (acked or not)
                assert ack["error"]["code"] == already[kind], ack
                assert in_log[kind][viewer_id] == 1, (viewer_id, kind, ack)
        await client.close()

    for kind in kinds:
        final = Counter(actor for actor, _ in logged(data, kind))
        assert final == Counter(viewers), (kind, final)
    host = await node_clients.connect(node, ROOM, token("v_host", "host"))
    (poll,) = (await ok(host, "poll_list"))["polls"]
    assert poll["turnout"] == VOTERS
    assert poll["tally"]["counts"] == [
        sum(1 for k in range(VOTERS) if k % 3 == i) for i in range(3)
    ]
    (listed,) = (await ok(host, "quiz_list"))["quizzes"]
    assert listed["answered"] == VOTERS
