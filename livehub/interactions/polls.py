"""Polls: single choice, multiple choice, rating (1-5) and word cloud.

A poll is created as a draft, opened (optionally with a timer) and closed.
Server time decides: once ``closes_at`` has passed the poll refuses votes even
if nobody closed it. Results are hidden from viewers unless the staff show them
(viewers then see only the turnout); staff always see the tally.

The log is the truth, the store a cache. Every definition and state change is
an event (``poll.created`` with the whole poll, ``poll.opened`` with
``opened_at`` and ``closes_at``, ``poll.closed`` with the final ``closes_at``,
``poll.results``, ``poll.vote``), recorded *before* the store is changed, so a
refused append changes nothing and a crash between the two leaves the log
ahead of the cache. ``rebuild`` folds a room's events back into the store (the
polls, their tallies and everyone's ballot) on start and after the store was
emptied, for each poll the store lost; a poll the store still holds is left to
the nodes keeping it live (writing an older fold over it would lose their
votes), except that settled votes its tally lacks are added (a node killed
between logging a vote and counting it). One rebuilder restores or repairs
each poll (a claim with a lease, ``RESTORE_LEASE_SECONDS``). A lost poll asked
for before the rebuild reached it is restored there and then, or answers
``unavailable`` (retryable) while another node restores it, never
``not_found``. Timers keep their absolute ``closes_at`` (server time decides),
so an open poll resumes with the time it had left and one that ran out
meanwhile is closed at once by the timer loop. A state change logged by a node
killed before it reached a store that survived (Redis with persistence) is not
replayed over the live record: the staff repeating it puts it right.

One vote per viewer per poll, decided by the log's unique key
(``client_id=f"vote:{poll_id}"``, unique per room and viewer). The store claim
(``set_if_absent`` on the viewer's vote key) is only a fast path: when a claim
already exists the log is asked (``find``); if it holds the vote the answer is
``already_voted``, otherwise the claim was left by a crash (or a twin request
still in flight) and the vote is appended now, ``created`` telling which of
the two won. A claim this call made is deleted again when the append fails.
So a crash at any point never leaves a claim that refuses a vote the log lacks,
and a vote is counted only by the request whose append created it. The
timer's close is logged once across nodes (actor ``timer``,
``client_id=f"close:{poll_id}"``).

Anonymous polls keep the tally; the ``poll.vote`` event still carries the choice
(the tally can be rebuilt from the log) but is flagged ``anonymous: true`` so a
report leaves the per-viewer choice out. No API ever lists who voted for what.

Word-cloud answers are short free text (at most 40 characters after
``clean_text``) that runs through the room's rule chain: block, mute and ban
refuse the word; a held word is recorded but kept out of the public cloud
(staff see it under ``held_words``).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable
from typing import Literal

import msgspec

from livehub.errors import Conflict, NotFound, Unavailable, UserError
from livehub.interactions.moderation import Moderation
from livehub.interactions.normalise import clean_text
from livehub.rooms.counters import Counters
from livehub.rooms.eventlog import Event, EventLog, NewEvent
from livehub.rooms.models import Principal, Room
from livehub.rooms.recorder import Recorder, room_event
from livehub.rooms.recovery import RESTORE_LEASE_SECONDS, RESTORE_RETRY_SECONDS, SETTLE_SECONDS
from livehub.rooms.store import StateStore

PollKind = Literal["single", "multiple", "rating", "word_cloud"]
PollStatus = Literal["draft", "open", "closed"]

MAX_QUESTION_CHARS = 200
MAX_OPTION_CHARS = 100
MIN_OPTIONS = 2
MAX_OPTIONS = 10
MIN_TIMER_SECONDS = 5
MAX_TIMER_SECONDS = 3600
MAX_WORD_CHARS = 40
MAX_POLLS_PER_ROOM = 500
RATING_OPTIONS = ("1", "2", "3", "4", "5")
CLOUD_SIZE = 50

_TURNOUT = "turnout"

POLL_EVENTS = ("poll.created", "poll.opened", "poll.closed", "poll.results", "poll.vote")


class PollSpec(msgspec.Struct, frozen=True):
    """What the staff ask for when creating a poll."""

    question: str
    kind: PollKind
    options: tuple[str, ...] = ()
    anonymous: bool = False
    timer_seconds: int | None = None
    max_choices: int | None = None
    results_visible: bool = False


class Poll(msgspec.Struct, frozen=True):
    id: str
    room: str
    question: str
    kind: PollKind
    options: tuple[str, ...]
    anonymous: bool
    timer_seconds: int | None
    max_choices: int | None
    status: PollStatus
    results_visible: bool
    created_at: float
    seq: int = 0
    opened_at: float | None = None
    closes_at: float | None = None

    def status_at(self, now: float) -> PollStatus:
        """The status with the timer applied: an open poll past its deadline is closed."""
        if self.status == "open" and self.closes_at is not None and now >= self.closes_at:
            return "closed"
        return self.status


class Ballot(msgspec.Struct, frozen=True):
    """One viewer's vote: option indexes, or a word for a word cloud."""

    choices: tuple[int, ...] = ()
    text: str | None = None


