"""The engagement report: a scripted stream with hand-computed numbers, a property
test against a plain fold, the CSV, the REST API, the command line, and a stream
through a real server checked against the live counters."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import Server

from livehub.cli import main as cli_main
from livehub.reports import export
from livehub.reports.builder import ReportBuilder, events_hash, pseudonym
from livehub.reports.model import Report, ViewerRow
from livehub.reports.source import build_from_log
from livehub.rooms.eventlog import Event, EventLog, NewEvent, connect

T0 = 1_700_000_000.0
ROOM = "hall"
STREAM = "s_0123456789"


class Script:
    """Writes events with explicit times into a real event log."""

    def __init__(self, log: EventLog, room: str = ROOM, stream: str | None = STREAM) -> None:
        self.log = log
        self.room = room
        self.stream = stream

    async def at(
        self, offset: float, kind: str, actor: str, /, stream: str | bool | None = True, **data: Any
    ) -> Event:
        event, _ = await self.log.append(
            NewEvent(
                room=self.room,
                kind=kind,
                actor=actor,
                data=data,
                stream=self.stream if stream is True else (stream or None),
                ts=T0 + offset,
            )
        )
        return event


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[tuple[EventLog, aiosqlite.Connection, Path]]:
    path = tmp_path / "livehub.db"
    log = await EventLog.open(path, "NORMAL")
    conn = await connect(path, "NORMAL")
    yield log, conn, path
    await conn.close()
    await log.close()


async def build(
    db: tuple[EventLog, aiosqlite.Connection, Path], stream: str = STREAM, now: float = T0 + 10_000
) -> Report:
    log, conn, _ = db
    return await build_from_log(log, conn, ROOM, stream, now=now)


def row(report: Report, viewer_id: str, stream: str = STREAM) -> ViewerRow:
    pid = pseudonym(stream, viewer_id)
    found = [r for r in report.viewers if r.pid == pid]
    assert len(found) == 1, f"no single row for {viewer_id}"
    return found[0]


async def scripted_stream(script: Script) -> dict[str, int]:
    """Host h1; viewers A, B, C (张三), D. Returns ids needed later. Times are offsets (s)."""
    s = script
    await s.at(0, "stream.started", "h1", stream_id=STREAM)
    await s.at(0, "presence.join", "h1", name="Host", role="host")
    await s.at(0, "presence.join", "va", name="Ann", role="viewer")
    await s.at(30, "presence.join", "vb", name="Bob", role="viewer")
    chat = {"mode": "scroll", "color": "#ffffff", "offset_ms": 0}
    await s.at(60, "chat.message", "va", name="Ann", role="viewer", text="hi", **chat)
    b_msg = await s.at(65, "chat.message", "vb", name="Bob", role="viewer", text="yo", **chat)
    await s.at(70, "chat.message", "h1", name="Host", role="host", text="welcome", **chat)
    await s.at(90, "like", "va", count=5)
    await s.at(95, "like", "vb", count=3)
    await s.at(100, "like", "va", count=2)
    poll = {"id": "p1", "question": "Tea or coffee?", "kind": "single"}
    poll |= {"options": ["tea", "coffee"], "anonymous": False}
    await s.at(120, "poll.created", "h1", poll=poll)
    await s.at(120, "poll.opened", "h1", poll_id="p1", closes_at=None)
    vote = {"poll_id": "p1", "kind": "single", "anonymous": False}
    await s.at(130, "poll.vote", "va", choices=[0], **vote)
    await s.at(140, "poll.vote", "vb", choices=[1], **vote)
    await s.at(150, "poll.closed", "h1", poll_id="p1", by="staff")
    await s.at(150, "presence.join", "vc", name="张三", role="viewer")
    questions = [
        {"text": "2+2", "options": ["3", "4"], "correct": [1], "time_limit_seconds": 20},
        {"text": "1+1", "options": ["2", "5"], "correct": [0], "time_limit_seconds": 20},
    ]
    await s.at(
        180, "quiz.created", "h1", quiz={"id": "q1", "title": "Sums", "questions": questions}
    )
    await s.at(180, "quiz.question_opened", "h1", quiz_id="q1", index=0, deadline=T0 + 200)
    answer = {"quiz_id": "q1"}
    await s.at(185, "quiz.answer", "va", index=0, choices=[1], correct=True, points=900,
               response_ms=5000, **answer)  # fmt: skip
    await s.at(186, "quiz.answer", "vb", index=0, choices=[0], correct=False, points=0,
               response_ms=6000, **answer)  # fmt: skip
    await s.at(200, "quiz.question_opened", "h1", quiz_id="q1", index=1, deadline=T0 + 220)
    await s.at(205, "quiz.answer", "va", index=1, choices=[0], correct=True, points=950,
               response_ms=5000, **answer)  # fmt: skip
    qb = await s.at(210, "qa.asked", "vb", text="Why?", name="Bob", anonymous=False)
    await s.at(220, "qa.asked", "vc", text="How?", name="张三", anonymous=True)
    await s.at(225, "qa.upvote", "va", question_id=qb.id)
    await s.at(230, "qa.answered", "h1", question_id=qb.id)
    offer = {"offer_id": "o1", "title": "Mug deal", "text": "", "url": "https://shop.example/"}
    await s.at(240, "offer.pushed", "h1", cta=None, created_at=T0 + 240, **offer)
    await s.at(250, "offer.click", "va", offer_id="o1")
    rule = {"kind": "present"}
    await s.at(260, "draw.created", "h1", draw_id="d1", prize="Mug", winners_count=1,
               rule=rule, window_seconds=60, closes_at=T0 + 320)  # fmt: skip
    await s.at(270, "draw.entered", "va", draw_id="d1", name="Ann")
    await s.at(275, "draw.entered", "vc", draw_id="d1", name="张三")
    await s.at(300, "presence.leave", "vb")
    names = {"va": "Ann", "vc": "张三"}
    await s.at(320, "draw.closed", "system", draw_id="d1", entrant_count=2,
               entrants_hash="x", entrants=["va", "vc"], names=names)  # fmt: skip
    transcript = {"draw_id": "d1", "prize": "Mug", "entrants": ["va", "vc"], "winners": ["vc"]}
    await s.at(330, "draw.revealed", "h1", draw_id="d1", transcript=transcript)
    await s.at(340, "chat.sampled", "system", dropped=7)
    await s.at(350, "mod.mute", "h1", viewer_id="vc", seconds=60, until=T0 + 410)
    await s.at(360, "mod.delete", "h1", message_id=b_msg.id, viewer_id="vb")
    await s.at(400, "presence.join", "vb", name="Bob", role="viewer")
    await s.at(420, "chat.message", "vc", name="张三", role="viewer", text="你好", **chat)
    await s.at(450, "presence.leave", "vc")
    await s.at(500, "presence.join", "vd", name="Dee", role="viewer")
    await s.at(510, "offer.click", "vd", offer_id="o1")
    await s.at(530, "presence.leave", "vd")
    await s.at(600, "stream.stopped", "h1", stream_id=STREAM)
    return {"question_b": qb.id}


# -- (1) a scripted stream, computed by hand -----------------------------------------------


async def test_scripted_stream_numbers_by_hand(db: Any) -> None:
    ids = await scripted_stream(Script(db[0]))
    report = await build(db)
    s = report.summary
    # Start t0 (stream.started), end t0+600 (stream.stopped): 600 s, 10 minutes.
    assert (report.meta.started_at, report.meta.ended_at) == (T0, T0 + 600)
    assert s.duration_seconds == 600
    assert report.meta.live is False
    # Viewers: A, B, C, D (the host h1 is staff, listed apart).
    assert s.unique_viewers == 4
    assert [r.name for r in report.staff] == ["Host"]
    # Watch: A 0..600 = 600 (never left: to the end); B 30..300 + 400..600 = 270 + 200 = 470;
    # C 150..450 = 300; D 500..530 = 30. Total 1400 s.
    watch = {v: row(report, v).watch_seconds for v in ("va", "vb", "vc", "vd")}
    assert watch == {"va": 600, "vb": 470, "vc": 300, "vd": 30}
    assert s.total_watch_seconds == 1400
    assert s.average_watch_seconds == 350.0  # 1400 / 4
    assert s.average_viewers == round(1400 / 600, 4)  # 2.3333
    # Concurrency: A,B from 30 (2); C at 150 -> 3 (first peak); B out at 300, back at 400.
    assert (s.peak_viewers, s.peak_at) == (3, T0 + 150)
    # Messages: A, B, host, C = 4 (staff included, like the room counter); likes 5+3+2.
    assert (s.chat_messages, s.likes) == (4, 10)
    assert (s.questions_asked, s.questions_answered) == (2, 1)
    # Poll open 120..150: A and B present (C joined at 150, as it closed), both voted.
    assert (s.polls, s.poll_votes, s.poll_turnout) == (1, 2, 1.0)
    # Quiz: 3 answers, 2 correct; answerers A, B of 4 viewers.
    assert (s.quiz_answers, s.quiz_accuracy, s.quiz_participation) == (3, 0.6667, 0.5)
    assert (s.draws, s.draw_entries) == (1, 2)
    # Offer: clicked by A and D: 2 / 4 viewers.
    assert (s.offers, s.offer_clicks, s.offer_conversion) == (1, 2, 0.5)
    # N: A 1 msg + 2 like events + 1 vote + 2 answers + 1 upvote + 1 entry + 1 click = 9;
    #    B 1 + 1 + 1 + 1 + 1 question = 5; C 1 msg + 1 question + 1 entry = 3; D 1 click.
    assert s.interactions == 18
    assert s.watch_minutes == round(1400 / 60, 3)
    assert s.engagement_rate == round(18 / (1400 / 60), 4)  # 0.7714
    # Lift: engaged (voted/answered/asked) A, B, C: 1 clicker of 3; others: D, 1 of 1.
    lift = s.lift
    assert (lift.engaged_viewers, lift.engaged_clickers, lift.engaged_conversion) == (3, 1, 0.3333)
    assert (lift.other_viewers, lift.other_clickers, lift.other_conversion) == (1, 1, 1.0)
    assert lift.lift == 0.3333
    assert s.sampled_away == 7
    assert s.moderation_by_kind == {"mod.delete": 1, "mod.mute": 1}
    assert s.moderation_actions == 2

    # Per minute (minute m = (60m, 60m+60]); viewers at each minute's end:
    minutes = report.timeline.minutes
    assert [m.viewers for m in minutes] == [2, 2, 3, 3, 3, 2, 3, 2, 2, 2]
    assert [m.peak_viewers for m in minutes] == [2, 2, 3, 3, 3, 2, 3, 3, 3, 2]
    assert [m.joins for m in minutes] == [2, 0, 1, 0, 0, 0, 1, 0, 1, 0]
    assert [m.leaves for m in minutes] == [0, 0, 0, 0, 0, 1, 0, 1, 1, 0]
    assert [m.messages for m in minutes] == [0, 3, 0, 0, 0, 0, 0, 1, 0, 0]
    assert [m.likes for m in minutes] == [0, 10, 0, 0, 0, 0, 0, 0, 0, 0]
    assert sum(m.interactions for m in minutes) == 18
    kinds = [(mk.kind, mk.offset_seconds) for mk in report.timeline.markers]
    assert kinds == [
        ("poll.opened", 120),
        ("poll.closed", 150),
        ("quiz.question", 180),
        ("quiz.question", 200),
        ("offer.pushed", 240),
        ("draw.created", 260),
        ("draw.closed", 320),
        ("draw.revealed", 330),
    ]
    # Retention: A 0-9, B 0-4 and 6-9, C 2-7, D 8 -> watching per minute / 4 viewers.
    assert report.retention.shares == [0.5, 0.5, 0.75, 0.75, 0.75, 0.5, 0.75, 0.75, 0.75, 0.5]
    # Joined in the first 5 minutes: A, B, C: (600 + 470 + 300) / 3.
    assert report.retention.early_viewers == 3
    assert report.retention.early_average_watch_seconds == round(1370 / 3, 1)

    a, b, c, d = (row(report, v) for v in ("va", "vb", "vc", "vd"))
    assert (a.votes, a.answers, a.correct_answers, a.quiz_score) == (1, 2, 2, 1850)
    assert (a.upvotes, a.draw_entries, a.draw_wins, a.offer_clicks) == (1, 1, 0, 1)
    assert (a.first_join, a.last_leave) == (T0, None)
    assert (b.first_join, b.last_leave, b.questions) == (T0 + 30, None, 1)
    assert (c.name, c.draw_entries, c.draw_wins, c.last_leave) == ("张三", 1, 1, T0 + 450)
    assert (d.last_leave, d.offer_clicks) == (T0 + 530, 1)
    # Activity (watch, messages, likes, votes+answers, questions+upvotes); tops 600,1,7,3,1.
    assert a.activity_score == 10.0
    assert b.activity_score == round(2 * 470 / 600 + 2 + 2 * 3 / 7 + 2 * 2 / 3 + 2, 1)  # 7.8
    assert c.activity_score == 5.0  # 1 + 2 + 0 + 0 + 2
    assert d.activity_score == 0.1  # 2 * 30 / 600
    assert [r.pid for r in report.viewers] == [a.pid, b.pid, c.pid, d.pid]
    host = report.staff[0]
    assert (host.role, host.watch_seconds, host.messages, host.moderation_actions) == (
        "host",
        600,
        1,
        2,
    )

    segments = {seg.key: sorted(p.name for p in seg.viewers) for seg in report.segments}
    assert segments == {
        "engaged_no_click": ["Bob", "张三"],
        "clicked_offer": ["Ann", "Dee"],
        "left_early": ["Dee"],  # C stayed exactly 300 s: not "within five minutes"
        "all_quiz": ["Ann"],
        "unanswered": ["张三"],
    }

    (poll,) = report.interactions.polls
    assert [(o.label, o.count) for o in poll.options] == [("tea", 1), ("coffee", 1)]
    assert (poll.voters, poll.present, poll.turnout) == (2, 2, 1.0)
    (quiz,) = report.interactions.quizzes
    assert [(q.answers, q.correct_answers, q.accuracy) for q in quiz.questions] == [
        (2, 1, 0.5),
        (1, 1, 1.0),
    ]
    assert quiz.questions[0].average_response_ms == 5500
    assert [(e.rank, e.name, e.score) for e in quiz.leaderboard] == [
        (1, "Ann", 1850),
        (2, "Bob", 0),
    ]
    qs = {q.question_id: q for q in report.interactions.questions}
    assert qs[ids["question_b"]].answered and qs[ids["question_b"]].votes == 1
    anonymous = [q for q in qs.values() if q.anonymous]
    assert [(q.pid, q.name, q.answered) for q in anonymous] == [(None, None, False)]
    (draw,) = report.interactions.draws
    assert (draw.status, draw.entrants, [w.name for w in draw.winners]) == ("revealed", 2, ["张三"])
    assert draw.transcript is not None and draw.transcript["winners"] == ["vc"]
    (offer,) = report.interactions.offers
    assert (offer.clicks, offer.conversion) == (2, 0.5)
    moderation = report.interactions.moderation
    assert (moderation.viewers_muted, [m.name for m in moderation.by_moderator]) == (1, ["Host"])

    # Coverage: every event of the stream, hashed over the ids in order.
    ids_in_log = [e.id async for e in db[0].scan(ROOM, STREAM)]
    assert report.meta.event_count == len(ids_in_log)
    assert (
        report.meta.events_hash
        == hashlib.sha256(",".join(map(str, ids_in_log)).encode()).hexdigest()
    )
    # Nothing but pseudonyms: no viewer id anywhere outside the draw's public transcript.
    body = json.loads(export.to_json(report))
    body["interactions"]["draws"][0]["transcript"] = None
    text = json.dumps(body, ensure_ascii=False)
    for viewer_id in ("va", "vb", "vc", "vd", "h1"):
        assert f'"{viewer_id}"' not in text


async def test_pseudonyms_are_per_stream() -> None:
    assert pseudonym("s_1", "viewer-1") == pseudonym("s_1", "viewer-1")
    assert pseudonym("s_1", "viewer-1") != pseudonym("s_2", "viewer-1")
    assert len(pseudonym("s_1", "viewer-1")) == 12


async def test_viewers_connected_before_the_stream_and_polls_prepared_before(db: Any) -> None:
    s = Script(db[0])
    before = {"stream": None}
    poll = {"id": "p9", "question": "Ready?", "kind": "single", "options": ["yes", "no"]}
    await s.at(-300, "poll.created", "h1", poll=poll | {"anonymous": True}, **before)
    await s.at(-200, "presence.join", "vf", name="Fay", role="viewer", **before)
    await s.at(-150, "presence.leave", "vf", **before)  # gone before the start
    await s.at(-100, "presence.join", "ve", name="Eve", role="viewer", **before)
    await s.at(-50, "presence.join", "vg", name="Gus", role="viewer", **before)
    await s.at(-40, "presence.join", "m1", name="Mod", role="moderator", **before)
    await s.at(0, "stream.started", "h1", stream_id=STREAM)
    await s.at(10, "poll.opened", "h1", poll_id="p9", closes_at=T0 + 40)
    await s.at(20, "poll.vote", "ve", poll_id="p9", kind="single", anonymous=True, choices=[1])
    await s.at(60, "presence.leave", "ve")
    await s.at(120, "stream.stopped", "h1", stream_id=STREAM)
    report = await build(db)
    # E and G were connected when it started: joined at the start. F had left. M is staff.
    assert report.summary.unique_viewers == 2
    assert (row(report, "ve").watch_seconds, row(report, "vg").watch_seconds) == (60, 120)
    assert row(report, "ve").first_join == T0
    assert [r.role for r in report.staff] == ["moderator"]
    (p,) = report.interactions.polls
    # Prepared before the stream, opened in it; its timer closed it at 40 s.
    assert (p.question, p.anonymous, [o.count for o in p.options]) == ("Ready?", True, [0, 1])
    assert (p.voters, p.present, p.turnout) == (1, 2, 0.5)
    # Anonymous poll: the per-viewer table holds counts only, never a choice.
    assert row(report, "ve").votes == 1
    assert "no" not in {f for f in ViewerRow.__struct_fields__}
    # Only the stream's own events are covered.
    assert report.meta.event_count == 5


async def test_live_preview_ends_now_and_counts_open_presence(db: Any) -> None:
    s = Script(db[0])
    await s.at(0, "stream.started", "h1", stream_id=STREAM)
    await s.at(5, "presence.join", "va", name="Ann", role="viewer")
    log, conn, _ = db
    from livehub.rooms.models import Stream

    record = Stream(id=STREAM, room=ROOM, started_at=T0)
    report = await build_from_log(log, conn, ROOM, STREAM, now=T0 + 65, record=record)
    assert report.meta.live and report.meta.ended_at == T0 + 65
    assert row(report, "va").watch_seconds == 60
    assert row(report, "va").last_leave is None
    assert len(report.timeline.minutes) == 2


async def test_events_hash_changes_when_an_event_is_added(db: Any) -> None:
    s = Script(db[0])
    await s.at(0, "stream.started", "h1", stream_id=STREAM)
    await s.at(5, "like", "va", count=1)
    first = await build(db)
    again = await build(db)
    await s.at(6, "like", "va", count=1)
    after = await build(db)
    assert first.meta.events_hash == again.meta.events_hash
    assert after.meta.events_hash != first.meta.events_hash
    assert after.meta.event_count == first.meta.event_count + 1


async def test_held_content_counts_once_released_and_automod_once(db: Any) -> None:
    s = Script(db[0])
    await s.at(0, "stream.started", "h1", stream_id=STREAM)
    await s.at(0, "presence.join", "m1", name="Mod", role="moderator")
    await s.at(1, "presence.join", "va", name="Ann", role="viewer")
    held = await s.at(5, "chat.held", "va", name="Ann", role="viewer", text="hmm")
    message = {"id": held.id, "viewer_id": "va", "name": "Ann", "role": "viewer", "text": "hmm"}
    await s.at(9, "mod.approve", "m1", message_id=held.id, message=message)
    q1 = await s.at(10, "qa.held", "va", text="A?", name="Ann", anonymous=False, reason="rule")
    q2 = await s.at(11, "qa.held", "va", text="B?", name="Ann", anonymous=False, reason="rule")
    await s.at(12, "qa.approved", "m1", question_id=q1.id, viewer_id="va")
    await s.at(13, "qa.rejected", "m1", question_id=q2.id, viewer_id="va")
    await s.at(14, "automod.ban", "automod", viewer_id="va", rule_id="r1", text="bad")
    await s.at(14, "mod.ban", "automod", viewer_id="va", reason="automod")
    await s.at(60, "stream.stopped", "h1", stream_id=STREAM)
    report = await build(db)
    ann = row(report, "va")
    # The held message counts when approved; of two held questions one was approved.
    assert (ann.messages, ann.questions) == (1, 1)
    assert report.summary.chat_messages == 1
    statuses = [(q.question_id, q.status) for q in report.interactions.questions]
    assert statuses == [(q1.id, "open"), (q2.id, "rejected")]
    unanswered = report.segment("unanswered")
    assert unanswered is not None and [p.name for p in unanswered.viewers] == ["Ann"]
    # automod's ban is one action (its repository record is not counted again).
    moderation = report.interactions.moderation
    assert report.summary.moderation_by_kind == {"automod.ban": 1, "mod.approve": 1}
    assert (moderation.automod, moderation.viewers_banned) == (1, 1)
    assert [(m.name, m.actions) for m in moderation.by_moderator] == [("Mod", 1)]


# -- (2) property: the totals equal a plain fold --------------------------------------------

ACTORS = ("a", "b", "c", "d", "host")
event_st = st.tuples(
    st.integers(min_value=0, max_value=30),  # seconds after the previous event
    st.sampled_from(
        [
            "presence.join",
            "presence.leave",
            "chat.message",
            "like",
            "poll.vote",
            "quiz.answer",
            "offer.click",
            "qa.upvote",
        ]
    ),
    st.sampled_from(ACTORS),
    st.integers(min_value=1, max_value=50),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(event_st, max_size=60))
def test_report_totals_equal_a_plain_fold(script: list[tuple[int, str, str, int]]) -> None:
    builder = ReportBuilder(ROOM, STREAM, T0)
    ts = T0
    events: list[tuple[float, str, str, int]] = []
    for i, (gap, kind, actor, n) in enumerate(script, start=1):
        ts += gap
        role = "host" if actor == "host" else "viewer"
        data: dict[str, Any] = {
            "presence.join": {"name": actor.upper(), "role": role},
            "chat.message": {"name": actor.upper(), "role": role, "text": "x"},
            "like": {"count": n},
            "poll.vote": {"poll_id": f"p{n % 3}", "choices": [0]},
            "quiz.answer": {"quiz_id": "q", "index": n % 4, "correct": n % 2 == 0, "points": n},
            "offer.click": {"offer_id": "o"},
            "qa.upvote": {"question_id": 1},
        }.get(kind, {})
        builder.add(i, ts, kind, actor, data)
        events.append((ts, kind, actor, n))
    report = builder.finish(generated_at=ts, ended_at=ts)
    end = ts

    # The plain fold.
    count: Counter[tuple[str, str]] = Counter()
    likes: Counter[str] = Counter()
    watch: defaultdict[str, float] = defaultdict(float)
    open_at: dict[str, float] = {}
    seen: set[str] = set()
    for t, kind, actor, n in events:
        count[(actor, kind)] += 1
        if kind == "like":
            likes[actor] += n
        if kind == "presence.join" and actor not in open_at:
            open_at[actor] = t
        if kind == "presence.leave":
            if actor in open_at:
                watch[actor] += t - open_at.pop(actor)
            elif actor not in seen:
                watch[actor] += t - T0
        if kind.startswith("presence."):
            seen.add(actor)
    for actor, t in open_at.items():
        watch[actor] += end - t
    staff = {"host"} if any(a == "host" and k in ("presence.join", "chat.message")
                            for _, k, a, _ in events) else set()  # fmt: skip
    viewers = {a for _, _, a, _ in events if a not in staff}

    assert report.summary.unique_viewers == len(viewers)
    assert report.summary.chat_messages == sum(count[(a, "chat.message")] for a in ACTORS)
    assert report.summary.likes == sum(likes.values())
    assert report.meta.event_count == len(events)
    assert report.meta.events_hash == events_hash(range(1, len(events) + 1))
    rows = {r.pid: r for r in report.viewers}
    assert len(rows) == len(viewers)
    for actor in viewers:
        r = rows[pseudonym(STREAM, actor)]
        assert r.messages == count[(actor, "chat.message")]
        assert r.likes == likes[actor]
        assert r.votes == count[(actor, "poll.vote")]
        assert r.answers == count[(actor, "quiz.answer")]
        assert r.offer_clicks == count[(actor, "offer.click")]
        assert r.upvotes == count[(actor, "qa.upvote")]
        assert r.watch_seconds == pytest.approx(watch[actor], abs=0.051)
    total = sum(watch[a] for a in viewers)
    assert report.summary.total_watch_seconds == pytest.approx(total, abs=0.051)
    # The peak is the most viewers connected at once (checked just after the start and
    # just after every event: every span starts at one of those).
    best = 0
    for t in [T0, *(e[0] for e in events)]:
        at = sum(
            1 for a in viewers if any(lo < t + 1e-6 <= hi for lo, hi in _spans(events, a, end))
        )
        best = max(best, at)
    assert report.summary.peak_viewers == best
    minutes = report.timeline.minutes
    assert max(m.peak_viewers for m in minutes) == best
    assert sum(m.messages for m in minutes) == report.summary.chat_messages
    assert sum(m.likes for m in minutes) == report.summary.likes
    assert sum(m.interactions for m in minutes) == report.summary.interactions
    assert all(0 <= share <= 1 for share in report.retention.shares)


def _spans(
    events: list[tuple[float, str, str, int]], actor: str, end: float
) -> list[tuple[float, float]]:
    spans: list[tuple[float, float]] = []
    open_at: float | None = None
    seen = False
    for t, kind, a, _ in events:
        if a != actor:
            continue
        if kind == "presence.join" and open_at is None:
            open_at = t
        elif kind == "presence.leave":
            if open_at is not None:
                spans.append((open_at, t))
                open_at = None
            elif not seen:
                spans.append((T0, t))
        if kind.startswith("presence."):
            seen = True
    if open_at is not None:
        spans.append((open_at, end))
    return [(lo, hi) for lo, hi in spans if hi > lo]


# -- (3) CSV ---------------------------------------------------------------------------------


async def test_viewers_csv_has_bom_header_and_one_row_per_viewer(db: Any) -> None:
    s = Script(db[0])
    await s.at(0, "stream.started", "h1", stream_id=STREAM)
    await s.at(0, "presence.join", "h1", name="Host", role="host")
    names = {"v1": "张三", "v2": "李四·王五", "v3": '=HYPERLINK("x")', "v4": 'Ann "A", B'}
    for i, (vid, name) in enumerate(names.items()):
        await s.at(i, "presence.join", vid, name=name, role="viewer")
        await s.at(i + 10, "like", vid, count=i + 1)
    await s.at(100, "stream.stopped", "h1", stream_id=STREAM)
    report = await build(db)
    body = export.viewers_csv(report)
    assert body.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows[0] == list(export.VIEWER_COLUMNS)
    assert len(rows) == 1 + len(names)  # the host is not a viewer
    by_pid = {r[0]: r for r in rows[1:]}
    for vid, name in names.items():
        r = by_pid[pseudonym(STREAM, vid)]
        shown = "'" + name if name.startswith("=") else name  # formulas are neutralised
        assert r[1] == shown
        assert r[export.VIEWER_COLUMNS.index("likes")] == str(list(names).index(vid) + 1)
    # Segment lists as CSV too.
    segment = report.segment("engaged_no_click")
    assert segment is not None
    seg_rows = list(csv.reader(io.StringIO(export.segment_csv(segment).decode("utf-8-sig"))))
    assert seg_rows[0] == ["pid", "name"] and len(seg_rows) == 1 + len(names)


# -- (4) REST ----------------------------------------------------------------------------------


async def _wait_stored(server: Server, room: str, token: str, stream: str) -> dict[str, Any]:
    """The stored report's info, once the background build after the stop is done."""
    for _ in range(200):
        status, body = await server.api("GET", f"/api/rooms/{room}/reports", token=token)
        assert status == 200, body
        found = [r for r in body["reports"] if r["stream"] == stream]
        if found and not found[0]["live"]:
            return dict(found[0])
        await asyncio.sleep(0.05)
    raise AssertionError("the report was not stored after the stream stopped")


