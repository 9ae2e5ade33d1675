"""Fold one stream's events into its :class:`~livehub.reports.model.Report`, in one pass.

Feed every event of the stream in id order to :meth:`ReportBuilder.add` (with
its data already decoded: one JSON decode per event, no per-event structs),
then call :meth:`ReportBuilder.finish`. Per-viewer state lives in slotted
objects; what needs the whole stream (intervals, windows, segments, scores) is
computed once at the end (:mod:`~livehub.reports.folded`, then one module per
group of sections: ``build_summary``, ``build_people``, ``build_interactions``).
The definitions are in :mod:`livehub.reports.model`; the records the fold keeps
are in :mod:`~livehub.reports.tallies`.

Before the fold, the caller may hand over what lies before the stream:
:meth:`~ReportBuilder.carry` for viewers already connected when it started (see
:func:`present_before`) and :meth:`~ReportBuilder.define` for polls, quizzes and
offers created earlier (``poll.created``, ``quiz.created``, ``offer.pushed``).
"""

from __future__ import annotations

import hashlib
from array import array
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, TypeVar

from livehub.interactions.moderation import AUTOMOD
from livehub.reports import build_interactions, build_people, build_summary
from livehub.reports.folded import Folded
from livehub.reports.folded import pseudonym as pseudonym  # re-exported: imported from here
from livehub.reports.model import SCHEMA_VERSION, Interactions, MarkerKind, Meta, Report
from livehub.reports.tallies import (
    Data,
    DrawTally,
    OfferTally,
    PollTally,
    QuestionTally,
    QuizTally,
    ViewerTally,
)
from livehub.rooms.models import STAFF_ROLES

#: how far back before a stream a viewer's connection is taken to still hold
CARRY_SECONDS: Final = 12 * 3600.0
PRESENCE_KINDS: Final = ("presence.join", "presence.leave")
DEFINITION_KINDS: Final = ("poll.created", "quiz.created", "offer.pushed")
_HASH_CHUNK: Final = 65536


def events_hash(ids: Iterable[int]) -> str:
    """sha256 of the event ids joined by "," (the reference for ``meta.events_hash``)."""
    return hashlib.sha256(",".join(str(i) for i in ids).encode()).hexdigest()


def present_before(rows: Iterable[tuple[str, str, Data]]) -> list[tuple[str, str, str]]:
    """Who was connected when a stream started, from presence events *newest first*
    (actor, kind, data) before it: (viewer id, name, role) of each viewer whose
    latest presence event is a join."""
    decided: set[str] = set()
    present: list[tuple[str, str, str]] = []
    for actor, kind, data in rows:
        if actor in decided:
            continue
        decided.add(actor)
        if kind == "presence.join":
            present.append((actor, str(data.get("name") or actor), str(data.get("role") or "")))
    return present


