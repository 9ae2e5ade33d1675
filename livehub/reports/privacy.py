"""Retention and erasure: purge old raw events and reports; erase one viewer.

Retention (``purge_older_than``): raw events whose timestamp is older than the
cut-off are deleted, in short transactions so live appends are never held up for
long; stored reports of streams that ended before the cut-off go too, and so
do recordings last written before it (``purge_recordings``). Rooms, streams
and bans stay (they hold no interaction data).

Erasure (``Privacy.erase_viewer``) removes one viewer from a room:

* their own events (messages, likes, votes, answers, questions, upvotes, draw
  entries, offer clicks, presence) are deleted. An event a staff member recorded
  about the stream itself (``room.*``, ``stream.*``, ``mod.*``, poll/quiz/draw/
  offer set-up, Q&A handling) is kept with its actor replaced by a tombstone, so
  erasing a host does not break the stream's history;
* everywhere else in the room's log, where they are the *target* (``viewer_id``
  of a mod action, an approved message, a question someone answered, a draw's
  entrants, winners and names) their id becomes the tombstone
  ``erased:<16 hex>`` and their name and text in that record are blanked. The
  tombstone is a salted hash with a fresh random salt per erasure: consistent
  within the room (the same viewer maps to the same tombstone in every record),
  impossible to link back to the id afterwards;
* draw transcripts are kept (who won, the commitment, the seed) but their
  entrant list no longer hashes to ``entrants_hash``: verifying such a draw then
  requires the original transcript (e.g. one downloaded before the erasure). The
  transcript records how many entrants were erased (``erased_entrants``);
* their live per-viewer counters (``vc:{room}:{scope}:{viewer}``) for every
  stream of the room are deleted, and so are their held chat messages and Q&A
  questions in the state store; the draw records there are scrubbed the same
  way and cached draw transcripts dropped (the next read comes from the log);
* stored reports of the room's streams are rebuilt from the scrubbed log (or
  deleted when the log no longer has the stream's events).

What stays: a ban on the viewer (so a banned person stays banned) and live state
that expires by itself or holds no content (presence, mutes, rate limits, poll
ballots and entry keys of open polls and draws). Erase a viewer who is still
connected after banning them, or their next action is recorded anew. In a draw
still open their entry goes; in one closed but not yet picked the frozen entrant
list holds the tombstone, and the commitment is made over that list (so it
differs from the ``entrants_hash`` published at closing); one committed but not
yet revealed (a pick under way) can no longer be revealed (``draw_lost``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import aiosqlite
import msgspec

from livehub.rooms.counters import viewer_key
from livehub.rooms.eventlog import connect, idempotency_key
from livehub.rooms.models import NO_STREAM
from livehub.rooms.store import StateStore

log = logging.getLogger("livehub.privacy")

TOMBSTONE_PREFIX = "erased:"
ERASED_NAME = "(erased)"
DAY_SECONDS = 86400.0
RETRY_SECONDS = 3600.0
PURGE_BATCH = 2000

# What staff record about the stream itself: kept, its actor tombstoned, when that
# actor is erased. Every other kind is its actor's own doing and goes with them.
STAFF_PREFIXES = ("room.", "stream.", "mod.", "automod.")
STAFF_KINDS = frozenset(
    {
        "poll.created",
        "poll.opened",
        "poll.closed",
        "poll.results",
        "quiz.created",
        "quiz.question_opened",
        "quiz.revealed",
        "quiz.ended",
        "draw.created",
        "draw.closed",
        "draw.committed",
        "draw.revealed",
        "offer.pushed",
        "offer.withdrawn",
        "qa.approved",
        "qa.rejected",
        "qa.answered",
        "qa.dismissed",
        "qa.highlighted",
        "qa.settings",
    }
)
# Keys whose value may be a viewer id; lists of ids; maps keyed by viewer id.
ID_KEYS = frozenset({"viewer_id", "created_by", "actor", "by"})
ID_LIST_KEYS = frozenset({"entrants", "winners"})
ID_MAP_KEYS = frozenset({"names", "winner_names"})
# In a record about the viewer (its viewer_id is theirs): what they wrote or were called.
PERSONAL_KEYS = {"name": ERASED_NAME, "text": ""}


class PurgeResult(msgspec.Struct, frozen=True):
    cutoff: float
    events_deleted: int
    reports_deleted: int
    recordings_deleted: int = 0


class ErasureResult(msgspec.Struct, frozen=True):
    room: str
    tombstone: str
    events_deleted: int
    events_scrubbed: int
    counters_deleted: int
    reports_rebuilt: int
    reports_deleted: int


def is_staff_kind(kind: str) -> bool:
    return kind in STAFF_KINDS or kind.startswith(STAFF_PREFIXES)


def tombstone(viewer_id: str, salt: bytes) -> str:
    digest = hashlib.sha256(salt + viewer_id.encode("utf-8")).hexdigest()
    return TOMBSTONE_PREFIX + digest[:16]


def scrub(value: Any, viewer_id: str, tomb: str) -> tuple[Any, bool]:
    """``value`` with ``viewer_id`` replaced where it names a viewer; (new, changed)."""
    if isinstance(value, dict):
        return _scrub_dict(value, viewer_id, tomb)
    if isinstance(value, list):
        changed = False
        items = []
        for item in value:
            new, c = scrub(item, viewer_id, tomb)
            items.append(new)
            changed |= c
        return (items, True) if changed else (value, False)
    return value, False


def _scrub_dict(d: dict[str, Any], viewer_id: str, tomb: str) -> tuple[dict[str, Any], bool]:
    out: dict[str, Any] = {}
    changed = False
    about_them = d.get("viewer_id") == viewer_id
    erased = 0  # entrants of a draw replaced here
    for key, value in d.items():
        new: Any = value
        if key in ID_KEYS and value == viewer_id:
            new = tomb
        elif key in ID_MAP_KEYS and isinstance(value, dict) and viewer_id in value:
            new = {
                (tomb if k == viewer_id else k): (ERASED_NAME if k == viewer_id else v)
                for k, v in value.items()
            }
        elif key in ID_LIST_KEYS and isinstance(value, list):
            new = [tomb if item == viewer_id else item for item in value]
            new, _ = scrub(new, viewer_id, tomb)
            if key == "entrants":
                erased += sum(1 for item in value if item == viewer_id)
        elif about_them and key in PERSONAL_KEYS and isinstance(value, str):
            new = PERSONAL_KEYS[key]
        else:
            new, _ = scrub(value, viewer_id, tomb)
        if new is not value and new != value:
            changed = True
        out[key] = new
    if erased:
        # a transcript that no longer verifies says why
        previous = d.get("erased_entrants")
        out["erased_entrants"] = erased + (previous if isinstance(previous, int) else 0)
    return (out, True) if changed else (d, False)


# Rebuilds (or drops) the stored reports of some streams; returns (rebuilt, deleted).
ReportRefresh = Callable[[str, list[str]], Awaitable[tuple[int, int]]]
# Deletes stored reports older than a cut-off; returns how many.
ReportPurge = Callable[[float], Awaitable[int]]


class Privacy:
    """Retention and erasure over the database file shared with the event log."""

    def __init__(
        self,
        db_path: Path,
        store: StateStore,
        *,
        synchronous: str = "FULL",
        refresh_reports: ReportRefresh | None = None,
        purge_reports: ReportPurge | None = None,
        purge_recordings: ReportPurge | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._path = db_path
        self._store = store
        self._synchronous = synchronous
        self._refresh_reports = refresh_reports
        self._purge_reports = purge_reports
        self._purge_recordings = purge_recordings
        self._clock = clock

    # -- retention -------------------------------------------------------------------

    async def purge_older_than(self, seconds: float) -> PurgeResult:
        """Delete raw events (and stored reports) older than ``seconds`` ago."""
        cutoff = self._clock() - seconds
        deleted = 0
        conn = await connect(self._path, self._synchronous)
        try:
            while True:
                await conn.execute("BEGIN IMMEDIATE")
                try:
                    cursor = await conn.execute(
                        "DELETE FROM events WHERE id IN "
                        "(SELECT id FROM events WHERE ts < ? ORDER BY id LIMIT ?)",
                        (cutoff, PURGE_BATCH),
                    )
                    count = cursor.rowcount
                    await conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        await conn.execute("ROLLBACK")
                    raise
                deleted += count
                if count < PURGE_BATCH:
                    break
                await asyncio.sleep(0)  # let queued appends in between batches
        finally:
            await conn.close()
        reports = await self._purge_reports(cutoff) if self._purge_reports else 0
        recordings = await self._purge_recordings(cutoff) if self._purge_recordings else 0
        return PurgeResult(
            cutoff=cutoff,
            events_deleted=deleted,
            reports_deleted=reports,
            recordings_deleted=recordings,
        )

    async def purge_forever(self, days: int, interval: float = DAY_SECONDS) -> None:
        """Purge now, then once per ``interval`` seconds (a background loop).

        A failed purge (say the database stayed locked) is logged and retried
        within the hour; the loop itself never dies of it.
        """
        while True:
            try:
                result = await self.purge_older_than(days * DAY_SECONDS)
            except Exception:
                log.exception("retention purge failed; retrying")
                await asyncio.sleep(min(interval, RETRY_SECONDS))
                continue
            if result.events_deleted or result.reports_deleted or result.recordings_deleted:
                log.info(
                    "retention: deleted %d events, %d reports and %d recordings older than %d days",
                    result.events_deleted,
                    result.reports_deleted,
                    result.recordings_deleted,
                    days,
                )
            await asyncio.sleep(interval)

    # -- erasure ---------------------------------------------------------------------

    async def erase_viewer(self, room_id: str, viewer_id: str) -> ErasureResult:
        tomb = tombstone(viewer_id, secrets.token_bytes(16))
        conn = await connect(self._path, self._synchronous)
        try:
            await conn.execute("BEGIN IMMEDIATE")
            try:
                deleted = await self._own_events(conn, room_id, viewer_id, tomb)
                scrubbed = await self._mentions(conn, room_id, viewer_id, tomb)
                await conn.execute(
                    "UPDATE bans SET by = ? WHERE room = ? AND by = ?", (tomb, room_id, viewer_id)
                )
                await conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    await conn.execute("ROLLBACK")
                raise
            streams = [
                row[0]
                for row in await conn.execute_fetchall(
                    "SELECT id FROM streams WHERE room = ?", (room_id,)
                )
            ]
        finally:
            await conn.close()
        counters = await self._counters(room_id, [*streams, NO_STREAM], viewer_id)
        await self._live_state(room_id, viewer_id, tomb)
        rebuilt = dropped = 0
        if self._refresh_reports and streams:
            # Every stream: a report may name the viewer through an event of another
            # stream (a connection carried over from before it started).
            rebuilt, dropped = await self._refresh_reports(room_id, streams)
        return ErasureResult(
            room=room_id,
            tombstone=tomb,
            events_deleted=deleted,
            events_scrubbed=scrubbed,
            counters_deleted=counters,
            reports_rebuilt=rebuilt,
            reports_deleted=dropped,
        )

    async def _own_events(
        self, conn: aiosqlite.Connection, room_id: str, viewer_id: str, tomb: str
    ) -> int:
        """Delete the viewer's own events, tombstone the actor of staff records."""
        rows = await conn.execute_fetchall(
            "SELECT id, kind, uid FROM events WHERE room = ? AND actor = ?",
            (room_id, viewer_id),
        )
        doomed: list[int] = []
        prefix = idempotency_key(room_id, viewer_id, "")
        for event_id, kind, uid in rows:
            if not is_staff_kind(kind):
                doomed.append(event_id)
                continue
            new_uid = (
                idempotency_key(room_id, tomb, uid[len(prefix) :])
                if uid.startswith(prefix)
                else uid
            )
            await conn.execute(
                "UPDATE events SET actor = ?, uid = ? WHERE id = ?", (tomb, new_uid, event_id)
            )
        for start in range(0, len(doomed), 500):
            chunk = doomed[start : start + 500]
            await conn.execute(
                f"DELETE FROM events WHERE id IN ({','.join('?' * len(chunk))})", chunk
            )
        return len(doomed)

    async def _mentions(
        self, conn: aiosqlite.Connection, room_id: str, viewer_id: str, tomb: str
    ) -> int:
        """Scrub the viewer's id from every other event of the room that names it."""
        needle = msgspec.json.encode(viewer_id)  # as it appears inside the stored JSON
        rows = await conn.execute_fetchall(
            "SELECT id, data FROM events WHERE room = ? AND instr(data, ?) > 0",
            (room_id, needle),
        )
        changed = 0
        for event_id, raw in rows:
            data, dirty = scrub(msgspec.json.decode(raw), viewer_id, tomb)
            if not dirty:
                continue
            await conn.execute(
                "UPDATE events SET data = ? WHERE id = ?", (msgspec.json.encode(data), event_id)
            )
            changed += 1
        return changed

    async def _counters(self, room_id: str, scopes: Iterable[str], viewer_id: str) -> int:
        keys = [viewer_key(room_id, scope, viewer_id) for scope in scopes]
        return await self._store.delete(*keys, *(f"{k}:first" for k in keys))

    async def _live_state(self, room_id: str, viewer_id: str, tomb: str) -> None:
        """What live pages show from the state store: the viewer's held chat messages
        and Q&A questions go, draw records are scrubbed and cached transcripts
        dropped (the next read comes from the scrubbed log).

        Key names as in livehub/interactions/moderation.py (``_held_key``),
        questions.py (``_key``, ``_upvotes_key``) and draws.py (``draws_key``, ``_key``).
        """
        from livehub.interactions.draws import draws_key

        await self._drop_entries(f"held:{room_id}", viewer_id)
        for question_id in await self._drop_entries(f"qa:{room_id}:q", viewer_id):
            for part in ("open", "pending", "answered"):
                await self._store.srem(f"qa:{room_id}:{part}", question_id)
            await self._store.hdel(f"qa:{room_id}:closed", question_id)
            await self._store.hdel(f"qa:{room_id}:votes", question_id)
            if await self._store.get(f"qa:{room_id}:highlight") == question_id:
                await self._store.delete(f"qa:{room_id}:highlight")
        await self._store.delete(f"qa:{room_id}:up:{viewer_id}")
        key = draws_key(room_id)
        for draw_id, raw in (await self._store.hgetall(key)).items():
            await self._scrub_value(key, draw_id, raw, viewer_id, tomb)
            prefix = f"draw:{room_id}:{draw_id}"
            await self._store.delete(f"{prefix}:transcript", f"{prefix}:entry:{viewer_id}")
            await self._store.hdel(f"{prefix}:entrants", viewer_id)
            if await self._store.srem(f"{prefix}:members", viewer_id):
                await self._store.sadd(f"{prefix}:members", tomb)
            frozen = await self._store.get(f"{prefix}:frozen")
            if frozen is not None:
                data, dirty = scrub(msgspec.json.decode(frozen), viewer_id, tomb)
                if dirty:
                    await self._store.set(f"{prefix}:frozen", msgspec.json.encode(data).decode())

    async def _scrub_value(self, key: str, field: str, raw: str, viewer_id: str, tomb: str) -> None:
        data, dirty = scrub(msgspec.json.decode(raw), viewer_id, tomb)
        if dirty:
            await self._store.hset(key, {field: msgspec.json.encode(data).decode()})

    async def _drop_entries(self, key: str, viewer_id: str) -> list[str]:
        """Delete the fields of hash ``key`` whose JSON value has the viewer's ``viewer_id``."""
        dropped = []
        for field, raw in (await self._store.hgetall(key)).items():
            value = msgspec.json.decode(raw)
            if isinstance(value, dict) and value.get("viewer_id") == viewer_id:
                dropped.append(field)
        if dropped:
            await self._store.hdel(key, *dropped)
        return dropped
