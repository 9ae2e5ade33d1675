"""The engagement report of one stream: the contract every renderer reads.

Everything here is computed from the event log of one stream (``log.scan(room,
stream)``), never from the live counters. Times are Unix seconds (``ts``) or
seconds/minutes from the stream's start (``offset``/``minute``). Ratios are
fractions in 0..1 (rounded to 4 places) and ``None`` when their denominator is 0.

People
    *Viewers* are the non-staff ids seen in ``presence.join`` (or acting as a
    viewer: chatting, liking, voting ...). *Staff* are ids that ever joined or
    chatted as host or moderator in the stream; they are listed apart
    (:class:`StaffRow`) and left out of every viewer count, watch time, ratio,
    segment and activity score. Nobody appears under their account id: ``pid``
    is the first 12 hex digits of HMAC-SHA256(key = the stream id, message = the
    viewer id), stable within the stream and different in every other stream.
    (Pseudonymous, not anonymous: whoever knows a viewer id and the stream id
    can recompute it.) No IP address or user agent is ever recorded.

Presence and watch time
    A viewer's presence is the intervals between their ``presence.join`` and
    ``presence.leave`` events, clipped to the stream (``meta.started_at`` to
    ``meta.ended_at``). A viewer connected before the stream started (their last
    presence event before it, within 12 hours, is a join) counts as joined at the
    start; one without a leave by the end counts to the end; a leave without a
    join counts from the start. *Concurrent viewers* at a time t are the viewers
    with an interval ``a < t <= b``. Average concurrent viewers = total watch
    seconds / stream duration (the time average of the concurrency).

Counting (same rules as the live counters in ``livehub.rooms.counters``)
    messages
        ``chat.message`` events plus held messages released by ``mod.approve``
        (deleted messages still count: they were sent).
    likes
        the sum of ``like.count``; ``like_events`` counts the events.
    votes, answers
        ``poll.vote`` and ``quiz.answer`` events (one per viewer per poll or
        question, enforced by the log).
    questions
        questions that became visible: ``qa.asked``, and ``qa.held`` released by
        ``qa.approved``; ``upvotes`` are ``qa.upvote`` minus ``qa.unvote``.
    draw_entries
        a closed draw's frozen entrant list (``draw.closed.entrants``: it includes
        viewers entered automatically by keyword or quiz rules and leaves out
        banned ones); for a draw not closed in this stream, its ``draw.entered``
        events. ``draw_wins`` are the winners in ``draw.revealed``.
    offer_clicks
        ``offer.click`` events (one per viewer per offer, staff never count).

Engagement rate
    ``N / T``: N = interactions = messages + like *events* (not the liked
    count) + poll votes + quiz answers + questions + upvotes + draw entries +
    offer clicks, all by viewers (not staff); T = total viewer watch minutes.

Poll turnout
    distinct voters / viewers *present during the poll's open window*: viewers
    with a presence interval overlapping [``poll.opened`` ts, ``poll.closed`` ts]
    (a poll never closed in the stream: until its timer's ``closes_at`` or the
    stream's end), plus any voter not otherwise seen present.
    ``summary.poll_turnout`` is the mean of the polls' turnouts.

Lift
    offer conversion (distinct clickers / viewers) among viewers who voted,
    answered a quiz question or asked a question, against the other viewers;
    ``lift`` = engaged conversion / other conversion.

Retention
    ``shares[m]`` = share of all unique viewers watching at any moment during
    minute m; ``early_*`` = the viewers whose first join came in the first five
    minutes and their average watch time.

Activity score (0-10, as BigBlueButton's learning dashboard)
    Five activities: watch time, messages, likes, poll votes + quiz answers,
    questions + upvotes. Each scores ``2 * value / max`` where ``max`` is the
    most active viewer's value for it (0 when nobody did it); the sum is rounded
    to one decimal.

Segments (lists of pid + name, keys in :data:`SEGMENT_KEYS`)
    ``engaged_no_click``  interacted (any interaction counted in N) but never
                          clicked an offer;
    ``clicked_offer``     clicked at least one offer;
    ``left_early``        left less than five minutes after first joining and
                          were not there at the end;
    ``all_quiz``          answered every quiz question opened in the stream (at
                          least one was opened);
    ``unanswered``        asked a question (that became visible) which was never
                          marked answered (dismissed ones included).

Anonymity of content
    Polls list counts only: no report lists who chose what, and the per-viewer
    table carries vote counts, never choices. Anonymous questions are listed
    without their author. A draw's transcript is included as published (it is
    the public, verifiable record and holds the entrants' ids).

``meta.events_hash`` is sha256 over the ids of the stream's events in id order,
joined by "," (ASCII decimal) and ``meta.event_count`` their number: two reports
with the same hash were built from the same events.
"""

