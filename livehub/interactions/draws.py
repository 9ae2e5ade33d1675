"""Prize draws: an entry window, a frozen entrant list, a published commitment,
then the winners and the seed that picked them (see ``draw_proof``).

A draw moves open -> closed -> committed -> revealed. Each step is decided once
across nodes by a ``set_if_absent`` guard in the state store, recorded in the
event log, and the draw record in the store is rewritten by whoever won the
guard. The log is the truth, the store a cache: ``draw.created`` holds the
definition and the absolute ``closes_at``, ``draw.closed`` the frozen list,
``draw.committed`` the commitment and a nonce, never the seed: the seed is the
HMAC-SHA256 of the server's secret and that nonce, so a restart between commit
and reveal can still reveal, while the log alone tells nobody the winners before
they are published. ``draw.revealed`` holds the transcript. ``rebuild`` replays
them after a restart or an emptied store: an open draw comes back with its
entrants and closes at its ``closes_at`` (the time it had left), a committed one
can still be revealed, a revealed one shows its result.

Entering is decided by the log: the ``draw.entered`` event carries the client
id ``draw:<id>``, so exactly one request per viewer records it, and the store's
``entrants`` hash (the live count) learns it only after the commit. A node
killed between the two leaves an entry the store does not know; the viewer's
retry finds it in the log (``already_entered``) and the store learns it then.
The close freezes the entrant list from the log, never from the store: it marks
the draw ``closed`` first, then reads the log; an entry committed after that read
sees the mark and is refused unless the frozen list has it.

Entry rules:

* ``present``       viewers enter with ``draw_enter`` while the window is open;
* ``watched``       the same, with at least ``minutes`` of watch time this stream;
* ``keyword``       chat messages holding the keyword in the window enter their
                    senders (read from the log when the draw closes);
                    ``draw_enter`` works too, for a viewer who sent it;
* ``quiz_correct``  viewers with a correct ``quiz.answer`` in the log (of the quiz
                    named, else of the draw's stream) are entered at close.

The host and moderators never enter; banned viewers are dropped at close.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Annotated, Any, Literal

import msgspec

from livehub.errors import Conflict, Forbidden, NotFound, ProtocolError, UserError
from livehub.interactions import draw_proof as proof
from livehub.interactions.moderation import Moderation
from livehub.interactions.normalise import clean_text
from livehub.rooms.counters import Counters, ViewerCounter
from livehub.rooms.eventlog import Event, EventLog
from livehub.rooms.models import STAFF_ROLES, Principal, Room
from livehub.rooms.presence import Presence
from livehub.rooms.recorder import Recorder
from livehub.rooms.service import RoomService
from livehub.rooms.store import StateStore

log = logging.getLogger("livehub.draws")

MAX_PRIZE_CHARS = 80
MAX_KEYWORD_CHARS = 40
MIN_WINDOW, MAX_WINDOW = 10, 3600
MAX_WINNERS = proof.MAX_WINNERS
MAX_DRAWS_PER_ROOM = 500
GUARD_SECONDS = 60.0  # a crashed close/pick frees its guard after this (a rebuild at once)
TRANSCRIPT_CACHE_SECONDS = 86400.0  # the log keeps the transcript for good
FROZEN_WAIT_SECONDS = 5.0
SCAN_BATCH = 1000
SYSTEM = "system"
CREATED, ENTERED, CLOSED = "draw.created", "draw.entered", "draw.closed"
COMMITTED, REVEALED = "draw.committed", "draw.revealed"
KINDS = (CREATED, ENTERED, CLOSED, COMMITTED, REVEALED)
# The store's guards and marks of one draw, which ``rebuild`` sets from the log.
_GUARDS = ("closing", "picking", "revealing")


class _RuleBase(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="kind"):
    pass


class PresentRule(_RuleBase, frozen=True, forbid_unknown_fields=True, tag="present"):
    pass


class KeywordRule(_RuleBase, frozen=True, forbid_unknown_fields=True, tag="keyword"):
    keyword: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class QuizCorrectRule(_RuleBase, frozen=True, forbid_unknown_fields=True, tag="quiz_correct"):
    quiz_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None


class WatchedRule(_RuleBase, frozen=True, forbid_unknown_fields=True, tag="watched"):
    minutes: Annotated[int, msgspec.Meta(ge=1, le=1440)]


DrawRule = PresentRule | KeywordRule | QuizCorrectRule | WatchedRule
DrawStatus = Literal["open", "closed", "committed", "revealed"]


class Winner(msgspec.Struct, frozen=True):
    viewer_id: str
    name: str


class Frozen(msgspec.Struct, frozen=True):
    """The entrant list as closed: sorted unique ids and their display names."""

    entrants: list[str]
    names: dict[str, str]


class Draw(msgspec.Struct, frozen=True):
    id: str
    room: str
    prize: str
    winners_count: int
    rule: DrawRule
    window_seconds: int
    created_at: float
    closes_at: float
    created_by: str
    after_event_id: int
    stream: str | None = None
    status: DrawStatus = "open"
    closed_at: float | None = None
    entrant_count: int | None = None
    entrants_hash: str | None = None
    seed_hash: str | None = None
    commitment: str | None = None
    committed_at: float | None = None
    seed: str | None = None
    winners: tuple[Winner, ...] = ()
    revealed_at: float | None = None

    @property
    def transcript_url(self) -> str:
        return f"/api/rooms/{self.room}/draws/{self.id}/transcript"

    @property
    def verify_url(self) -> str:
        return f"/verify?room={self.room}&draw={self.id}"

    def view(self) -> dict[str, Any]:
        """What anyone may see (the seed only once revealed, which is when it is set)."""
        body: dict[str, Any] = {
            "draw_id": self.id,
            "prize": self.prize,
            "rule": msgspec.to_builtins(self.rule),
            "winners_count": self.winners_count,
            "window_seconds": self.window_seconds,
            "created_at": self.created_at,
            "closes_at": self.closes_at,
            "status": self.status,
            "closed_at": self.closed_at,
            "entrant_count": self.entrant_count,
            "entrants_hash": self.entrants_hash,
            "seed_hash": self.seed_hash,
            "commitment": self.commitment,
            "committed_at": self.committed_at,
            "winners": [msgspec.to_builtins(w) for w in self.winners],
            "seed": self.seed,
            "revealed_at": self.revealed_at,
        }
        if self.status == "revealed":
            body["transcript_url"] = self.transcript_url
            body["verify_url"] = self.verify_url
        return body


# -- store keys -----------------------------------------------------------------------


def draws_key(room: str) -> str:
    return f"draws:{room}"


OPEN_DRAWS = "draws:open"


def _open_member(room: str, draw_id: str) -> str:
    return f"{room}/{draw_id}"


def _key(room: str, draw_id: str, part: str) -> str:
    return f"draw:{room}:{draw_id}:{part}"


def entry_client_id(draw_id: str) -> str:
    return f"draw:{draw_id}"


def validate_rule(rule: DrawRule) -> DrawRule:
    """The rule as stored: keywords cleaned like chat text."""
    if isinstance(rule, KeywordRule):
        keyword = clean_text(rule.keyword)
        if not keyword or len(keyword) > MAX_KEYWORD_CHARS:
            raise ProtocolError("bad_keyword", f"A keyword is 1-{MAX_KEYWORD_CHARS} characters.")
        return KeywordRule(keyword=keyword)
    return rule


def keyword_in(keyword: str, text: str) -> bool:
    return keyword.casefold() in clean_text(text).casefold()


class DrawService:
    def __init__(
        self,
        store: StateStore,
        log: EventLog,
        counters: Counters,
        rooms: RoomService,
        presence: Presence,
        moderation: Moderation,
        seed_secret: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._log = log
        self._counters = counters
        self._rooms = rooms
        self._presence = presence
        self._moderation = moderation
        self._clock = clock
        self._seed_key = seed_secret.encode()
        self._record = Recorder(log, clock)
        self._decoder = msgspec.json.Decoder(Draw)
        self._frozen_decoder = msgspec.json.Decoder(Frozen)

    def now(self) -> float:
        return self._clock()

    # -- reading ------------------------------------------------------------------------

    async def get(self, room_id: str, draw_id: str) -> Draw:
        raw = await self._store.hget(draws_key(room_id), draw_id)
        if raw is None:
            raise NotFound("not_found", "No such draw in this room.")
        return self._decoder.decode(raw)

    async def draws(self, room_id: str) -> list[Draw]:
        """Every draw of the room, newest first."""
        raw = await self._store.hgetall(draws_key(room_id))
        draws = [self._decoder.decode(v) for v in raw.values()]
        return sorted(draws, key=lambda d: (d.created_at, d.id), reverse=True)

    async def entrant_count(self, draw: Draw) -> int:
        """Entrants so far (while open: those who entered with draw_enter)."""
        if draw.entrant_count is not None:
            return draw.entrant_count
        return await self._store.hlen(_key(draw.room, draw.id, "entrants"))

    async def has_entered(self, draw: Draw, viewer_id: str) -> bool:
        if draw.status == "open":
            entrants = _key(draw.room, draw.id, "entrants")
            return await self._store.hget(entrants, viewer_id) is not None
        return await self._store.sismember(_key(draw.room, draw.id, "members"), viewer_id)

    async def transcript(self, room_id: str, draw_id: str) -> dict[str, Any]:
        """The public transcript; NotFound until the draw is revealed."""
        raw = await self._store.get(_key(room_id, draw_id, "transcript"))
        if raw is not None:
            return dict(msgspec.json.decode(raw))
        async for event in self._events(room_id, (REVEALED,)):
            if event.data.get("draw_id") == draw_id:
                record = dict(event.data["transcript"])
                await self._store.set(
                    _key(room_id, draw_id, "transcript"), _json(record), TRANSCRIPT_CACHE_SECONDS
                )
                return record
        await self.get(room_id, draw_id)  # NotFound when there is no such draw
        raise NotFound("not_revealed", "This draw has not been revealed yet.")

    # -- create -------------------------------------------------------------------------

    async def create(
        self,
        room: Room,
        who: Principal,
        prize: str,
        winners: int,
        rule: DrawRule,
        window_seconds: int,
    ) -> Draw:
        self._staff(who)
        prize = clean_text(prize)
        if not 1 <= len(prize) <= MAX_PRIZE_CHARS:
            raise ProtocolError("bad_prize", f"A prize is 1-{MAX_PRIZE_CHARS} characters.")
        if not 1 <= winners <= MAX_WINNERS:
            raise ProtocolError("bad_payload", f"winners must be 1-{MAX_WINNERS}.")
        if not MIN_WINDOW <= window_seconds <= MAX_WINDOW:
            raise ProtocolError("bad_payload", f"window_seconds must be {MIN_WINDOW}-{MAX_WINDOW}.")
        rule = validate_rule(rule)
        if await self._store.hlen(draws_key(room.id)) >= MAX_DRAWS_PER_ROOM:
            raise UserError("too_many_draws", f"A room has at most {MAX_DRAWS_PER_ROOM} draws.")
        now = self._clock()
        draw_id = "d_" + secrets.token_hex(5)
        event, _ = await self._record(
            room,
            who.viewer_id,
            CREATED,
            {
                "draw_id": draw_id,
                "prize": prize,
                "winners_count": winners,
                "rule": msgspec.to_builtins(rule),
                "window_seconds": window_seconds,
                "closes_at": now + window_seconds,
            },
            now,
        )
        draw = Draw(
            id=draw_id,
            room=room.id,
            prize=prize,
            winners_count=winners,
            rule=rule,
            window_seconds=window_seconds,
            created_at=now,
            closes_at=now + window_seconds,
            created_by=who.viewer_id,
            after_event_id=event.id,
            stream=room.stream.id if room.stream else None,
        )
        await self._save(draw)
        await self._store.sadd(OPEN_DRAWS, _open_member(room.id, draw_id))
        return draw

    # -- enter --------------------------------------------------------------------------

    async def enter(self, room: Room, who: Principal, draw_id: str) -> Draw:
        """Enter ``who``; raises draw_closed, already_entered, not_eligible and the like."""
        draw = await self.get(room.id, draw_id)
        if who.is_staff:
            raise Forbidden("staff_not_eligible", "The host and moderators cannot enter draws.")
        if not proof.usable_id(who.viewer_id):
            raise ProtocolError("bad_viewer_id", "This viewer id cannot enter draws.")
        await self._ensure_open(draw)
        entrants = _key(room.id, draw.id, "entrants")
        if await self._store.hget(entrants, who.viewer_id) is not None:
            raise _already_entered()
        await self._check_eligible(room, who, draw)
        _, created = await self._record(
            room,
            who.viewer_id,
            ENTERED,
            {"draw_id": draw.id, "name": who.name},
            client_id=entry_client_id(draw.id),
        )
        # Recorded, now or by a request whose node died before the store heard of it.
        await self._store.hset(entrants, {who.viewer_id: who.name})
        if await self._store.get(_key(room.id, draw.id, "closed")) is not None:
            # The draw closed while we were entering: the frozen list decides.
            frozen = await self._wait_frozen(draw)
            if frozen is None or who.viewer_id not in frozen.names:
                raise UserError("draw_closed", "This draw is closed.")
        if not created:
            raise _already_entered()
        return draw

    async def _ensure_open(self, draw: Draw) -> None:
        if (
            draw.status != "open"
            or self._clock() >= draw.closes_at
            or await self._store.get(_key(draw.room, draw.id, "closed")) is not None
        ):
            raise UserError("draw_closed", "This draw is closed.")

    async def _check_eligible(self, room: Room, who: Principal, draw: Draw) -> None:
        rule = draw.rule
        if isinstance(rule, QuizCorrectRule):
            raise UserError(
                "automatic_entry",
                "Viewers with a correct quiz answer are entered automatically.",
            )
        if isinstance(rule, WatchedRule):
            await self._presence.accrue(room, who.viewer_id)
            counters = await self._counters.viewer(room.id, room.scope, who.viewer_id)
            watched = counters.get("watch_seconds", 0.0)
            needed = rule.minutes * 60
            if watched < needed:
                raise UserError(
                    "not_eligible",
                    f"This draw needs {rule.minutes} minutes of watching.",
                    watched_seconds=int(watched),
                    needed_seconds=needed,
                )
        if isinstance(rule, KeywordRule) and who.viewer_id not in await self._keyword_senders(
            draw, only=who.viewer_id
        ):
            raise UserError(
                "keyword_required",
                "Send the keyword in chat to enter this draw.",
                keyword=rule.keyword,
            )

    # -- close --------------------------------------------------------------------------

    async def close(self, room: Room, actor: str, draw_id: str) -> tuple[Draw, bool]:
        """Freeze the entrant list; (draw, True) when this call closed it."""
        draw = await self.get(room.id, draw_id)
        if draw.status != "open":
            return draw, False
        if not await self._store.set_if_absent(
            _key(room.id, draw.id, "closing"), actor, GUARD_SECONDS
        ):
            return await self._wait_closed(draw), False
        await self._store.set(_key(room.id, draw.id, "closed"), actor)
        now = self._clock()
        frozen = await self._freeze(room, draw, min(now, draw.closes_at))
        await self._store.set(_key(room.id, draw.id, "frozen"), _json(frozen))
        members = _key(room.id, draw.id, "members")
        for start in range(0, len(frozen.entrants), 1000):
            await self._store.sadd(members, *frozen.entrants[start : start + 1000])
        e_hash = proof.entrants_hash(frozen.entrants)
        await self._record(
            room,
            actor,
            CLOSED,
            {
                "draw_id": draw.id,
                "entrant_count": len(frozen.entrants),
                "entrants_hash": e_hash,
                "entrants": frozen.entrants,
                "names": frozen.names,
            },
            now,
        )
        closed = msgspec.structs.replace(
            draw,
            status="closed",
            closed_at=now,
            entrant_count=len(frozen.entrants),
            entrants_hash=e_hash,
        )
        await self._save(closed)
        await self._store.srem(OPEN_DRAWS, _open_member(room.id, draw.id))
        await self._count_each(room, frozen.entrants, "draw_entries")
        return closed, True

    async def close_expired(self) -> list[Draw]:
        """Close every draw whose window has ended; returns those this call closed."""
        closed: list[Draw] = []
        now = self._clock()
        for member in await self._store.smembers(OPEN_DRAWS):
            room_id, _, draw_id = member.partition("/")
            try:
                draw = await self.get(room_id, draw_id)
            except NotFound:
                await self._store.srem(OPEN_DRAWS, member)
                continue
            if draw.status != "open":
                await self._store.srem(OPEN_DRAWS, member)
                continue
            if now < draw.closes_at:
                continue
            room = await self._rooms.get(room_id)
            done, fresh = await self.close(room, SYSTEM, draw_id)
            if fresh:
                closed.append(done)
        return closed

    async def _freeze(self, room: Room, draw: Draw, until: float) -> Frozen:
        names = await self._entered(draw)
        rule = draw.rule
        if isinstance(rule, KeywordRule):
            names.update(await self._keyword_senders(draw, until=until))
        elif isinstance(rule, QuizCorrectRule):
            names.update(await self._quiz_correct(draw, rule, until))
        staff = await self._staff_ids(room.id) if isinstance(rule, QuizCorrectRule) else set()
        eligible: dict[str, str] = {}
        for viewer_id, name in names.items():
            if viewer_id in staff or not proof.usable_id(viewer_id):
                continue
            if await self._moderation.is_banned(room.id, viewer_id):
                continue
            eligible[viewer_id] = name
        entrants = proof.normalise_entrants(eligible)
        return Frozen(entrants=entrants, names={e: eligible[e] for e in entrants})

    async def _entered(self, draw: Draw) -> dict[str, str]:
        """Who entered with ``draw_enter``, as the log recorded it (the store may lag)."""
        names: dict[str, str] = {}
        async for event in self._events(draw.room, (ENTERED,), after_id=draw.after_event_id):
            if event.data.get("draw_id") == draw.id:
                names.setdefault(event.actor, str(event.data.get("name") or event.actor))
        return names

    async def _keyword_senders(
        self, draw: Draw, *, until: float | None = None, only: str | None = None
    ) -> dict[str, str]:
        """Viewers whose chat messages in the window hold the keyword (not deleted ones)."""
        assert isinstance(draw.rule, KeywordRule)
        keyword = draw.rule.keyword
        end = draw.closes_at if until is None else until
        found: dict[int, tuple[str, str]] = {}
        deleted: set[int] = set()
        async for event in self._events(
            draw.room, ("chat.message", "mod.delete"), after_id=draw.after_event_id
        ):
            if event.kind == "mod.delete":
                deleted.add(int(event.data.get("message_id", 0)))
                continue
            if only is not None and event.actor != only:
                continue
            if not draw.created_at <= event.ts <= end:
                continue
            data = event.data
            if data.get("role") in STAFF_ROLES or not keyword_in(keyword, str(data.get("text"))):
                continue
            found[event.id] = (event.actor, str(data.get("name") or event.actor))
        return {vid: name for mid, (vid, name) in found.items() if mid not in deleted}

    async def _quiz_correct(
        self, draw: Draw, rule: QuizCorrectRule, until: float
    ) -> dict[str, str]:
        """Viewers with a correct answer: to the quiz named, else in the draw's stream."""
        names, _ = await self._people(draw.room)
        found: dict[str, str] = {}
        async for event in self._events(draw.room, ("quiz.answer",)):
            data = event.data
            if data.get("correct") is not True or event.ts > until:
                continue
            if rule.quiz_id is not None:
                if data.get("quiz_id") != rule.quiz_id:
                    continue
            elif draw.stream is not None and event.stream != draw.stream:
                continue
            found[event.actor] = names.get(event.actor, event.actor)
        return found

    async def _staff_ids(self, room_id: str) -> set[str]:
        _, staff = await self._people(room_id)
        return staff

    async def _people(self, room_id: str) -> tuple[dict[str, str], set[str]]:
        """Names by viewer id and the ids ever connected as host or moderator."""
        names: dict[str, str] = {}
        staff: set[str] = set()
        async for event in self._events(room_id, ("presence.join",)):
            names[event.actor] = str(event.data.get("name") or event.actor)
            if event.data.get("role") in STAFF_ROLES:
                staff.add(event.actor)
        return names, staff

    # -- pick: commit, then reveal ------------------------------------------------------

    async def commit(self, room: Room, who: Principal, draw_id: str) -> tuple[Draw, bool]:
        """Close if needed, choose the seed and record the commitment; True when fresh."""
        self._staff(who)
        draw = await self.get(room.id, draw_id)
        if draw.status == "open":
            draw, _ = await self.close(room, who.viewer_id, draw_id)
        if draw.status != "closed":
            return draw, False
        if not await self._store.set_if_absent(
            _key(room.id, draw.id, "picking"), who.viewer_id, GUARD_SECONDS
        ):
            return draw, False
        frozen = await self._frozen(draw)
        if frozen is None:
            raise Conflict("draw_lost", "The entrant list of this draw is gone.")
        nonce = secrets.token_hex(16)
        seed = self._seed(room.id, draw.id, nonce)
        await self._store.set(_key(room.id, draw.id, "seed"), seed)
        e_hash = proof.entrants_hash(frozen.entrants)
        s_hash = proof.seed_hash(seed)
        digest = proof.commitment(e_hash, s_hash)
        now = self._clock()
        await self._record(
            room,
            who.viewer_id,
            COMMITTED,
            {
                "draw_id": draw.id,
                "entrant_count": len(frozen.entrants),
                "entrants_hash": e_hash,
                "seed_hash": s_hash,
                "commitment": digest,
                "seed_nonce": nonce,  # the seed again after a restart, with the secret
            },
            now,
        )
        committed = msgspec.structs.replace(
            draw,
            status="committed",
            entrants_hash=e_hash,
            seed_hash=s_hash,
            commitment=digest,
            committed_at=now,
        )
        await self._save(committed)
        return committed, True

    async def reveal(self, room: Room, who: Principal, draw_id: str) -> tuple[Draw, bool]:
        """Compute the winners from the committed seed and publish it; True when fresh."""
        self._staff(who)
        draw = await self.get(room.id, draw_id)
        if draw.status == "revealed":
            return draw, False
        if draw.status != "committed":
            raise Conflict("pick_in_progress", "This draw is being picked; try again shortly.")
        if not await self._store.set_if_absent(
            _key(room.id, draw.id, "revealing"), who.viewer_id, GUARD_SECONDS
        ):
            raise Conflict("pick_in_progress", "This draw is being picked; try again shortly.")
        seed = await self._store.get(_key(room.id, draw.id, "seed"))
        frozen = await self._frozen(draw)
        if seed is None or frozen is None or draw.committed_at is None:
            raise Conflict("draw_lost", "The committed state of this draw is gone.")
        now = self._clock()
        record = proof.transcript(
            room=room.id,
            draw_id=draw.id,
            prize=draw.prize,
            rule=msgspec.to_builtins(draw.rule),
            winners_count=draw.winners_count,
            entrants=frozen.entrants,
            seed_hex=seed,
            committed_at=draw.committed_at,
            revealed_at=now,
        )
        if record["commitment"] != draw.commitment:
            raise Conflict("draw_lost", "The entrant list changed after the commitment.")
        winners = tuple(Winner(v, frozen.names.get(v, v)) for v in record["winners"])
        record["winner_names"] = {w.viewer_id: w.name for w in winners}
        await self._store.set(
            _key(room.id, draw.id, "transcript"), _json(record), TRANSCRIPT_CACHE_SECONDS
        )
        await self._record(
            room, who.viewer_id, REVEALED, {"draw_id": draw.id, "transcript": record}, now
        )
        revealed = msgspec.structs.replace(
            draw, status="revealed", seed=seed, winners=winners, revealed_at=now
        )
        await self._save(revealed)
        await self._count_each(room, [w.viewer_id for w in winners], "draw_wins")
        return revealed, True

    # -- rebuild ------------------------------------------------------------------------

    async def rebuild(self, room_id: str) -> None:
        """Overwrite the room's draws in the store with what its log says."""
        book = _Book(self._seed)
        async for event in self._events(room_id, KINDS):
            try:
                book.apply(event)
            except (KeyError, TypeError, ValueError):  # one bad event must not stop a start
                log.warning("rebuild skips unreadable %s event %d", event.kind, event.id)
        await self._store.delete(draws_key(room_id))
        if book.draws:
            await self._store.hset(
                draws_key(room_id), {d.id: _json(d) for d in book.draws.values()}
            )
        for draw in book.draws.values():
            await self._rebuild_one(draw, book)

    async def _rebuild_one(self, draw: Draw, book: _Book) -> None:
        store, room_id = self._store, draw.room
        part = functools.partial(_key, room_id, draw.id)
        member = _open_member(room_id, draw.id)
        await store.delete(*(part(g) for g in _GUARDS), part("entrants"), part("members"))
        entered = book.entered.get(draw.id, {})
        if entered:
            await store.hset(part("entrants"), entered)
        if draw.status == "open":
            await store.delete(part("closed"), part("frozen"), part("seed"))
            await store.sadd(OPEN_DRAWS, member)
            return
        await store.srem(OPEN_DRAWS, member)
        await store.set(part("closed"), SYSTEM)
        frozen = book.frozen.get(draw.id)
        if frozen is not None:
            await store.set(part("frozen"), _json(frozen))
            for start in range(0, len(frozen.entrants), 1000):
                await store.sadd(part("members"), *frozen.entrants[start : start + 1000])
        seed = book.seeds.get(draw.id)
        if seed is not None:
            await store.set(part("seed"), seed)
        transcript = book.transcripts.get(draw.id)
        if transcript is not None:
            await store.set(part("transcript"), _json(transcript), TRANSCRIPT_CACHE_SECONDS)

    # -- helpers ------------------------------------------------------------------------

    def _seed(self, room_id: str, draw_id: str, nonce: str) -> str:
        """The draw's 32-byte seed (hex): unknown to whoever lacks the server's secret."""
        message = f"draw-seed|{room_id}|{draw_id}|{nonce}".encode()
        return hmac.new(self._seed_key, message, hashlib.sha256).hexdigest()

    @staticmethod
    def _staff(who: Principal) -> None:
        if not who.is_staff:
            raise Forbidden("forbidden", "Only the host and moderators can do that.")

    async def _save(self, draw: Draw) -> None:
        await self._store.hset(draws_key(draw.room), {draw.id: _json(draw)})

    async def _frozen(self, draw: Draw) -> Frozen | None:
        raw = await self._store.get(_key(draw.room, draw.id, "frozen"))
        return None if raw is None else self._frozen_decoder.decode(raw)

    async def _wait_closed(self, draw: Draw) -> Draw:
        """The draw once a close under way elsewhere has recorded it (or as it is, late)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FROZEN_WAIT_SECONDS
        while True:
            current = await self.get(draw.room, draw.id)
            if current.status != "open" or loop.time() >= deadline:
                return current
            await asyncio.sleep(0.05)

    async def _wait_frozen(self, draw: Draw) -> Frozen | None:
        """The frozen list, waiting briefly for a close that is under way elsewhere."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FROZEN_WAIT_SECONDS
        while True:
            frozen = await self._frozen(draw)
            if frozen is not None or loop.time() >= deadline:
                return frozen
            await asyncio.sleep(0.05)

    def _events(
        self, room_id: str, kinds: tuple[str, ...], after_id: int = 0
    ) -> AsyncIterator[Event]:
        """Events of ``kinds`` in id order, read in batches."""
        return self._log.scan_kinds(room_id, kinds, after_id=after_id, batch=SCAN_BATCH)

    async def _count_each(self, room: Room, viewer_ids: Iterable[str], name: ViewerCounter) -> None:
        ids = list(viewer_ids)
        for start in range(0, len(ids), 200):
            await asyncio.gather(
                *(
                    self._counters.add(room.id, room.scope, vid, name)
                    for vid in ids[start : start + 200]
                )
            )


