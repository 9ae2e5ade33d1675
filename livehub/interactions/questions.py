"""Q&A: viewers ask questions and upvote the ones they want answered; the staff
approve, answer, highlight and dismiss them.

Asking
    The text (1-300 characters after ``clean_text``) runs through the room's rule
    chain: block, mute and ban refuse it, hold sends it to the approval queue, as
    does the room's "require approval" switch. Before anything is recorded, the
    room's visible unanswered questions are searched for close ones
    (:mod:`livehub.interactions.similarity`); if some are found the asker is
    offered them instead (upvote one, or ask again with ``force``). A viewer may
    ask one question per the room's ``question_interval_seconds`` (60 by default,
    0 for no limit); the staff are exempt from
    the rules, the limit and the approval queue. A question's id is the id of its
    ``qa.asked``/``qa.held`` event, which carries the client id (``qa:<id>``), so a
    retry returns the first question instead of asking twice. A short claim in the
    store lets a retry racing its original wait for it; a claim left by a crashed
    node is taken over after that wait (the log's client id still decides).

Upvoting
    One upvote per viewer per question, taken back with an unvote and then given
    again: the log decides. A viewer's votes on a question are numbered
    operations, upvotes even and unvotes odd, each recorded with the client id
    ``qa.vote:<question>:<n>``; the log's unique key lets exactly one request
    record operation ``n``, and a viewer has upvoted when the count of their
    operations is odd. The store keeps that count as a hint (``upseq``), checked
    against the log before each vote, and learns each recorded operation after
    the commit: the viewer's ``up`` set, and the tally (a hash counter moved only
    by the ``sadd``/``srem`` that changed the set, so each operation moves it
    once). A node killed between the commit and the store leaves an operation
    the store does not know: the next vote of that viewer finds it in the log,
    answers ``already_upvoted`` (or ``not_upvoted``) and teaches the store.

State (per room, in the state store; a cache of the log)
    ``qa:{room}:q`` hash of the questions as asked (immutable), the sets
    ``pending`` (approval queue), ``open`` (approved, not dismissed) and
    ``answered``, the ``closed`` hash (rejected or dismissed), the ``votes`` hash,
    the ``highlight`` key (at most one question), each viewer's ``up`` set and
    ``upseq`` hash, the ``settings`` hash and the ask rate-limit bucket. A staff
    move (approve versus reject, dismiss) holds the question's ``move`` guard,
    takes it out of its set with ``srem`` and records the event before the store
    puts it in its new place; a move killed halfway leaves the question in no
    set, and the next move of it, once the guard has expired, puts it back where
    the log says first. Other changes are recorded, then stored.
    ``rebuild`` replays the room's ``qa.*`` events and overwrites this state: on
    start and when the store was emptied, the queue, each question's state, the
    approval switch and every tally come back as the log tells them.

Counters: ``questions`` for the asker when a question becomes visible (asked, or
approved from the queue, as chat counts held messages); ``upvotes`` for the
upvoter (an unvote takes one back).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import Final, Literal

import msgspec

from livehub.errors import Conflict, NotFound, RateLimited, UserError
from livehub.interactions.moderation import Moderation
from livehub.interactions.normalise import clean_text
from livehub.interactions.similarity import SIMILAR_AT, most_similar
from livehub.rooms.counters import Counters
from livehub.rooms.eventlog import Event, EventLog
from livehub.rooms.models import Principal, Room
from livehub.rooms.recorder import Recorder
from livehub.rooms.store import StateStore

log = logging.getLogger("livehub.questions")

MAX_QUESTION_CHARS: Final = 300
MAX_QUESTIONS_PER_ROOM: Final = 5000
MAX_SIMILAR: Final = 3
# How long a request waits for another request with the same client id (a retry
# racing its original, perhaps through another node) to be recorded.
RACING_RETRY_WAIT_SECONDS: Final = 2.0
# How long a client id stays claimed by the request sending it (after
# RACING_RETRY_WAIT_SECONDS a retry takes over a claim whose request never recorded).
ASK_CLAIM_SECONDS: Final = 30.0
# How long a staff move (approve, reject, dismiss) keeps others off the question; a
# move killed halfway is settled from the log by the next one after this.
MOVE_GUARD_SECONDS: Final = 10.0

Status = Literal["pending", "open", "rejected", "dismissed"]
HeldBy = Literal["rule", "approval"]
Sort = Literal["votes", "recent"]

ASKED: Final = "qa.asked"
HELD: Final = "qa.held"
APPROVED: Final = "qa.approved"
REJECTED: Final = "qa.rejected"
ANSWERED: Final = "qa.answered"
DISMISSED: Final = "qa.dismissed"
HIGHLIGHTED: Final = "qa.highlighted"
SETTINGS: Final = "qa.settings"
UPVOTE: Final = "qa.upvote"
UNVOTE: Final = "qa.unvote"
_STATUS_KINDS: Final = (ASKED, HELD, APPROVED, REJECTED, DISMISSED)
KINDS: Final = (
    ASKED,
    HELD,
    APPROVED,
    REJECTED,
    ANSWERED,
    DISMISSED,
    HIGHLIGHTED,
    SETTINGS,
    UPVOTE,
    UNVOTE,
)


class Question(msgspec.Struct, frozen=True):
    """A question as asked; never changes once recorded."""

    id: int
    text: str
    viewer_id: str
    name: str
    anonymous: bool
    asked_at: float
    # Why it went to the approval queue: a "hold" rule, or the room's switch.
    held_by: HeldBy | None = None


class QuestionState(msgspec.Struct, frozen=True):
    """A question with where it stands now."""

    question: Question
    status: Status
    votes: int = 0
    answered: bool = False
    highlighted: bool = False

    @property
    def id(self) -> int:
        return self.question.id

    @property
    def visible(self) -> bool:
        return self.status == "open"


class Similar(msgspec.Struct, frozen=True):
    id: int
    text: str
    votes: int
    own: bool


class AskResult(msgspec.Struct, frozen=True):
    """Either the question (new, or the first one for a repeated client id) or the
    close questions offered instead (nothing recorded then)."""

    question: QuestionState | None = None
    similar: tuple[Similar, ...] = ()
    duplicate: bool = False


def _key(room: str, part: str) -> str:
    return f"qa:{room}:{part}"


def _upvotes_key(room: str, viewer_id: str) -> str:
    return f"qa:{room}:up:{viewer_id}"


def _vote_seq_key(room: str, viewer_id: str) -> str:
    return f"qa:{room}:upseq:{viewer_id}"


def vote_client_id(question_id: int, seq: int) -> str:
    """The log's client id of a viewer's ``seq``-th vote operation on a question."""
    return f"qa.vote:{question_id}:{seq}"


def _rate_key(room: str, viewer_id: str) -> str:
    return f"qa:{room}:rl:{viewer_id}"


def _claim_key(room: str, viewer_id: str, client_id: str) -> str:
    return f"qa:{room}:ask:{viewer_id}:{client_id}"


def _log_client_id(client_id: str) -> str:
    return f"qa:{client_id}"


def _move_key(room: str, question_id: int) -> str:
    return f"qa:{room}:move:{question_id}"


def _not_found() -> NotFound:
    return NotFound("not_found", "No such question in this room.")


def _not_in(origin: Status) -> NotFound:
    if origin == "pending":
        return NotFound("not_found", "No such question waiting for approval.")
    return _not_found()


class QuestionService:
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
        self._decoder = msgspec.json.Decoder(Question)

    def now(self) -> float:
        return self._clock()

    # -- asking ------------------------------------------------------------------

    async def ask(
        self,
        room: Room,
        who: Principal,
        text: str,
        *,
        anonymous: bool,
        client_id: str,
        force: bool = False,
    ) -> AskResult:
        earlier = await self._earlier(room, who, client_id)
        if earlier is not None:
            return AskResult(question=earlier, duplicate=True)
        text = _checked_text(text)
        raced = await self._claim(room, who, client_id)
        if raced is not None:
            return AskResult(question=raced, duplicate=True)
        claim = _claim_key(room.id, who.viewer_id, client_id)
        try:
            result = await self._ask(room, who, text, anonymous, client_id, force)
        except BaseException:
            await self._store.delete(claim)  # nothing recorded: the same id may come again
            raise
        if result.question is None:
            await self._store.delete(claim)
        return result

    async def _ask(
        self, room: Room, who: Principal, text: str, anonymous: bool, client_id: str, force: bool
    ) -> AskResult:
        held = False
        if not who.is_staff:
            await self._ensure_may_ask(room, who)
            held = await self._moderation.apply_rules(room, who, text)
        if not force:
            similar = await self.similar(room.id, text, who.viewer_id)
            if similar:
                return AskResult(similar=tuple(similar))
        if await self._store.hlen(_key(room.id, "q")) >= MAX_QUESTIONS_PER_ROOM:
            raise UserError(
                "too_many_questions", f"A room takes at most {MAX_QUESTIONS_PER_ROOM} questions."
            )
        if not who.is_staff:
            await self._rate_limit(room, who)
        pending = held or (not who.is_staff and await self.require_approval(room.id))
        data: dict[str, object] = {"text": text, "name": who.name, "anonymous": anonymous}
        if pending:
            data["reason"] = "rule" if held else "approval"
        event, created = await self._record(
            room,
            who.viewer_id,
            HELD if pending else ASKED,
            data,
            client_id=_log_client_id(client_id),
        )
        if not created:  # recorded meanwhile by a request whose claim had expired
            return AskResult(question=await self._restored(room, event), duplicate=True)
        question = _question_from(event)
        await self._store.hset(_key(room.id, "q"), {str(question.id): _encode(question)})
        await self._store.sadd(_key(room.id, "pending" if pending else "open"), str(question.id))
        if not pending:
            await self._counters.add(room.id, room.scope, who.viewer_id, "questions")
        return AskResult(question=QuestionState(question, "pending" if pending else "open"))

    async def _ensure_may_ask(self, room: Room, who: Principal) -> None:
        """Muted and banned viewers may not ask; a paused chat does not stop Q&A."""
        if room.settings.chat_paused:
            settings = msgspec.structs.replace(room.settings, chat_paused=False)
            room = msgspec.structs.replace(room, settings=settings)
        await self._moderation.ensure_may_post(room, who)

    async def _rate_limit(self, room: Room, who: Principal) -> None:
        interval = room.settings.question_interval_seconds
        if interval == 0:
            return
        wait = await self._store.take_token(
            _rate_key(room.id, who.viewer_id), 1.0 / interval, 1.0, self._clock()
        )
        if wait:
            raise RateLimited(f"One question per {interval} seconds; wait a moment.", wait)

    async def _earlier(self, room: Room, who: Principal, client_id: str) -> QuestionState | None:
        event = await self._log.find(room.id, who.viewer_id, _log_client_id(client_id))
        return None if event is None else await self._restored(room, event)

    async def _claim(self, room: Room, who: Principal, client_id: str) -> QuestionState | None:
        """Claim the client id for this request, or return the question a request
        racing with the same id recorded meanwhile.

        A claim whose question is still not in the log after the wait was left by
        a request that died (its node killed): this one takes it over and asks;
        the log's client id records one question whatever happens.
        """
        key = _claim_key(room.id, who.viewer_id, client_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RACING_RETRY_WAIT_SECONDS
        while not await self._store.set_if_absent(key, "1", ASK_CLAIM_SECONDS):
            earlier = await self._earlier(room, who, client_id)
            if earlier is not None:
                return earlier
            if loop.time() >= deadline:
                await self._store.set(key, "1", ASK_CLAIM_SECONDS)
                break
            await asyncio.sleep(0.02)
        return await self._earlier(room, who, client_id)

    async def _restored(self, room: Room, event: Event) -> QuestionState:
        """The state of a recorded question; one recorded whose state never reached
        the store (its node failed right after the commit) is put there now."""
        question = _question_from(event)
        if await self._store.hget(_key(room.id, "q"), str(question.id)) is None:
            await self._store.hset(_key(room.id, "q"), {str(question.id): _encode(question)})
            target = "pending" if event.kind == HELD else "open"
            await self._store.sadd(_key(room.id, target), str(question.id))
        return await self.get(room.id, question.id)

    async def similar(self, room_id: str, text: str, viewer_id: str) -> list[Similar]:
        """Up to :data:`MAX_SIMILAR` visible unanswered questions close to ``text``."""
        candidates = [s for s in await self.visible(room_id) if not s.answered]
        close = most_similar(
            text,
            ((s, s.question.text) for s in candidates),
            threshold=SIMILAR_AT,
            limit=MAX_SIMILAR,
        )
        return [
            Similar(s.id, s.question.text, s.votes, s.question.viewer_id == viewer_id)
            for s, _ in close
        ]

    # -- upvoting ----------------------------------------------------------------

    async def upvote(self, room: Room, who: Principal, question_id: int) -> int:
        """Upvote a visible question once; the new tally."""
        state = await self._visible(room.id, question_id)
        if state.question.viewer_id == who.viewer_id:
            raise UserError("own_question", "You cannot upvote your own question.")
        return await self._vote(room, who, question_id, up=True)

    async def unvote(self, room: Room, who: Principal, question_id: int) -> int:
        """Take back an upvote; the new tally."""
        await self._visible(room.id, question_id)
        return await self._vote(room, who, question_id, up=False)

    async def _vote(self, room: Room, who: Principal, question_id: int, *, up: bool) -> int:
        """Record the viewer's next vote operation if it is an ``up`` (or a take-back)."""
        seq = await self._vote_seq(room.id, who.viewer_id, question_id)
        if (seq % 2 == 0) != up:  # already where this would take it
            await self._learn_vote(room.id, who.viewer_id, question_id, seq)
            raise _vote_refused(up)
        _, created = await self._record(
            room,
            who.viewer_id,
            UPVOTE if up else UNVOTE,
            {"question_id": question_id, "seq": seq},
            client_id=vote_client_id(question_id, seq),
        )
        votes = await self._learn_vote(room.id, who.viewer_id, question_id, seq + 1)
        if not created:  # a request racing this one recorded operation ``seq``
            raise _vote_refused(up)
        await self._counters.add(room.id, room.scope, who.viewer_id, "upvotes", 1 if up else -1)
        return votes

    async def _vote_seq(self, room_id: str, viewer_id: str, question_id: int) -> int:
        """How many vote operations the viewer has recorded on the question.

        The store's count is a hint: operations recorded past it (a node died
        before the store learned them) are found in the log. A hint the log does
        not back (operations recorded before they were numbered, or erased with
        the viewer) keeps its number and takes its parity from the ``up`` set.
        """
        field = str(question_id)
        seq = int(await self._store.hget(_vote_seq_key(room_id, viewer_id), field) or 0)
        if seq > 0 and not await self._recorded(room_id, viewer_id, question_id, seq - 1):
            upvoted = await self._store.sismember(_upvotes_key(room_id, viewer_id), field)
            seq += (seq % 2 == 1) != upvoted
        while await self._recorded(room_id, viewer_id, question_id, seq):
            seq += 1
        return seq

    async def _recorded(self, room_id: str, viewer_id: str, question_id: int, seq: int) -> bool:
        found = await self._log.find(room_id, viewer_id, vote_client_id(question_id, seq))
        return found is not None

    async def _learn_vote(self, room_id: str, viewer_id: str, question_id: int, ops: int) -> int:
        """The store learns that the viewer made ``ops`` vote operations; the tally.

        The tally moves only with the ``sadd``/``srem`` that changed the viewer's
        set, so requests learning the same operation move it once.
        """
        field = str(question_id)
        votes_key = _key(room_id, "votes")
        await self._store.hset(_vote_seq_key(room_id, viewer_id), {field: str(ops)})
        mine = _upvotes_key(room_id, viewer_id)
        if ops % 2 == 1:
            if await self._store.sadd(mine, field):
                return await self._store.hincr(votes_key, field)
        elif await self._store.srem(mine, field):
            return await self._store.hincr(votes_key, field, -1)
        return int(await self._store.hget(votes_key, field) or 0)

    async def upvoted(self, room_id: str, viewer_id: str) -> set[int]:
        """The ids of the questions ``viewer_id`` upvoted."""
        return {int(m) for m in await self._store.smembers(_upvotes_key(room_id, viewer_id))}

    async def votes(self, room_id: str, question_ids: Iterable[int]) -> dict[int, int]:
        raw = await self._store.hgetall(_key(room_id, "votes"))
        return {qid: int(raw.get(str(qid), 0)) for qid in question_ids}

    # -- staff -------------------------------------------------------------------

    async def approve(self, room: Room, who: Principal, question_id: int) -> QuestionState:
        state = await self._take(room, who, question_id, "pending", APPROVED)
        await self._store.sadd(_key(room.id, "open"), str(question_id))
        await self._counters.add(room.id, room.scope, state.question.viewer_id, "questions")
        return msgspec.structs.replace(state, status="open")

    async def reject(self, room: Room, who: Principal, question_id: int) -> QuestionState:
        state = await self._take(room, who, question_id, "pending", REJECTED)
        await self._store.hset(_key(room.id, "closed"), {str(question_id): "rejected"})
        return msgspec.structs.replace(state, status="rejected")

    async def answer(self, room: Room, who: Principal, question_id: int) -> QuestionState:
        """Mark a visible question answered (again: no change)."""
        state = await self._visible(room.id, question_id)
        if not state.answered:
            await self._record(room, who.viewer_id, ANSWERED, {"question_id": question_id})
            await self._store.sadd(_key(room.id, "answered"), str(question_id))
        return msgspec.structs.replace(state, answered=True)

    async def dismiss(
        self, room: Room, who: Principal, question_id: int
    ) -> tuple[QuestionState, bool]:
        """Hide a visible question for good; the question, and whether it was the
        highlighted one (nothing is highlighted then)."""
        state = await self._take(room, who, question_id, "open", DISMISSED)
        await self._store.hset(_key(room.id, "closed"), {str(question_id): "dismissed"})
        if state.highlighted:
            await self._store.delete(_key(room.id, "highlight"))
        dismissed = msgspec.structs.replace(state, status="dismissed", highlighted=False)
        return dismissed, state.highlighted

    async def _take(
        self, room: Room, who: Principal, question_id: int, origin: Status, kind: str
    ) -> QuestionState:
        """Take the question out of ``origin`` and record ``kind``; one request wins.

        The move guard keeps other staff moves of the question out meanwhile, and
        a failed record puts the question back. Holding the guard, a question in
        no status at all was taken by a request killed before its record (its
        guard since expired): the log says where it is, and it goes back there.
        """
        field = str(question_id)
        guard = _move_key(room.id, question_id)
        if not await self._store.set_if_absent(guard, who.viewer_id, MOVE_GUARD_SECONDS):
            raise _not_in(origin)
        try:
            taken = await self._store.srem(_key(room.id, origin), field)
            if not taken and await self._recover_lost(room.id, question_id):
                taken = await self._store.srem(_key(room.id, origin), field)
            if not taken:
                raise _not_in(origin)
            state = await self.get(room.id, question_id)
            data = {"question_id": question_id, "viewer_id": state.question.viewer_id}
            try:
                await self._record(room, who.viewer_id, kind, data)
            except BaseException:
                await self._store.sadd(_key(room.id, origin), field)
                raise
        finally:
            await self._store.delete(guard)
        return state

    async def _recover_lost(self, room_id: str, question_id: int) -> bool:
        """Put a question found in no status back where the log says; True if it was."""
        field, store = str(question_id), self._store
        if await store.hget(_key(room_id, "q"), field) is None:
            return False
        for name in ("open", "pending"):
            if await store.sismember(_key(room_id, name), field):
                return False
        if await store.hget(_key(room_id, "closed"), field) is not None:
            return False
        board = await self._replay(room_id, _STATUS_KINDS)
        status = board.status.get(question_id)
        if status == "open" or status == "pending":
            await store.sadd(_key(room_id, status), field)
        elif status is not None:
            await store.hset(_key(room_id, "closed"), {field: status})
        return status is not None

    async def highlight(
        self, room: Room, who: Principal, question_id: int | None
    ) -> QuestionState | None:
        """Show one visible question over the video (replacing any other); None clears."""
        key = _key(room.id, "highlight")
        state: QuestionState | None = None
        if question_id is not None:
            state = await self._visible(room.id, question_id)
        await self._record(room, who.viewer_id, HIGHLIGHTED, {"question_id": question_id})
        if state is None:
            await self._store.delete(key)
        else:
            await self._store.set(key, str(question_id))
            state = msgspec.structs.replace(state, highlighted=True)
        return state

    async def highlighted(self, room_id: str) -> QuestionState | None:
        raw = await self._store.get(_key(room_id, "highlight"))
        if raw is None:
            return None
        try:
            state = await self.get(room_id, int(raw))
        except NotFound:
            return None
        return state if state.visible else None

    async def require_approval(self, room_id: str) -> bool:
        return await self._store.hget(_key(room_id, "settings"), "require_approval") == "1"

    async def set_require_approval(self, room: Room, who: Principal, required: bool) -> bool:
        """Recorded first, so the switch a restart rebuilds is the one last answered."""
        await self._record(room, who.viewer_id, SETTINGS, {"require_approval": required})
        await self._store.hset(
            _key(room.id, "settings"), {"require_approval": "1" if required else "0"}
        )
        return required

    # -- rebuilding --------------------------------------------------------------

    async def rebuild(self, room_id: str) -> None:
        """Overwrite the room's Q&A state in the store with what its log says."""
        await self._write_board(room_id, await self._replay(room_id, KINDS))

    async def _replay(self, room_id: str, kinds: tuple[str, ...]) -> _Board:
        board = _Board()
        async for event in self._log.scan_kinds(room_id, kinds):
            try:
                board.apply(event)
            except (KeyError, TypeError, ValueError):  # one bad event must not stop a start
                log.warning("rebuild skips unreadable %s event %d", event.kind, event.id)
        return board

    async def _write_board(self, room_id: str, board: _Board) -> None:
        store = self._store
        parts = ("q", "pending", "open", "answered", "closed", "votes", "highlight", "settings")
        await store.delete(*(_key(room_id, part) for part in parts))
        if board.questions:
            asked = {str(qid): _encode(q) for qid, q in board.questions.items()}
            await store.hset(_key(room_id, "q"), asked)
        for name in ("pending", "open"):
            ids = [str(qid) for qid, status in board.status.items() if status == name]
            if ids:
                await store.sadd(_key(room_id, name), *ids)
        closed: dict[str, str] = {
            str(qid): status
            for qid, status in board.status.items()
            if status in ("rejected", "dismissed")
        }
        if closed:
            await store.hset(_key(room_id, "closed"), closed)
        if board.answered:
            await store.sadd(_key(room_id, "answered"), *map(str, board.answered))
        votes = board.votes()
        if votes:
            await store.hset(_key(room_id, "votes"), {str(q): str(n) for q, n in votes.items()})
        if board.highlight is not None:
            await store.set(_key(room_id, "highlight"), str(board.highlight))
        if board.require_approval is not None:
            flag = "1" if board.require_approval else "0"
            await store.hset(_key(room_id, "settings"), {"require_approval": flag})
        for viewer_id, (seqs, upvoted) in board.voters().items():
            await store.delete(_upvotes_key(room_id, viewer_id), _vote_seq_key(room_id, viewer_id))
            await store.hset(_vote_seq_key(room_id, viewer_id), seqs)
            if upvoted:
                await store.sadd(_upvotes_key(room_id, viewer_id), *upvoted)

    # -- reading -----------------------------------------------------------------

    async def get(self, room_id: str, question_id: int) -> QuestionState:
        """One question and where it stands; ``not_found`` if never asked here."""
        field = str(question_id)
        raw = await self._store.hget(_key(room_id, "q"), field)
        if raw is None:
            raise _not_found()
        question = self._decoder.decode(raw)
        if await self._store.sismember(_key(room_id, "open"), field):
            status: Status = "open"
        elif await self._store.sismember(_key(room_id, "pending"), field):
            status = "pending"
        elif await self._store.hget(_key(room_id, "closed"), field) == "rejected":
            status = "rejected"
        else:
            status = "dismissed"
        votes = await self._store.hget(_key(room_id, "votes"), field)
        return QuestionState(
            question,
            status,
            votes=int(votes or 0),
            answered=await self._store.sismember(_key(room_id, "answered"), field),
            highlighted=await self._store.get(_key(room_id, "highlight")) == field,
        )

    async def _visible(self, room_id: str, question_id: int) -> QuestionState:
        state = await self.get(room_id, question_id)
        if not state.visible:
            raise _not_found()
        return state

    async def visible(self, room_id: str, sort: Sort = "votes") -> list[QuestionState]:
        """The approved, not dismissed questions: most votes first (ties: oldest
        first), or newest first."""
        return _sorted(await self._in_set(room_id, "open"), sort)

    async def queue(self, room_id: str) -> list[QuestionState]:
        """The questions waiting for approval, oldest first."""
        return sorted(await self._in_set(room_id, "pending"), key=lambda s: s.id)

    async def _in_set(self, room_id: str, name: Literal["open", "pending"]) -> list[QuestionState]:
        """Every question in one status set, read with a fixed number of store calls."""
        ids = await self._store.smembers(_key(room_id, name))
        if not ids:
            return []
        asked = await self._store.hgetall(_key(room_id, "q"))
        votes = await self._store.hgetall(_key(room_id, "votes"))
        answered = await self._store.smembers(_key(room_id, "answered"))
        highlight = await self._store.get(_key(room_id, "highlight"))
        return [
            QuestionState(
                self._decoder.decode(asked[field]),
                name,
                votes=int(votes.get(field, 0)),
                answered=field in answered,
                highlighted=field == highlight,
            )
            for field in ids
            if field in asked
        ]


