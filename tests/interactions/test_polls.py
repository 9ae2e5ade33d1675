"""Polls: PollService over MemoryStore, a real event log and the real rule chain."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

import pytest

from livehub.errors import LivehubError
from livehub.interactions.polls import Ballot, Poll, PollService, PollSpec, poll_view
from livehub.rooms.eventlog import Event, NewEvent
from livehub.rooms.memory_store import MemoryStore
from livehub.rooms.models import Principal, Room
from livehub.rooms.recovery import RESTORE_LEASE_SECONDS

from .domain import ANN, BOB, CAT, HOST, Domain


@dataclass
class Env(Domain):
    polls: PollService
    room: Room

    async def events(self, prefix: str = "poll.") -> list[Event]:
        return [e async for e in self.log.scan("r1") if e.kind.startswith(prefix)]

    async def fresh_room(self) -> Room:
        return await self.rooms.get("r1")

    async def poll(self, kind: str = "single", opened: bool = True, **kw: object) -> Poll:
        options = kw.pop(
            "options", ("Red", "Green", "Blue") if kind in ("single", "multiple") else ()
        )
        spec = PollSpec(question="Favourite?", kind=kind, options=options, **kw)  # type: ignore[arg-type]
        poll = await self.polls.create(self.room, HOST, spec)
        return await self.polls.open(self.room, HOST, poll.id) if opened else poll

    async def vote(
        self, who: Principal, poll: Poll, *choices: int, text: str | None = None
    ) -> object:
        room = await self.fresh_room()
        return await self.polls.vote(room, who, poll.id, Ballot(choices=choices, text=text))

    async def refused(
        self, who: Principal, poll_id: str, *choices: int, text: str | None = None
    ) -> str:
        room = await self.fresh_room()
        with pytest.raises(LivehubError) as caught:
            await self.polls.vote(room, who, poll_id, Ballot(choices=choices, text=text))
        return caught.value.code

    async def votes(self, viewer: str) -> float:
        return (await self.counters.viewer("r1", "-", viewer)).get("votes", 0)


@pytest.fixture
async def env(domain: Domain) -> Env:
    d = domain
    polls = PollService(d.store, d.log, d.counters, d.moderation, clock=d.clock)
    room = await d.rooms.create("Room", room_id="r1")
    return Env(**d.parts(), polls=polls, room=room)


# ---------------------------------------------------------------- creating


@pytest.mark.parametrize(
    ("kind", "options", "extra"),
    [
        ("single", ("Only one",), {}),
        ("single", ("Same", "same"), {}),
        ("single", ("A", ""), {}),
        ("single", tuple(f"o{i}" for i in range(11)), {}),
        ("rating", ("1", "2"), {}),
        ("word_cloud", ("a", "b"), {}),
        ("single", ("A", "B"), {"max_choices": 1}),
        ("multiple", ("A", "B"), {"max_choices": 3}),
        ("single", ("A", "B"), {"timer_seconds": 4}),
        ("single", ("A", "B"), {"timer_seconds": 3601}),
    ],
)
async def test_bad_polls_are_refused_and_nothing_is_stored(
    env: Env, kind: str, options: tuple[str, ...], extra: dict[str, int]
) -> None:
    spec = PollSpec(question="Q?", kind=kind, options=options, **extra)  # type: ignore[arg-type]
    with pytest.raises(LivehubError) as caught:
        await env.polls.create(env.room, HOST, spec)
    assert caught.value.code == "bad_poll"
    assert await env.polls.polls("r1") == []
    assert await env.events() == []


async def test_a_poll_is_created_as_a_draft_with_clean_text(env: Env) -> None:
    spec = PollSpec(question="  Best\u200b colour?  ", kind="single", options=(" Red ", "Blue"))
    poll = await env.polls.create(env.room, HOST, spec)
    assert (poll.question, poll.options, poll.status) == ("Best colour?", ("Red", "Blue"), "draft")
    rating = await env.poll("rating", opened=False)
    assert rating.options == ("1", "2", "3", "4", "5")
    assert [p.id for p in await env.polls.polls("r1")] == [poll.id, rating.id]
    created = await env.events("poll.created")
    assert [(e.actor, e.data["poll"]["id"]) for e in created] == [
        ("v_host", poll.id),
        ("v_host", rating.id),
    ]


# ---------------------------------------------------------------- voting


async def test_one_vote_per_viewer_and_the_tally(env: Env) -> None:
    draft = await env.poll(opened=False)
    assert await env.refused(ANN, draft.id, 0) == "poll_closed"
    poll = await env.polls.open(env.room, HOST, draft.id)
    await env.vote(ANN, poll, 1)
    await env.vote(BOB, poll, 1)
    await env.vote(CAT, poll, 2)
    assert await env.refused(ANN, poll.id, 0) == "already_voted"
    tally = await env.polls.tally(poll)
    assert (tally.turnout, tally.counts) == (3, (0, 2, 1))
    assert await env.votes("v_ann") == 1
    votes = await env.events("poll.vote")
    assert sorted((e.actor, tuple(e.data["choices"])) for e in votes) == [
        ("v_ann", (1,)),
        ("v_bob", (1,)),
        ("v_cat", (2,)),
    ]
    assert await env.refused(ANN, "p_nope", 0) == "not_found"


async def test_a_hundred_concurrent_votes_from_one_viewer_count_once(env: Env) -> None:
    poll = await env.poll()
    room = await env.fresh_room()
    results = await asyncio.gather(
        *(env.polls.vote(room, ANN, poll.id, Ballot(choices=(i % 3,))) for i in range(100)),
        return_exceptions=True,
    )
    accepted = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, LivehubError)]
    assert len(accepted) == 1 and len(refused) == 99
    assert {r.code for r in refused} == {"already_voted"}
    tally = await env.polls.tally(poll)
    assert tally.turnout == 1 and sum(tally.counts) == 1
    assert len(await env.events("poll.vote")) == 1
    assert await env.votes("v_ann") == 1


async def test_the_log_refuses_a_second_vote_even_if_the_store_forgot(env: Env) -> None:
    poll = await env.poll()
    await env.vote(ANN, poll, 0)
    await env.store.delete(f"poll:r1:{poll.id}:vote:v_ann")  # e.g. a Redis that lost its data
    assert await env.refused(ANN, poll.id, 1) == "already_voted"
    assert (await env.polls.tally(poll)).counts == (1, 0, 0)
    assert len(await env.events("poll.vote")) == 1


@pytest.mark.parametrize(
    ("kind", "choices", "max_choices"),
    [
        ("single", (), None),
        ("single", (3,), None),
        ("single", (-1,), None),
        ("single", (0, 1), None),
        ("multiple", (1, 1), None),
        ("multiple", (0, 1, 2), 2),
        ("rating", (5,), None),
        ("rating", (1, 2), None),
    ],
)
async def test_bad_choices_change_nothing(
    env: Env, kind: str, choices: tuple[int, ...], max_choices: int | None
) -> None:
    poll = await env.poll(kind, max_choices=max_choices)
    assert await env.refused(ANN, poll.id, *choices) == "bad_choice"
    assert await env.refused(ANN, poll.id, text="words") == "bad_choice"
    tally = await env.polls.tally(poll)
    assert tally.turnout == 0 and sum(tally.counts) == 0
    assert await env.votes("v_ann") == 0
    # the viewer may still vote properly
    await env.vote(ANN, poll, 0)
    assert (await env.polls.tally(poll)).turnout == 1


async def test_multiple_choice_and_rating_tallies(env: Env) -> None:
    multi = await env.poll("multiple", max_choices=2)
    await env.vote(ANN, multi, 2, 0)
    await env.vote(BOB, multi, 0)
    tally = await env.polls.tally(multi)
    assert (tally.turnout, tally.counts) == (2, (2, 0, 1))
    rating = await env.poll("rating")
    await env.vote(ANN, rating, 4)  # five stars
    await env.vote(BOB, rating, 1)  # two stars
    view = poll_view(rating, await env.polls.tally(rating), env.clock(), staff=True)
    assert view["tally"] == {"counts": [0, 1, 0, 0, 1], "average": 3.5}


async def test_the_timer_closes_the_poll_by_server_time(env: Env) -> None:
    poll = await env.poll(timer_seconds=10)
    assert poll.closes_at == env.clock() + 10
    env.clock.now = poll.closes_at - 0.01
    await env.vote(ANN, poll, 0)
    env.clock.now = poll.closes_at  # the deadline itself is too late
    assert await env.refused(BOB, poll.id, 0) == "poll_closed"
    stored = await env.polls.get("r1", poll.id)
    assert stored.status == "open" and stored.status_at(env.clock()) == "closed"
    closed = await env.polls.expire(env.room, poll.id)
    assert closed is not None and closed.status == "closed"
    assert await env.polls.expire(env.room, poll.id) is None
    assert [(e.actor, e.data["by"]) for e in await env.events("poll.closed")] == [
        ("timer", "timer")
    ]
    assert (await env.polls.tally(poll)).turnout == 1


async def test_closed_polls_refuse_votes_and_cannot_reopen(env: Env) -> None:
    poll = await env.poll()
    await env.vote(ANN, poll, 0)
    await env.polls.close(env.room, HOST, poll.id)
    assert await env.refused(BOB, poll.id, 0) == "poll_closed"
    with pytest.raises(LivehubError) as caught:
        await env.polls.open(env.room, HOST, poll.id)
    assert caught.value.code == "poll_closed"
    assert (await env.polls.tally(poll)).turnout == 1


# ---------------------------------------------------------------- visibility


async def test_hidden_results_show_viewers_only_the_turnout(env: Env) -> None:
    poll = await env.poll()
    await env.vote(ANN, poll, 2)
    tally = await env.polls.tally(poll)
    public = poll_view(poll, tally, env.clock(), staff=False)
    staff = poll_view(poll, tally, env.clock(), staff=True)
    assert public["turnout"] == 1 and "tally" not in public
    assert staff["tally"] == {"counts": [0, 0, 1]}
    shown = await env.polls.set_results(env.room, HOST, poll.id, True)
    assert poll_view(shown, tally, env.clock(), staff=False)["tally"] == {"counts": [0, 0, 1]}
    assert [e.data for e in await env.events("poll.results")] == [
        {"poll_id": poll.id, "visible": True}
    ]


async def test_what_viewers_may_see_and_their_own_votes(env: Env) -> None:
    draft = await env.poll(opened=False)
    open_poll = await env.poll()
    hidden = await env.poll()
    shown = await env.poll()
    await env.vote(ANN, open_poll, 1)
    await env.vote(ANN, shown, 0)
    for poll in (hidden, shown):
        await env.polls.close(env.room, HOST, poll.id)
    await env.polls.set_results(env.room, HOST, shown.id, True)
    visible = await env.polls.visible_polls("r1")
    assert [p.id for p in visible] == [open_poll.id, shown.id]
    assert draft.id not in {p.id for p in visible}
    mine = await env.polls.my_votes("r1", "v_ann", visible)
    assert mine == {open_poll.id: Ballot(choices=(1,)), shown.id: Ballot(choices=(0,))}
    assert await env.polls.my_votes("r1", "v_bob", visible) == {}


async def test_anonymous_votes_are_flagged_and_never_listed(env: Env) -> None:
    poll = await env.poll(anonymous=True)
    await env.vote(ANN, poll, 1)
    (event,) = await env.events("poll.vote")
    assert event.data["anonymous"] is True and event.data["choices"] == [1]
    view = poll_view(poll, await env.polls.tally(poll), env.clock(), staff=True)
    assert view["anonymous"] is True and view["tally"] == {"counts": [0, 1, 0]}
    assert "v_ann" not in json.dumps(view)
    named = await env.poll()
    await env.vote(ANN, named, 0)
    flags = [e.data["anonymous"] for e in await env.events("poll.vote")]
    assert flags == [True, False]


# ---------------------------------------------------------------- word cloud


async def test_word_cloud_counts_clean_words(env: Env) -> None:
    poll = await env.poll("word_cloud")
    await env.vote(ANN, poll, text="  Cat\u200b ")
    await env.vote(BOB, poll, text="cat")
    await env.vote(CAT, poll, text="Dog house")
    tally = await env.polls.tally(poll)
    assert [(w.word, w.count) for w in tally.words] == [("cat", 2), ("dog house", 1)]
    assert tally.turnout == 3
    assert await env.refused(ANN, poll.id, text="again") == "already_voted"


async def test_word_cloud_refuses_bad_words(env: Env) -> None:
    poll = await env.poll("word_cloud")
    assert await env.refused(ANN, poll.id, text="x" * 41) == "bad_choice"
    assert await env.refused(ANN, poll.id, text=" \u200b ") == "bad_choice"
    assert await env.refused(ANN, poll.id, 0) == "bad_choice"
    await env.vote(ANN, poll, text="y" * 40)
    assert [w.word for w in (await env.polls.tally(poll)).words] == ["y" * 40]


async def test_word_cloud_runs_the_rule_chain(env: Env) -> None:
    await env.moderation.add_rule(env.room, HOST, "badword", "word", "block")
    room = await env.fresh_room()
    await env.moderation.add_rule(room, HOST, "meh", "word", "hold")
    poll = await env.poll("word_cloud")
    assert await env.refused(ANN, poll.id, text="BADWORD") == "blocked"
    assert (await env.polls.tally(poll)).turnout == 0
    assert await env.votes("v_ann") == 0
    held = await env.vote(BOB, poll, text="meh")
    assert held.held is True  # type: ignore[attr-defined]
    await env.vote(ANN, poll, text="great")  # refused before, so Ann may still vote
    tally = await env.polls.tally(poll)
    assert [w.word for w in tally.words] == ["great"]
    assert [(w.word, w.count) for w in tally.held_words] == [("meh", 1)]
    assert tally.turnout == 2
    shown = await env.polls.set_results(env.room, HOST, poll.id, True)
    public = poll_view(shown, tally, env.clock(), staff=False)
    staff = poll_view(shown, tally, env.clock(), staff=True)
    assert "meh" not in json.dumps(public)
    assert staff["tally"]["held_words"] == [{"word": "meh", "count": 1}]  # type: ignore[index]
    (held_event,) = [e for e in await env.events("poll.vote") if e.actor == "v_bob"]
    assert held_event.data["held"] is True and held_event.data["text"] == "meh"


# ---------------------------------------------------------------- the log is the truth


def _vote_claim(poll: Poll, viewer_id: str) -> str:
    """The store key of a viewer's one-vote claim (as the service names it)."""
    return f"poll:{poll.room}:{poll.id}:vote:{viewer_id}"