from __future__ import annotations

from typing import Any, Final, Literal

import msgspec

SCHEMA_VERSION: Final = 1

SegmentKey = Literal["engaged_no_click", "clicked_offer", "left_early", "all_quiz", "unanswered"]
SEGMENT_KEYS: Final[tuple[SegmentKey, ...]] = (
    "engaged_no_click",
    "clicked_offer",
    "left_early",
    "all_quiz",
    "unanswered",
)

MarkerKind = Literal[
    "poll.opened",
    "poll.closed",
    "quiz.question",
    "draw.created",
    "draw.closed",
    "draw.revealed",
    "offer.pushed",
    "offer.withdrawn",
]


class Meta(msgspec.Struct, frozen=True):
    schema_version: int
    room: str
    stream: str
    generated_at: float
    #: the events of the stream the report covers, and sha256 over their ids
    event_count: int
    events_hash: str
    last_event_id: int
    #: True: a preview of a stream still live (``ended_at`` is the build time)
    live: bool
    started_at: float
    ended_at: float


class Lift(msgspec.Struct, frozen=True):
    engaged_viewers: int
    engaged_clickers: int
    engaged_conversion: float | None
    other_viewers: int
    other_clickers: int
    other_conversion: float | None
    #: engaged_conversion / other_conversion
    lift: float | None


class Summary(msgspec.Struct, frozen=True):
    duration_seconds: float
    unique_viewers: int
    peak_viewers: int
    #: when the peak was first reached (None: nobody watched)
    peak_at: float | None
    average_viewers: float
    total_watch_seconds: float
    #: per unique viewer
    average_watch_seconds: float | None
    #: everyone's, staff included (as the room's live counters)
    chat_messages: int
    likes: int
    questions_asked: int
    questions_answered: int
    polls: int
    poll_votes: int
    poll_turnout: float | None
    quiz_answers: int
    quiz_participation: float | None
    quiz_accuracy: float | None
    draws: int
    draw_entries: int
    offers: int
    offer_clicks: int
    offer_conversion: float | None
    #: N, T and N / T (see the module doc)
    interactions: int
    watch_minutes: float
    engagement_rate: float | None
    lift: Lift
    #: danmaku sampled away by the fanout's per-viewer cap (``chat.sampled``)
    sampled_away: int
    moderation_actions: int
    moderation_by_kind: dict[str, int]


class Minute(msgspec.Struct, frozen=True):
    minute: int
    #: concurrent viewers at the minute's end, and the most within it
    viewers: int
    peak_viewers: int
    joins: int
    leaves: int
    messages: int
    likes: int
    #: viewers' interactions (as N) in the minute
    interactions: int


class Marker(msgspec.Struct, frozen=True):
    ts: float
    offset_seconds: float
    minute: int
    kind: MarkerKind
    #: the poll, quiz, draw or offer id
    ref: str
    #: poll question, "quiz title #n: question", prize, offer title
    label: str


class Timeline(msgspec.Struct, frozen=True):
    minutes: list[Minute]
    markers: list[Marker]


class Retention(msgspec.Struct, frozen=True):
    shares: list[float]
    early_viewers: int
    early_average_watch_seconds: float | None


class ViewerRow(msgspec.Struct, frozen=True):
    pid: str
    #: the display name last seen
    name: str
    first_join: float | None
    #: None: still there at the end
    last_leave: float | None
    watch_seconds: float
    messages: int
    likes: int
    votes: int
    answers: int
    correct_answers: int
    quiz_score: int
    questions: int
    upvotes: int
    draw_entries: int
    draw_wins: int
    offer_clicks: int
    activity_score: float