class _Board:
    """The Q&A of one room as its log tells it, event by event (what ``rebuild`` writes)."""

    def __init__(self) -> None:
        self.questions: dict[int, Question] = {}
        self.status: dict[int, Status] = {}
        self.answered: set[int] = set()
        self.highlight: int | None = None
        self.require_approval: bool | None = None
        # (viewer, question) -> vote operations recorded, and whether the last was an upvote
        self.ops: dict[tuple[str, int], tuple[int, bool]] = {}

    def apply(self, event: Event) -> None:
        kind, data = event.kind, event.data
        if kind in (ASKED, HELD):
            question = _question_from(event)
            self.questions[question.id] = question
            self.status[question.id] = "pending" if kind == HELD else "open"
            return
        if kind == SETTINGS:
            self.require_approval = bool(data.get("require_approval"))
            return
        qid = data.get("question_id")
        if kind == HIGHLIGHTED:
            self.highlight = qid if isinstance(qid, int) else None
        elif isinstance(qid, int) and qid in self.questions:
            self._change(kind, qid, event)

    def _change(self, kind: str, qid: int, event: Event) -> None:
        status = self.status[qid]
        if kind == APPROVED and status == "pending":
            self.status[qid] = "open"
        elif kind == REJECTED and status == "pending":
            self.status[qid] = "rejected"
        elif kind == DISMISSED and status == "open":
            self.status[qid] = "dismissed"
            if self.highlight == qid:
                self.highlight = None
        elif kind == ANSWERED:
            self.answered.add(qid)
        elif kind in (UPVOTE, UNVOTE):
            key = (event.actor, qid)
            done = self.ops.get(key, (0, False))[0] + 1
            seq = event.data.get("seq")  # absent from votes recorded before numbering
            if isinstance(seq, int):
                done = max(done, seq + 1)
            self.ops[key] = (done, kind == UPVOTE)

    def votes(self) -> dict[int, int]:
        tally: dict[int, int] = {}
        for (_, qid), (_, up) in self.ops.items():
            if up:
                tally[qid] = tally.get(qid, 0) + 1
        return tally

    def voters(self) -> dict[str, tuple[dict[str, str], list[str]]]:
        """Per viewer: the operation count per question, and the questions upvoted."""
        out: dict[str, tuple[dict[str, str], list[str]]] = {}
        for (viewer_id, qid), (done, up) in self.ops.items():
            seqs, upvoted = out.setdefault(viewer_id, ({}, []))
            seqs[str(qid)] = str(done)
            if up:
                upvoted.append(str(qid))
        return out