async def _restarted(env: Env) -> PollService:
    """The service of a node started afresh: an empty store over the same log, rebuilt."""
    fresh = PollService(
        MemoryStore(clock=env.clock), env.log, env.counters, env.moderation, clock=env.clock
    )
    await fresh.rebuild("r1")
    return fresh


async def _everything(polls: PollService, viewers: list[str]) -> object:
    """Every poll, its tally and everyone's ballot, as a reader of the store sees them."""
    found = await polls.polls("r1")
    return (
        found,
        [await polls.tally(p) for p in found],
        [await polls.my_votes("r1", viewer, found) for viewer in viewers],
    )


async def test_a_fresh_store_is_rebuilt_from_the_log_with_tallies_and_timers(env: Env) -> None:
    room = await env.fresh_room()
    await env.moderation.add_rule(room, HOST, "meh", "word", "hold")
    draft = await env.poll(opened=False)
    timed = await env.poll(timer_seconds=60)
    await env.vote(ANN, timed, 1)
    await env.vote(BOB, timed, 2)
    multi = await env.poll("multiple")
    await env.vote(ANN, multi, 0, 2)
    cloud = await env.poll("word_cloud")
    await env.vote(ANN, cloud, text="Sunny")
    await env.vote(BOB, cloud, text="meh")
    await env.vote(CAT, cloud, text="sunny")
    await env.polls.close(env.room, HOST, cloud.id)
    await env.polls.set_results(env.room, HOST, cloud.id, True)
    env.clock.advance(20)
    viewers = ["v_ann", "v_bob", "v_cat"]
    before = await _everything(env.polls, viewers)

    fresh = await _restarted(env)

    assert await _everything(fresh, viewers) == before
    rebuilt = await fresh.get("r1", timed.id)
    assert rebuilt.status == "open" and rebuilt.closes_at == timed.closes_at  # 40 s left
    assert (await fresh.get("r1", draft.id)).status == "draft"
    # the rebuilt store goes on: one vote each, the tally on top of the old one
    room = await env.fresh_room()
    with pytest.raises(LivehubError) as caught:
        await fresh.vote(room, ANN, timed.id, Ballot(choices=(0,)))
    assert caught.value.code == "already_voted"
    await fresh.vote(room, CAT, timed.id, Ballot(choices=(2,)))
    tally = await fresh.tally(rebuilt)
    assert (tally.turnout, tally.counts) == (3, (0, 1, 2))
    later = await fresh.create(room, HOST, PollSpec(question="Next?", kind="rating"))
    assert later.seq > cloud.seq  # the sequence goes on: polls stay in creation order
    assert [p.id for p in await fresh.polls("r1")][-1] == later.id
    # and the timer runs out when it would have: at its absolute closes_at
    env.clock.now = (timed.closes_at or 0) - 0.01
    assert await fresh.expire(room, timed.id) is None
    env.clock.now = timed.closes_at or 0
    closed = await fresh.expire(room, timed.id)
    assert closed is not None and closed.closes_at == timed.closes_at


