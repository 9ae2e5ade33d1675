"""Fold one stream's events into its :class:`~livehub.reports.model.Report`, in one pass.

Feed every event of the stream in id order to :meth:`ReportBuilder.add` (with
its data already decoded: one JSON decode per event, no per-event structs),
then call :meth:`ReportBuilder.finish`. Per-viewer state lives in slotted
objects; what needs the whole stream (intervals, windows, segments, scores) is
computed once at the end. The definitions are in :mod:`livehub.reports.model`.

Before the fold, the caller may hand over what lies before the stream:
:meth:`~ReportBuilder.carry` for viewers already connected when it started (see
:func:`present_before`) and :meth:`~ReportBuilder.define` for polls, quizzes and
offers created earlier (``poll.created``, ``quiz.created``, ``offer.pushed``).
"""

from __future__ import annotations

import hashlib
import hmac
import math
from array import array
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, TypeVar

from livehub.interactions.moderation import AUTOMOD
from livehub.interactions.quiz import ranking
from livehub.reports.model import (
    SCHEMA_VERSION,
    SEGMENT_KEYS,
    DrawReport,
    Interactions,
    LeaderboardEntry,
    Lift,
    Marker,
    MarkerKind,
    Meta,
    Minute,
    ModerationReport,
    ModeratorCount,
    OfferReport,
    OptionCount,
    Person,
    PollReport,
    QuestionReport,
    QuizQuestionReport,
    QuizReport,
    Report,
    Retention,
    Segment,
    StaffRow,
    Summary,
    Timeline,
    ViewerRow,
    WordCount,
)
from livehub.rooms.models import STAFF_ROLES

EARLY_SECONDS: Final = 300.0
LEFT_EARLY_SECONDS: Final = 300.0
#: how far back before a stream a viewer's connection is taken to still hold
CARRY_SECONDS: Final = 12 * 3600.0
LEADERBOARD_SIZE: Final = 10
CLOUD_SIZE: Final = 50
PRESENCE_KINDS: Final = ("presence.join", "presence.leave")
DEFINITION_KINDS: Final = ("poll.created", "quiz.created", "offer.pushed")
_HASH_CHUNK: Final = 65536

Data = Mapping[str, Any]


def pseudonym(stream: str, viewer_id: str) -> str:
    """First 12 hex of HMAC-SHA256(key = stream id, message = viewer id)."""
    return hmac.new(stream.encode(), viewer_id.encode(), hashlib.sha256).hexdigest()[:12]


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


def _ratio(num: float, den: float) -> float | None:
    return round(num / den, 4) if den else None


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


class _Viewer:
    __slots__ = (
        "acts",
        "answers",
        "carried",
        "clicks",
        "correct",
        "draw_entries",
        "first_join",
        "id",
        "intervals",
        "last_leave",
        "like_events",
        "likes",
        "messages",
        "name",
        "open_at",
        "presence_seen",
        "questions",
        "quiz_answered",
        "role",
        "score",
        "staff",
        "unacts",
        "upvotes",
        "votes",
        "wins",
    )

    def __init__(self, viewer_id: str) -> None:
        self.id = viewer_id
        self.name = viewer_id
        self.role = "viewer"
        self.staff = False
        self.carried = False
        self.presence_seen = False
        self.open_at: float | None = None
        self.first_join: float | None = None
        self.last_leave: float | None = None
        self.intervals: list[tuple[float, float]] = []
        self.messages = 0
        self.likes = 0
        self.like_events = 0
        self.votes = 0
        self.answers = 0
        self.correct = 0
        self.score = 0
        self.questions = 0
        self.upvotes = 0
        self.draw_entries = 0
        self.wins = 0
        self.clicks = 0
        self.quiz_answered: set[tuple[str, int]] | None = None
        #: the minute (from the start) of each interaction, and of each taken back
        self.acts = array("i")
        self.unacts = array("i")


