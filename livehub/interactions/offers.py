"""Offer cards: a title, a line of text and a link the host pushes over the video.

Viewers open the link through the server (``/o/<room>/<offer>?t=<token>``), which
counts one click per viewer per offer and redirects. Links are http(s) only and
are normalised on the way in, so the redirect target is always a plain,
absolute web address. A withdrawn offer is gone: its link answers 410 and
counts nothing.

The log is the truth, the store a cache. ``offer.pushed`` holds the card,
``offer.withdrawn`` takes it down, and a viewer's click is recorded once by the
log's unique key (the client id ``offer:<id>``). The store learns a click only
after its commit: the offer's ``clickers`` set, and the tally, moved only by the
``sadd`` that added the viewer, so each click moves it once. A node killed
between the commit and the store leaves a click the store does not know; that
viewer's next click finds it recorded and the store learns it then (the tally
moves, nothing is logged twice). ``rebuild`` replays the room's offer events
after a restart or an emptied store: the cards shown, the withdrawn ones gone,
every click count.
"""

from __future__ import annotations

import logging
import secrets
import string
import time
import unicodedata
from collections.abc import Callable
from typing import Any, Literal
from urllib.parse import quote, urlsplit, urlunsplit

import msgspec

from livehub.errors import Conflict, Forbidden, LivehubError, NotFound, ProtocolError, UserError
from livehub.interactions.normalise import clean_text
from livehub.rooms.counters import Counters
from livehub.rooms.eventlog import Event, EventLog
from livehub.rooms.models import Principal, Room
from livehub.rooms.recorder import Recorder
from livehub.rooms.store import StateStore

log = logging.getLogger("livehub.offers")

MAX_TITLE_CHARS = 80
MAX_TEXT_CHARS = 200
MAX_CTA_CHARS = 24
MAX_URL_CHARS = 500
MAX_ACTIVE_OFFERS = 5
MAX_OFFERS_PER_ROOM = 200
SCHEMES = frozenset({"http", "https"})
PUSHED, WITHDRAWN, CLICK = "offer.pushed", "offer.withdrawn", "offer.click"
KINDS = (PUSHED, WITHDRAWN, CLICK)
# ASCII that may stay as it is in a URL; anything else is percent-encoded.
_URL_SAFE = "".join(c for c in string.printable if not c.isspace() and c not in '"<>\\^`{|}')

OfferStatus = Literal["active", "withdrawn"]


class Gone(LivehubError):
    """The thing existed and was taken away (a withdrawn offer)."""

    status = 410


class Offer(msgspec.Struct, frozen=True):
    id: str
    room: str
    title: str
    text: str
    url: str
    cta: str | None
    created_at: float
    created_by: str
    status: OfferStatus = "active"
    withdrawn_at: float | None = None

    def view(self) -> dict[str, Any]:
        return {
            "offer_id": self.id,
            "title": self.title,
            "text": self.text,
            "url": self.url,
            "cta": self.cta,
            "created_at": self.created_at,
            "status": self.status,
            "withdrawn_at": self.withdrawn_at,
        }


def _offers_key(room: str) -> str:
    return f"offers:{room}"


def _clicks_key(room: str) -> str:
    return f"offer_clicks:{room}"


def clickers_key(room: str, offer_id: str) -> str:
    """The viewers whose click on the offer the store has counted."""
    return f"offer_clickers:{room}:{offer_id}"


def click_client_id(offer_id: str) -> str:
    return f"offer:{offer_id}"


def _bad_url(message: str) -> UserError:
    return UserError("bad_url", message)


