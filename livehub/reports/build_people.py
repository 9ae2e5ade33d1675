"""The people in the report: one row per viewer with its activity score, the host
and moderators, and the segments (definitions in :mod:`livehub.reports.model`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from livehub.reports.folded import Folded
from livehub.reports.model import SEGMENT_KEYS, Person, Segment, StaffRow, ViewerRow
from livehub.reports.tallies import QuestionTally, QuizTally, ViewerTally

LEFT_EARLY_SECONDS: Final = 300.0


def viewer_rows(f: Folded) -> list[ViewerRow]:
    """One row per viewer, most active first (activity score, then watch time)."""
    watch = f.watch
    acts = {
        v.id: (watch[v.id], v.messages, v.likes, v.votes + v.answers, v.questions + v.upvotes)
        for v in f.viewers
    }
    tops = [max((a[i] for a in acts.values()), default=0) for i in range(5)]
    rows: list[ViewerRow] = []
    for v in f.viewers:
        a = acts[v.id]
        score = sum(2 * a[i] / tops[i] for i in range(5) if tops[i] > 0)
        rows.append(
            ViewerRow(
                pid=f.pid(v.id),
                name=v.name,
                first_join=_first_join(f, v),
                last_leave=None if f.present_at_end(v) else _last_leave(f, v),
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


def _first_join(f: Folded, v: ViewerTally) -> float | None:
    spans = f.clipped[v.id]
    if spans:
        return spans[0][0]
    return None if v.first_join is None else min(max(v.first_join, f.start), f.end)


def _last_leave(f: Folded, v: ViewerTally) -> float | None:
    spans = f.clipped[v.id]
    if spans:
        return spans[-1][1]
    return None if v.last_leave is None else min(max(v.last_leave, f.start), f.end)


def staff_rows(f: Folded, moderators: Mapping[str, int]) -> list[StaffRow]:
    """The host first, then moderators, by name."""
    staff = [v for v in f.people if v.staff]
    return sorted(
        (
            StaffRow(
                pid=f.pid(v.id),
                name=v.name,
                role=v.role,
                first_join=_first_join(f, v),
                last_leave=None if f.present_at_end(v) else _last_leave(f, v),
                watch_seconds=round(f.watch[v.id], 1),
                messages=v.messages,
                moderation_actions=moderators.get(v.id, 0),
            )
            for v in staff
        ),
        key=lambda r: (r.role != "host", r.name.casefold(), r.pid),
    )


def segments(
    f: Folded, quizzes: Iterable[QuizTally], questions: Iterable[QuestionTally]
) -> list[Segment]:
    opened: set[tuple[str, int]] = set()
    for quiz in quizzes:
        opened.update((quiz.id, i) for i in quiz.opened)
        opened.update((quiz.id, i) for i in quiz.scores if i >= 0)
    unanswered = {
        q.viewer for q in questions if not q.answered and q.status in ("open", "dismissed")
    }
    members: dict[str, list[ViewerTally]] = {key: [] for key in SEGMENT_KEYS}
    for v in f.viewers:
        if v.clicks:
            members["clicked_offer"].append(v)
        elif f.interactions[v.id]:
            members["engaged_no_click"].append(v)
        spans = f.clipped[v.id]
        if spans and not f.present_at_end(v):
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
                (Person(pid=f.pid(v.id), name=v.name) for v in members[key]),
                key=lambda p: (p.name.casefold(), p.pid),
            ),
        )
        for key in SEGMENT_KEYS
    ]