async def test_rebuilding_twice_changes_nothing(env: Env) -> None:
    poll = await env.poll()
    await env.vote(ANN, poll, 0)
    await env.vote(BOB, poll, 0)
    before = await _everything(env.polls, ["v_ann", "v_bob"])
    await env.polls.rebuild("r1")  # over the store it came from: overwritten, not added
    await env.polls.rebuild("r1")
    assert await _everything(env.polls, ["v_ann", "v_bob"]) == before
    assert (await env.polls.tally(poll)).counts == (2, 0, 0)


async def test_a_claim_left_by_a_crash_does_not_refuse_the_vote(env: Env) -> None:
    poll = await env.poll()
    cloud = await env.poll("word_cloud")
    # a node claimed these votes in the store and died before they reached the log
    await env.store.set(_vote_claim(poll, "v_ann"), '{"choices":[2]}')
    await env.store.set(_vote_claim(cloud, "v_ann"), '{"text":"old"}')
    await env.vote(ANN, poll, 1)  # the retry is taken, once
    await env.vote(ANN, cloud, text="new")
    assert await env.refused(ANN, poll.id, 0) == "already_voted"
    assert await env.refused(ANN, cloud.id, text="again") == "already_voted"
    votes = await env.events("poll.vote")
    assert [(e.actor, e.data["poll_id"]) for e in votes] == [
        ("v_ann", poll.id),
        ("v_ann", cloud.id),
    ]
    assert (await env.polls.tally(poll)).counts == (0, 1, 0)
    assert [w.word for w in (await env.polls.tally(cloud)).words] == ["new"]
    mine = await env.polls.my_votes("r1", "v_ann", [poll, cloud])
    assert mine == {poll.id: Ballot(choices=(1,)), cloud.id: Ballot(text="new")}
    assert await env.votes("v_ann") == 2