def check_url(raw: str) -> str:
    """An absolute http(s) address without credentials, normalised to ASCII; else bad_url."""
    url = raw.strip()
    if not url:
        raise _bad_url("The link is empty.")
    if len(url) > MAX_URL_CHARS:
        raise _bad_url(f"Links are at most {MAX_URL_CHARS} characters.")
    if any(c.isspace() or c == "\\" or unicodedata.category(c)[0] == "C" for c in url):
        raise _bad_url("The link holds spaces, backslashes or control characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise _bad_url("The link cannot be read.") from exc
    if parts.scheme.lower() not in SCHEMES:
        raise _bad_url("Only http and https links are allowed.")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise _bad_url("Links may not carry a user name or password.")
    host = parts.hostname
    if not host:
        raise _bad_url("The link names no host.")
    if ":" in host:  # an IPv6 literal
        netloc = f"[{host}]"
    else:
        try:
            netloc = host.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise _bad_url("The link's host name is not valid.") from exc
    if port is not None:
        netloc += f":{port}"
    normal = urlunsplit(
        (
            parts.scheme.lower(),
            netloc,
            quote(parts.path, safe=_URL_SAFE),
            quote(parts.query, safe=_URL_SAFE),
            quote(parts.fragment, safe=_URL_SAFE),
        )
    )
    if len(normal) > MAX_URL_CHARS:
        raise _bad_url(f"Links are at most {MAX_URL_CHARS} characters.")
    return normal


def _text(raw: str, field: str, low: int, high: int) -> str:
    text = clean_text(raw)
    if not low <= len(text) <= high:
        raise ProtocolError(f"bad_{field}", f"The {field} is {low}-{high} characters.")
    return text


class OfferService:
    def __init__(
        self,
        store: StateStore,
        log: EventLog,
        counters: Counters,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._log = log
        self._counters = counters
        self._clock = clock
        self._record = Recorder(log, clock)
        self._decoder = msgspec.json.Decoder(Offer)

    async def get(self, room_id: str, offer_id: str) -> Offer:
        raw = await self._store.hget(_offers_key(room_id), offer_id)
        if raw is None:
            raise NotFound("not_found", "No such offer in this room.")
        return self._decoder.decode(raw)

    async def offers(self, room_id: str) -> list[Offer]:
        """Every offer of the room, newest first."""
        raw = await self._store.hgetall(_offers_key(room_id))
        offers = [self._decoder.decode(v) for v in raw.values()]
        return sorted(offers, key=lambda o: (o.created_at, o.id), reverse=True)

    async def active(self, room_id: str) -> list[Offer]:
        return [o for o in await self.offers(room_id) if o.status == "active"]

    async def clicks(self, room_id: str) -> dict[str, int]:
        raw = await self._store.hgetall(_clicks_key(room_id))
        return {offer_id: int(n) for offer_id, n in raw.items()}

    async def push(
        self,
        room: Room,
        who: Principal,
        title: str,
        text: str,
        url: str,
        cta: str | None = None,
    ) -> Offer:
        self._staff(who)
        title = _text(title, "title", 1, MAX_TITLE_CHARS)
        body = _text(text, "text", 0, MAX_TEXT_CHARS)
        label = _text(cta, "cta", 0, MAX_CTA_CHARS) if cta is not None else ""
        link = check_url(url)
        offers = await self.offers(room.id)
        if sum(o.status == "active" for o in offers) >= MAX_ACTIVE_OFFERS:
            raise UserError(
                "too_many_offers", f"At most {MAX_ACTIVE_OFFERS} offers can be shown at once."
            )
        if len(offers) >= MAX_OFFERS_PER_ROOM:
            raise UserError("too_many_offers", f"A room has at most {MAX_OFFERS_PER_ROOM} offers.")
        now = self._clock()
        offer = Offer(
            id="o_" + secrets.token_hex(5),
            room=room.id,
            title=title,
            text=body,
            url=link,
            cta=label or None,
            created_at=now,
            created_by=who.viewer_id,
        )
        await self._record(room, who.viewer_id, PUSHED, offer.view(), now)
        await self._save(offer)
        return offer

    async def withdraw(self, room: Room, who: Principal, offer_id: str) -> Offer:
        self._staff(who)
        offer = await self.get(room.id, offer_id)
        if offer.status == "withdrawn":
            raise Conflict("already_withdrawn", "This offer was already withdrawn.")
        now = self._clock()
        await self._record(room, who.viewer_id, WITHDRAWN, {"offer_id": offer.id}, now)
        withdrawn = msgspec.structs.replace(offer, status="withdrawn", withdrawn_at=now)
        await self._save(withdrawn)
        return withdrawn

    async def click(self, room: Room, who: Principal, offer_id: str) -> tuple[Offer, bool]:
        """Check the offer is live and count the click; (offer, whether the tally moved).

        One click per viewer per offer counts; staff clicks never do.
        """
        offer = await self.get(room.id, offer_id)
        if offer.status != "active":
            raise Gone("offer_withdrawn", "This offer has been withdrawn.")
        if who.is_staff:
            return offer, False
        clickers = clickers_key(room.id, offer.id)
        if await self._store.sismember(clickers, who.viewer_id):
            return offer, False
        await self._record(
            room, who.viewer_id, CLICK, {"offer_id": offer.id}, client_id=click_client_id(offer.id)
        )
        # Recorded now, or by a request whose node died before the store heard of it.
        if not await self._store.sadd(clickers, who.viewer_id):
            return offer, False
        await self._store.hincr(_clicks_key(room.id), offer.id, 1)
        await self._counters.add(room.id, room.scope, who.viewer_id, "offer_clicks")
        return offer, True

    async def click_total(self, room_id: str, offer_id: str) -> int:
        return int(await self._store.hget(_clicks_key(room_id), offer_id) or 0)

    async def rebuild(self, room_id: str) -> None:
        """Overwrite the room's offers and click counts in the store with what its log says."""
        offers: dict[str, Offer] = {}
        clickers: dict[str, set[str]] = {}
        async for event in self._log.scan_kinds(room_id, KINDS):
            offer_id = str(event.data.get("offer_id"))
            if event.kind == PUSHED:
                try:
                    offers[offer_id] = _pushed(event, offer_id)
                except (KeyError, TypeError, ValueError):  # one bad event must not stop a start
                    log.warning("rebuild skips unreadable %s event %d", event.kind, event.id)
            elif offer_id not in offers:
                continue
            elif event.kind == WITHDRAWN:
                offers[offer_id] = msgspec.structs.replace(
                    offers[offer_id], status="withdrawn", withdrawn_at=event.ts
                )
            else:
                clickers.setdefault(offer_id, set()).add(event.actor)
        await self._store.delete(_offers_key(room_id), _clicks_key(room_id))
        if not offers:
            return
        await self._store.hset(
            _offers_key(room_id), {i: msgspec.json.encode(o).decode() for i, o in offers.items()}
        )
        for offer_id in offers:
            await self._store.delete(clickers_key(room_id, offer_id))
        for offer_id, viewers in clickers.items():
            await self._store.sadd(clickers_key(room_id, offer_id), *viewers)
        if clickers:
            counts = {offer_id: str(len(viewers)) for offer_id, viewers in clickers.items()}
            await self._store.hset(_clicks_key(room_id), counts)

    @staticmethod
    def _staff(who: Principal) -> None:
        if not who.is_staff:
            raise Forbidden("forbidden", "Only the host and moderators can do that.")

    async def _save(self, offer: Offer) -> None:
        await self._store.hset(
            _offers_key(offer.room), {offer.id: msgspec.json.encode(offer).decode()}
        )


def _pushed(event: Event, offer_id: str) -> Offer:
    """The card as ``offer.pushed`` recorded it (its ``view()``)."""
    data = event.data
    cta = data.get("cta")
    return Offer(
        id=offer_id,
        room=event.room,
        title=str(data["title"]),
        text=str(data.get("text", "")),
        url=str(data["url"]),
        cta=str(cta) if cta else None,
        created_at=float(data.get("created_at") or event.ts),
        created_by=event.actor,
    )
