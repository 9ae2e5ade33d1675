"""DrawService over both state stores and a real event log, with a driven clock."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from fake_clock import Clock

from livehub.errors import Conflict, Forbidden, LivehubError, NotFound, ProtocolError, UserError
from livehub.interactions import draw_proof as proof
from livehub.interactions.chat import ChatService
from livehub.interactions.draws import (
    DrawRule,
    DrawService,
    KeywordRule,
    PresentRule,
    QuizCorrectRule,
    WatchedRule,
    entry_client_id,
)
from livehub.interactions.messages import Draft
from livehub.rooms.counters import Counters
from livehub.rooms.eventlog import Event, NewEvent
from livehub.rooms.memory_store import MemoryStore
from livehub.rooms.models import Principal, Room, RoomSettings
from livehub.rooms.presence import Presence
from livehub.rooms.recorder import room_event
from livehub.rooms.service import RoomService
from livehub.rooms.store import StateStore

from .domain import ANN, BOB, CAT, DAN, HOST, MOD, Domain, viewer

SEED_SECRET = "test-seed-secret"


@pytest.fixture
def clock() -> Clock:
    return Clock(50_000.0)


@pytest.fixture
def store(both_stores: StateStore) -> StateStore:
    return both_stores


@dataclass
class Env(Domain):
    presence: Presence
    chat: ChatService
    draws: DrawService

    async def room(self) -> Room:
        await self.rooms.create("Room", room_id="r1")
        live, _ = await self.rooms.start_stream("r1", "admin")
        return live

    async def events(self, prefix: str = "draw.") -> list[Event]:
        return [e async for e in self.log.scan("r1") if e.kind.startswith(prefix)]

    async def create(self, room: Room, rule: DrawRule | None = None, **kw: Any) -> str:
        values: dict[str, Any] = {"prize": "A mug", "winners": 1, "window_seconds": 60}
        values.update(kw)
        draw = await self.draws.create(
            room,
            HOST,
            values["prize"],
            values["winners"],
            rule or PresentRule(),
            values["window_seconds"],
        )
        return draw.id


@pytest.fixture
def env(domain: Domain) -> Env:
    d = domain
    presence = Presence(d.store, d.log, d.counters, clock=d.clock)
    chat = ChatService(d.store, d.log, d.counters, d.moderation, clock=d.clock)
    draws = DrawService(
        d.store, d.log, d.counters, d.rooms, presence, d.moderation, SEED_SECRET, clock=d.clock
    )
    return Env(**d.parts(), presence=presence, chat=chat, draws=draws)


async def refused(coro: Any) -> LivehubError:
    with pytest.raises(LivehubError) as info:
        await coro
    return info.value


async def counter(env: Env, room: Room, who: Principal, name: str) -> float:
    return (await env.counters.viewer(room.id, room.scope, who.viewer_id)).get(name, 0.0)


async def test_present_draw_end_to_end(env: Env) -> None:
    room = await env.room()
    draw_id = await env.create(room, winners=2)
    for who in (ANN, BOB, CAT):
        await env.draws.enter(room, who, draw_id)

    err = await refused(env.draws.enter(room, ANN, draw_id))
    assert (type(err), err.code) == (Conflict, "already_entered")
    for staff in (HOST, MOD):
        err = await refused(env.draws.enter(room, staff, draw_id))
        assert (type(err), err.code) == (Forbidden, "staff_not_eligible")
    assert await env.draws.entrant_count(await env.draws.get(room.id, draw_id)) == 3

    env.clock.advance(60)  # the window ends by server time
    err = await refused(env.draws.enter(room, DAN, draw_id))
    assert (type(err), err.code) == (UserError, "draw_closed")
    [closed] = await env.draws.close_expired()
    assert closed.status == "closed" and closed.entrant_count == 3
    assert await env.draws.close_expired() == []

    committed, fresh = await env.draws.commit(room, HOST, draw_id)
    assert fresh and committed.status == "committed" and committed.seed is None
    assert committed.winners == ()
    revealed, fresh = await env.draws.reveal(room, HOST, draw_id)
    assert fresh and revealed.status == "revealed" and len(revealed.winners) == 2
    assert (await env.draws.reveal(room, HOST, draw_id))[1] is False  # a retry changes nothing

    transcript = await env.draws.transcript(room.id, draw_id)
    assert proof.verify(transcript) == (True, "ok")
    assert transcript["entrants"] == sorted(w.viewer_id for w in (ANN, BOB, CAT))
    assert transcript["commitment"] == committed.commitment
    assert transcript["winners"] == [w.viewer_id for w in revealed.winners]
    assert revealed.seed == transcript["seed"]

    kinds = [e.kind for e in await env.events()]
    assert kinds == [
        "draw.created",
        "draw.entered",
        "draw.entered",
        "draw.entered",
        "draw.closed",
        "draw.committed",
        "draw.revealed",
    ]
    entered = [e for e in await env.events() if e.kind == "draw.entered"]
    assert [e.actor for e in entered] == ["v_ann", "v_bob", "v_cat"]
    closed_event = next(e for e in await env.events() if e.kind == "draw.closed")
    assert closed_event.data["entrants"] == transcript["entrants"]
    committed_event = next(e for e in await env.events() if e.kind == "draw.committed")
    # never the seed: a nonce, from which the seed comes again with the server's secret
    assert "seed" not in committed_event.data
    nonce = committed_event.data["seed_nonce"]
    message = f"draw-seed|r1|{draw_id}|{nonce}".encode()
    assert hmac.new(SEED_SECRET.encode(), message, hashlib.sha256).hexdigest() == revealed.seed

    winners = {w.viewer_id for w in revealed.winners}
    for who in (ANN, BOB, CAT):
        assert await counter(env, room, who, "draw_entries") == 1
        assert await counter(env, room, who, "draw_wins") == (who.viewer_id in winners)


async def test_entry_after_a_staff_close_and_unknown_draw(env: Env) -> None:
    room = await env.room()
    draw_id = await env.create(room)
    await env.draws.enter(room, ANN, draw_id)
    closed, fresh = await env.draws.close(room, MOD.viewer_id, draw_id)
    assert fresh and closed.entrant_count == 1
    assert (await env.draws.close(room, MOD.viewer_id, draw_id))[1] is False
    err = await refused(env.draws.enter(room, BOB, draw_id))
    assert err.code == "draw_closed"
    err = await refused(env.draws.enter(room, BOB, "d_nope"))
    assert (type(err), err.code) == (NotFound, "not_found")
    err = await refused(env.draws.transcript(room.id, draw_id))
    assert (type(err), err.code) == (NotFound, "not_revealed")
    err = await refused(env.draws.transcript(room.id, "d_nope"))
    assert err.code == "not_found"


async def test_only_staff_create_and_pick(env: Env) -> None:
    room = await env.room()
    err = await refused(env.draws.create(room, ANN, "Mug", 1, PresentRule(), 60))
    assert (type(err), err.code) == (Forbidden, "forbidden")
    draw_id = await env.create(room)
    err = await refused(env.draws.commit(room, ANN, draw_id))
    assert err.code == "forbidden"
    assert (await env.draws.get(room.id, draw_id)).status == "open"


@pytest.mark.parametrize(
    ("kw", "rule", "code"),
    [
        ({"prize": " \u200b "}, None, "bad_prize"),
        ({"prize": "x" * 81}, None, "bad_prize"),
        ({"winners": 0}, None, "bad_payload"),
        ({"winners": 101}, None, "bad_payload"),
        ({"window_seconds": 9}, None, "bad_payload"),
        ({"window_seconds": 3601}, None, "bad_payload"),
        ({}, KeywordRule(keyword="\u200b\u200b"), "bad_keyword"),
        ({}, KeywordRule(keyword="k" * 41), "bad_keyword"),
    ],
)
async def test_bad_input_changes_nothing(
    env: Env, kw: dict[str, Any], rule: DrawRule | None, code: str
) -> None:
    room = await env.room()
    err = await refused(env.create(room, rule, **kw))
    assert (type(err), err.code) == (ProtocolError, code)
    assert await env.draws.draws(room.id) == []
    assert await env.events() == []


async def test_watched_draw_needs_watch_time(env: Env) -> None:
    room = await env.room()
    draw_id = await env.create(room, WatchedRule(minutes=5))
    await env.counters.add_watch(room.id, room.scope, ANN.viewer_id, 299.0)
    err = await refused(env.draws.enter(room, ANN, draw_id))
    assert (type(err), err.code) == (UserError, "not_eligible")
    assert err.details == {"watched_seconds": 299, "needed_seconds": 300}

    # Watch time since the last accrual counts: a connected viewer accrues on entry.
    await env.presence.join(room, ANN)
    env.clock.advance(1.5)
    await env.draws.enter(room, ANN, draw_id)
    assert await env.draws.has_entered(await env.draws.get(room.id, draw_id), ANN.viewer_id)
    err = await refused(env.draws.enter(room, BOB, draw_id))
    assert err.code == "not_eligible"


async def test_keyword_draw_enters_chat_senders_of_the_window(env: Env) -> None:
    room = await env.room()

    async def say(who: Principal, text: str) -> int:
        result = await env.chat.send(room, who, Draft(text=text, client_id=f"{who.name}{text}"))
        return result.message.id

    await say(CAT, "MUGMUG before the draw")  # before the window: does not count
    draw_id = await env.create(room, KeywordRule(keyword="  MugMug "), window_seconds=30)
    assert (await env.draws.get(room.id, draw_id)).rule == KeywordRule(keyword="MugMug")
    env.clock.advance(1)
    await say(ANN, "I want it: mugmug!")
    await say(BOB, "no keyword here")
    await say(MOD, "mugmug")  # staff never enter
    deleted = await say(DAN, "mugmug")
    await env.moderation.delete(room, MOD, deleted)

    err = await refused(env.draws.enter(room, BOB, draw_id))
    assert (type(err), err.code) == (UserError, "keyword_required")
    assert err.details == {"keyword": "MugMug"}
    await env.draws.enter(room, ANN, draw_id)  # allowed: she sent it

    env.clock.advance(30)
    await say(CAT, "mugmug too late")
    [closed] = await env.draws.close_expired()
    assert closed.entrant_count == 1
    assert await env.draws.has_entered(closed, ANN.viewer_id)
    assert not await env.draws.has_entered(closed, BOB.viewer_id)
    await env.draws.commit(room, HOST, draw_id)
    revealed, _ = await env.draws.reveal(room, HOST, draw_id)
    transcript = await env.draws.transcript(room.id, draw_id)
    assert transcript["entrants"] == [ANN.viewer_id]
    assert [(w.viewer_id, w.name) for w in revealed.winners] == [(ANN.viewer_id, "Ann")]


async def test_quiz_correct_draw_reads_the_quiz_answers(env: Env) -> None:
    room = await env.room()
    for who in (ANN, BOB, CAT, DAN, MOD):
        await env.presence.join(room, who)

    async def answer(who: Principal, quiz_id: str, correct: bool) -> None:
        await env.log.append(
            NewEvent(
                room=room.id,
                kind="quiz.answer",
                actor=who.viewer_id,
                data={"quiz_id": quiz_id, "index": 0, "correct": correct, "points": 10},
                stream=room.stream.id if room.stream else None,
                ts=env.clock(),
            )
        )

    await answer(ANN, "q1", True)
    await answer(BOB, "q1", False)
    await answer(CAT, "q2", True)
    await answer(MOD, "q1", True)  # staff never enter
    any_quiz = await env.create(room, QuizCorrectRule())
    only_q1 = await env.create(room, QuizCorrectRule(quiz_id="q1"))
    err = await refused(env.draws.enter(room, DAN, any_quiz))
    assert err.code == "automatic_entry"
    await answer(DAN, "q1", True)  # during the window: counts

    for draw_id, expected in (
        (any_quiz, ["v_ann", "v_cat", "v_dan"]),
        (only_q1, ["v_ann", "v_dan"]),
    ):
        await env.draws.close(room, HOST.viewer_id, draw_id)
        await env.draws.commit(room, HOST, draw_id)
        revealed, _ = await env.draws.reveal(room, HOST, draw_id)
        transcript = await env.draws.transcript(room.id, draw_id)
        assert transcript["entrants"] == expected
        assert revealed.winners[0].name in {"Ann", "Cat", "Dan"}  # names from presence


async def test_banned_viewers_are_dropped_at_close(env: Env) -> None:
    room = await env.room()
    draw_id = await env.create(room, winners=5)
    for who in (ANN, BOB):
        await env.draws.enter(room, who, draw_id)
    await env.moderation.ban(room, MOD, BOB.viewer_id, "spam")
    closed, _ = await env.draws.close(room, HOST.viewer_id, draw_id)
    assert closed.entrant_count == 1
    await env.draws.commit(room, HOST, draw_id)
    revealed, _ = await env.draws.reveal(room, HOST, draw_id)
    assert [w.viewer_id for w in revealed.winners] == [ANN.viewer_id]


async def test_pick_closes_an_open_draw_and_handles_no_entrants(env: Env) -> None:
    room = await env.room()
    draw_id = await env.create(room)
    committed, fresh = await env.draws.commit(room, HOST, draw_id)
    assert fresh and committed.entrant_count == 0
    revealed, _ = await env.draws.reveal(room, HOST, draw_id)
    assert revealed.winners == ()
    transcript = await env.draws.transcript(room.id, draw_id)
    assert transcript["entrants"] == [] and proof.verify(transcript) == (True, "ok")
    kinds = [e.kind for e in await env.events()]
    assert kinds == ["draw.created", "draw.closed", "draw.committed", "draw.revealed"]


async def test_entries_racing_a_close_are_either_in_the_list_or_refused(env: Env) -> None:
    room = await env.room()
    draw_id = await env.create(room, winners=100)
    viewers = [viewer(f"P{i:03d}") for i in range(60)]

    async def enter(who: Principal) -> bool:
        try:
            await env.draws.enter(room, who, draw_id)
        except UserError as err:
            assert err.code == "draw_closed"
            return False
        return True

    tasks = [asyncio.ensure_future(enter(w)) for w in viewers]
    await asyncio.sleep(0)
    closed, _ = await env.draws.close(room, HOST.viewer_id, draw_id)
    outcomes = await asyncio.gather(*tasks)
    accepted = sorted(w.viewer_id for w, ok in zip(viewers, outcomes, strict=True) if ok)
    await env.draws.commit(room, HOST, draw_id)
    await env.draws.reveal(room, HOST, draw_id)
    transcript = await env.draws.transcript(room.id, draw_id)
    assert transcript["entrants"] == accepted
    assert closed.entrant_count == len(accepted)


async def test_concurrent_closes_close_once(env: Env) -> None:
    room = await env.room()
    draw_id = await env.create(room)
    await env.draws.enter(room, ANN, draw_id)
    results = await asyncio.gather(
        *(env.draws.close(room, who.viewer_id, draw_id) for who in (HOST, MOD, HOST))
    )
    assert sum(fresh for _, fresh in results) == 1
    assert [(d.status, d.entrant_count) for d, _ in results] == [("closed", 1)] * 3
    kinds = [e.kind for e in await env.events()]
    assert kinds.count("draw.closed") == 1
    assert await counter(env, room, ANN, "draw_entries") == 1


async def test_concurrent_picks_commit_and_reveal_once(env: Env) -> None:
    room = await env.room()
    draw_id = await env.create(room, winners=2)
    for who in (ANN, BOB, CAT, DAN):
        await env.draws.enter(room, who, draw_id)
    await env.draws.close(room, HOST.viewer_id, draw_id)
    commits = await asyncio.gather(*(env.draws.commit(room, HOST, draw_id) for _ in range(5)))
    assert sum(fresh for _, fresh in commits) == 1
    reveals = await asyncio.gather(
        *(env.draws.reveal(room, HOST, draw_id) for _ in range(5)), return_exceptions=True
    )
    fresh = [r for r in reveals if isinstance(r, tuple) and r[1]]
    assert len(fresh) == 1
    for r in reveals:
        assert isinstance(r, tuple) or (isinstance(r, Conflict) and r.code == "pick_in_progress")
    kinds = [e.kind for e in await env.events()]
    assert kinds.count("draw.committed") == 1 and kinds.count("draw.revealed") == 1
    assert sum([await counter(env, room, w, "draw_wins") for w in (ANN, BOB, CAT, DAN)]) == 2


async def test_transcript_outlives_the_state_store(env: Env, tmp_path: Path) -> None:
    room = await env.room()
    draw_id = await env.create(room)
    await env.draws.enter(room, ANN, draw_id)
    await env.draws.commit(room, HOST, draw_id)
    await env.draws.reveal(room, HOST, draw_id)
    expected = await env.draws.transcript(room.id, draw_id)

    fresh_store = MemoryStore(clock=env.clock)  # a restart of a memory-store node
    rooms = RoomService(env.rooms._repo, fresh_store, env.log, RoomSettings(), clock=env.clock)
    restarted = DrawService(
        fresh_store,
        env.log,
        Counters(fresh_store),
        rooms,
        env.presence,
        env.moderation,
        SEED_SECRET,
    )
    assert await restarted.transcript(room.id, draw_id) == expected


# -- the log is the truth ----------------------------------------------------------------


async def shown(draws: DrawService, room: Room, viewers: tuple[Principal, ...]) -> Any:
    """Everything the draws show, read through a service (to compare two stores)."""
    listed = await draws.draws(room.id)
    return [
        (
            d,
            await draws.entrant_count(d),
            [await draws.has_entered(d, w.viewer_id) for w in viewers],
            await draws.transcript(room.id, d.id) if d.status == "revealed" else None,
        )
        for d in listed
    ]


def emptied(env: Env, request: pytest.FixtureRequest) -> StateStore:
    """The store after a restart: a new memory store, or the Redis flushed (restarted
    without persistence)."""
    if isinstance(env.store, MemoryStore):
        return MemoryStore(clock=env.clock)
    client = redis.Redis.from_url(request.getfixturevalue("redis_url"))
    try:
        client.flushall()
    finally:
        client.close()
    return env.store


async def test_rebuild_on_an_empty_store_brings_back_every_draw(
    env: Env, request: pytest.FixtureRequest
) -> None:
    room = await env.room()
    everyone = (ANN, BOB, CAT, DAN)

    async def draw_with(*entrants: Principal) -> str:
        draw_id = await env.create(room, winners=2)
        for who in entrants:
            await env.draws.enter(room, who, draw_id)
        return draw_id

    revealed = await draw_with(ANN, BOB, CAT)
    await env.draws.commit(room, HOST, revealed)
    await env.draws.reveal(room, HOST, revealed)
    committed = await draw_with(BOB, CAT)
    await env.draws.commit(room, HOST, committed)  # killed before the reveal
    closed = await draw_with(CAT)
    await env.draws.close(room, HOST.viewer_id, closed)
    env.clock.advance(20)
    still_open = await draw_with(ANN, BOB)  # closes at +60: 40 s after the others' start
    before = await shown(env.draws, room, everyone)

    store = emptied(env, request)
    presence = Presence(store, env.log, Counters(store), clock=env.clock)
    fresh = DrawService(
        store,
        env.log,
        Counters(store),
        env.rooms,
        presence,
        env.moderation,
        SEED_SECRET,
        clock=env.clock,
    )
    assert await fresh.draws(room.id) == []
    await fresh.rebuild(room.id)
    assert await shown(fresh, room, everyone) == before
    await fresh.rebuild(room.id)  # idempotent
    assert await shown(fresh, room, everyone) == before

    # The committed draw reveals what its commitment promised.
    done, is_fresh = await fresh.reveal(room, HOST, committed)
    assert is_fresh and len(done.winners) == 2
    transcript = await fresh.transcript(room.id, committed)
    assert proof.verify(transcript) == (True, "ok")
    promised = next(d for d, *_ in before if d.id == committed).commitment
    assert promised is not None and transcript["commitment"] == promised
    # The open one takes entries, one per viewer, and closes when its time is up.
    err = await refused(fresh.enter(room, ANN, still_open))
    assert err.code == "already_entered"
    await fresh.enter(room, DAN, still_open)
    env.clock.advance(59)
    assert await fresh.close_expired() == []
    env.clock.advance(1)
    [expired] = await fresh.close_expired()
    assert (expired.id, expired.entrant_count) == (still_open, 3)


async def test_an_entry_recorded_by_a_killed_node_counts_once(env: Env) -> None:
    room = await env.room()
    draw_id = await env.create(room)
    # Ann's entry was committed, then the node died before the store heard of it.
    entry = room_event(
        room, "draw.entered", ANN.viewer_id, {"draw_id": draw_id, "name": "Ann"},
        client_id=entry_client_id(draw_id),
    )  # fmt: skip
    await env.log.append(entry)
    # Bob's claim was taken by the previous version, which died before logging it.
    await env.store.set(f"draw:r1:{draw_id}:entry:{BOB.viewer_id}", "1")
    draw = await env.draws.get(room.id, draw_id)
    assert await env.draws.entrant_count(draw) == 0

    err = await refused(env.draws.enter(room, ANN, draw_id))  # Ann's retry
    assert err.code == "already_entered"
    assert await env.draws.entrant_count(draw) == 1
    assert await env.draws.has_entered(draw, ANN.viewer_id)
    await env.draws.enter(room, BOB, draw_id)  # Bob's retry is accepted
    closed, _ = await env.draws.close(room, HOST.viewer_id, draw_id)
    assert closed.entrant_count == 2
    entered = [e.actor for e in await env.events() if e.kind == "draw.entered"]
    assert sorted(entered) == [ANN.viewer_id, BOB.viewer_id]


async def test_the_entrant_list_is_frozen_from_the_log_not_the_store(env: Env) -> None:
    room = await env.room()
    draw_id = await env.create(room)
    await env.draws.enter(room, ANN, draw_id)
    await env.store.delete(f"draw:r1:{draw_id}:entrants")  # the cache lost it
    closed, _ = await env.draws.close(room, HOST.viewer_id, draw_id)
    assert closed.entrant_count == 1


async def test_an_unreadable_event_does_not_stop_the_rebuild(env: Env) -> None:
    room = await env.room()
    await env.log.append(room_event(room, "draw.created", HOST.viewer_id, {"draw_id": "d_bad"}))
    draw_id = await env.create(room)
    await env.draws.enter(room, ANN, draw_id)
    await env.store.delete("draws:r1", f"draw:r1:{draw_id}:entrants")
    await env.draws.rebuild(room.id)
    [draw] = await env.draws.draws(room.id)
    assert draw.id == draw_id and await env.draws.entrant_count(draw) == 1