class StaffRow(msgspec.Struct, frozen=True):
    pid: str
    name: str
    role: str
    first_join: float | None
    last_leave: float | None
    watch_seconds: float
    messages: int
    moderation_actions: int


class Person(msgspec.Struct, frozen=True):
    pid: str
    name: str


class Segment(msgspec.Struct, frozen=True):
    key: SegmentKey
    viewers: list[Person]


class OptionCount(msgspec.Struct, frozen=True):
    label: str
    count: int


class WordCount(msgspec.Struct, frozen=True):
    word: str
    count: int


class PollReport(msgspec.Struct, frozen=True):
    poll_id: str
    question: str
    kind: str
    anonymous: bool
    #: option labels and how many chose each (rating: "1".."5")
    options: list[OptionCount]
    #: word clouds: the most given words (casefolded), held ones left out
    words: list[WordCount]
    held_words: int
    voters: int
    present: int
    turnout: float | None
    opened_at: float | None
    closed_at: float | None
    rating_average: float | None


class QuizQuestionReport(msgspec.Struct, frozen=True):
    index: int
    text: str
    options: list[OptionCount]
    correct: list[int]
    answers: int
    correct_answers: int
    accuracy: float | None
    average_response_ms: float | None


class LeaderboardEntry(msgspec.Struct, frozen=True):
    rank: int
    pid: str
    name: str
    score: int
    correct_answers: int
    answers: int


class QuizReport(msgspec.Struct, frozen=True):
    quiz_id: str
    title: str
    questions: list[QuizQuestionReport]
    participants: int
    answers: int
    accuracy: float | None
    leaderboard: list[LeaderboardEntry]


class QuestionReport(msgspec.Struct, frozen=True):
    question_id: int
    text: str
    anonymous: bool
    #: None for anonymous questions
    pid: str | None
    name: str | None
    asked_at: float
    status: Literal["open", "pending", "rejected", "dismissed"]
    answered: bool
    votes: int
    highlighted: bool


class DrawReport(msgspec.Struct, frozen=True):
    draw_id: str
    prize: str
    rule: dict[str, Any]
    winners_count: int
    status: Literal["open", "closed", "committed", "revealed"]
    entrants: int
    winners: list[Person]
    #: the published transcript (``draw.revealed``), None until revealed
    transcript: dict[str, Any] | None


class OfferReport(msgspec.Struct, frozen=True):
    offer_id: str
    title: str
    url: str
    pushed_at: float
    withdrawn_at: float | None
    clicks: int
    #: clicks / unique viewers
    conversion: float | None


class ModeratorCount(msgspec.Struct, frozen=True):
    pid: str
    name: str
    actions: int


class ModerationReport(msgspec.Struct, frozen=True):
    #: every ``mod.*`` and ``automod.*`` kind, e.g. {"mod.delete": 3}
    by_kind: dict[str, int]
    by_moderator: list[ModeratorCount]
    automod: int
    #: distinct viewers muted or banned (by people or automod)
    viewers_muted: int
    viewers_banned: int


class Interactions(msgspec.Struct, frozen=True):
    polls: list[PollReport]
    quizzes: list[QuizReport]
    questions: list[QuestionReport]
    draws: list[DrawReport]
    offers: list[OfferReport]
    moderation: ModerationReport


class Report(msgspec.Struct, frozen=True):
    meta: Meta
    summary: Summary
    timeline: Timeline
    retention: Retention
    #: one row per viewer, most active first (activity score, then watch time)
    viewers: list[ViewerRow]
    staff: list[StaffRow]
    segments: list[Segment]
    interactions: Interactions

    def segment(self, key: str) -> Segment | None:
        return next((s for s in self.segments if s.key == key), None)


class ReportInfo(msgspec.Struct, frozen=True):
    """A stored report without its body (listings)."""

    room: str
    stream: str
    generated_at: float
    event_count: int
    events_hash: str
    last_event_id: int
    schema_version: int
    live: bool
