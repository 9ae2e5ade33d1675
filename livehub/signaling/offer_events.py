"""Offer cards on the live namespace, and the click-through redirect.

Staff: offer_push, offer_withdraw, offer_list. Anyone: offer_state. Pushes:
``offer``, ``offer_withdrawn`` (room) and ``offer_clicks`` (staff, coalesced).
REST: GET /o/{room}/{offer_id}?t=<token> counts the click and redirects (302).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

import msgspec
from aiohttp import web

from livehub.interactions.offers import Offer, OfferService
from livehub.rooms.models import Principal
from livehub.signaling.context import Services
from livehub.signaling.live import Handler, LiveNamespace, Result
from livehub.signaling.payloads import Empty, Payload
from livehub.signaling.throttle import Coalescer

log = logging.getLogger("livehub.offers")
TALLY_SECONDS = 0.25

OfferId = Annotated[str, msgspec.Meta(min_length=1, max_length=32)]


class OfferPushIn(Payload, frozen=True, forbid_unknown_fields=True):
    title: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    url: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
    text: Annotated[str, msgspec.Meta(max_length=500)] = ""
    cta: Annotated[str, msgspec.Meta(max_length=100)] | None = None


class OfferRef(Payload, frozen=True, forbid_unknown_fields=True):
    offer_id: OfferId


def click_path(room_id: str, offer_id: str) -> str:
    return f"/o/{room_id}/{offer_id}"


class OfferEvents:
    def __init__(self, services: Services, live: LiveNamespace, offers: OfferService) -> None:
        self._s = services
        self._live = live
        self._offers = offers
        self.clicks: Coalescer[tuple[str, str]] = Coalescer(TALLY_SECONDS, self._push_clicks)
        staff: dict[str, tuple[type[Any], Handler]] = {
            "offer_push": (OfferPushIn, self.push),
            "offer_withdraw": (OfferRef, self.withdraw),
            "offer_list": (Empty, self.list),
        }
        for event, (payload, handler) in staff.items():
            live.route(event, payload, handler, staff_only=True)
        live.route("offer_state", Empty, self.state)

    def routes(self) -> list[web.RouteDef]:
        # No HEAD: link previews and prefetchers must not look like clicks.
        return [web.get("/o/{room}/{offer_id}", self.redirect, allow_head=False)]

    async def push(self, who: Principal, data: OfferPushIn) -> Result:
        room = await self._s.rooms.get_open(who.room)
        offer = await self._offers.push(room, who, data.title, data.text, data.url, data.cta)
        await self._live.to_room("offer", view(offer), room.id)
        return {"offer": await self._staff_view(offer)}

    async def withdraw(self, who: Principal, data: OfferRef) -> Result:
        room = await self._s.rooms.get_open(who.room)
        offer = await self._offers.withdraw(room, who, data.offer_id)
        await self._live.to_room("offer_withdrawn", {"offer_id": offer.id}, room.id)
        return {"offer": await self._staff_view(offer)}

    async def list(self, who: Principal, data: Empty) -> Result:
        clicks = await self._offers.clicks(who.room)
        offers = await self._offers.offers(who.room)
        return {"offers": [{**view(o), "clicks": clicks.get(o.id, 0)} for o in offers]}

    async def state(self, who: Principal, data: Empty) -> Result:
        return {"offers": [view(o) for o in await self._offers.active(who.room)]}

    async def redirect(self, request: web.Request) -> web.StreamResponse:
        room = await self._s.rooms.get_open(request.match_info["room"])
        who = self._s.auth.principal(request.query.get("t"), room)
        offer, counted = await self._offers.click(room, who, request.match_info["offer_id"])
        if counted:
            self.clicks.mark((room.id, offer.id))
        return web.Response(
            status=302,
            headers={"Location": offer.url, "Cache-Control": "no-store"},
        )

    async def _push_clicks(self, key: tuple[str, str]) -> None:
        room_id, offer_id = key
        total = await self._offers.click_total(room_id, offer_id)
        await self._live.to_staff("offer_clicks", {"offer_id": offer_id, "clicks": total}, room_id)

    async def _staff_view(self, offer: Offer) -> dict[str, Any]:
        return {**view(offer), "clicks": await self._offers.click_total(offer.room, offer.id)}


def view(offer: Offer) -> dict[str, Any]:
    """An offer as viewers get it, with the path of its click-through link."""
    return {**offer.view(), "click_path": click_path(offer.room, offer.id)}
