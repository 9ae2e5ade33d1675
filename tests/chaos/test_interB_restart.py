"""Q&A, draws and offers survive restarts: real server processes on both stores.

What a restart must keep (graceful SIGTERM, kill -9, and on Redis a Redis
restarted empty while the node stays up): the Q&A queue with the approval switch
still on, every question's state and tally, each viewer's upvotes; an open draw
with its entrants and its closing time (it still closes by itself), a drawn
result and its transcript; the offer card shown, the withdrawn one gone, the
click counts. And kill -9 mid-flood: every acked upvote, entry and click is in
the log exactly once, and every unacked one is accepted once when retried.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from processes import NodeClients, ProcessGroup, ServerProcess, create_room
from redis_server import OwnRedis
from support import LiveClient, mint_token

ROOM = "show"
PRESENT = {"kind": "present"}
STORES = ["memory", "redis"]
LONG_WINDOW = 3600
SHORT_WINDOW = 10  # the shortest window: it ends around the restarts
SETTLE_SECONDS = 20.0
FLOOD_VIEWERS = 40
FLOOD_STAGGER_SECONDS = 0.02


def token(name: str, role: str = "viewer") -> str:
    return mint_token(ROOM, role, name, f"v_{name.lower()}")


async def ok(client: LiveClient, event: str, payload: Any = None) -> dict[str, Any]:
    ack = await client.call(event, payload)
    assert ack["ok"] is True, (event, ack)
    return dict(ack)


async def click(node: ServerProcess, offer_id: str, name: str) -> int:
    url = f"{node.url}/o/{ROOM}/{offer_id}?t={token(name)}"
    timeout = aiohttp.ClientTimeout(total=5)
    async with (
        aiohttp.ClientSession(timeout=timeout) as http,
        http.get(url, allow_redirects=False) as resp,
    ):
        return resp.status


class Show:
    """The room of a live show, driven through one node at a time."""

    def __init__(self, procs: ProcessGroup, clients: NodeClients, data: Path) -> None:
        self.procs, self.clients, self.data = procs, clients, data
        self.redis_url: str | None = None
        self.ids: dict[str, Any] = {}
        # After a Redis restart a connect may wait for Socket.IO's own pub/sub listener
        # to reconnect (its back-off, not ours): connects are then retried a while.
        self.patient = False

    def serve(self) -> ServerProcess:
        return self.procs.serve(self.data, redis_url=self.redis_url)

    async def client(self, node: ServerProcess, name: str, role: str = "viewer") -> LiveClient:
        if not self.patient:
            return await self.clients.connect(node, ROOM, token(name, role))
        connected: LiveClient = await until(
            lambda: self.clients.connect(node, ROOM, token(name, role)), SETTLE_SECONDS
        )
        return connected

    async def stage(self, node: ServerProcess) -> None:
        """Every kind of state there is: questions in each state, draws in each, offers."""
        await create_room(node.url, ROOM, "Show")
        host = await self.client(node, "Host", "host")
        ann, bob, cat, dan = [await self.client(node, n) for n in ("Ann", "Bob", "Cat", "Dan")]

        async def ask(who: LiveClient, text: str) -> int:
            ack = await ok(who, "qa_ask", {"text": text, "client_id": f"q-{text[:8]}"})
            return int(ack["question"]["id"])

        answered = await ask(ann, "When does the course start?")
        dismissed = await ask(bob, "Is there a replay later on?")
        await ok(host, "qa_settings", {"require_approval": True})
        waiting = await ask(cat, "Can I pay by card at the door?")
        approved = await ask(dan, "Will the slides be shared afterwards?")
        await ok(host, "qa_approve", {"question_id": approved})
        for who in (bob, cat):
            await ok(who, "qa_upvote", {"question_id": answered})
        await ok(ann, "qa_upvote", {"question_id": approved})
        await ok(cat, "qa_unvote", {"question_id": answered})
        await ok(host, "qa_answer", {"question_id": answered})
        await ok(host, "qa_dismiss", {"question_id": dismissed})
        await ok(host, "qa_highlight", {"question_id": approved})

        async def draw(window: int, *entrants: LiveClient) -> str:
            body = {"prize": f"Prize {window}", "rule": PRESENT, "window_seconds": window}
            draw_id = str((await ok(host, "draw_create", body))["draw"]["draw_id"])
            for who in entrants:
                await ok(who, "draw_enter", {"draw_id": draw_id})
            return draw_id

        drawn = await draw(LONG_WINDOW, dan, cat)
        await ok(host, "draw_pick", {"draw_id": drawn})
        still_open = await draw(LONG_WINDOW, ann, bob)
        short = await draw(SHORT_WINDOW, cat)

        shown = await ok(host, "offer_push", {"title": "Shown", "url": "https://e.com/a"})
        gone = await ok(host, "offer_push", {"title": "Gone", "url": "https://e.com/b"})
        shown_id, gone_id = shown["offer"]["offer_id"], gone["offer"]["offer_id"]
        for name in ("Ann", "Bob"):
            assert await click(node, shown_id, name) == 302
        assert await click(node, gone_id, "Cat") == 302
        await ok(host, "offer_withdraw", {"offer_id": gone_id})
        self.ids = {
            "questions": (answered, dismissed, waiting, approved),
            "draws": (drawn, still_open, short),
            "offers": (shown_id, gone_id),
        }

    async def observe(self, node: ServerProcess) -> dict[str, Any]:
        """What the staff and a viewer see of it now (the short draw apart: it ends)."""
        host = await self.client(node, "Host", "host")
        ann = await self.client(node, "Ann")
        listed = await ok(ann, "qa_list", {"sort": "votes"})
        draws = (await ok(host, "draw_list"))["draws"]
        short = self.ids["draws"][2]
        seen = {
            "questions": listed["questions"],
            "highlight": listed["highlight"],
            "approval": listed["require_approval"],
            "queue": (await ok(host, "qa_queue"))["questions"],
            "draws": [d for d in draws if d["draw_id"] != short],
            "short": next(
                {k: d[k] for k in ("closes_at", "entrant_count")}
                for d in draws
                if d["draw_id"] == short
            ),
            "entered": (await ok(ann, "draw_state"))["entered"],
            "offers": (await ok(host, "offer_list"))["offers"],
            "offers_shown": (await ok(ann, "offer_state"))["offers"],
        }
        await host.close()
        await ann.close()
        return seen


def check_staged(show: Show, seen: dict[str, Any]) -> None:
    """The state ``stage`` made, as ``observe`` reads it."""
    answered, _, waiting, approved = show.ids["questions"]
    assert [(q["id"], q["votes"], q["answered"]) for q in seen["questions"]] == [
        (answered, 1, True),
        (approved, 1, False),
    ]
    assert seen["highlight"]["id"] == approved and seen["approval"] is True
    assert [(q["id"], q["held_by"]) for q in seen["queue"]] == [(waiting, "approval")]
    drawn, still_open, _ = show.ids["draws"]
    status = {d["draw_id"]: (d["status"], d["entrant_count"]) for d in seen["draws"]}
    assert status == {drawn: ("revealed", 2), still_open: ("open", 2)}
    assert seen["entered"] == [still_open] and seen["short"]["entrant_count"] == 1
    shown, gone = show.ids["offers"]
    counts = {o["offer_id"]: (o["status"], o["clicks"]) for o in seen["offers"]}
    assert counts == {shown: ("active", 2), gone: ("withdrawn", 1)}
    assert [o["offer_id"] for o in seen["offers_shown"]] == [shown]


async def carries_on(show: Show, node: ServerProcess) -> None:
    """After the restarts: one per viewer still holds, approval is still on, and the
    short draw closed by itself, not before its time."""
    answered, *_ = show.ids["questions"]
    _, still_open, short = show.ids["draws"]
    bob = await show.client(node, "Bob")
    ann = await show.client(node, "Ann")
    ack = await bob.call("qa_upvote", {"question_id": answered})
    assert ack["error"]["code"] == "already_upvoted", ack
    ack = await ann.call("draw_enter", {"draw_id": still_open})
    assert ack["error"]["code"] == "already_entered", ack
    assert await click(node, show.ids["offers"][0], "Ann") == 302
    eve = await show.client(node, "Eve")
    asked = await ok(eve, "qa_ask", {"text": "Any homework for next week?", "client_id": "e1"})
    assert asked["question"]["status"] == "pending"

    async def short_closed() -> dict[str, Any] | None:
        draws = (await ok(ann, "draw_state"))["draws"]
        found = next(d for d in draws if d["draw_id"] == short)
        return found if found["status"] != "open" else None

    closed = await until(short_closed, SETTLE_SECONDS)
    assert closed["entrant_count"] == 1 and closed["closed_at"] >= closed["closes_at"]
    listed = await ok(ann, "offer_state")
    assert len(listed["offers"]) == 1


async def until(probe: Callable[[], Awaitable[Any]], timeout: float) -> Any:
    """Call ``probe`` until it returns something (errors count as not yet)."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            found = await asyncio.wait_for(probe(), 5)
        except Exception as exc:  # the node or its store is still coming back
            last = exc
        else:
            if found:
                return found
        await asyncio.sleep(0.2)
    raise AssertionError(f"not within {timeout} s (last error: {last!r})")