class WordCount(msgspec.Struct, frozen=True):
    word: str
    count: int


class Tally(msgspec.Struct, frozen=True):
    turnout: int
    counts: tuple[int, ...]
    words: tuple[WordCount, ...]
    held_words: tuple[WordCount, ...]


class VoteResult(msgspec.Struct, frozen=True):
    poll: Poll
    ballot: Ballot
    held: bool


def _poll_key(room: str, poll_id: str) -> str:
    return f"poll:{room}:{poll_id}"


def _index_key(room: str) -> str:
    return f"polls:{room}"


def _seq_key(room: str) -> str:
    return f"polls:{room}:seq"


def _vote_key(room: str, poll_id: str, viewer_id: str) -> str:
    return f"poll:{room}:{poll_id}:vote:{viewer_id}"


def _restoring_key(room: str, poll_id: str) -> str:
    return f"poll:{room}:{poll_id}:restoring"


def _tally_key(room: str, poll_id: str) -> str:
    return f"poll:{room}:{poll_id}:tally"


def _held_key(room: str, poll_id: str) -> str:
    return f"poll:{room}:{poll_id}:held"


def _vote_client_id(poll_id: str) -> str:
    return f"vote:{poll_id}"


def _close_client_id(poll_id: str) -> str:
    return f"close:{poll_id}"


def _bad_poll(message: str) -> UserError:
    return UserError("bad_poll", message)


def _bad_choice(message: str) -> UserError:
    return UserError("bad_choice", message)


