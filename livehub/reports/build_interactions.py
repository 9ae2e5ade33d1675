"""The interaction sections of the report: polls, quizzes, Q&A, draws, offers and
moderation (definitions in :mod:`livehub.reports.model`).

Leaderboards rank with the live quiz's own :func:`~livehub.interactions.quiz.ranking`,
so the report ranks exactly as the live leaderboard did; the automod actor is not
listed among the moderators."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Final

from livehub.interactions.moderation import AUTOMOD
from livehub.interactions.quiz import ranking
from livehub.reports.folded import Folded, ratio
from livehub.reports.model import (
    DrawReport,
    LeaderboardEntry,
    ModerationReport,
    ModeratorCount,
    OfferReport,
    OptionCount,
    PollReport,
    QuestionReport,
    QuizQuestionReport,
    QuizReport,
    WordCount,
)
from livehub.reports.tallies import (
    DrawTally,
    OfferTally,
    PollTally,
    QuestionTally,
    QuizQuestionTally,
    QuizTally,
)

LEADERBOARD_SIZE: Final = 10
CLOUD_SIZE: Final = 50


def polls(f: Folded, tallies: Iterable[PollTally]) -> list[PollReport]:
    """The polls active in the stream, in the order they opened."""
    active = [p for p in tallies if p.active]
    active.sort(key=lambda p: (p.opened_at if p.opened_at is not None else f.start, p.id))
    return [_poll(f, poll) for poll in active]


def _poll(f: Folded, poll: PollTally) -> PollReport:
    opened = max(poll.opened_at if poll.opened_at is not None else f.start, f.start)
    closed = poll.closed_at
    if closed is None:
        closed = poll.closes_at if poll.closes_at is not None else f.end
    closed = min(max(closed, opened), f.end)
    present = set(poll.voters)
    for v in f.viewers:
        if v.id in present:
            continue
        for a, b in f.clipped[v.id]:
            if a < closed and b >= opened:  # (a, b] meets [opened, closed]
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
        turnout=ratio(len(poll.voters), len(present)),
        opened_at=poll.opened_at,
        closed_at=poll.closed_at,
        rating_average=rating,
    )


def quizzes(f: Folded, tallies: Iterable[QuizTally]) -> list[QuizReport]:
    """The quizzes active in the stream: each question opened or answered, and the leaderboard."""
    return [_quiz(f, quiz) for quiz in tallies if quiz.active]


def _quiz(f: Folded, quiz: QuizTally) -> QuizReport:
    questions: list[QuizQuestionReport] = []
    for index in sorted(quiz.opened | {i for i in quiz.scores if i >= 0}):
        text, options, correct = (
            quiz.questions[index] if index < len(quiz.questions) else ("", [], [])
        )
        acc = quiz.scores.get(index) or QuizQuestionTally()
        questions.append(
            QuizQuestionReport(
                index=index,
                text=text,
                options=[
                    OptionCount(label=o, count=acc.counts.get(i, 0)) for i, o in enumerate(options)
                ],
                correct=correct,
                answers=acc.answers,
                correct_answers=acc.correct,
                accuracy=ratio(acc.correct, acc.answers),
                average_response_ms=(
                    round(acc.response_ms / acc.answers, 1) if acc.answers else None
                ),
            )
        )
    scores = {vid: s[0] for vid, s in quiz.viewers.items()}
    names = {vid: f.name(vid) for vid in quiz.viewers}
    board = [
        LeaderboardEntry(
            rank=s.rank,
            pid=f.pid(s.viewer_id),
            name=s.name,
            score=s.score,
            correct_answers=quiz.viewers[s.viewer_id][1],
            answers=quiz.viewers[s.viewer_id][2],
        )
        for s in ranking(scores, names)[:LEADERBOARD_SIZE]
    ]
    answers = sum(s[2] for s in quiz.viewers.values())
    return QuizReport(
        quiz_id=quiz.id,
        title=quiz.title,
        questions=questions,
        participants=len(quiz.viewers),
        answers=answers,
        accuracy=ratio(quiz.correct, answers),
        leaderboard=board,
    )


def questions(
    f: Folded, tallies: Iterable[QuestionTally], highlighted: int | None
) -> list[QuestionReport]:
    """Every question asked, in the order asked; anonymous ones without a name or pid."""
    reports: list[QuestionReport] = []
    for q in sorted(tallies, key=lambda q: q.id):
        status = q.status if q.status in ("open", "pending", "rejected", "dismissed") else "open"
        reports.append(
            QuestionReport(
                question_id=q.id,
                text=q.text,
                anonymous=q.anonymous,
                pid=None if q.anonymous else f.pid(q.viewer),
                name=None if q.anonymous else q.name,
                asked_at=q.asked_at,
                status=status,  # type: ignore[arg-type]
                answered=q.answered,
                votes=q.votes,
                highlighted=q.id == highlighted,
            )
        )
    return reports


def draws(f: Folded, tallies: Iterable[DrawTally]) -> list[DrawReport]:
    reports: list[DrawReport] = []
    for draw in tallies:
        status = (
            draw.status if draw.status in ("open", "closed", "committed", "revealed") else "open"
        )
        reports.append(
            DrawReport(
                draw_id=draw.id,
                prize=draw.prize,
                rule=draw.rule,
                winners_count=draw.winners_count,
                status=status,  # type: ignore[arg-type]
                entrants=len(draw.entrants) if draw.closed else len(draw.entered),
                winners=[f.person(w) for w in draw.winners],
                transcript=draw.transcript,
            )
        )
    return reports


def offers(f: Folded, tallies: Iterable[OfferTally]) -> list[OfferReport]:
    """The offers shown in the stream, in the order pushed."""
    unique = len(f.viewers)
    active = [o for o in tallies if o.active]
    active.sort(key=lambda o: (o.pushed_at if o.pushed_at is not None else f.start, o.id))
    return [
        OfferReport(
            offer_id=o.id,
            title=o.title,
            url=o.url,
            pushed_at=o.pushed_at if o.pushed_at is not None else f.start,
            withdrawn_at=o.withdrawn_at,
            clicks=o.clicks,
            conversion=ratio(o.clicks, unique),
        )
        for o in active
    ]


def moderation(
    f: Folded,
    by_kind: Counter[str],
    by_moderator: Mapping[str, int],
    muted: set[str],
    banned: set[str],
) -> ModerationReport:
    moderators = [
        ModeratorCount(pid=f.pid(actor), name=f.name(actor), actions=count)
        for actor, count in by_moderator.items()
        if actor != AUTOMOD
    ]
    moderators.sort(key=lambda m: (-m.actions, m.name.casefold(), m.pid))
    return ModerationReport(
        by_kind=dict(sorted(by_kind.items())),
        by_moderator=moderators,
        automod=sum(c for k, c in by_kind.items() if k.startswith("automod.")),
        viewers_muted=len(muted),
        viewers_banned=len(banned),
    )