@pytest.fixture(params=STORES)
def show(request: pytest.FixtureRequest, procs: ProcessGroup, tmp_path: Path) -> Show:
    made = Show(procs, request.getfixturevalue("node_clients"), tmp_path / "data")
    if request.param == "redis":
        made.redis_url = request.getfixturevalue("redis_url")
    return made


@pytest.mark.timeout(90)
async def test_everything_survives_a_graceful_restart_and_a_kill(show: Show) -> None:
    node = show.serve()
    await show.stage(node)
    before = await show.observe(node)
    check_staged(show, before)

    node.stop()  # SIGTERM
    node = show.serve()
    assert await show.observe(node) == before

    node.kill()  # SIGKILL: nothing flushed, nothing cleaned up
    node = show.serve()
    assert await show.observe(node) == before
    await carries_on(show, node)


@pytest.mark.timeout(90)
async def test_a_redis_restart_without_persistence_is_rebuilt_by_the_running_node(
    procs: ProcessGroup, node_clients: NodeClients, tmp_path: Path, own_redis: OwnRedis
) -> None:
    show = Show(procs, node_clients, tmp_path / "data")
    show.redis_url = own_redis.start().url
    node = show.serve()
    await show.stage(node)
    before = await show.observe(node)
    check_staged(show, before)

    own_redis.kill()  # nothing saved: the new one starts empty
    own_redis.start()
    show.patient = True

    async def rebuilt() -> bool:
        return await show.observe(node) == before

    assert await until(rebuilt, SETTLE_SECONDS)
    assert node.alive()  # the node was never restarted
    await carries_on(show, node)