def _int(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _num(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


_T = TypeVar("_T")


def _entry(table: dict[str, _T], key: Any, make: Callable[[str], _T]) -> _T:
    """The record under ``str(key)``, created on first sight (polls, quizzes, draws, offers)."""
    k = str(key)
    found = table.get(k)
    if found is None:
        found = table[k] = make(k)
    return found


class ReportBuilder:
    """One stream's report, folded from its events (see the module doc)."""

    def __init__(self, room: str, stream: str, started_at: float) -> None:
        self.room = room
        self.stream = stream
        self.start = started_at
        self._stopped_at: float | None = None
        self._last_ts = started_at
        self._last_id = 0
        self._ids = array("q")
        self._viewers: dict[str, ViewerTally] = {}
        # per minute from the start (negative and past-the-end minutes are clamped at the end)
        self._messages: defaultdict[int, int] = defaultdict(int)
        self._likes: defaultdict[int, int] = defaultdict(int)
        self._markers: list[tuple[float, MarkerKind, str, str]] = []
        self._polls: dict[str, PollTally] = {}
        self._quizzes: dict[str, QuizTally] = {}
        self._questions: dict[int, QuestionTally] = {}
        self._answered: set[int] = set()
        self._highlighted: int | None = None
        self._draws: dict[str, DrawTally] = {}
        self._offers: dict[str, OfferTally] = {}
        self._sampled = 0
        self._moderation: Counter[str] = Counter()
        self._moderators: Counter[str] = Counter()
        self._muted: set[str] = set()
        self._banned: set[str] = set()
        self._chat_total = 0
        self._likes_total = 0
        self._handlers: dict[str, Callable[[float, str, Data], None]] = {
            "presence.join": self._join,
            "presence.leave": self._leave,
            "chat.message": self._chat,
            "like": self._like,
            "chat.sampled": self._sampled_away,
            "stream.started": self._noop,
            "stream.stopped": self._stream_stopped,
            "poll.created": self._poll_created,
            "poll.opened": self._poll_opened,
            "poll.closed": self._poll_closed,
            "poll.vote": self._poll_vote,
            "quiz.created": self._quiz_created,
            "quiz.question_opened": self._quiz_opened,
            "quiz.answer": self._quiz_answer,
            "qa.asked": self._qa_asked,
            "qa.held": self._qa_held,
            "qa.approved": self._qa_approved,
            "qa.rejected": self._qa_status,
            "qa.dismissed": self._qa_status,
            "qa.answered": self._qa_answered,
            "qa.highlighted": self._qa_highlighted,
            "qa.upvote": self._qa_upvote,
            "qa.unvote": self._qa_unvote,
            "draw.created": self._draw_created,
            "draw.entered": self._draw_entered,
            "draw.closed": self._draw_closed,
            "draw.committed": self._draw_committed,
            "draw.revealed": self._draw_revealed,
            "offer.pushed": self._offer_pushed,
            "offer.withdrawn": self._offer_withdrawn,
            "offer.click": self._offer_click,
        }

    # -- input ---------------------------------------------------------------------------

    def carry(self, viewer_id: str, name: str, role: str) -> None:
        """A viewer connected before the stream started and still there: joined at the start."""
        v = self._viewer(viewer_id)
        v.name = name or v.name
        self._set_role(v, role)
        v.carried = True
        v.presence_seen = True
        if v.open_at is None:
            v.open_at = self.start
        if v.first_join is None:
            v.first_join = self.start

    def define(self, kind: str, data: Data) -> None:
        """A definition recorded before the stream (poll, quiz, offer); not counted as activity."""
        if kind == "poll.created":
            self._poll_created(0.0, "", data, active=False)
        elif kind == "quiz.created":
            self._quiz_created(0.0, "", data, active=False)
        elif kind == "offer.pushed":
            self._offer_pushed(0.0, "", data, active=False)

    def add(self, event_id: int, ts: float, kind: str, actor: str, data: Data) -> None:
        """Fold one event of the stream (in id order)."""
        self._ids.append(event_id)
        self._last_id = event_id
        if ts > self._last_ts:
            self._last_ts = ts
        handler = self._handlers.get(kind)
        if handler is not None:
            handler(ts, actor, data)
        elif kind.startswith(("mod.", "automod.")):
            self._moderation_action(ts, kind, actor, data)

    def add_raw(
        self, rows: Iterable[tuple[int, float, str, str, bytes]], decode: Callable[[bytes], Data]
    ) -> None:
        """Fold rows as read from the database (data still JSON): :meth:`add` for each,
        written out as one loop (this is where a long report spends its time)."""
        ids_append = self._ids.append
        handler_of = self._handlers.get
        last_ts = self._last_ts
        for event_id, ts, kind, actor, raw in rows:
            ids_append(event_id)
            self._last_id = event_id
            if ts > last_ts:
                last_ts = ts
            handler = handler_of(kind)
            if handler is not None:
                handler(ts, actor, decode(raw))
            elif kind.startswith(("mod.", "automod.")):
                self._moderation_action(ts, kind, actor, decode(raw))
        self._last_ts = last_ts

    @property
    def event_count(self) -> int:
        return len(self._ids)

    def events_hash(self) -> str:
        """sha256 over the folded ids joined by "," (in chunks: the same digest)."""
        digest = hashlib.sha256()
        ids = self._ids
        for lo in range(0, len(ids), _HASH_CHUNK):
            chunk = ",".join(map(str, ids[lo : lo + _HASH_CHUNK]))
            digest.update((chunk if lo == 0 else "," + chunk).encode())
        return digest.hexdigest()

    # -- helpers -------------------------------------------------------------------------

    def _viewer(self, viewer_id: str) -> ViewerTally:
        v = self._viewers.get(viewer_id)
        if v is None:
            v = self._viewers[viewer_id] = ViewerTally(viewer_id)
        return v

    @staticmethod
    def _set_role(v: ViewerTally, role: Any) -> None:
        if role in STAFF_ROLES:
            v.role = str(role)
            v.staff = True

    def _interaction(self, v: ViewerTally, ts: float) -> None:
        # by minute, per person: whether they are staff is only certain at the end
        v.acts.append(int((ts - self.start) // 60))

    def _marker(self, ts: float, kind: MarkerKind, ref: str, label: str) -> None:
        self._markers.append((ts, kind, ref, label))

    @staticmethod
    def _noop(ts: float, actor: str, data: Data) -> None:
        return None

    # -- presence and chat ---------------------------------------------------------------

    def _join(self, ts: float, actor: str, data: Data) -> None:
        v = self._viewers.get(actor) or self._viewer(actor)
        name = data.get("name")
        if name and isinstance(name, str):
            v.name = name
        if data.get("role") in STAFF_ROLES:
            self._set_role(v, data["role"])
        v.presence_seen = True
        if v.open_at is None:
            v.open_at = ts
            if v.first_join is None:
                v.first_join = ts

    def _leave(self, ts: float, actor: str, data: Data) -> None:
        v = self._viewers.get(actor) or self._viewer(actor)
        if v.open_at is not None:
            v.intervals.append((v.open_at, ts))
            v.open_at = None
            v.last_leave = ts
        elif not v.presence_seen:  # connected before the stream, beyond what was carried
            v.intervals.append((self.start, ts))
            v.first_join = self.start
            v.last_leave = ts
            v.carried = True
        v.presence_seen = True

    # The two hot paths (most events are messages and likes) are written out inline.

    def _chat(self, ts: float, actor: str, data: Data) -> None:
        v = self._viewers.get(actor) or self._viewer(actor)
        name = data.get("name")
        if name and isinstance(name, str):
            v.name = name
        if data.get("role") in STAFF_ROLES:
            self._set_role(v, data["role"])
        v.messages += 1
        self._chat_total += 1
        m = int((ts - self.start) // 60)
        self._messages[m] += 1
        v.acts.append(m)

    def _message(self, v: ViewerTally, ts: float) -> None:
        v.messages += 1
        self._chat_total += 1
        self._messages[int((ts - self.start) // 60)] += 1
        self._interaction(v, ts)

    def _like(self, ts: float, actor: str, data: Data) -> None:
        count = data.get("count")
        if count.__class__ is not int:
            count = _int(count, 1)
        v = self._viewers.get(actor) or self._viewer(actor)
        v.likes += count
        v.like_events += 1
        self._likes_total += count
        m = int((ts - self.start) // 60)
        self._likes[m] += count
        v.acts.append(m)

    def _sampled_away(self, ts: float, actor: str, data: Data) -> None:
        self._sampled += _int(data.get("dropped"))

    def _stream_stopped(self, ts: float, actor: str, data: Data) -> None:
        self._stopped_at = ts

    def _moderation_action(self, ts: float, kind: str, actor: str, data: Data) -> None:
        target = data.get("viewer_id")
        if actor == AUTOMOD and kind.startswith("mod."):
            # the repository's record of an ``automod.ban``: the same action, counted once
            if kind == "mod.ban" and isinstance(target, str):
                self._banned.add(target)
            return
        self._moderation[kind] += 1
        if kind.startswith("mod."):
            self._moderators[actor] += 1
        if isinstance(target, str):
            if kind.endswith(".mute"):
                self._muted.add(target)
            elif kind.endswith(".ban"):
                self._banned.add(target)
        if kind == "mod.approve":
            message = data.get("message")
            if isinstance(message, Mapping) and isinstance(message.get("viewer_id"), str):
                v = self._viewer(message["viewer_id"])
                name = message.get("name")
                if isinstance(name, str) and name:
                    v.name = name
                self._set_role(v, message.get("role"))
                self._message(v, ts)

    # -- polls -----------------------------------------------------------------------------

    def _poll(self, poll_id: Any) -> PollTally:
        return _entry(self._polls, poll_id, PollTally)

    def _poll_created(self, ts: float, actor: str, data: Data, active: bool = True) -> None:
        body = data.get("poll")
        if isinstance(body, Mapping):
            self._poll(body.get("id")).define(body, active)

    def _poll_opened(self, ts: float, actor: str, data: Data) -> None:
        poll = self._poll(data.get("poll_id"))
        poll.active = True
        poll.opened_at = ts
        poll.closes_at = _num(data.get("closes_at"))
        self._marker(ts, "poll.opened", poll.id, poll.question)

    def _poll_closed(self, ts: float, actor: str, data: Data) -> None:
        poll = self._poll(data.get("poll_id"))
        poll.active = True
        closes_at = poll.closes_at
        poll.closed_at = closes_at if closes_at is not None and closes_at < ts else ts
        self._marker(poll.closed_at, "poll.closed", poll.id, poll.question)

    def _poll_vote(self, ts: float, actor: str, data: Data) -> None:
        self._poll(data.get("poll_id")).vote(actor, data)
        v = self._viewer(actor)
        v.votes += 1
        self._interaction(v, ts)

    # -- quizzes ---------------------------------------------------------------------------

    def _quiz(self, quiz_id: Any) -> QuizTally:
        return _entry(self._quizzes, quiz_id, QuizTally)

    def _quiz_created(self, ts: float, actor: str, data: Data, active: bool = True) -> None:
        body = data.get("quiz")
        if isinstance(body, Mapping):
            self._quiz(body.get("id")).define(body, active)

    def _quiz_opened(self, ts: float, actor: str, data: Data) -> None:
        quiz = self._quiz(data.get("quiz_id"))
        quiz.active = True
        index = _int(data.get("index"), -1)
        if index < 0:
            return
        quiz.opened.add(index)
        text = quiz.questions[index][0] if index < len(quiz.questions) else ""
        label = f"{quiz.title} #{index + 1}: {text}" if quiz.title else f"#{index + 1}: {text}"
        self._marker(ts, "quiz.question", quiz.id, label)

    def _quiz_answer(self, ts: float, actor: str, data: Data) -> None:
        quiz = self._quiz(data.get("quiz_id"))
        index = _int(data.get("index"), -1)
        correct = data.get("correct") is True
        points = _int(data.get("points"))
        response_ms = _int(data.get("response_ms"))
        quiz.answer(actor, index, points, correct, response_ms, data.get("choices"))
        v = self._viewer(actor)
        v.answers += 1
        v.score += points
        if correct:
            v.correct += 1
        if v.quiz_answered is None:
            v.quiz_answered = set()
        v.quiz_answered.add((quiz.id, index))
        self._interaction(v, ts)

    # -- Q&A -------------------------------------------------------------------------------

    def _asked(self, ts: float, actor: str, data: Data, status: str) -> QuestionTally:
        name = str(data.get("name") or actor)
        question = QuestionTally(
            self._last_id, str(data.get("text") or ""), actor, name, bool(data.get("anonymous")), ts
        )
        question.status = status
        self._questions[question.id] = question
        v = self._viewer(actor)
        if name:
            v.name = name
        return question

    def _qa_asked(self, ts: float, actor: str, data: Data) -> None:
        self._asked(ts, actor, data, "open")
        v = self._viewer(actor)
        v.questions += 1
        self._interaction(v, ts)

    def _qa_held(self, ts: float, actor: str, data: Data) -> None:
        self._asked(ts, actor, data, "pending")

    def _qa_approved(self, ts: float, actor: str, data: Data) -> None:
        question = self._questions.get(_int(data.get("question_id"), -1))
        author = data.get("viewer_id")
        if question is not None:
            question.status = "open"
            author = question.viewer
        if isinstance(author, str):
            v = self._viewer(author)
            v.questions += 1
            self._interaction(v, ts)

    def _qa_status(self, ts: float, actor: str, data: Data) -> None:
        question = self._questions.get(_int(data.get("question_id"), -1))
        if question is not None:
            question.status = "rejected" if question.status == "pending" else "dismissed"
            if question.id == self._highlighted:
                self._highlighted = None

    def _qa_answered(self, ts: float, actor: str, data: Data) -> None:
        qid = _int(data.get("question_id"), -1)
        self._answered.add(qid)
        question = self._questions.get(qid)
        if question is not None:
            question.answered = True

    def _qa_highlighted(self, ts: float, actor: str, data: Data) -> None:
        qid = data.get("question_id")
        self._highlighted = qid if isinstance(qid, int) and not isinstance(qid, bool) else None

    def _qa_upvote(self, ts: float, actor: str, data: Data) -> None:
        question = self._questions.get(_int(data.get("question_id"), -1))
        if question is not None:
            question.votes += 1
        v = self._viewer(actor)
        v.upvotes += 1
        self._interaction(v, ts)

    def _qa_unvote(self, ts: float, actor: str, data: Data) -> None:
        question = self._questions.get(_int(data.get("question_id"), -1))
        if question is not None:
            question.votes -= 1
        v = self._viewer(actor)
        v.upvotes -= 1
        v.unacts.append(int((ts - self.start) // 60))

    # -- draws -----------------------------------------------------------------------------

    def _draw(self, draw_id: Any) -> DrawTally:
        return _entry(self._draws, draw_id, DrawTally)

    def _draw_created(self, ts: float, actor: str, data: Data) -> None:
        draw = self._draw(data.get("draw_id"))
        draw.prize = str(data.get("prize") or "")
        rule = data.get("rule")
        draw.rule = dict(rule) if isinstance(rule, Mapping) else {}
        draw.winners_count = _int(data.get("winners_count"), 1)
        self._marker(ts, "draw.created", draw.id, draw.prize)

    def _draw_entered(self, ts: float, actor: str, data: Data) -> None:
        draw = self._draw(data.get("draw_id"))
        name = data.get("name")
        draw.entered[actor] = name if isinstance(name, str) and name else actor
        draw.entered_at.setdefault(actor, ts)
        if isinstance(name, str) and name:
            self._viewer(actor).name = name

    def _draw_closed(self, ts: float, actor: str, data: Data) -> None:
        draw = self._draw(data.get("draw_id"))
        draw.close(ts, data.get("entrants"))
        names = data.get("names")
        if isinstance(names, Mapping):
            for vid, name in names.items():
                if isinstance(name, str) and name and vid not in self._viewers:
                    self._viewer(vid).name = name
        self._marker(ts, "draw.closed", draw.id, draw.prize)

    def _draw_committed(self, ts: float, actor: str, data: Data) -> None:
        self._draw(data.get("draw_id")).status = "committed"

    def _draw_revealed(self, ts: float, actor: str, data: Data) -> None:
        draw = self._draw(data.get("draw_id"))
        draw.reveal(data.get("transcript"))
        self._marker(ts, "draw.revealed", draw.id, draw.prize)

    # -- offers ----------------------------------------------------------------------------

    def _offer(self, offer_id: Any) -> OfferTally:
        return _entry(self._offers, offer_id, OfferTally)

    def _offer_pushed(self, ts: float, actor: str, data: Data, active: bool = True) -> None:
        offer = self._offer(data.get("offer_id"))
        offer.title = str(data.get("title") or "")
        offer.url = str(data.get("url") or "")
        offer.pushed_at = _num(data.get("created_at")) or ts or None
        if active:
            offer.active = True
            offer.pushed_at = ts
            self._marker(ts, "offer.pushed", offer.id, offer.title)

    def _offer_withdrawn(self, ts: float, actor: str, data: Data) -> None:
        offer = self._offer(data.get("offer_id"))
        offer.active = True
        offer.withdrawn_at = ts
        self._marker(ts, "offer.withdrawn", offer.id, offer.title)

    def _offer_click(self, ts: float, actor: str, data: Data) -> None:
        offer = self._offer(data.get("offer_id"))
        offer.active = True
        offer.clicks += 1
        v = self._viewer(actor)
        v.clicks += 1
        self._interaction(v, ts)

    # -- the report ------------------------------------------------------------------------

    def finish(
        self,
        *,
        generated_at: float,
        live: bool = False,
        ended_at: float | None = None,
    ) -> Report:
        """The report. The end is the ``stream.stopped`` event, else ``ended_at``,
        else the build time for a live preview, else the last event."""
        start = self.start
        end = self._stopped_at
        if end is None:
            end = ended_at if ended_at is not None else (generated_at if live else self._last_ts)
        end = max(end, start)
        self._credit_draws()
        f = Folded(self.stream, self._viewers, start, end)
        timeline, peak, peak_at = build_summary.timeline(
            f, self._messages, self._likes, self._markers
        )
        rows = build_people.viewer_rows(f)
        polls = build_interactions.polls(f, self._polls.values())
        draws = build_interactions.draws(f, self._draws.values())
        summary = build_summary.summary(
            f,
            peak,
            peak_at,
            polls,
            draws,
            quizzes=self._quizzes.values(),
            offers=self._offers.values(),
            chat_messages=self._chat_total,
            likes=self._likes_total,
            questions_answered=len(self._answered),
            sampled_away=self._sampled,
            moderation=self._moderation,
        )
        return Report(
            meta=Meta(
                schema_version=SCHEMA_VERSION,
                room=self.room,
                stream=self.stream,
                generated_at=generated_at,
                event_count=len(self._ids),
                events_hash=self.events_hash(),
                last_event_id=self._last_id,
                live=live,
                started_at=start,
                ended_at=end,
            ),
            summary=summary,
            timeline=timeline,
            retention=build_summary.retention(f),
            viewers=rows,
            staff=build_people.staff_rows(f, self._moderators),
            segments=build_people.segments(f, self._quizzes.values(), self._questions.values()),
            interactions=Interactions(
                polls=polls,
                quizzes=build_interactions.quizzes(f, self._quizzes.values()),
                questions=build_interactions.questions(
                    f, self._questions.values(), self._highlighted
                ),
                draws=draws,
                offers=build_interactions.offers(f, self._offers.values()),
                moderation=build_interactions.moderation(
                    f, self._moderation, self._moderators, self._muted, self._banned
                ),
            ),
        )

    def _credit_draws(self) -> None:
        """Draw entries and wins, once it is known which draws closed (the closed list
        is the entrants; an open draw's entrants are those who entered)."""
        for draw in self._draws.values():
            for vid in draw.entrants if draw.closed else list(draw.entered):
                v = self._viewer(vid)
                v.draw_entries += 1
                if not v.staff:  # an entry is an interaction: when entered, else at the close
                    self._interaction(v, draw.entered_at.get(vid, draw.closed_at))
            for vid in draw.winners:
                self._viewer(vid).wins += 1