class _Poll:
    __slots__ = (
        "active",
        "anonymous",
        "closed_at",
        "closes_at",
        "counts",
        "held",
        "id",
        "kind",
        "opened_at",
        "options",
        "question",
        "voters",
        "words",
    )

    def __init__(self, poll_id: str) -> None:
        self.id = poll_id
        self.question = ""
        self.kind = "single"
        self.options: list[str] = []
        self.anonymous = False
        self.active = False
        self.opened_at: float | None = None
        self.closes_at: float | None = None
        self.closed_at: float | None = None
        self.counts: Counter[int] = Counter()
        self.words: Counter[str] = Counter()
        self.held = 0
        self.voters: set[str] = set()


class _QuizQuestion:
    __slots__ = ("answers", "correct", "counts", "response_ms")

    def __init__(self) -> None:
        self.answers = 0
        self.correct = 0
        self.counts: Counter[int] = Counter()
        self.response_ms = 0


class _Quiz:
    __slots__ = ("active", "correct", "id", "opened", "questions", "scores", "title", "viewers")

    def __init__(self, quiz_id: str) -> None:
        self.id = quiz_id
        self.title = ""
        self.active = False
        #: as created: (text, options, correct)
        self.questions: list[tuple[str, list[str], list[int]]] = []
        self.opened: set[int] = set()
        self.scores: dict[int, _QuizQuestion] = {}
        #: viewer id -> [score, correct, answers]
        self.viewers: dict[str, list[int]] = {}
        self.correct = 0


class _Question:
    __slots__ = (
        "anonymous",
        "answered",
        "asked_at",
        "id",
        "name",
        "status",
        "text",
        "viewer",
        "votes",
    )

    def __init__(
        self, qid: int, text: str, viewer: str, name: str, anonymous: bool, asked_at: float
    ) -> None:
        self.id = qid
        self.text = text
        self.viewer = viewer
        self.name = name
        self.anonymous = anonymous
        self.asked_at = asked_at
        self.status = "open"
        self.answered = False
        self.votes = 0


class _Draw:
    __slots__ = (
        "closed",
        "closed_at",
        "entered",
        "entered_at",
        "entrants",
        "id",
        "prize",
        "rule",
        "status",
        "transcript",
        "winners",
        "winners_count",
    )

    def __init__(self, draw_id: str) -> None:
        self.id = draw_id
        self.prize = ""
        self.rule: dict[str, Any] = {}
        self.winners_count = 1
        self.status = "open"
        self.entered: dict[str, str] = {}
        self.entered_at: dict[str, float] = {}
        self.closed = False
        self.closed_at = 0.0
        self.entrants: list[str] = []
        self.winners: list[str] = []
        self.transcript: dict[str, Any] | None = None


