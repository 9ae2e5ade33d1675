"""The privacy edge: erase a viewer (admin only) and the daily retention purge.

``DELETE /api/rooms/{room}/viewers/{viewer_id}`` (admin key) removes the viewer
from the room's event log, live counters and stored reports (see
:mod:`livehub.reports.privacy`) and answers with what was done.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import msgspec
from aiohttp import web

from livehub.errors import ProtocolError
from livehub.reports.privacy import Privacy
from livehub.reports.service import Reports
from livehub.signaling.auth import bearer_of
from livehub.signaling.context import Services

log = logging.getLogger("livehub.privacy")

MAX_VIEWER_ID = 64  # as tokens carry them


class PrivacyApi:
    def __init__(self, services: Services, privacy: Privacy) -> None:
        self._s = services
        self.privacy = privacy

    @classmethod
    def build(
        cls,
        services: Services,
        db_path: Path,
        reports: Reports,
        purge_recordings: Callable[[float], Awaitable[int]] | None = None,
    ) -> PrivacyApi:
        """Erasure rebuilds the stored reports it touches; retention purges old
        ones, and old recordings."""
        privacy = Privacy(
            db_path,
            services.store,
            synchronous=services.settings.sqlite_synchronous,
            refresh_reports=reports.refresh,
            purge_reports=reports.purge,
            purge_recordings=purge_recordings,
        )
        return cls(services, privacy)

    def routes(self) -> list[web.RouteDef]:
        return [web.delete("/api/rooms/{room}/viewers/{viewer_id}", self.erase)]

    async def erase(self, request: web.Request) -> web.Response:
        self._s.auth.require_admin(bearer_of(request.headers.get("Authorization")))
        room = await self._s.rooms.get(request.match_info["room"])
        viewer_id = request.match_info["viewer_id"]
        if not 1 <= len(viewer_id) <= MAX_VIEWER_ID:
            raise ProtocolError("bad_viewer_id", f"A viewer id is 1-{MAX_VIEWER_ID} characters.")
        result = await self.privacy.erase_viewer(room.id, viewer_id)
        # the log line names the tombstone, never the erased id
        log.info(
            "erased %s from room %s: %d events deleted, %d scrubbed, %d reports rebuilt",
            result.tombstone,
            room.id,
            result.events_deleted,
            result.events_scrubbed,
            result.reports_rebuilt,
        )
        return web.json_response(msgspec.to_builtins(result))

    async def purge_forever(self) -> None:
        """The retention loop: purge once now, then daily (only when retention_days > 0)."""
        await self.privacy.purge_forever(self._s.settings.retention_days)
