"""The stream-wide sections of the report: the per-minute timeline with its
markers, retention, and the summary's totals and ratios (definitions in
:mod:`livehub.reports.model`)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from typing import Final

from livehub.reports.folded import Folded, ratio
from livehub.reports.model import (
    DrawReport,
    Lift,
    Marker,
    MarkerKind,
    Minute,
    PollReport,
    Retention,
    Summary,
    Timeline,
)
from livehub.reports.tallies import OfferTally, QuizTally

EARLY_SECONDS: Final = 300.0


def timeline(
    f: Folded,
    messages: Mapping[int, int],
    likes: Mapping[int, int],
    markers: Sequence[tuple[float, MarkerKind, str, str]],
) -> tuple[Timeline, int, float | None]:
    """The timeline, and the peak of concurrent viewers with when it was first reached.

    ``messages`` and ``likes`` are counts per minute from the start (any minute)."""
    n = f.minutes
    points: list[tuple[float, int]] = []
    joins = [0] * n
    leaves = [0] * n
    for v in f.viewers:
        for a, b in f.clipped[v.id]:
            points.append((a, 1))
            points.append((b, -1))
            joins[f.minute(a)] += 1
            if b < f.end:
                leaves[f.minute(b)] += 1
    points.sort()
    message_counts = _buckets(f, messages)
    like_counts = _buckets(f, likes)
    interactions = _buckets(f, _acts(f))
    cur = 0
    idx = 0
    total = len(points)
    peak = 0
    peak_at: float | None = None
    minutes: list[Minute] = []
    for m in range(n):
        t_end = f.minute_end(m)
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
                messages=message_counts[m],
                likes=like_counts[m],
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
    marks = [
        Marker(
            ts=ts,
            offset_seconds=round(ts - f.start, 3),
            minute=f.minute(ts),
            kind=kind,
            ref=ref,
            label=label,
        )
        for ts, kind, ref, label in sorted(markers, key=lambda mk: mk[0])
    ]
    return Timeline(minutes=minutes, markers=marks), peak, peak_at


def _acts(f: Folded) -> Counter[int]:
    """Viewers' interactions per minute (staff left out)."""
    acts: Counter[int] = Counter()
    for v in f.viewers:
        acts.update(v.acts)
        if v.unacts:
            acts.subtract(v.unacts)
    return acts


def _buckets(f: Folded, counts: Mapping[int, int]) -> list[int]:
    """Per-minute counts; anything after the end (late events) goes to the last minute."""
    out = [0] * f.minutes
    last = f.minutes - 1
    for m, c in counts.items():
        out[0 if m < 0 else (m if m < last else last)] += c
    return out


def retention(f: Folded) -> Retention:
    n = f.minutes
    diff = [0] * (n + 1)
    for v in f.viewers:
        last = -1
        for a, b in f.clipped[v.id]:
            first = max(f.minute(a), last + 1)
            final = min(max(math.ceil((b - f.start) / 60) - 1, 0), n - 1)
            if final >= first:
                diff[first] += 1
                diff[final + 1] -= 1
                last = final
    shares: list[float] = []
    running = 0
    unique = len(f.viewers)
    for m in range(n):
        running += diff[m]
        shares.append(round(running / unique, 4) if unique else 0.0)
    early = [
        v for v in f.viewers if f.clipped[v.id] and f.clipped[v.id][0][0] < f.start + EARLY_SECONDS
    ]
    early_watch = sum(f.watch[v.id] for v in early)
    return Retention(
        shares=shares,
        early_viewers=len(early),
        early_average_watch_seconds=(round(early_watch / len(early), 1) if early else None),
    )


def summary(
    f: Folded,
    peak: int,
    peak_at: float | None,
    polls: list[PollReport],
    draws: list[DrawReport],
    *,
    quizzes: Collection[QuizTally],
    offers: Collection[OfferTally],
    chat_messages: int,
    likes: int,
    questions_answered: int,
    sampled_away: int,
    moderation: Counter[str],
) -> Summary:
    viewers = f.viewers
    unique = len(viewers)
    total_watch = sum(f.watch[v.id] for v in viewers)
    turnouts = [p.turnout for p in polls if p.turnout is not None]
    quiz_answers = sum(q.answers for qz in quizzes for q in qz.scores.values())
    quiz_correct = sum(qz.correct for qz in quizzes)
    answerers = sum(1 for v in viewers if v.answers)
    clickers = {v.id for v in viewers if v.clicks}
    n = sum(f.interactions.values())
    minutes = total_watch / 60
    engaged = [v for v in viewers if v.votes or v.answers or v.questions]
    others = [v for v in viewers if not (v.votes or v.answers or v.questions)]
    engaged_clickers = sum(1 for v in engaged if v.id in clickers)
    other_clickers = sum(1 for v in others if v.id in clickers)
    engaged_rate = ratio(engaged_clickers, len(engaged))
    other_rate = ratio(other_clickers, len(others))
    return Summary(
        duration_seconds=round(f.duration, 3),
        unique_viewers=unique,
        peak_viewers=peak,
        peak_at=peak_at,
        average_viewers=round(total_watch / f.duration, 4) if f.duration > 0 else 0.0,
        total_watch_seconds=round(total_watch, 1),
        average_watch_seconds=round(total_watch / unique, 1) if unique else None,
        chat_messages=chat_messages,
        likes=likes,
        questions_asked=sum(v.questions for v in f.people),
        questions_answered=questions_answered,
        polls=len(polls),
        poll_votes=sum(p.voters for p in polls),
        poll_turnout=round(sum(turnouts) / len(turnouts), 4) if turnouts else None,
        quiz_answers=quiz_answers,
        quiz_participation=ratio(answerers, unique),
        quiz_accuracy=ratio(quiz_correct, quiz_answers),
        draws=len(draws),
        draw_entries=sum(d.entrants for d in draws),
        offers=sum(1 for o in offers if o.active),
        offer_clicks=sum(o.clicks for o in offers),
        offer_conversion=ratio(len(clickers), unique),
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
        sampled_away=sampled_away,
        moderation_actions=sum(moderation.values()),
        moderation_by_kind=dict(sorted(moderation.items())),
    )