async def test_two_requests_racing_a_crashed_claim_count_once(env: Env) -> None:
    poll = await env.poll()
    await env.store.set(_vote_claim(poll, "v_ann"), '{"choices":[2]}')
    room = await env.fresh_room()
    results = await asyncio.gather(
        *(env.polls.vote(room, ANN, poll.id, Ballot(choices=(c,))) for c in (0, 1)),
        return_exceptions=True,
    )
    refused = [r for r in results if isinstance(r, LivehubError)]
    assert len(refused) == 1 and refused[0].code == "already_voted"
    assert len(await env.events("poll.vote")) == 1
    assert (await env.polls.tally(poll)).turnout == 1


async def test_the_timer_closes_once_when_several_nodes_hold_it(env: Env) -> None:
    poll = await env.poll(timer_seconds=10)
    other_node = PollService(env.store, env.log, env.counters, env.moderation, clock=env.clock)
    env.clock.advance(10)
    closed = await asyncio.gather(
        env.polls.expire(env.room, poll.id), other_node.expire(env.room, poll.id)
    )
    assert sum(c is not None for c in closed) == 1
    assert [e.actor for e in await env.events("poll.closed")] == ["timer"]


async def test_events_of_older_versions_rebuild_too(env: Env) -> None:
    """``poll.opened`` without ``opened_at``, ``poll.closed`` without ``closes_at``."""
    poll = await env.poll(opened=False, timer_seconds=30)
    old = [
        ("poll.opened", {"poll_id": poll.id, "closes_at": env.clock() + 30}, 0.0),
        ("poll.closed", {"poll_id": poll.id, "by": "staff"}, 12.0),
    ]
    for kind, data, after in old:
        stamp = env.clock() + after
        await env.log.append(NewEvent(room="r1", kind=kind, actor="v_host", data=data, ts=stamp))
    fresh = await _restarted(env)
    rebuilt = await fresh.get("r1", poll.id)
    assert (rebuilt.status, rebuilt.opened_at, rebuilt.closes_at) == (
        "closed",
        env.clock(),
        env.clock() + 12,
    )