async def test_rest_report_staff_only_formats_and_stored_on_stop(memory_server: Server) -> None:
    server = memory_server
    created = await server.create_room()
    room = created["room"]["id"]
    host, mod = created["host_token"], created["moderator_token"]
    status, stream = await server.api("POST", f"/api/rooms/{room}/streams", token=host)
    assert status == 201
    sid = stream["id"]
    path = f"/api/rooms/{room}/streams/{sid}/report"
    ann = await server.client(room, name="张三", viewer_id="ann")
    assert (await ann.chat("hello"))["ok"]
    assert (await ann.call("like", {"count": 3}))["ok"]

    viewer_token = server.token(room, "viewer", "Eve")
    assert (await server.api("GET", path, token=viewer_token))[0] == 403
    assert (await server.api("GET", f"/api/rooms/{room}/report", token=viewer_token))[0] == 403
    assert (await server.api("POST", path, token=viewer_token))[0] == 403
    assert (await server.api("GET", path, token=None))[0] == 401
    assert (await server.api("GET", path + "?format=xml", token=host))[0] == 400

    # Live: a preview, built now, not stored.
    status, preview = await server.api("GET", path, token=mod)
    assert status == 200 and preview["meta"]["live"] is True
    assert row_of(preview, "ann")["likes"] == 3
    assert (await server.api("GET", f"/api/rooms/{room}/reports", token=mod))[1]["reports"] == []
    # POST stores it; the hash changes when an event is added.
    status, built = await server.api("POST", path, token=host)
    assert status == 201
    assert (await ann.chat("again"))["ok"]
    status, rebuilt = await server.api("POST", path, token=host)
    assert rebuilt["meta"]["event_count"] == built["meta"]["event_count"] + 1
    assert rebuilt["meta"]["events_hash"] != built["meta"]["events_hash"]

    await ann.close()
    status, _ = await server.api("DELETE", f"/api/rooms/{room}/streams/current", token=host)
    assert status == 200
    stored = await _wait_stored(server, room, host, sid)
    # The stored report is served (same hash) by the stream's and the room's latest URL.
    status, latest = await server.api(
        "GET", f"/api/rooms/{room}/report", token=server.settings.admin_key
    )
    assert status == 200 and latest["meta"]["events_hash"] == stored["events_hash"]
    assert latest["meta"]["live"] is False
    assert row_of(latest, "ann")["messages"] == 2
    # An event added to the stream afterwards makes the stored report stale: rebuilt.
    await server.services.log.append(
        NewEvent(room=room, kind="like", actor="ann", data={"count": 1}, stream=sid)
    )
    status, fresh = await server.api("GET", path, token=mod)
    assert fresh["meta"]["events_hash"] != stored["events_hash"]
    assert row_of(fresh, "ann")["likes"] == 4

    # CSV: the per-viewer table, and a segment.
    async with server.http.get(
        server.url + path + "?format=csv", headers={"Authorization": f"Bearer {host}"}
    ) as resp:
        assert resp.status == 200 and resp.content_type == "text/csv"
        assert "attachment" in resp.headers["Content-Disposition"]
        body = await resp.read()
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows[1][1] == "张三" and len(rows) == 2
    async with server.http.get(
        server.url + path + "/segments/engaged_no_click.csv",
        headers={"Authorization": f"Bearer {mod}"},
    ) as resp:
        assert resp.status == 200
        seg = list(csv.reader(io.StringIO((await resp.read()).decode("utf-8-sig"))))
        assert seg == [["pid", "name"], [pseudonym(sid, "ann"), "张三"]]
    assert (await server.api("GET", path + "/segments/nope.csv", token=mod))[0] == 404
    if export.html_renderer() is not None:  # the HTML renderer is a separate module
        async with server.http.get(
            server.url + path + "?format=html&lang=zh-CN",
            headers={"Authorization": f"Bearer {mod}"},
        ) as resp:
            assert resp.status == 200 and resp.content_type == "text/html"
            assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
    assert (await server.api("GET", f"/api/rooms/{room}/streams/s_nope/report", token=mod))[
        0
    ] == 404