class PollService:
    def __init__(
        self,
        store: StateStore,
        log: EventLog,
        counters: Counters,
        moderation: Moderation,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._log = log
        self._counters = counters
        self._moderation = moderation
        self._clock = clock
        self._record = Recorder(log, clock)
        self._poll_decoder = msgspec.json.Decoder(Poll)
        self._ballot_decoder = msgspec.json.Decoder(Ballot)

    def now(self) -> float:
        return self._clock()

    # -- staff -------------------------------------------------------------------

    async def create(self, room: Room, who: Principal, spec: PollSpec) -> Poll:
        question, options = self._checked_spec(spec)
        if len(await self._store.smembers(_index_key(room.id))) >= MAX_POLLS_PER_ROOM:
            raise UserError("too_many_polls", f"A room has at most {MAX_POLLS_PER_ROOM} polls.")
        poll = Poll(
            id="p_" + secrets.token_hex(5),
            room=room.id,
            question=question,
            kind=spec.kind,
            options=options,
            anonymous=spec.anonymous,
            timer_seconds=spec.timer_seconds,
            max_choices=spec.max_choices if spec.kind == "multiple" else None,
            status="draft",
            results_visible=spec.results_visible,
            created_at=self._clock(),
            seq=await self._store.incr(_seq_key(room.id)),
        )
        await self._record(room, who.viewer_id, "poll.created", {"poll": msgspec.to_builtins(poll)})
        await self._save(poll)
        await self._store.sadd(_index_key(room.id), poll.id)
        return poll

    def _checked_spec(self, spec: PollSpec) -> tuple[str, tuple[str, ...]]:
        question = clean_text(spec.question)
        if not 1 <= len(question) <= MAX_QUESTION_CHARS:
            raise _bad_poll(f"A question is 1-{MAX_QUESTION_CHARS} characters.")
        if spec.timer_seconds is not None and not (
            MIN_TIMER_SECONDS <= spec.timer_seconds <= MAX_TIMER_SECONDS
        ):
            raise _bad_poll(f"The timer is {MIN_TIMER_SECONDS}-{MAX_TIMER_SECONDS} seconds.")
        if spec.max_choices is not None and spec.kind != "multiple":
            raise _bad_poll("max_choices is only for multiple-choice polls.")
        if spec.kind in ("rating", "word_cloud"):
            if spec.options:
                raise _bad_poll(f"A {spec.kind} poll takes no options.")
            return question, RATING_OPTIONS if spec.kind == "rating" else ()
        options = tuple(clean_text(o) for o in spec.options)
        if not MIN_OPTIONS <= len(options) <= MAX_OPTIONS:
            raise _bad_poll(f"A poll has {MIN_OPTIONS}-{MAX_OPTIONS} options.")
        if any(not 1 <= len(o) <= MAX_OPTION_CHARS for o in options):
            raise _bad_poll(f"An option is 1-{MAX_OPTION_CHARS} characters.")
        if len({o.casefold() for o in options}) != len(options):
            raise _bad_poll("The options must differ.")
        if spec.max_choices is not None and not 1 <= spec.max_choices <= len(options):
            raise _bad_poll("max_choices is between 1 and the number of options.")
        return question, options

    async def open(self, room: Room, who: Principal, poll_id: str) -> Poll:
        poll = await self.get(room.id, poll_id)
        now = self._clock()
        status = poll.status_at(now)
        if status == "open":
            return poll
        if status == "closed":
            raise Conflict("poll_closed", "This poll is closed.")
        closes_at = now + poll.timer_seconds if poll.timer_seconds else None
        opened = msgspec.structs.replace(poll, status="open", opened_at=now, closes_at=closes_at)
        await self._record(
            room,
            who.viewer_id,
            "poll.opened",
            {"poll_id": poll.id, "opened_at": now, "closes_at": closes_at},
            now,
        )
        await self._save(opened)
        return opened

    async def close(self, room: Room, who: Principal, poll_id: str) -> Poll:
        poll = await self.get(room.id, poll_id)
        if poll.status == "closed":
            return poll
        if poll.status == "draft":
            raise Conflict("poll_closed", "This poll was never opened.")
        closed, _ = await self._close(room, who.viewer_id, poll, "staff")
        return closed

    async def expire(self, room: Room, poll_id: str) -> Poll | None:
        """Close an open poll whose timer ran out; the closed poll, or None if nothing changed."""
        poll = await self.get(room.id, poll_id)
        if poll.status != "open" or poll.status_at(self._clock()) != "closed":
            return None
        closed, created = await self._close(room, "timer", poll, "timer")
        return closed if created else None  # another node's timer closed it first

    async def _close(self, room: Room, actor: str, poll: Poll, by: str) -> tuple[Poll, bool]:
        now = self._clock()
        closes_at = poll.closes_at if poll.closes_at is not None and poll.closes_at < now else now
        closed = msgspec.structs.replace(poll, status="closed", closes_at=closes_at)
        _, created = await self._record(
            room,
            actor,
            "poll.closed",
            {"poll_id": poll.id, "by": by, "closes_at": closes_at},
            now,
            client_id=_close_client_id(poll.id) if by == "timer" else None,
        )
        await self._save(closed)
        return closed, created

    async def set_results(self, room: Room, who: Principal, poll_id: str, visible: bool) -> Poll:
        poll = await self.get(room.id, poll_id)
        if poll.results_visible == visible:
            return poll
        changed = msgspec.structs.replace(poll, results_visible=visible)
        await self._record(
            room, who.viewer_id, "poll.results", {"poll_id": poll.id, "visible": visible}
        )
        await self._save(changed)
        return changed

    # -- reading -----------------------------------------------------------------

    async def get(self, room_id: str, poll_id: str) -> Poll:
        raw = await self._store.get(_poll_key(room_id, poll_id))
        if raw is None:
            return await self._lost(room_id, poll_id)
        return self._poll_decoder.decode(raw)

    async def _lost(self, room_id: str, poll_id: str) -> Poll:
        """A poll the store does not hold: restored from the log now, unless another is on it."""
        if not await self._created_in_log(room_id, poll_id):
            raise NotFound("not_found", "No such poll in this room.")
        if not await self._claim(room_id, poll_id):
            raise Unavailable("This poll is being restored; try again.", RESTORE_RETRY_SECONDS)
        folded = await self._fold(room_id)
        poll = folded.polls[poll_id]
        raw = await self._store.get(_poll_key(room_id, poll_id))
        if raw is not None:  # restored by one whose claim has just run out
            return self._poll_decoder.decode(raw)
        await self._restore(poll, folded.ballots.get(poll_id, {}))
        await self._store.set_max(_seq_key(room_id), poll.seq)
        return poll

    async def _claim(self, room_id: str, poll_id: str) -> bool:
        key = _restoring_key(room_id, poll_id)
        return await self._store.set_if_absent(key, "1", ttl=RESTORE_LEASE_SECONDS)

    async def _created_in_log(self, room_id: str, poll_id: str) -> bool:
        async for event in self._log.scan_kinds(room_id, ("poll.created",)):
            if event.data["poll"]["id"] == poll_id:
                return True
        return False

    async def polls(self, room_id: str) -> list[Poll]:
        """Every poll of the room, oldest first."""
        found: list[Poll] = []
        for poll_id in await self._store.smembers(_index_key(room_id)):
            raw = await self._store.get(_poll_key(room_id, poll_id))
            if raw is not None:
                found.append(self._poll_decoder.decode(raw))
        return sorted(found, key=lambda p: (p.seq, p.created_at, p.id))

    async def visible_polls(self, room_id: str) -> list[Poll]:
        """What a viewer may see: open polls, and closed polls whose results are shown."""
        now = self._clock()
        shown: list[Poll] = []
        for poll in await self.polls(room_id):
            status = poll.status_at(now)
            if status == "open" or (status == "closed" and poll.results_visible):
                shown.append(poll)
        return shown

    async def tally(self, poll: Poll) -> Tally:
        raw = await self._store.hgetall(_tally_key(poll.room, poll.id))
        counts = tuple(int(raw.get(f"o{i}", 0)) for i in range(len(poll.options)))
        words = _words(raw, prefix="w:")
        held = _words(await self._store.hgetall(_held_key(poll.room, poll.id)), prefix="")
        return Tally(int(raw.get(_TURNOUT, 0)), counts, words, held)

    async def my_votes(
        self, room_id: str, viewer_id: str, polls: Iterable[Poll]
    ) -> dict[str, Ballot]:
        votes: dict[str, Ballot] = {}
        for poll in polls:
            raw = await self._store.get(_vote_key(room_id, poll.id, viewer_id))
            if raw is not None:
                votes[poll.id] = self._ballot_decoder.decode(raw)
        return votes

    # -- voting ------------------------------------------------------------------

    async def vote(self, room: Room, who: Principal, poll_id: str, ballot: Ballot) -> VoteResult:
        poll = await self.get(room.id, poll_id)
        if poll.status_at(self._clock()) != "open":
            raise UserError("poll_closed", "This poll is not open.")
        key = _vote_key(room.id, poll.id, who.viewer_id)
        if poll.kind == "word_cloud":
            ballot = Ballot(text=_checked_word(ballot))
            if await self._store.get(key) is not None and await self._logged_vote(room, who, poll):
                raise _already_voted()  # before the rules: a second word must not mute
            held = False
            if not who.is_staff:
                held = await self._moderation.apply_rules(room, who, ballot.text or "")
        else:
            ballot = Ballot(choices=_checked_choices(poll, ballot))
            held = False
        encoded = msgspec.json.encode(ballot).decode()
        claimed = await self._store.set_if_absent(key, encoded)
        if not claimed and await self._logged_vote(room, who, poll):
            raise _already_voted()
        # Claimed now, or a claim without its vote in the log (a crash, or a twin
        # request still in flight): the log's unique key decides.
        try:
            _, created = await self._log.append(self._vote_event(room, who, poll, ballot, held))
        except BaseException:
            if claimed:
                await self._store.delete(key)  # not recorded: the viewer may try again
            raise
        if not created:
            raise _already_voted()
        if not claimed:
            await self._store.set(key, encoded)  # the ballot recorded, not the crashed one
        await self._count(poll, ballot, held)
        await self._counters.add(room.id, room.scope, who.viewer_id, "votes")
        return VoteResult(poll, ballot, held)

    def _vote_event(
        self, room: Room, who: Principal, poll: Poll, ballot: Ballot, held: bool
    ) -> NewEvent:
        data: dict[str, object] = {
            "poll_id": poll.id,
            "kind": poll.kind,
            "anonymous": poll.anonymous,
        }
        if poll.kind == "word_cloud":
            data.update(text=ballot.text, held=held)
        else:
            data["choices"] = list(ballot.choices)
        return room_event(
            room,
            "poll.vote",
            who.viewer_id,
            data,
            ts=self._clock(),
            client_id=_vote_client_id(poll.id),
        )

    async def _logged_vote(self, room: Room, who: Principal, poll: Poll) -> bool:
        return await self._log.find(room.id, who.viewer_id, _vote_client_id(poll.id)) is not None

    async def _count(self, poll: Poll, ballot: Ballot, held: bool) -> None:
        if ballot.text is not None and held:
            await self._store.hincr(_held_key(poll.room, poll.id), ballot.text.casefold())
        for field in _tally_fields(ballot, held):
            await self._store.hincr(_tally_key(poll.room, poll.id), field)

    # -- recovery ----------------------------------------------------------------

    async def rebuild(self, room_id: str) -> list[Poll]:
        """Put the room's polls the store lost back from the log; every poll, as logged.

        Each poll's tally and ballots are written before the poll itself, so on an
        emptied store no vote is taken for a poll whose tally is not back yet.
        """
        folded = await self._fold(room_id)
        polls = sorted(folded.polls.values(), key=lambda p: (p.seq, p.created_at, p.id))
        settled_before = self._clock() - SETTLE_SECONDS
        for poll in polls:
            key = _poll_key(room_id, poll.id)
            held_live = await self._store.get(key) is not None
            if not await self._claim(room_id, poll.id):
                continue  # another rebuilder's
            ballots = folded.ballots.get(poll.id, {})
            if held_live:
                await self._repair(poll, ballots, settled_before)
            elif await self._store.get(key) is None:
                await self._restore(poll, ballots)
        if polls:
            await self._store.set_max(_seq_key(room_id), max(p.seq for p in polls))
        return polls

    async def _repair(
        self, poll: Poll, ballots: dict[str, LoggedVote], settled_before: float
    ) -> None:
        """Add to a live tally the settled votes it lacks (their node died before counting).

        Only what is missing is added, on top of what live nodes count meanwhile; a
        vote logged since ``settled_before`` may still be on its way and is left out.
        """
        settled = [v for v in ballots.values() if v.ts < settled_before]
        tally, held_words = _tallies(settled)
        for key, expected in (
            (_tally_key(poll.room, poll.id), tally),
            (_held_key(poll.room, poll.id), held_words),
        ):
            stored = await self._store.hgetall(key)
            for field, count in expected.items():
                missing = count - int(stored.get(field, 0))
                if missing > 0:
                    await self._store.hincr(key, field, missing)

    async def _fold(self, room_id: str) -> PollFold:
        folded = PollFold()
        async for event in self._log.scan_kinds(room_id, POLL_EVENTS):
            folded.apply(event)
        return folded

    async def _restore(self, poll: Poll, ballots: dict[str, LoggedVote]) -> None:
        tally, held_words = _tallies(ballots.values())
        for viewer_id, vote in ballots.items():
            key = _vote_key(poll.room, poll.id, viewer_id)
            await self._store.set(key, msgspec.json.encode(vote.ballot).decode())
        if tally:
            await self._store.hset(
                _tally_key(poll.room, poll.id), {f: str(n) for f, n in tally.items()}
            )
        if held_words:
            await self._store.hset(
                _held_key(poll.room, poll.id), {w: str(n) for w, n in held_words.items()}
            )
        await self._save(poll)
        await self._store.sadd(_index_key(poll.room), poll.id)

    # -- helpers -----------------------------------------------------------------

    async def _save(self, poll: Poll) -> None:
        await self._store.set(_poll_key(poll.room, poll.id), msgspec.json.encode(poll).decode())


class LoggedVote(msgspec.Struct, frozen=True):
    ballot: Ballot
    held: bool
    ts: float


def _tallies(votes: Iterable[LoggedVote]) -> tuple[dict[str, int], dict[str, int]]:
    """The tally fields and the held words that ``votes`` add up to."""
    tally: dict[str, int] = {}
    held_words: dict[str, int] = {}
    for vote in votes:
        for field in _tally_fields(vote.ballot, vote.held):
            tally[field] = tally.get(field, 0) + 1
        if vote.ballot.text is not None and vote.held:
            word = vote.ballot.text.casefold()
            held_words[word] = held_words.get(word, 0) + 1
    return tally, held_words


class PollFold:
    """A room's polls and ballots folded from its ``POLL_EVENTS``, oldest first.

    Events of older versions read as well: ``poll.opened`` without ``opened_at``
    takes the event's time, ``poll.closed`` without ``closes_at`` the earlier of
    the timer's deadline and the event's time.
    """

    def __init__(self) -> None:
        self.polls: dict[str, Poll] = {}
        # poll id -> viewer id -> vote; the log keeps one vote per viewer
        self.ballots: dict[str, dict[str, LoggedVote]] = {}

    def apply(self, event: Event) -> None:
        data = event.data
        if event.kind == "poll.created":
            poll = msgspec.convert(data["poll"], Poll)
            self.polls[poll.id] = poll
            return
        found = self.polls.get(str(data.get("poll_id")))
        if found is None:
            return
        if event.kind == "poll.opened":
            self.polls[found.id] = msgspec.structs.replace(
                found,
                status="open",
                opened_at=data.get("opened_at", event.ts),
                closes_at=data.get("closes_at"),
            )
        elif event.kind == "poll.closed":
            closes_at = data.get("closes_at")
            if closes_at is None:
                closes_at = min(found.closes_at or event.ts, event.ts)
            self.polls[found.id] = msgspec.structs.replace(
                found, status="closed", closes_at=closes_at
            )
        elif event.kind == "poll.results":
            self.polls[found.id] = msgspec.structs.replace(
                found, results_visible=bool(data["visible"])
            )
        elif event.kind == "poll.vote":
            ballot = Ballot(choices=tuple(data.get("choices") or ()), text=data.get("text"))
            votes = self.ballots.setdefault(found.id, {})
            votes.setdefault(event.actor, LoggedVote(ballot, bool(data.get("held")), event.ts))


def _tally_fields(ballot: Ballot, held: bool) -> list[str]:
    """The tally fields one ballot adds 1 to (a held word only to the turnout)."""
    fields = [f"o{index}" for index in ballot.choices]
    if ballot.text is not None and not held:
        fields.append("w:" + ballot.text.casefold())
    fields.append(_TURNOUT)
    return fields


def _already_voted() -> Conflict:
    return Conflict("already_voted", "You already voted in this poll.")


def _checked_choices(poll: Poll, ballot: Ballot) -> tuple[int, ...]:
    if ballot.text is not None:
        raise _bad_choice("This poll takes option numbers, not text.")
    choices = ballot.choices
    if not choices:
        raise _bad_choice("Choose an option.")
    if len(set(choices)) != len(choices):
        raise _bad_choice("An option was chosen twice.")
    if any(not 0 <= c < len(poll.options) for c in choices):
        raise _bad_choice("No such option.")
    if poll.kind != "multiple" and len(choices) != 1:
        raise _bad_choice("Choose exactly one option.")
    limit = poll.max_choices or len(poll.options)
    if len(choices) > limit:
        raise _bad_choice(f"Choose at most {limit} options.")
    return tuple(sorted(choices))


def _checked_word(ballot: Ballot) -> str:
    if ballot.choices or ballot.text is None:
        raise _bad_choice("This poll takes a word, not option numbers.")
    word = clean_text(ballot.text)
    if not word:
        raise _bad_choice("Type a word.")
    if len(word) > MAX_WORD_CHARS:
        raise _bad_choice(f"At most {MAX_WORD_CHARS} characters.")
    return word


def _words(raw: dict[str, str], prefix: str) -> tuple[WordCount, ...]:
    found = [
        WordCount(field[len(prefix) :], int(value))
        for field, value in raw.items()
        if field.startswith(prefix) and field != _TURNOUT
    ]
    found.sort(key=lambda w: (-w.count, w.word))
    return tuple(found[:CLOUD_SIZE])


def poll_view(poll: Poll, tally: Tally, now: float, *, staff: bool) -> dict[str, object]:
    """The poll as sent on the wire; the tally only to staff or when results are shown."""
    view: dict[str, object] = {
        "id": poll.id,
        "question": poll.question,
        "kind": poll.kind,
        "options": list(poll.options),
        "anonymous": poll.anonymous,
        "max_choices": poll.max_choices,
        "timer_seconds": poll.timer_seconds,
        "status": poll.status_at(now),
        "opened_at": poll.opened_at,
        "closes_at": poll.closes_at,
        "results_visible": poll.results_visible,
        "turnout": tally.turnout,
        "server_time": now,
    }
    if staff or poll.results_visible:
        view["tally"] = _tally_view(poll, tally, staff=staff)
    return view


def _tally_view(poll: Poll, tally: Tally, *, staff: bool) -> dict[str, object]:
    shown: dict[str, object] = {"counts": list(tally.counts)}
    if poll.kind == "word_cloud":
        shown["words"] = msgspec.to_builtins(list(tally.words))
        if staff:
            shown["held_words"] = msgspec.to_builtins(list(tally.held_words))
    if poll.kind == "rating":
        votes = sum(tally.counts)
        total = sum((i + 1) * c for i, c in enumerate(tally.counts))
        shown["average"] = round(total / votes, 2) if votes else None
    return shown