# -- kill -9 mid-flood --------------------------------------------------------------------


async def flood_action(
    node: ServerProcess, client: LiveClient, name: str, kind: str, ids: dict[str, Any]
) -> str:
    """One viewer action; its outcome code ("ok", an error code, or "lost")."""
    try:
        if kind == "click":
            status = await asyncio.wait_for(click(node, ids["offer"], name), 5)
            return "ok" if status == 302 else f"http {status}"
        event, payload = {
            "upvote": ("qa_upvote", {"question_id": ids["question"]}),
            "enter": ("draw_enter", {"draw_id": ids["draw"]}),
        }[kind]
        ack = await asyncio.wait_for(client.call(event, payload), 5)
    except Exception:  # killed under it: no answer
        return "lost"
    return "ok" if ack.get("ok") else str(ack["error"]["code"])


def logged(db: Path, kind: str) -> Counter[str]:
    """How many events of ``kind`` each actor has in the log."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT actor FROM events WHERE kind = ?", (kind,)).fetchall()
    finally:
        conn.close()
    return Counter(str(r[0]) for r in rows)


@pytest.mark.timeout(120)
async def test_kill_mid_flood_keeps_every_acked_action_once_and_takes_every_retry(
    show: Show,
) -> None:
    node = show.serve()
    await create_room(node.url, ROOM, "Show")
    host = await show.client(node, "Host", "host")
    question = await ok(host, "qa_ask", {"text": "Shall we start?", "client_id": "h1"})
    body = {"prize": "Mug", "rule": PRESENT, "window_seconds": LONG_WINDOW}
    draw = await ok(host, "draw_create", body)
    offer = await ok(host, "offer_push", {"title": "Deal", "url": "https://e.com/d"})
    ids = {
        "question": question["question"]["id"],
        "draw": draw["draw"]["draw_id"],
        "offer": offer["offer"]["offer_id"],
    }
    names = [f"F{i:02d}" for i in range(FLOOD_VIEWERS)]
    kinds = ("upvote", "enter", "click")
    viewers = [await show.client(node, n) for n in names]
    acked: set[tuple[str, str]] = set()
    third = asyncio.Event()

    async def act(name: str, client: LiveClient) -> None:
        for kind in kinds:  # one after the other, as a viewer would
            if await flood_action(node, client, name, kind, ids) == "ok":
                acked.add((name, kind))
            if len(acked) >= len(names) * len(kinds) // 3:
                third.set()

    tasks = []
    for name, client in zip(names, viewers, strict=True):  # viewers arriving over a while
        tasks.append(asyncio.ensure_future(act(name, client)))
        await asyncio.sleep(FLOOD_STAGGER_SECONDS)
        if third.is_set():
            break
    await asyncio.wait_for(third.wait(), 30)
    node.kill()  # mid-flood
    await asyncio.gather(*tasks)
    assert 0 < len(acked) < len(names) * len(kinds)  # some answered, some not

    node = show.serve()
    viewers = [await show.client(node, n) for n in names]
    again = {
        (n, k): await flood_action(node, c, n, k, ids)
        for n, c in zip(names, viewers, strict=True)
        for k in kinds
    }
    already = {"upvote": "already_upvoted", "enter": "already_entered", "click": "ok"}
    for (name, kind), outcome in again.items():
        expected = {already[kind]} if (name, kind) in acked else {"ok", already[kind]}
        assert outcome in expected, (name, kind, outcome)

    db = show.data / "livehub.db"
    for kind, event in (
        ("upvote", "qa.upvote"),
        ("enter", "draw.entered"),
        ("click", "offer.click"),
    ):
        per_viewer = logged(db, event)
        assert per_viewer == Counter({f"v_{n.lower()}": 1 for n in names}), (kind, per_viewer)
    host = await show.client(node, "Host", "host")
    listed = await ok(host, "qa_list", {})
    assert listed["questions"][0]["votes"] == len(names)
    draws = (await ok(host, "draw_list"))["draws"]
    assert draws[0]["entrant_count"] == len(names)
    offers = (await ok(host, "offer_list"))["offers"]
    assert offers[0]["clicks"] == len(names)