def row_of(report: dict[str, Any], viewer_id: str) -> dict[str, Any]:
    pid = pseudonym(report["meta"]["stream"], viewer_id)
    (found,) = [r for r in report["viewers"] if r["pid"] == pid]
    return dict(found)


# -- (1b) a stream through a real server agrees with the live counters ------------------------


async def test_real_server_report_agrees_with_live_counters(memory_server: Server) -> None:
    server = memory_server
    created = await server.create_room()
    room = created["room"]["id"]
    host_token = created["host_token"]
    status, stream = await server.api("POST", f"/api/rooms/{room}/streams", token=host_token)
    sid = stream["id"]
    host = await server.client(room, host_token)
    ann = await server.client(room, name="Ann", viewer_id="ann")
    bob = await server.client(room, name="鲍勃", viewer_id="bob")
    cat = await server.client(room, name="Cat", viewer_id="cat")

    assert (await ann.chat("hi all"))["ok"]
    assert (await bob.chat("你好"))["ok"]
    assert (await host.chat("welcome"))["ok"]
    assert (await ann.call("like", {"count": 5}))["ok"]
    assert (await bob.call("like", {"count": 2}))["ok"]
    poll = (await host.call("poll_create", {"question": "Best?", "kind": "single",
                                            "options": ["x", "y"]}))["poll"]  # fmt: skip
    assert (await host.call("poll_open", {"poll_id": poll["id"]}))["ok"]
    assert (await ann.call("poll_vote", {"poll_id": poll["id"], "choices": [0]}))["ok"]
    assert (await cat.call("poll_vote", {"poll_id": poll["id"], "choices": [1]}))["ok"]
    assert (await host.call("poll_close", {"poll_id": poll["id"]}))["ok"]
    quiz = (await host.call("quiz_create", {"title": "Q", "questions": [
        {"text": "2+2?", "options": ["3", "4"], "correct": [1]}]}))["quiz"]  # fmt: skip
    assert (await host.call("quiz_next", {"quiz_id": quiz["id"]}))["ok"]
    assert (await ann.call("quiz_answer", {"quiz_id": quiz["id"], "index": 0, "choices": [1]}))[
        "ok"
    ]
    assert (await bob.call("quiz_answer", {"quiz_id": quiz["id"], "index": 0, "choices": [0]}))[
        "ok"
    ]
    asked = await bob.call(
        "qa_ask", {"text": "When is the next stream?", "client_id": uuid.uuid4().hex}
    )
    qid = asked["question"]["id"]
    assert (await ann.call("qa_upvote", {"question_id": qid}))["ok"]
    assert (await host.call("qa_answer", {"question_id": qid}))["ok"]
    draw = (await host.call("draw_create", {"prize": "Mug", "rule": {"kind": "present"}}))["draw"]
    assert (await cat.call("draw_enter", {"draw_id": draw["draw_id"]}))["ok"]
    assert (await ann.call("draw_enter", {"draw_id": draw["draw_id"]}))["ok"]
    assert (await host.call("draw_pick", {"draw_id": draw["draw_id"]}))["ok"]
    offer = await host.call("offer_push", {"title": "Deal", "url": "https://shop.example/"})
    offer_id = offer["offer"]["offer_id"]
    click = f"{server.url}/o/{room}/{offer_id}?t={server.token(room, 'viewer', 'Cat', 'cat')}"
    async with server.http.get(click, allow_redirects=False) as resp:
        assert resp.status == 302
    await cat.close()

    status, _ = await server.api("DELETE", f"/api/rooms/{room}/streams/current", token=host_token)
    assert status == 200
    await _wait_stored(server, room, host_token, sid)
    status, report = await server.api(
        "GET", f"/api/rooms/{room}/streams/{sid}/report", token=host_token
    )
    assert status == 200

    counters = server.services.counters
    fields = ("messages", "likes", "votes", "answers", "correct_answers", "quiz_score",
              "questions", "upvotes", "draw_entries", "draw_wins", "offer_clicks")  # fmt: skip
    drift: list[str] = []
    for viewer in ("ann", "bob", "cat"):
        live = await counters.viewer(room, sid, viewer)
        mine = row_of(report, viewer)
        for name in fields:
            if int(live.get(name, 0)) != mine[name]:
                drift.append(f"{viewer}.{name}: counters {live.get(name, 0)} report {mine[name]}")
    room_live = await counters.room(room, sid)
    s = report["summary"]
    for name, ours in (("messages", s["chat_messages"]), ("likes", s["likes"]),
                       ("sampled_away", s["sampled_away"])):  # fmt: skip
        if room_live.get(name, 0) != ours:
            drift.append(f"room.{name}: counters {room_live.get(name, 0)} report {ours}")
    assert not drift, "report and live counters drifted: " + "; ".join(drift)
    # And the scripted actions are all there.
    assert (s["unique_viewers"], s["chat_messages"], s["likes"]) == (3, 3, 7)
    assert (s["poll_votes"], s["quiz_answers"], s["questions_answered"]) == (2, 2, 1)
    assert (s["draw_entries"], s["offer_clicks"]) == (2, 1)
    assert [p["name"] for p in report["staff"]] == ["Host"]