async def test_a_lost_poll_comes_back_at_the_first_ask_or_is_unavailable_meanwhile(
    env: Env,
) -> None:
    poll = await env.poll()
    await env.vote(ANN, poll, 0)
    emptied = MemoryStore(clock=env.clock)
    node = PollService(emptied, env.log, env.counters, env.moderation, clock=env.clock)
    room = await env.fresh_room()
    # another node holds the claim on restoring it: try again
    await emptied.set(f"poll:r1:{poll.id}:restoring", "1", ttl=RESTORE_LEASE_SECONDS)
    with pytest.raises(LivehubError) as caught:
        await node.vote(room, BOB, poll.id, Ballot(choices=(1,)))
    assert (caught.value.code, caught.value.status) == ("unavailable", 503)
    with pytest.raises(LivehubError) as caught:
        await node.vote(room, BOB, "p_nothing", Ballot(choices=(1,)))
    assert caught.value.code == "not_found"
    env.clock.advance(RESTORE_LEASE_SECONDS)  # that node died: its claim runs out
    await node.vote(room, BOB, poll.id, Ballot(choices=(1,)))  # restored here, then counted
    assert (await node.tally(poll)).counts == (1, 1, 0)
    with pytest.raises(LivehubError) as caught:
        await node.vote(room, ANN, poll.id, Ballot(choices=(1,)))
    assert caught.value.code == "already_voted"