class _Offer:
    __slots__ = ("active", "clicks", "id", "pushed_at", "title", "url", "withdrawn_at")

    def __init__(self, offer_id: str) -> None:
        self.id = offer_id
        self.title = ""
        self.url = ""
        self.active = False
        self.pushed_at: float | None = None
        self.withdrawn_at: float | None = None
        self.clicks = 0


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
        self._viewers: dict[str, _Viewer] = {}
        # per minute from the start (negative and past-the-end minutes are clamped at the end)
        self._messages: defaultdict[int, int] = defaultdict(int)
        self._likes: defaultdict[int, int] = defaultdict(int)
        self._markers: list[tuple[float, MarkerKind, str, str]] = []
        self._polls: dict[str, _Poll] = {}
        self._quizzes: dict[str, _Quiz] = {}
        self._questions: dict[int, _Question] = {}
        self._answered: set[int] = set()
        self._highlighted: int | None = None
        self._draws: dict[str, _Draw] = {}
        self._offers: dict[str, _Offer] = {}
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

    def _viewer(self, viewer_id: str) -> _Viewer:
        v = self._viewers.get(viewer_id)
        if v is None:
            v = self._viewers[viewer_id] = _Viewer(viewer_id)
        return v

    @staticmethod
    def _set_role(v: _Viewer, role: Any) -> None:
        if role in STAFF_ROLES:
            v.role = str(role)
            v.staff = True

    def _interaction(self, v: _Viewer, ts: float) -> None:
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

    def _message(self, v: _Viewer, ts: float) -> None:
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

    def _poll(self, poll_id: Any) -> _Poll:
        return _entry(self._polls, poll_id, _Poll)

    def _poll_created(self, ts: float, actor: str, data: Data, active: bool = True) -> None:
        body = data.get("poll")
        if not isinstance(body, Mapping):
            return
        poll = self._poll(body.get("id"))
        poll.question = str(body.get("question") or "")
        poll.kind = str(body.get("kind") or "single")
        options = body.get("options")
        poll.options = [str(o) for o in options] if isinstance(options, list) else []
        poll.anonymous = bool(body.get("anonymous"))
        poll.active = poll.active or active

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
        poll = self._poll(data.get("poll_id"))
        poll.active = True
        if "anonymous" in data:
            poll.anonymous = bool(data.get("anonymous"))
        poll.voters.add(actor)
        text = data.get("text")
        if isinstance(text, str):
            if data.get("held"):
                poll.held += 1
            else:
                poll.words[text.casefold()] += 1
        choices = data.get("choices")
        if isinstance(choices, list):
            for choice in choices:
                if isinstance(choice, int):
                    poll.counts[choice] += 1
        v = self._viewer(actor)
        v.votes += 1
        self._interaction(v, ts)

    # -- quizzes ---------------------------------------------------------------------------

    def _quiz(self, quiz_id: Any) -> _Quiz:
        return _entry(self._quizzes, quiz_id, _Quiz)

    def _quiz_created(self, ts: float, actor: str, data: Data, active: bool = True) -> None:
        body = data.get("quiz")
        if not isinstance(body, Mapping):
            return
        quiz = self._quiz(body.get("id"))
        quiz.title = str(body.get("title") or "")
        quiz.active = quiz.active or active
        questions = body.get("questions")
        quiz.questions = []
        for q in questions if isinstance(questions, list) else []:
            if not isinstance(q, Mapping):
                continue
            options = q.get("options")
            correct = q.get("correct")
            quiz.questions.append(
                (
                    str(q.get("text") or ""),
                    [str(o) for o in options] if isinstance(options, list) else [],
                    [c for c in correct if isinstance(c, int)] if isinstance(correct, list) else [],
                )
            )

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
        quiz.active = True
        index = _int(data.get("index"), -1)
        correct = data.get("correct") is True
        points = _int(data.get("points"))
        question = quiz.scores.get(index)
        if question is None:
            question = quiz.scores[index] = _QuizQuestion()
        question.answers += 1
        question.response_ms += _int(data.get("response_ms"))
        choices = data.get("choices")
        if isinstance(choices, list):
            for choice in choices:
                if isinstance(choice, int):
                    question.counts[choice] += 1
        standing = quiz.viewers.get(actor)
        if standing is None:
            standing = quiz.viewers[actor] = [0, 0, 0]
        standing[0] += points
        standing[2] += 1
        v = self._viewer(actor)
        v.answers += 1
        v.score += points
        if correct:
            question.correct += 1
            quiz.correct += 1
            standing[1] += 1
            v.correct += 1
        if v.quiz_answered is None:
            v.quiz_answered = set()
        v.quiz_answered.add((quiz.id, index))
        self._interaction(v, ts)

    # -- Q&A -------------------------------------------------------------------------------

    def _asked(self, ts: float, actor: str, data: Data, status: str) -> _Question:
        name = str(data.get("name") or actor)
        question = _Question(
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

    def _draw(self, draw_id: Any) -> _Draw:
        return _entry(self._draws, draw_id, _Draw)

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
        draw.status = "closed"
        draw.closed = True
        draw.closed_at = ts
        entrants = data.get("entrants")
        draw.entrants = (
            [e for e in entrants if isinstance(e, str)] if isinstance(entrants, list) else []
        )
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
        draw.status = "revealed"
        transcript = data.get("transcript")
        if isinstance(transcript, Mapping):
            draw.transcript = dict(transcript)
            winners = transcript.get("winners")
            draw.winners = (
                [w for w in winners if isinstance(w, str)] if isinstance(winners, list) else []
            )
            if not draw.prize:
                draw.prize = str(transcript.get("prize") or "")
        self._marker(ts, "draw.revealed", draw.id, draw.prize)

    # -- offers ----------------------------------------------------------------------------

    def _offer(self, offer_id: Any) -> _Offer:
        return _entry(self._offers, offer_id, _Offer)

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
        return _Finisher(self, start, end, generated_at, live).report()


class _Finisher:
    """Everything computed once the whole stream has been folded."""

    def __init__(
        self, b: ReportBuilder, start: float, end: float, generated_at: float, live: bool
    ) -> None:
        self.b = b
        self.start = start
        self.end = end
        self.duration = end - start
        self.minutes = max(1, math.ceil(self.duration / 60))
        self.generated_at = generated_at
        self.live = live
        self._pids: dict[str, str] = {}

    def pid(self, viewer_id: str) -> str:
        found = self._pids.get(viewer_id)
        if found is None:
            found = self._pids[viewer_id] = pseudonym(self.b.stream, viewer_id)
        return found

    def minute(self, ts: float) -> int:
        return min(max(int((ts - self.start) // 60), 0), self.minutes - 1)

    def minute_end(self, m: int) -> float:
        return self.end if m == self.minutes - 1 else self.start + 60.0 * (m + 1)

    def name(self, viewer_id: str) -> str:
        v = self.b._viewers.get(viewer_id)
        return v.name if v is not None else viewer_id

    def report(self) -> Report:
        b = self.b
        self._credit_draws()
        self.clipped: dict[str, list[tuple[float, float]]] = {}
        for v in b._viewers.values():
            self.clipped[v.id] = self._clip(v)
        people = list(b._viewers.values())
        viewers = [v for v in people if not v.staff]
        self.viewers = viewers
        self.watch = {v.id: sum(bb - a for a, bb in self.clipped[v.id]) for v in people}
        self.interactions = {
            v.id: v.messages
            + v.like_events
            + v.votes
            + v.answers
            + v.questions
            + v.upvotes
            + v.draw_entries
            + v.clicks
            for v in viewers
        }
        timeline, peak, peak_at = self._timeline()
        rows = self._rows()
        polls = self._polls()
        draws = self._draws()
        return Report(
            meta=Meta(
                schema_version=SCHEMA_VERSION,
                room=b.room,
                stream=b.stream,
                generated_at=self.generated_at,
                event_count=len(b._ids),
                events_hash=b.events_hash(),
                last_event_id=b._last_id,
                live=self.live,
                started_at=self.start,
                ended_at=self.end,
            ),
            summary=self._summary(peak, peak_at, polls, draws),
            timeline=timeline,
            retention=self._retention(),
            viewers=rows,
            staff=self._staff(),
            segments=self._segments(),
            interactions=Interactions(
                polls=polls,
                quizzes=self._quizzes(),
                questions=self._questions(),
                draws=draws,
                offers=self._offers(),
                moderation=self._moderation(),
            ),
        )

    # -- presence ----------------------------------------------------------------------

    def _clip(self, v: _Viewer) -> list[tuple[float, float]]:
        spans = list(v.intervals)
        if v.open_at is not None:
            spans.append((v.open_at, self.end))
        clipped: list[tuple[float, float]] = []
        for a, bb in spans:
            a = max(a, self.start)
            bb = min(bb, self.end)
            if bb > a:
                if clipped and a <= clipped[-1][1]:  # touching or overlapping: one span
                    clipped[-1] = (clipped[-1][0], max(bb, clipped[-1][1]))
                else:
                    clipped.append((a, bb))
        return clipped

    def _present_at_end(self, v: _Viewer) -> bool:
        spans = self.clipped[v.id]
        return bool(spans) and spans[-1][1] >= self.end

    def _timeline(self) -> tuple[Timeline, int, float | None]:
        b = self.b
        n = self.minutes
        points: list[tuple[float, int]] = []
        joins = [0] * n
        leaves = [0] * n
        for v in self.viewers:
            for a, bb in self.clipped[v.id]:
                points.append((a, 1))
                points.append((bb, -1))
                joins[self.minute(a)] += 1
                if bb < self.end:
                    leaves[self.minute(bb)] += 1
        points.sort()
        messages = self._buckets(b._messages)
        likes = self._buckets(b._likes)
        interactions = self._buckets(self._acts())
        cur = 0
        idx = 0
        total = len(points)
        peak = 0
        peak_at: float | None = None
        minutes: list[Minute] = []
        for m in range(n):
            t_end = self.minute_end(m)
            within = cur
            while idx < total and points[idx][0] < t_end:
                x, delta = points[idx]
                cur += delta
                idx += 1
                if cur > within:
                    within = cur
                if cur > peak:
                    peak, peak_at = cur, x
            minutes.append(
                Minute(
                    minute=m,
                    viewers=cur,
                    peak_viewers=within,
                    joins=joins[m],
                    leaves=leaves[m],
                    messages=messages[m],
                    likes=likes[m],
                    interactions=interactions[m],
                )
            )
            # joins and leaves at exactly the minute's end count from the next instant on
            while idx < total and points[idx][0] <= t_end:
                x, delta = points[idx]
                cur += delta
                idx += 1
                if cur > peak:
                    peak, peak_at = cur, x
        markers = [
            Marker(
                ts=ts,
                offset_seconds=round(ts - self.start, 3),
                minute=self.minute(ts),
                kind=kind,
                ref=ref,
                label=label,
            )
            for ts, kind, ref, label in sorted(b._markers, key=lambda mk: mk[0])
        ]
        return Timeline(minutes=minutes, markers=markers), peak, peak_at

    def _acts(self) -> Counter[int]:
        """Viewers' interactions per minute (staff left out)."""
        acts: Counter[int] = Counter()
        for v in self.viewers:
            acts.update(v.acts)
            if v.unacts:
                acts.subtract(v.unacts)
        return acts

    def _buckets(self, counts: Mapping[int, int]) -> list[int]:
        """Per-minute counts; anything after the end (late events) goes to the last minute."""
        out = [0] * self.minutes
        last = self.minutes - 1
        for m, c in counts.items():
            out[0 if m < 0 else (m if m < last else last)] += c
        return out

    def _retention(self) -> Retention:
        n = self.minutes
        diff = [0] * (n + 1)
        for v in self.viewers:
            last = -1
            for a, bb in self.clipped[v.id]:
                first = max(self.minute(a), last + 1)
                final = min(max(math.ceil((bb - self.start) / 60) - 1, 0), n - 1)
                if final >= first:
                    diff[first] += 1
                    diff[final + 1] -= 1
                    last = final
        shares: list[float] = []
        running = 0
        unique = len(self.viewers)
        for m in range(n):
            running += diff[m]
            shares.append(round(running / unique, 4) if unique else 0.0)
        early = [
            v
            for v in self.viewers
            if self.clipped[v.id] and self.clipped[v.id][0][0] < self.start + EARLY_SECONDS
        ]
        early_watch = sum(self.watch[v.id] for v in early)
        return Retention(
            shares=shares,
            early_viewers=len(early),
            early_average_watch_seconds=(round(early_watch / len(early), 1) if early else None),
        )

    # -- people ------------------------------------------------------------------------

    def _credit_draws(self) -> None:
        b = self.b
        for draw in b._draws.values():
            for vid in draw.entrants if draw.closed else list(draw.entered):
                v = b._viewer(vid)
                v.draw_entries += 1
                if not v.staff:  # an entry is an interaction: when entered, else at the close
                    b._interaction(v, draw.entered_at.get(vid, draw.closed_at))
            for vid in draw.winners:
                b._viewer(vid).wins += 1

    def _rows(self) -> list[ViewerRow]:
        watch = self.watch
        acts = {
            v.id: (watch[v.id], v.messages, v.likes, v.votes + v.answers, v.questions + v.upvotes)
            for v in self.viewers
        }
        tops = [max((a[i] for a in acts.values()), default=0) for i in range(5)]
        rows: list[ViewerRow] = []
        for v in self.viewers:
            a = acts[v.id]
            score = sum(2 * a[i] / tops[i] for i in range(5) if tops[i] > 0)
            rows.append(
                ViewerRow(
                    pid=self.pid(v.id),
                    name=v.name,
                    first_join=self._first_join(v),
                    last_leave=None if self._present_at_end(v) else self._last_leave(v),
                    watch_seconds=round(watch[v.id], 1),
                    messages=v.messages,
                    likes=v.likes,
                    votes=v.votes,
                    answers=v.answers,
                    correct_answers=v.correct,
                    quiz_score=v.score,
                    questions=v.questions,
                    upvotes=v.upvotes,
                    draw_entries=v.draw_entries,
                    draw_wins=v.wins,
                    offer_clicks=v.clicks,
                    activity_score=round(score, 1),
                )
            )
        rows.sort(key=lambda r: (-r.activity_score, -r.watch_seconds, r.pid))
        return rows

    def _first_join(self, v: _Viewer) -> float | None:
        spans = self.clipped[v.id]
        if spans:
            return spans[0][0]
        return None if v.first_join is None else min(max(v.first_join, self.start), self.end)

    def _last_leave(self, v: _Viewer) -> float | None:
        spans = self.clipped[v.id]
        if spans:
            return spans[-1][1]
        return None if v.last_leave is None else min(max(v.last_leave, self.start), self.end)

    def _staff(self) -> list[StaffRow]:
        b = self.b
        staff = [v for v in b._viewers.values() if v.staff]
        return sorted(
            (
                StaffRow(
                    pid=self.pid(v.id),
                    name=v.name,
                    role=v.role,
                    first_join=self._first_join(v),
                    last_leave=None if self._present_at_end(v) else self._last_leave(v),
                    watch_seconds=round(self.watch[v.id], 1),
                    messages=v.messages,
                    moderation_actions=b._moderators.get(v.id, 0),
                )
                for v in staff
            ),
            key=lambda r: (r.role != "host", r.name.casefold(), r.pid),
        )

    def _person(self, viewer_id: str) -> Person:
        return Person(pid=self.pid(viewer_id), name=self.name(viewer_id))

    def _segments(self) -> list[Segment]:
        b = self.b
        opened: set[tuple[str, int]] = set()
        for quiz in b._quizzes.values():
            opened.update((quiz.id, i) for i in quiz.opened)
            opened.update((quiz.id, i) for i in quiz.scores if i >= 0)
        unanswered = {
            q.viewer
            for q in b._questions.values()
            if not q.answered and q.status in ("open", "dismissed")
        }
        members: dict[str, list[_Viewer]] = {key: [] for key in SEGMENT_KEYS}
        for v in self.viewers:
            if v.clicks:
                members["clicked_offer"].append(v)
            elif self.interactions[v.id]:
                members["engaged_no_click"].append(v)
            spans = self.clipped[v.id]
            if spans and not self._present_at_end(v):
                if spans[-1][1] - spans[0][0] < LEFT_EARLY_SECONDS:
                    members["left_early"].append(v)
            if opened and v.quiz_answered is not None and opened <= v.quiz_answered:
                members["all_quiz"].append(v)
            if v.id in unanswered:
                members["unanswered"].append(v)
        return [
            Segment(
                key=key,
                viewers=sorted(
                    (Person(pid=self.pid(v.id), name=v.name) for v in members[key]),
                    key=lambda p: (p.name.casefold(), p.pid),
                ),
            )
            for key in SEGMENT_KEYS
        ]

    # -- summary -------------------------------------------------------------------------

    def _summary(
        self, peak: int, peak_at: float | None, polls: list[PollReport], draws: list[DrawReport]
    ) -> Summary:
        b = self.b
        viewers = self.viewers
        unique = len(viewers)
        total_watch = sum(self.watch[v.id] for v in viewers)
        turnouts = [p.turnout for p in polls if p.turnout is not None]
        quiz_answers = sum(q.answers for qz in b._quizzes.values() for q in qz.scores.values())
        quiz_correct = sum(qz.correct for qz in b._quizzes.values())
        answerers = sum(1 for v in viewers if v.answers)
        clickers = {v.id for v in viewers if v.clicks}
        n = sum(self.interactions.values())
        minutes = total_watch / 60
        engaged = [v for v in viewers if v.votes or v.answers or v.questions]
        others = [v for v in viewers if not (v.votes or v.answers or v.questions)]
        engaged_clickers = sum(1 for v in engaged if v.id in clickers)
        other_clickers = sum(1 for v in others if v.id in clickers)
        engaged_rate = _ratio(engaged_clickers, len(engaged))
        other_rate = _ratio(other_clickers, len(others))
        return Summary(
            duration_seconds=round(self.duration, 3),
            unique_viewers=unique,
            peak_viewers=peak,
            peak_at=peak_at,
            average_viewers=round(total_watch / self.duration, 4) if self.duration > 0 else 0.0,
            total_watch_seconds=round(total_watch, 1),
            average_watch_seconds=round(total_watch / unique, 1) if unique else None,
            chat_messages=b._chat_total,
            likes=b._likes_total,
            questions_asked=sum(v.questions for v in b._viewers.values()),
            questions_answered=len(b._answered),
            polls=len(polls),
            poll_votes=sum(p.voters for p in polls),
            poll_turnout=round(sum(turnouts) / len(turnouts), 4) if turnouts else None,
            quiz_answers=quiz_answers,
            quiz_participation=_ratio(answerers, unique),
            quiz_accuracy=_ratio(quiz_correct, quiz_answers),
            draws=len(draws),
            draw_entries=sum(d.entrants for d in draws),
            offers=sum(1 for o in b._offers.values() if o.active),
            offer_clicks=sum(o.clicks for o in b._offers.values()),
            offer_conversion=_ratio(len(clickers), unique),
            interactions=n,
            watch_minutes=round(minutes, 3),
            engagement_rate=round(n / minutes, 4) if minutes > 0 else None,
            lift=Lift(
                engaged_viewers=len(engaged),
                engaged_clickers=engaged_clickers,
                engaged_conversion=engaged_rate,
                other_viewers=len(others),
                other_clickers=other_clickers,
                other_conversion=other_rate,
                lift=(
                    round(engaged_rate / other_rate, 4)
                    if engaged_rate is not None and other_rate
                    else None
                ),
            ),
            sampled_away=b._sampled,
            moderation_actions=sum(b._moderation.values()),
            moderation_by_kind=dict(sorted(b._moderation.items())),
        )

    # -- interactions --------------------------------------------------------------------

    def _polls(self) -> list[PollReport]:
        active = [p for p in self.b._polls.values() if p.active]
        active.sort(key=lambda p: (p.opened_at if p.opened_at is not None else self.start, p.id))
        return [self._poll(poll) for poll in active]

    def _poll(self, poll: _Poll) -> PollReport:
        opened = max(poll.opened_at if poll.opened_at is not None else self.start, self.start)
        closed = poll.closed_at
        if closed is None:
            closed = poll.closes_at if poll.closes_at is not None else self.end
        closed = min(max(closed, opened), self.end)
        present = set(poll.voters)
        for v in self.viewers:
            if v.id in present:
                continue
            for a, bb in self.clipped[v.id]:
                if a < closed and bb >= opened:  # (a, b] meets [opened, closed]
                    present.add(v.id)
                    break
        options = poll.options
        if not options and poll.kind != "word_cloud" and poll.counts:
            options = [str(i + 1) for i in range(max(poll.counts) + 1)]
        counts = [OptionCount(label=o, count=poll.counts.get(i, 0)) for i, o in enumerate(options)]
        rating: float | None = None
        if poll.kind == "rating":
            votes = sum(c.count for c in counts)
            total = sum((i + 1) * c.count for i, c in enumerate(counts))
            rating = round(total / votes, 2) if votes else None
        words = sorted(poll.words.items(), key=lambda w: (-w[1], w[0]))[:CLOUD_SIZE]
        return PollReport(
            poll_id=poll.id,
            question=poll.question,
            kind=poll.kind,
            anonymous=poll.anonymous,
            options=counts,
            words=[WordCount(word=w, count=c) for w, c in words],
            held_words=poll.held,
            voters=len(poll.voters),
            present=len(present),
            turnout=_ratio(len(poll.voters), len(present)),
            opened_at=poll.opened_at,
            closed_at=poll.closed_at,
            rating_average=rating,
        )

    def _quizzes(self) -> list[QuizReport]:
        reports: list[QuizReport] = []
        for quiz in self.b._quizzes.values():
            if not quiz.active:
                continue
            questions: list[QuizQuestionReport] = []
            for index in sorted(quiz.opened | {i for i in quiz.scores if i >= 0}):
                text, options, correct = (
                    quiz.questions[index] if index < len(quiz.questions) else ("", [], [])
                )
                acc = quiz.scores.get(index) or _QuizQuestion()
                questions.append(
                    QuizQuestionReport(
                        index=index,
                        text=text,
                        options=[
                            OptionCount(label=o, count=acc.counts.get(i, 0))
                            for i, o in enumerate(options)
                        ],
                        correct=correct,
                        answers=acc.answers,
                        correct_answers=acc.correct,
                        accuracy=_ratio(acc.correct, acc.answers),
                        average_response_ms=(
                            round(acc.response_ms / acc.answers, 1) if acc.answers else None
                        ),
                    )
                )
            scores = {vid: s[0] for vid, s in quiz.viewers.items()}
            names = {vid: self.name(vid) for vid in quiz.viewers}
            board = [
                LeaderboardEntry(
                    rank=s.rank,
                    pid=self.pid(s.viewer_id),
                    name=s.name,
                    score=s.score,
                    correct_answers=quiz.viewers[s.viewer_id][1],
                    answers=quiz.viewers[s.viewer_id][2],
                )
                for s in ranking(scores, names)[:LEADERBOARD_SIZE]
            ]
            answers = sum(s[2] for s in quiz.viewers.values())
            reports.append(
                QuizReport(
                    quiz_id=quiz.id,
                    title=quiz.title,
                    questions=questions,
                    participants=len(quiz.viewers),
                    answers=answers,
                    accuracy=_ratio(quiz.correct, answers),
                    leaderboard=board,
                )
            )
        return reports

    def _questions(self) -> list[QuestionReport]:
        b = self.b
        reports: list[QuestionReport] = []
        for q in sorted(b._questions.values(), key=lambda q: q.id):
            status = (
                q.status if q.status in ("open", "pending", "rejected", "dismissed") else "open"
            )
            reports.append(
                QuestionReport(
                    question_id=q.id,
                    text=q.text,
                    anonymous=q.anonymous,
                    pid=None if q.anonymous else self.pid(q.viewer),
                    name=None if q.anonymous else q.name,
                    asked_at=q.asked_at,
                    status=status,  # type: ignore[arg-type]
                    answered=q.answered,
                    votes=q.votes,
                    highlighted=q.id == b._highlighted,
                )
            )
        return reports

    def _draws(self) -> list[DrawReport]:
        reports: list[DrawReport] = []
        for draw in self.b._draws.values():
            status = (
                draw.status
                if draw.status in ("open", "closed", "committed", "revealed")
                else "open"
            )
            reports.append(
                DrawReport(
                    draw_id=draw.id,
                    prize=draw.prize,
                    rule=draw.rule,
                    winners_count=draw.winners_count,
                    status=status,  # type: ignore[arg-type]
                    entrants=len(draw.entrants) if draw.closed else len(draw.entered),
                    winners=[self._person(w) for w in draw.winners],
                    transcript=draw.transcript,
                )
            )
        return reports

    def _offers(self) -> list[OfferReport]:
        unique = len(self.viewers)
        offers = [o for o in self.b._offers.values() if o.active]
        offers.sort(key=lambda o: (o.pushed_at if o.pushed_at is not None else self.start, o.id))
        return [
            OfferReport(
                offer_id=o.id,
                title=o.title,
                url=o.url,
                pushed_at=o.pushed_at if o.pushed_at is not None else self.start,
                withdrawn_at=o.withdrawn_at,
                clicks=o.clicks,
                conversion=_ratio(o.clicks, unique),
            )
            for o in offers
        ]

    def _moderation(self) -> ModerationReport:
        b = self.b
        moderators = [
            ModeratorCount(pid=self.pid(actor), name=self.name(actor), actions=count)
            for actor, count in b._moderators.items()
            if actor != AUTOMOD
        ]
        moderators.sort(key=lambda m: (-m.actions, m.name.casefold(), m.pid))
        return ModerationReport(
            by_kind=dict(sorted(b._moderation.items())),
            by_moderator=moderators,
            automod=sum(c for k, c in b._moderation.items() if k.startswith("automod.")),
            viewers_muted=len(b._muted),
            viewers_banned=len(b._banned),
        )