async def test_sampled_danmaku_is_logged_and_reported(memory_server: Server) -> None:
    server = memory_server
    created = await server.create_room(settings={"max_danmaku_per_second": 1})
    room = created["room"]["id"]
    host = created["host_token"]
    status, stream = await server.api("POST", f"/api/rooms/{room}/streams", token=host)
    sid = stream["id"]
    clients = [await server.client(room, name=f"V{i}", viewer_id=f"v{i}") for i in range(6)]
    for c in clients:
        assert (await c.chat(f"message from {c.auth['token'][-6:]}"))["ok"]
    await clients[0].wait_until(lambda: any(b["dropped"] for b in clients[0].events["batch"]))
    dropped = await server.services.counters.room(room, sid)
    for _ in range(200):  # the fanout records chat.sampled without holding up its tick
        logged = await server.services.log.by_kinds(room, ("chat.sampled",))
        if sum(e.data["dropped"] for e in logged) == dropped["sampled_away"]:
            break
        await asyncio.sleep(0.02)
    assert all(e.stream == sid and e.actor == "system" for e in logged)
    status, _ = await server.api("DELETE", f"/api/rooms/{room}/streams/current", token=host)
    stored = await _wait_stored(server, room, host, sid)
    assert stored
    status, report = await server.api("GET", f"/api/rooms/{room}/streams/{sid}/report", token=host)
    assert status == 200
    assert report["summary"]["sampled_away"] == dropped["sampled_away"] > 0


# -- (5) the command line -----------------------------------------------------------------------


async def test_cli_report_writes_json_and_csv(db: Any, tmp_path: Path, capsys: Any) -> None:
    await scripted_stream(Script(db[0]))
    reference = await build(db)
    data_dir = db[2].parent
    out_json = tmp_path / "out.json"
    out_csv = tmp_path / "out.csv"
    base = ["report", ROOM, "--stream", STREAM, "--data-dir", str(data_dir)]
    assert cli_main([*base, "--format", "json", "-o", str(out_json)]) == 0
    assert cli_main([*base, "--format", "csv", "-o", str(out_csv)]) == 0
    written = export.from_json(out_json.read_bytes())
    assert written.summary == reference.summary
    assert written.meta.events_hash == reference.meta.events_hash
    rows = list(csv.reader(io.StringIO(out_csv.read_text(encoding="utf-8-sig"))))
    assert len(rows) == 1 + reference.summary.unique_viewers
    assert cli_main(["report", "nowhere", "--data-dir", str(data_dir), "-o", str(out_json)]) != 0
    assert "no stream" in capsys.readouterr().err