async def test_a_rebuild_leaves_the_polls_the_store_holds_to_the_live_nodes(env: Env) -> None:
    poll = await env.poll()
    await env.vote(ANN, poll, 0)
    # what a live node counted meanwhile, after this rebuild read the log
    await env.store.hset(f"poll:r1:{poll.id}:tally", {"o1": "7", "turnout": "8"})
    await env.polls.close(env.room, HOST, poll.id)
    other_node = PollService(env.store, env.log, env.counters, env.moderation, clock=env.clock)
    (logged,) = await other_node.rebuild("r1")
    assert logged.status == "closed"
    tally = await env.polls.tally(poll)
    assert (tally.turnout, tally.counts) == (8, (1, 7, 0))  # not written over


async def test_a_live_tally_gets_the_settled_votes_a_killed_node_never_counted(env: Env) -> None:
    poll = await env.poll()
    await env.vote(ANN, poll, 0)

    async def logged_only(who: Principal, choice: int) -> None:
        """A node claimed and logged this vote, then died before counting it."""
        await env.store.set(_vote_claim(poll, who.viewer_id), f'{{"choices":[{choice}]}}')
        data = {"poll_id": poll.id, "kind": "single", "anonymous": False, "choices": [choice]}
        event = NewEvent(
            "r1", "poll.vote", who.viewer_id, data, None, f"vote:{poll.id}", env.clock()
        )
        await env.log.append(event)

    await logged_only(BOB, 2)
    env.clock.advance(5)
    await logged_only(CAT, 1)  # just now: perhaps still on its way to the store
    restarted = PollService(env.store, env.log, env.counters, env.moderation, clock=env.clock)
    await restarted.rebuild("r1")
    tally = await env.polls.tally(poll)
    assert (tally.turnout, tally.counts) == (2, (1, 0, 1))  # Bob's added, Cat's not yet
    env.clock.advance(RESTORE_LEASE_SECONDS)
    await restarted.rebuild("r1")  # Cat's is settled now: added once, Bob's not again
    tally = await env.polls.tally(poll)
    assert (tally.turnout, tally.counts) == (3, (1, 1, 1))
    env.clock.advance(RESTORE_LEASE_SECONDS)
    await restarted.rebuild("r1")
    assert (await env.polls.tally(poll)).turnout == 3