def _vote_refused(up: bool) -> Conflict:
    if up:
        return Conflict("already_upvoted", "You already upvoted this question.")
    return Conflict("not_upvoted", "You have not upvoted this question.")


def _checked_text(raw: str) -> str:
    text = clean_text(raw)
    if not text:
        raise UserError("empty_question", "Type a question first.")
    if len(text) > MAX_QUESTION_CHARS:
        raise UserError(
            "question_too_long",
            f"Questions are at most {MAX_QUESTION_CHARS} characters.",
            max_chars=MAX_QUESTION_CHARS,
        )
    return text


def _question_from(event: Event) -> Question:
    reason = event.data.get("reason")
    return Question(
        id=event.id,
        text=str(event.data["text"]),
        viewer_id=event.actor,
        name=str(event.data["name"]),
        anonymous=bool(event.data["anonymous"]),
        asked_at=event.ts,
        held_by=reason if event.kind == HELD and reason in ("rule", "approval") else None,
    )


def _encode(question: Question) -> str:
    return msgspec.json.encode(question).decode()


def _sorted(states: list[QuestionState], sort: Sort) -> list[QuestionState]:
    if sort == "recent":
        return sorted(states, key=lambda s: -s.id)
    return sorted(states, key=lambda s: (-s.votes, s.id))


def question_view(
    state: QuestionState,
    *,
    staff: bool,
    caller: str | None = None,
    upvoted: bool = False,
) -> dict[str, object]:
    """A question as sent on the wire.

    The author (name and viewer id) is left out of anonymous questions unless
    ``staff``. With a ``caller`` the view is that caller's: ``own`` and whether
    they ``upvoted`` it.
    """
    q = state.question
    view: dict[str, object] = {
        "id": q.id,
        "text": q.text,
        "anonymous": q.anonymous,
        "votes": state.votes,
        "answered": state.answered,
        "highlighted": state.highlighted,
        "status": state.status,
        "asked_at": q.asked_at,
    }
    if staff or not q.anonymous:
        view["name"] = q.name
        view["viewer_id"] = q.viewer_id
    if staff:
        view["held_by"] = q.held_by
    if caller is not None:
        view["own"] = caller == q.viewer_id
        view["upvoted"] = upvoted
    return view


def similar_view(similar: Iterable[Similar]) -> list[dict[str, object]]:
    return [{"id": s.id, "text": s.text, "votes": s.votes, "own": s.own} for s in similar]
