"""Q&A: QuestionService over MemoryStore, a real event log and the real rule chain."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass

import pytest

from livehub.errors import LivehubError, RateLimited
from livehub.interactions import questions
from livehub.interactions.questions import (
    MAX_QUESTION_CHARS,
    AskResult,
    QuestionService,
    QuestionState,
    question_view,
    vote_client_id,
)
from livehub.rooms.eventlog import Event
from livehub.rooms.models import Principal, Room, RoomSettings
from livehub.rooms.recorder import room_event
from livehub.rooms.store import StateStore

from .domain import ANN, BOB, CAT, DAN, HOST, MOD, Domain

_ids = itertools.count()


DEFAULT_INTERVAL = RoomSettings().question_interval_seconds


@dataclass
class Env(Domain):
    qa: QuestionService

    async def room(self) -> Room:
        return await self.rooms.get("r1")

    async def ask(
        self,
        who: Principal,
        text: str,
        *,
        anonymous: bool = False,
        force: bool = False,
        cid: str | None = None,
    ) -> AskResult:
        return await self.qa.ask(
            await self.room(),
            who,
            text,
            anonymous=anonymous,
            client_id=cid or f"c{next(_ids)}",
            force=force,
        )

    async def asked(self, who: Principal, text: str, **kw: object) -> QuestionState:
        """Ask and expect a recorded question; moves the clock past the rate limit."""
        result = await self.ask(who, text, **kw)  # type: ignore[arg-type]
        assert result.question is not None, result
        self.clock.advance(DEFAULT_INTERVAL)
        return result.question

    async def refused(self, action: str, who: Principal, *args: object, **kw: object) -> str:
        room = await self.room()
        method = getattr(self.qa, action)
        with pytest.raises(LivehubError) as caught:
            if action == "ask":
                await self.ask(who, *args, **kw)  # type: ignore[arg-type]
            else:
                await method(room, who, *args, **kw)
        return caught.value.code

    async def events(self, prefix: str = "qa.") -> list[Event]:
        return [e async for e in self.log.scan("r1") if e.kind.startswith(prefix)]

    async def kinds(self, prefix: str = "qa.") -> list[str]:
        return [e.kind for e in await self.events(prefix)]

    async def counter(self, viewer: Principal, name: str) -> float:
        return (await self.counters.viewer("r1", "-", viewer.viewer_id)).get(name, 0)

    async def visible_ids(self, sort: str = "votes") -> list[int]:
        return [s.id for s in await self.qa.visible("r1", sort)]  # type: ignore[arg-type]


@pytest.fixture
async def env(domain: Domain) -> Env:
    d = domain
    qa = QuestionService(d.store, d.log, d.counters, d.moderation, clock=d.clock)
    await d.rooms.create("Room", room_id="r1")
    return Env(**d.parts(), qa=qa)


# ---------------------------------------------------------------- asking


async def test_a_question_is_recorded_visible_and_counted(env: Env) -> None:
    result = await env.ask(ANN, "  When   does the  course start? ", cid="ask-1")
    assert result.duplicate is False and result.similar == ()
    state = result.question
    assert state is not None
    assert state.status == "open"
    assert state.question.text == "When does the course start?"
    assert (state.votes, state.answered, state.highlighted) == (0, False, False)

    [event] = await env.events()
    assert event.kind == "qa.asked"
    assert event.id == state.id
    assert event.actor == ANN.viewer_id
    assert event.data == {"text": "When does the course start?", "name": "Ann", "anonymous": False}
    assert await env.log.find("r1", ANN.viewer_id, "qa:ask-1") == event
    assert await env.counter(ANN, "questions") == 1
    assert await env.visible_ids() == [state.id]
    assert (await env.qa.get("r1", state.id)) == state


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("", "empty_question"),
        ("   \u200b\n\t ", "empty_question"),
        ("x" * (MAX_QUESTION_CHARS + 1), "question_too_long"),
    ],
)
async def test_bad_text_is_refused_and_nothing_changes(env: Env, text: str, code: str) -> None:
    before = await env.events("")
    assert await env.refused("ask", ANN, text) == code
    assert await env.events("") == before
    assert await env.store.smembers("qa:r1:open") == set()
    assert await env.visible_ids() == []
    # the refusal took no rate-limit token
    assert (await env.ask(ANN, "A real question?")).question is not None


async def test_the_length_limit_counts_after_cleaning(env: Env) -> None:
    text = "y" * MAX_QUESTION_CHARS
    state = (await env.ask(ANN, f"  {text}\u200b  ")).question
    assert state is not None and state.question.text == text


async def test_one_question_per_minute_per_viewer_on_the_injected_clock(env: Env) -> None:
    assert (await env.ask(ANN, "What is the price?")).question is not None
    env.clock.advance(20)
    with pytest.raises(RateLimited) as caught:
        await env.ask(ANN, "When does the course start?")
    assert caught.value.code == "rate_limited"
    assert caught.value.retry_after == pytest.approx(DEFAULT_INTERVAL - 20)
    assert caught.value.details == {"retry_after": pytest.approx(40.0)}
    assert len(await env.events()) == 1

    # another viewer is not limited by Ann's question
    assert (await env.ask(BOB, "Is there a replay?")).question is not None
    env.clock.advance(DEFAULT_INTERVAL - 20)
    assert (await env.ask(ANN, "When does the course start?")).question is not None
    assert await env.counter(ANN, "questions") == 2


async def test_the_question_interval_is_a_room_setting(env: Env) -> None:
    room = await env.room()
    await env.rooms.update(room.id, "admin", settings={"question_interval_seconds": 10})
    assert (await env.ask(ANN, "What is the price?")).question is not None
    env.clock.advance(5)
    with pytest.raises(RateLimited) as caught:
        await env.ask(ANN, "When does the course start?")
    assert caught.value.retry_after == pytest.approx(5)
    env.clock.advance(5)
    assert (await env.ask(ANN, "When does the course start?")).question is not None

    await env.rooms.update(room.id, "admin", settings={"question_interval_seconds": 0})
    for text in ("Is there a replay?", "Where are the slides?", "Any homework?"):
        assert (await env.ask(ANN, text)).question is not None  # no limit at all


async def test_staff_are_not_rate_limited(env: Env) -> None:
    for text in ("What is the price?", "When does the course start?", "Is there a replay?"):
        assert (await env.ask(HOST, text)).question is not None
    assert len(await env.visible_ids()) == 3


async def test_a_repeated_client_id_returns_the_first_question(env: Env) -> None:
    first = await env.ask(ANN, "What is the price?", cid="same")
    again = await env.ask(ANN, "What is the price?", cid="same")
    assert first.question is not None and again.question is not None
    assert again.duplicate is True
    assert again.question.id == first.question.id
    assert len(await env.events()) == 1
    assert await env.counter(ANN, "questions") == 1
    # Bob's client id is his own
    bob = await env.ask(BOB, "Is there a replay?", cid="same")
    assert bob.question is not None and bob.question.id != first.question.id


async def test_concurrent_sends_of_one_client_id_record_one_question(env: Env) -> None:
    room = await env.room()
    results = await asyncio.gather(
        *(
            env.qa.ask(room, ANN, "What is the price?", anonymous=False, client_id="burst")
            for _ in range(10)
        )
    )
    ids = {r.question.id for r in results if r.question is not None}
    assert len(ids) == 1
    assert sorted(r.duplicate for r in results) == [False] + [True] * 9
    assert len(await env.events()) == 1
    assert await env.counter(ANN, "questions") == 1


async def test_a_recorded_question_missing_from_the_store_is_restored_on_retry(env: Env) -> None:
    state = (await env.ask(ANN, "What is the price?", cid="lost")).question
    assert state is not None
    await env.store.delete("qa:r1:q", "qa:r1:open")  # as if the node died after the commit
    again = await env.ask(ANN, "What is the price?", cid="lost")
    assert again.duplicate and again.question is not None
    assert again.question.id == state.id and again.question.status == "open"
    assert await env.visible_ids() == [state.id]


async def test_muted_viewers_cannot_ask_but_paused_chat_does_not_stop_questions(env: Env) -> None:
    room = await env.room()
    await env.moderation.mute(room, MOD, ANN.viewer_id, 60)
    assert await env.refused("ask", ANN, "What is the price?") == "muted"
    await env.moderation.pause(await env.room(), MOD, True)
    assert (await env.ask(BOB, "What is the price?")).question is not None
    assert [e.actor for e in await env.events()] == [BOB.viewer_id]


# ---------------------------------------------------------------- the rule chain


async def test_a_blocked_word_refuses_the_question_and_records_nothing(env: Env) -> None:
    await env.moderation.add_rule(await env.room(), HOST, "spoiler", "word", "block")
    assert await env.refused("ask", ANN, "Any S.P.O.I.L.E.R for the finale?") == "blocked"
    assert await env.events() == []
    assert await env.kinds("automod.") == ["automod.block"]
    assert await env.visible_ids() == []
    assert await env.counter(ANN, "questions") == 0


async def test_a_mute_rule_refuses_and_mutes(env: Env) -> None:
    await env.moderation.add_rule(await env.room(), HOST, "idiot", "word", "mute", 120)
    assert await env.refused("ask", ANN, "are you an idiot?") == "muted"
    assert await env.refused("ask", ANN, "What is the price?") == "muted"
    assert await env.events() == []


async def test_a_held_question_waits_for_approval(env: Env) -> None:
    await env.moderation.add_rule(await env.room(), HOST, "discount", "word", "hold")
    state = (await env.ask(ANN, "Is there a discount code?")).question
    assert state is not None and state.status == "pending"
    assert state.question.held_by == "rule"
    assert await env.visible_ids() == []
    assert [s.id for s in await env.qa.queue("r1")] == [state.id]
    assert question_view(state, staff=True)["held_by"] == "rule"
    assert "held_by" not in question_view(state, staff=False)
    [event] = await env.events()
    assert event.kind == "qa.held"
    assert event.data["reason"] == "rule"
    assert await env.counter(ANN, "questions") == 0
    # not visible, so not upvotable, answerable or highlightable yet
    assert await env.refused("upvote", BOB, state.id) == "not_found"
    assert await env.refused("answer", HOST, state.id) == "not_found"
    assert await env.refused("highlight", HOST, state.id) == "not_found"

    approved = await env.qa.approve(await env.room(), MOD, state.id)
    assert approved.status == "open"
    assert await env.visible_ids() == [state.id]
    assert await env.qa.queue("r1") == []
    assert await env.kinds() == ["qa.held", "qa.approved"]
    approval = (await env.events())[-1]
    assert approval.actor == MOD.viewer_id
    assert approval.data == {"question_id": state.id, "viewer_id": ANN.viewer_id}
    assert await env.counter(ANN, "questions") == 1
    assert await env.refused("approve", MOD, state.id) == "not_found"
    assert await env.refused("reject", MOD, state.id) == "not_found"


# ---------------------------------------------------------------- approval queue


async def test_require_approval_queues_viewer_questions_not_staff_ones(env: Env) -> None:
    assert await env.qa.require_approval("r1") is False
    await env.qa.set_require_approval(await env.room(), HOST, True)
    assert await env.qa.require_approval("r1") is True
    viewer_q = await env.asked(ANN, "What is the price?")
    staff_q = await env.asked(MOD, "When does the course start?")
    assert viewer_q.status == "pending" and staff_q.status == "open"
    assert (viewer_q.question.held_by, staff_q.question.held_by) == ("approval", None)
    assert await env.visible_ids() == [staff_q.id]
    assert [s.id for s in await env.qa.queue("r1")] == [viewer_q.id]
    held = [e for e in await env.events() if e.kind == "qa.held"]
    assert [e.data["reason"] for e in held] == ["approval"]

    rejected = await env.qa.reject(await env.room(), HOST, viewer_q.id)
    assert rejected.status == "rejected"
    assert (await env.qa.get("r1", viewer_q.id)).status == "rejected"
    assert await env.qa.queue("r1") == []
    assert await env.visible_ids() == [staff_q.id]
    assert await env.counter(ANN, "questions") == 0
    assert await env.refused("upvote", BOB, viewer_q.id) == "not_found"
    assert await env.refused("approve", HOST, viewer_q.id) == "not_found"

    await env.qa.set_require_approval(await env.room(), HOST, False)
    assert (await env.asked(BOB, "Is there a replay?")).status == "open"
    assert "qa.settings" in await env.kinds()


async def test_approve_and_reject_racing_decide_once(env: Env) -> None:
    await env.qa.set_require_approval(await env.room(), HOST, True)
    state = await env.asked(ANN, "What is the price?")
    room = await env.room()
    outcomes = await asyncio.gather(
        env.qa.approve(room, HOST, state.id),
        env.qa.reject(room, MOD, state.id),
        env.qa.approve(room, MOD, state.id),
        return_exceptions=True,
    )
    decided = [o for o in outcomes if isinstance(o, QuestionState)]
    refused = [o for o in outcomes if isinstance(o, LivehubError)]
    assert len(decided) == 1 and len(refused) == 2
    assert {e.code for e in refused} == {"not_found"}
    assert len([k for k in await env.kinds() if k in ("qa.approved", "qa.rejected")]) == 1


# ---------------------------------------------------------------- similar questions


async def test_a_close_question_is_offered_instead_and_nothing_is_recorded(env: Env) -> None:
    reset = await env.asked(BOB, "How do I reset my password?")
    await env.asked(CAT, "When does the course start?")
    offer = await env.ask(ANN, "how can i reset the password", cid="dup-1")
    assert offer.question is None
    assert [(s.id, s.text, s.votes, s.own) for s in offer.similar] == [
        (reset.id, "How do I reset my password?", 0, False)
    ]
    assert len(await env.events()) == 2
    assert await env.counter(ANN, "questions") == 0

    # the offer took no rate-limit token, and the same client id may ask with force
    forced = await env.ask(ANN, "how can i reset the password", cid="dup-1", force=True)
    assert forced.question is not None and forced.duplicate is False
    assert len(await env.visible_ids()) == 3


async def test_similar_offers_the_three_closest_open_unanswered_questions(env: Env) -> None:
    texts = [
        "How do I reset my password?",
        "reset my password please",
        "I forgot my password, how do I reset it",
        "password reset link",
        "What is the price?",
    ]
    states = [await env.asked(HOST, t, force=True) for t in texts]
    offer = await env.ask(ANN, "How do I reset my password?")
    assert [s.id for s in offer.similar] == [states[0].id, states[1].id, states[2].id]

    await env.qa.answer(await env.room(), HOST, states[0].id)
    await env.qa.dismiss(await env.room(), HOST, states[1].id)
    offer = await env.ask(ANN, "How do I reset my password?")
    assert [s.id for s in offer.similar] == [states[2].id, states[3].id]


async def test_similar_flags_the_askers_own_question(env: Env) -> None:
    own = await env.asked(ANN, "这个课程多少钱")
    offer = await env.ask(ANN, "课程多少钱？")
    assert [(s.id, s.own) for s in offer.similar] == [(own.id, True)]
    assert (await env.ask(BOB, "课程什么时候开始")).question is not None


# ---------------------------------------------------------------- upvotes


async def test_upvote_once_unvote_and_upvote_again(env: Env) -> None:
    q = await env.asked(ANN, "What is the price?")
    room = await env.room()
    assert await env.qa.upvote(room, BOB, q.id) == 1
    assert await env.refused("upvote", BOB, q.id) == "already_upvoted"
    assert await env.qa.upvote(room, CAT, q.id) == 2
    assert await env.qa.upvoted("r1", BOB.viewer_id) == {q.id}
    assert await env.qa.unvote(room, BOB, q.id) == 1
    assert await env.refused("unvote", BOB, q.id) == "not_upvoted"
    assert await env.qa.upvoted("r1", BOB.viewer_id) == set()
    assert await env.qa.upvote(room, BOB, q.id) == 2
    assert (await env.qa.get("r1", q.id)).votes == 2

    votes = [e for e in await env.events() if e.kind in ("qa.upvote", "qa.unvote")]
    assert [(e.kind, e.actor) for e in votes] == [
        ("qa.upvote", BOB.viewer_id),
        ("qa.upvote", CAT.viewer_id),
        ("qa.unvote", BOB.viewer_id),
        ("qa.upvote", BOB.viewer_id),
    ]
    # each a numbered operation of its viewer on the question (the log's unique key)
    assert [e.data for e in votes] == [
        {"question_id": q.id, "seq": 0},
        {"question_id": q.id, "seq": 0},
        {"question_id": q.id, "seq": 1},
        {"question_id": q.id, "seq": 2},
    ]
    assert await env.counter(BOB, "upvotes") == 1
    assert await env.counter(CAT, "upvotes") == 1


async def test_concurrent_upvotes_from_one_viewer_count_once(env: Env) -> None:
    q = await env.asked(ANN, "What is the price?")
    room = await env.room()
    outcomes = await asyncio.gather(
        *(env.qa.upvote(room, BOB, q.id) for _ in range(50)), return_exceptions=True
    )
    assert [o for o in outcomes if not isinstance(o, LivehubError)] == [1]
    assert {o.code for o in outcomes if isinstance(o, LivehubError)} == {"already_upvoted"}
    assert (await env.qa.get("r1", q.id)).votes == 1
    assert await env.kinds() == ["qa.asked", "qa.upvote"]


async def test_own_question_missing_and_hidden_questions_cannot_be_upvoted(env: Env) -> None:
    q = await env.asked(ANN, "What is the price?")
    assert await env.refused("upvote", ANN, q.id) == "own_question"
    assert await env.refused("upvote", BOB, 999_999) == "not_found"
    assert await env.refused("unvote", BOB, 999_999) == "not_found"
    await env.qa.dismiss(await env.room(), MOD, q.id)
    assert await env.refused("upvote", BOB, q.id) == "not_found"
    assert await env.kinds() == ["qa.asked", "qa.dismissed"]
    assert (await env.qa.get("r1", q.id)).votes == 0


# ---------------------------------------------------------------- listing


async def test_sorted_by_votes_or_recent(env: Env) -> None:
    a = await env.asked(ANN, "What is the price?")
    b = await env.asked(BOB, "When does the course start?")
    c = await env.asked(CAT, "Is there a replay?")
    room = await env.room()
    await env.qa.upvote(room, ANN, b.id)
    await env.qa.upvote(room, CAT, b.id)
    await env.qa.upvote(room, BOB, c.id)
    assert await env.visible_ids("votes") == [b.id, c.id, a.id]
    assert await env.visible_ids("recent") == [c.id, b.id, a.id]
    assert await env.qa.votes("r1", [a.id, b.id, c.id]) == {a.id: 0, b.id: 2, c.id: 1}


async def test_anonymous_questions_hide_the_author_from_viewers_not_staff(env: Env) -> None:
    q = await env.asked(ANN, "Is it OK to ask a beginner question?", anonymous=True)
    [state] = await env.qa.visible("r1")
    public = question_view(state, staff=False)
    for_bob = question_view(state, staff=False, caller=BOB.viewer_id)
    for_ann = question_view(state, staff=False, caller=ANN.viewer_id)
    for view in (public, for_bob, for_ann):
        assert "name" not in view and "viewer_id" not in view
        assert "Ann" not in str(view) and ANN.viewer_id not in str(view)
        assert view["anonymous"] is True
    assert for_bob["own"] is False and for_ann["own"] is True
    staff = question_view(state, staff=True)
    assert (staff["name"], staff["viewer_id"]) == ("Ann", ANN.viewer_id)

    named = await env.asked(BOB, "Where are the slides?")
    view = question_view(await env.qa.get("r1", named.id), staff=False)
    assert (view["name"], view["viewer_id"]) == ("Bob", BOB.viewer_id)
    assert q.id != named.id


# ---------------------------------------------------------------- staff actions


async def test_answer_marks_once(env: Env) -> None:
    q = await env.asked(ANN, "What is the price?")
    room = await env.room()
    assert (await env.qa.answer(room, HOST, q.id)).answered is True
    assert (await env.qa.answer(room, HOST, q.id)).answered is True
    assert (await env.qa.get("r1", q.id)).answered is True
    assert await env.kinds() == ["qa.asked", "qa.answered"]
    # answered questions stay on the board and may still be upvoted
    assert await env.visible_ids() == [q.id]
    assert await env.qa.upvote(room, BOB, q.id) == 1


async def test_dismiss_hides_for_good(env: Env) -> None:
    q = await env.asked(ANN, "What is the price?")
    room = await env.room()
    dismissed, was_highlighted = await env.qa.dismiss(room, MOD, q.id)
    assert dismissed.status == "dismissed" and was_highlighted is False
    assert await env.visible_ids() == []
    assert (await env.qa.get("r1", q.id)).status == "dismissed"
    for action in ("dismiss", "answer", "highlight"):
        assert await env.refused(action, MOD, q.id) == "not_found"
    [event] = [e for e in await env.events() if e.kind == "qa.dismissed"]
    assert event.actor == MOD.viewer_id
    assert event.data == {"question_id": q.id, "viewer_id": ANN.viewer_id}


async def test_only_one_question_is_highlighted(env: Env) -> None:
    a = await env.asked(ANN, "What is the price?")
    b = await env.asked(BOB, "When does the course start?")
    room = await env.room()
    shown = await env.qa.highlight(room, HOST, a.id)
    assert shown is not None and shown.id == a.id and shown.highlighted
    shown = await env.qa.highlight(room, HOST, b.id)
    assert shown is not None and shown.id == b.id
    flags = {s.id: s.highlighted for s in await env.qa.visible("r1")}
    assert flags == {a.id: False, b.id: True}
    current = await env.qa.highlighted("r1")
    assert current is not None and current.id == b.id

    assert await env.qa.highlight(room, HOST, None) is None
    assert await env.qa.highlighted("r1") is None
    assert not any(s.highlighted for s in await env.qa.visible("r1"))
    marks = [e.data["question_id"] for e in await env.events() if e.kind == "qa.highlighted"]
    assert marks == [a.id, b.id, None]

    assert await env.refused("highlight", HOST, 424242) == "not_found"
    assert await env.qa.highlighted("r1") is None


async def test_dismissing_the_highlighted_question_clears_the_highlight(env: Env) -> None:
    q = await env.asked(ANN, "What is the price?")
    room = await env.room()
    await env.qa.highlight(room, HOST, q.id)
    _, was_highlighted = await env.qa.dismiss(room, HOST, q.id)
    assert was_highlighted is True
    assert await env.qa.highlighted("r1") is None


# ---------------------------------------------------------------- the log is the truth


async def board(qa: QuestionService, viewers: tuple[Principal, ...]) -> dict[str, object]:
    """Everything the Q&A shows, read through a service (to compare two stores)."""
    visible = await qa.visible("r1")
    queue = await qa.queue("r1")
    highlighted = await qa.highlighted("r1")
    ids = [s.id for s in visible + queue]
    return {
        "visible": visible,
        "queue": queue,
        "states": [await qa.get("r1", i) for i in ids],
        "highlight": highlighted.id if highlighted else None,
        "approval": await qa.require_approval("r1"),
        "upvoted": {w.viewer_id: await qa.upvoted("r1", w.viewer_id) for w in viewers},
    }


async def test_rebuild_on_an_empty_store_brings_back_the_whole_board(
    env: Env, both_stores: StateStore
) -> None:
    room = await env.room()
    a = await env.asked(ANN, "What is the price?")
    b = await env.asked(BOB, "When does the course start?")
    gone = await env.asked(CAT, "Is there a replay?")
    await env.moderation.add_rule(room, HOST, "discount", "word", "hold")
    ruled = await env.asked(DAN, "Is there a discount code?")  # held by a rule
    await env.qa.set_require_approval(room, HOST, True)
    waiting = await env.asked(ANN, "Can I pay by card?")
    approved = await env.asked(BOB, "Will slides be shared?")
    rejected = await env.asked(CAT, "Who are you really?")
    await env.qa.approve(room, MOD, approved.id)
    await env.qa.reject(room, MOD, rejected.id)
    for who in (BOB, CAT, DAN):
        await env.qa.upvote(room, who, a.id)
    await env.qa.unvote(room, CAT, a.id)
    await env.qa.upvote(room, ANN, b.id)
    await env.qa.upvote(room, ANN, approved.id)
    await env.qa.unvote(room, ANN, approved.id)
    await env.qa.upvote(room, ANN, approved.id)
    await env.qa.upvote(room, ANN, gone.id)
    await env.qa.answer(room, HOST, b.id)
    await env.qa.dismiss(room, HOST, gone.id)
    await env.qa.highlight(room, HOST, a.id)
    viewers = (ANN, BOB, CAT, DAN)
    before = await board(env.qa, viewers)
    assert before["approval"] is True
    assert [s.id for s in before["queue"]] == [ruled.id, waiting.id]  # type: ignore[attr-defined]
    assert [(s.id, s.votes) for s in before["visible"]] == [  # type: ignore[attr-defined]
        (a.id, 2),
        (b.id, 1),
        (approved.id, 1),
    ]

    # A restart on the memory store, or Redis restarted without persistence.
    fresh = QuestionService(both_stores, env.log, env.counters, env.moderation, clock=env.clock)
    assert (await board(fresh, viewers))["visible"] == []
    await fresh.rebuild("r1")
    assert await board(fresh, viewers) == before
    assert (await fresh.get("r1", gone.id)).status == "dismissed"
    assert (await fresh.get("r1", rejected.id)).status == "rejected"
    assert (await fresh.get("r1", ruled.id)).question.held_by == "rule"
    await fresh.rebuild("r1")  # idempotent
    assert await board(fresh, viewers) == before

    # and it carries on from there: approval still on, votes still one per viewer
    with pytest.raises(LivehubError) as caught:
        await fresh.upvote(room, BOB, a.id)
    assert caught.value.code == "already_upvoted"
    assert await fresh.upvote(room, CAT, a.id) == 3
    assert await fresh.unvote(room, ANN, approved.id) == 0
    env.clock.advance(DEFAULT_INTERVAL)
    late = await fresh.ask(room, CAT, "Any homework?", anonymous=False, client_id="late")
    assert late.question is not None and late.question.status == "pending"


async def test_rebuild_undoes_a_move_the_log_never_recorded(env: Env) -> None:
    room = await env.room()
    await env.qa.set_require_approval(room, HOST, True)
    q = await env.asked(ANN, "What is the price?")
    # An approval killed after the store moved the question, before its event.
    await env.store.srem("qa:r1:pending", str(q.id))
    await env.store.sadd("qa:r1:open", str(q.id))
    await env.store.hincr("qa:r1:votes", str(q.id))
    await env.qa.rebuild("r1")
    state = await env.qa.get("r1", q.id)
    assert (state.status, state.votes) == ("pending", 0)
    assert (await env.qa.approve(room, MOD, q.id)).status == "open"  # the retry
    assert await env.kinds() == ["qa.settings", "qa.held", "qa.approved"]


async def test_a_vote_recorded_by_a_killed_node_is_learned_on_retry(env: Env) -> None:
    room = await env.room()
    q = await env.asked(ANN, "What is the price?")
    # The node was killed after the commit, before the store heard of the upvote.
    event = room_event(
        room, "qa.upvote", BOB.viewer_id, {"question_id": q.id, "seq": 0},
        client_id=vote_client_id(q.id, 0),
    )  # fmt: skip
    await env.log.append(event)
    assert (await env.qa.get("r1", q.id)).votes == 0
    assert await env.refused("upvote", BOB, q.id) == "already_upvoted"  # the retry
    assert (await env.qa.get("r1", q.id)).votes == 1  # learned once
    assert await env.refused("upvote", BOB, q.id) == "already_upvoted"
    assert (await env.qa.get("r1", q.id)).votes == 1
    assert await env.qa.upvoted("r1", BOB.viewer_id) == {q.id}
    assert await env.qa.unvote(room, BOB, q.id) == 0
    assert await env.qa.upvote(room, BOB, q.id) == 1
    votes = [(e.kind, e.data["seq"]) for e in await env.events() if e.actor == BOB.viewer_id]
    assert votes == [("qa.upvote", 0), ("qa.unvote", 1), ("qa.upvote", 2)]


async def test_votes_recorded_before_numbering_keep_their_state(env: Env) -> None:
    room = await env.room()
    q = await env.asked(ANN, "What is the price?")
    for kind in ("qa.upvote", "qa.unvote", "qa.upvote"):  # as the previous version logged
        await env.log.append(room_event(room, kind, BOB.viewer_id, {"question_id": q.id}))
    await env.qa.rebuild("r1")
    assert (await env.qa.get("r1", q.id)).votes == 1
    assert await env.refused("upvote", BOB, q.id) == "already_upvoted"
    assert await env.qa.unvote(room, BOB, q.id) == 0
    assert await env.qa.upvote(room, BOB, q.id) == 1


async def test_a_claim_left_by_a_killed_node_is_taken_over(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(questions, "RACING_RETRY_WAIT_SECONDS", 0.1)
    await env.store.set_if_absent(f"qa:r1:ask:{ANN.viewer_id}:lost", "1", 30)
    result = await env.ask(ANN, "What is the price?", cid="lost")
    assert result.question is not None and not result.duplicate
    again = await env.ask(ANN, "What is the price?", cid="lost")
    assert again.duplicate and again.question is not None
    assert again.question.id == result.question.id
    assert await env.kinds() == ["qa.asked"]


async def test_staff_moves_killed_halfway_are_settled_by_the_log(env: Env) -> None:
    room = await env.room()
    await env.qa.set_require_approval(room, HOST, True)
    first = await env.asked(ANN, "What is the price?")
    second = await env.asked(BOB, "When does the course start?")
    # Killed after taking the first out of the queue, before recording anything:
    await env.store.srem("qa:r1:pending", str(first.id))
    assert (await env.qa.approve(room, MOD, first.id)).status == "open"  # the retry
    # Killed after recording the second's approval, before the store moved it:
    await env.store.srem("qa:r1:pending", str(second.id))
    data = {"question_id": second.id, "viewer_id": BOB.viewer_id}
    await env.log.append(room_event(room, "qa.approved", MOD.viewer_id, data))
    assert await env.refused("approve", MOD, second.id) == "not_found"  # already approved
    assert sorted(await env.visible_ids()) == [first.id, second.id]
    # A dismissal killed after taking the question off the board:
    await env.store.srem("qa:r1:open", str(first.id))
    dismissed, _ = await env.qa.dismiss(room, HOST, first.id)
    assert dismissed.status == "dismissed"
    assert await env.visible_ids() == [second.id]
    assert (await env.kinds()).count("qa.dismissed") == 1
