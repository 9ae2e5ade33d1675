"""The running tallies :class:`~livehub.reports.builder.ReportBuilder` keeps while it folds.

One slotted record per viewer and per poll, quiz, question, draw and offer of the
stream. The fold (``builder``) finds or creates the record for each event and
updates it; the records parse their own event bodies where that takes more than a
line or two. The report's sections (``build_summary``, ``build_people``,
``build_interactions``) read them once the fold is done.
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Mapping
from typing import Any

Data = Mapping[str, Any]


def _count_choices(counts: Counter[int], choices: Any) -> None:
    if isinstance(choices, list):
        for choice in choices:
            if isinstance(choice, int):
                counts[choice] += 1


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


class ViewerTally:
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


class PollTally:
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

    def define(self, body: Data, active: bool) -> None:
        """From a ``poll.created`` body; ``active`` when created during the stream."""
        self.question = str(body.get("question") or "")
        self.kind = str(body.get("kind") or "single")
        options = body.get("options")
        self.options = [str(o) for o in options] if isinstance(options, list) else []
        self.anonymous = bool(body.get("anonymous"))
        self.active = self.active or active

    def vote(self, actor: str, data: Data) -> None:
        """A ``poll.vote``: choices counted, or the words of a word-cloud answer."""
        self.active = True
        if "anonymous" in data:
            self.anonymous = bool(data.get("anonymous"))
        self.voters.add(actor)
        text = data.get("text")
        if isinstance(text, str):
            if data.get("held"):
                self.held += 1
            else:
                self.words[text.casefold()] += 1
        _count_choices(self.counts, data.get("choices"))


class QuizQuestionTally:
    __slots__ = ("answers", "correct", "counts", "response_ms")

    def __init__(self) -> None:
        self.answers = 0
        self.correct = 0
        self.counts: Counter[int] = Counter()
        self.response_ms = 0


class QuizTally:
    __slots__ = ("active", "correct", "id", "opened", "questions", "scores", "title", "viewers")

    def __init__(self, quiz_id: str) -> None:
        self.id = quiz_id
        self.title = ""
        self.active = False
        #: as created: (text, options, correct)
        self.questions: list[tuple[str, list[str], list[int]]] = []
        self.opened: set[int] = set()
        self.scores: dict[int, QuizQuestionTally] = {}
        #: viewer id -> [score, correct, answers]
        self.viewers: dict[str, list[int]] = {}
        self.correct = 0

    def define(self, body: Data, active: bool) -> None:
        """From a ``quiz.created`` body; ``active`` when created during the stream."""
        self.title = str(body.get("title") or "")
        self.active = self.active or active
        questions = body.get("questions")
        self.questions = []
        for q in questions if isinstance(questions, list) else []:
            if not isinstance(q, Mapping):
                continue
            options = q.get("options")
            correct = q.get("correct")
            self.questions.append(
                (
                    str(q.get("text") or ""),
                    [str(o) for o in options] if isinstance(options, list) else [],
                    [c for c in correct if isinstance(c, int)] if isinstance(correct, list) else [],
                )
            )

    def answer(
        self, actor: str, index: int, points: int, correct: bool, response_ms: int, choices: Any
    ) -> None:
        """A ``quiz.answer``, on its question and on the viewer's standing."""
        self.active = True
        question = self.scores.get(index)
        if question is None:
            question = self.scores[index] = QuizQuestionTally()
        question.answers += 1
        question.response_ms += response_ms
        _count_choices(question.counts, choices)
        standing = self.viewers.get(actor)
        if standing is None:
            standing = self.viewers[actor] = [0, 0, 0]
        standing[0] += points
        standing[2] += 1
        if correct:
            question.correct += 1
            self.correct += 1
            standing[1] += 1


class QuestionTally:
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


class DrawTally:
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

    def close(self, ts: float, entrants: Any) -> None:
        """``draw.closed``: the entrants as the draw fixed them."""
        self.status = "closed"
        self.closed = True
        self.closed_at = ts
        self.entrants = _strings(entrants)

    def reveal(self, transcript: Any) -> None:
        """``draw.revealed``: the winners and the transcript that proves them."""
        self.status = "revealed"
        if isinstance(transcript, Mapping):
            self.transcript = dict(transcript)
            self.winners = _strings(transcript.get("winners"))
            if not self.prize:
                self.prize = str(transcript.get("prize") or "")


class OfferTally:
    __slots__ = ("active", "clicks", "id", "pushed_at", "title", "url", "withdrawn_at")

    def __init__(self, offer_id: str) -> None:
        self.id = offer_id
        self.title = ""
        self.url = ""
        self.active = False
        self.pushed_at: float | None = None
        self.withdrawn_at: float | None = None
        self.clicks = 0