class _Book:
    """A room's draws as its log tells them, event by event (what ``rebuild`` writes)."""

    def __init__(self, seed: Callable[[str, str, str], str]) -> None:
        self._seed = seed
        self.draws: dict[str, Draw] = {}
        self.entered: dict[str, dict[str, str]] = {}
        self.frozen: dict[str, Frozen] = {}
        self.seeds: dict[str, str] = {}
        self.transcripts: dict[str, dict[str, Any]] = {}

    def apply(self, event: Event) -> None:
        data = event.data
        draw_id = str(data.get("draw_id"))
        if event.kind == CREATED:
            self.draws[draw_id] = _created(event, draw_id)
            return
        draw = self.draws.get(draw_id)
        if draw is None:
            return
        if event.kind == ENTERED:
            names = self.entered.setdefault(draw_id, {})
            names.setdefault(event.actor, str(data.get("name") or event.actor))
        elif event.kind == CLOSED and draw.status == "open":
            entrants = [str(e) for e in data.get("entrants", [])]
            names = {str(k): str(v) for k, v in dict(data.get("names", {})).items()}
            self.frozen[draw_id] = Frozen(entrants=entrants, names=names)
            self.draws[draw_id] = msgspec.structs.replace(
                draw,
                status="closed",
                closed_at=event.ts,
                entrant_count=int(data.get("entrant_count", len(entrants))),
                entrants_hash=data.get("entrants_hash"),
            )
        elif event.kind == COMMITTED and draw.status == "closed":
            nonce = data.get("seed_nonce")  # absent from commitments before restarts kept them
            if isinstance(nonce, str):
                self.seeds[draw_id] = self._seed(draw.room, draw_id, nonce)
            self.draws[draw_id] = msgspec.structs.replace(
                draw,
                status="committed",
                entrants_hash=data.get("entrants_hash"),
                seed_hash=data.get("seed_hash"),
                commitment=data.get("commitment"),
                committed_at=event.ts,
            )
        elif event.kind == REVEALED and draw.status == "committed":
            record = dict(data.get("transcript") or {})
            self.transcripts[draw_id] = record
            self.seeds[draw_id] = str(record.get("seed"))
            names = dict(record.get("winner_names") or {})
            winners = tuple(Winner(str(v), str(names.get(v, v))) for v in record.get("winners", []))
            self.draws[draw_id] = msgspec.structs.replace(
                draw,
                status="revealed",
                seed=self.seeds[draw_id],
                winners=winners,
                revealed_at=event.ts,
            )


def _created(event: Event, draw_id: str) -> Draw:
    """The draw as ``draw.created`` defined it (open)."""
    data = event.data
    return Draw(
        id=draw_id,
        room=event.room,
        prize=str(data["prize"]),
        winners_count=int(data["winners_count"]),
        rule=msgspec.convert(data["rule"], DrawRule),
        window_seconds=int(data["window_seconds"]),
        created_at=event.ts,
        closes_at=float(data["closes_at"]),
        created_by=event.actor,
        after_event_id=event.id,
        stream=event.stream,
    )


def _already_entered() -> Conflict:
    return Conflict("already_entered", "You have already entered this draw.")


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()
