"""Prize draws on the live namespace, and their public REST routes.

Staff: draw_create, draw_close, draw_pick, draw_list. Anyone: draw_state;
viewers: draw_enter. Pushes: ``draw`` (created, closed), ``draw_commit`` (before
any winner is computed), ``draw_result``, and ``draw_entries`` (staff, coalesced).
REST: GET /api/rooms/{room}/draws and /api/rooms/{room}/draws/{draw_id}/transcript.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any

import msgspec
from aiohttp import web

from livehub.errors import Conflict, LivehubError
from livehub.interactions.draws import Draw, DrawRule, DrawService
from livehub.rooms.models import Principal
from livehub.signaling.context import Services
from livehub.signaling.live import Handler, LiveNamespace, Result
from livehub.signaling.payloads import Empty, Payload
from livehub.signaling.throttle import Coalescer

log = logging.getLogger("livehub.draws")
EXPIRE_EVERY_SECONDS = 1.0
TALLY_SECONDS = 0.25
STATE_RECENT = 5

DrawId = Annotated[str, msgspec.Meta(min_length=1, max_length=32)]


class DrawCreateIn(Payload, frozen=True, forbid_unknown_fields=True):
    prize: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    rule: DrawRule
    winners: Annotated[int, msgspec.Meta(ge=1, le=100)] = 1
    window_seconds: Annotated[int, msgspec.Meta(ge=10, le=3600)] = 60


class DrawRef(Payload, frozen=True, forbid_unknown_fields=True):
    draw_id: DrawId


class DrawEvents:
    def __init__(self, services: Services, live: LiveNamespace, draws: DrawService) -> None:
        self._s = services
        self._live = live
        self._draws = draws
        self.entries: Coalescer[tuple[str, str]] = Coalescer(TALLY_SECONDS, self._push_entries)
        staff: dict[str, tuple[type[Any], Handler]] = {
            "draw_create": (DrawCreateIn, self.create),
            "draw_close": (DrawRef, self.close),
            "draw_pick": (DrawRef, self.pick),
            "draw_list": (Empty, self.list),
        }
        for event, (payload, handler) in staff.items():
            live.route(event, payload, handler, staff_only=True)
        live.route("draw_enter", DrawRef, self.enter)
        live.route("draw_state", Empty, self.state)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/rooms/{room}/draws", self.http_list),
            web.get("/api/rooms/{room}/draws/{draw_id}/transcript", self.http_transcript),
        ]

    # -- staff ----------------------------------------------------------------------------

    async def create(self, who: Principal, data: DrawCreateIn) -> Result:
        room = await self._s.rooms.get_open(who.room)
        draw = await self._draws.create(
            room, who, data.prize, data.winners, data.rule, data.window_seconds
        )
        view = await self._view(draw)
        await self._live.to_room("draw", view, room.id)
        return {"draw": view}

    async def close(self, who: Principal, data: DrawRef) -> Result:
        room = await self._s.rooms.get_open(who.room)
        draw, fresh = await self._draws.close(room, who.viewer_id, data.draw_id)
        view = await self._view(draw)
        if fresh:
            await self._live.to_room("draw", view, room.id)
        return {"draw": view}

    async def pick(self, who: Principal, data: DrawRef) -> Result:
        room = await self._s.rooms.get_open(who.room)
        before = await self._draws.get(room.id, data.draw_id)
        draw, fresh = await self._draws.commit(room, who, data.draw_id)
        if before.status == "open" and draw.status != "open":
            await self._live.to_room("draw", await self._view(draw), room.id)
        if fresh:
            # Published before the winners exist: reveal() computes them afterwards.
            await self._live.to_room("draw_commit", commit_view(draw), room.id)
        draw, fresh = await self._draws.reveal(room, who, data.draw_id)
        if fresh:
            await self._live.to_room("draw_result", result_view(draw), room.id)
        return {"draw": await self._view(draw)}

    async def list(self, who: Principal, data: Empty) -> Result:
        return {"draws": [await self._view(d) for d in await self._draws.draws(who.room)]}

    # -- viewers ----------------------------------------------------------------------------

    async def enter(self, who: Principal, data: DrawRef) -> Result:
        room = await self._s.rooms.get_open(who.room)
        try:
            draw = await self._draws.enter(room, who, data.draw_id)
        except Conflict:  # a retry may have taught the store an entry a killed node recorded
            self.entries.mark((room.id, data.draw_id))
            raise
        self.entries.mark((room.id, draw.id))
        return {"entered": True, "draw_id": draw.id}

    async def state(self, who: Principal, data: Empty) -> Result:
        """The draws a (late) joiner should see: unfinished ones and the latest results."""
        draws = await self._draws.draws(who.room)
        shown = [d for d in draws if d.status != "revealed"] + [
            d for d in draws if d.status == "revealed"
        ][:STATE_RECENT]
        entered = [d.id for d in shown if await self._draws.has_entered(d, who.viewer_id)]
        return {
            "draws": [await self._view(d) for d in shown],
            "entered": entered,
            "server_time": self._draws.now(),
        }

    # -- REST -------------------------------------------------------------------------------

    async def http_list(self, request: web.Request) -> web.Response:
        room = await self._s.rooms.get(request.match_info["room"])
        draws = [await self._view(d) for d in await self._draws.draws(room.id)]
        return web.json_response({"draws": draws}, headers={"Cache-Control": "no-cache"})

    async def http_transcript(self, request: web.Request) -> web.Response:
        room = await self._s.rooms.get(request.match_info["room"])
        record = await self._draws.transcript(room.id, request.match_info["draw_id"])
        return web.json_response(
            record,
            headers={"Cache-Control": "public, max-age=300", "Access-Control-Allow-Origin": "*"},
        )

    # -- loops ------------------------------------------------------------------------------

    async def expire_forever(self) -> None:
        """Close draws whose window has ended (every node tries; one closes each)."""
        while True:
            await asyncio.sleep(EXPIRE_EVERY_SECONDS)
            try:
                for draw in await self._draws.close_expired():
                    await self._live.to_room("draw", await self._view(draw), draw.room)
            except LivehubError as err:
                log.info("closing expired draws: %s", err.code)
            except Exception:  # a store or log hiccup must not end the loop
                log.exception("closing expired draws failed")

    async def _push_entries(self, key: tuple[str, str]) -> None:
        room_id, draw_id = key
        draw = await self._draws.get(room_id, draw_id)
        count = await self._draws.entrant_count(draw)
        await self._live.to_staff(
            "draw_entries", {"draw_id": draw_id, "entrant_count": count}, room_id
        )

    async def _view(self, draw: Draw) -> dict[str, Any]:
        view = draw.view()
        view["entrant_count"] = await self._draws.entrant_count(draw)
        return view


def commit_view(draw: Draw) -> dict[str, Any]:
    return {
        "draw_id": draw.id,
        "entrant_count": draw.entrant_count,
        "entrants_hash": draw.entrants_hash,
        "seed_hash": draw.seed_hash,
        "commitment": draw.commitment,
        "committed_at": draw.committed_at,
    }


def result_view(draw: Draw) -> dict[str, Any]:
    return {
        "draw_id": draw.id,
        "prize": draw.prize,
        "winners": [msgspec.to_builtins(w) for w in draw.winners],
        "entrant_count": draw.entrant_count,
        "commitment": draw.commitment,
        "seed": draw.seed,
        "transcript_url": draw.transcript_url,
        "verify_url": draw.verify_url,
    }
