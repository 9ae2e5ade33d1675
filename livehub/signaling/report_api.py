"""The report REST API (host, moderators and the admin key only).

GET    /api/rooms/{room}/report?format=json|csv|html&lang=en    the latest stream's
GET    /api/rooms/{room}/reports                                 stored reports (no bodies)
GET    /api/rooms/{room}/streams/{stream}/report?format=...      one stream's
POST   /api/rooms/{room}/streams/{stream}/report                 (re)build and store
DELETE /api/rooms/{room}/streams/{stream}/report                 forget the stored one
GET    /api/rooms/{room}/streams/{stream}/report/segments/{segment}.csv

An ended stream's report is stored (built when the stream stops, rebuilt when
events were added since); a live stream's is a preview built on each request,
stored only by POST. ``format=csv`` is the per-viewer table; ``format=html``
needs ``livehub.reports.html`` (else 404 ``html_unavailable``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode

import msgspec
from aiohttp import web

from livehub.errors import NotFound, ProtocolError
from livehub.reports import export
from livehub.reports.model import SEGMENT_KEYS, Report
from livehub.reports.service import Reports
from livehub.reports.store import ReportStore
from livehub.rooms import tokens
from livehub.rooms.models import Room, Stream
from livehub.signaling.auth import bearer_of
from livehub.signaling.context import Services

FORMATS: Final = ("json", "csv", "html")


class ReportApi:
    def __init__(self, services: Services, reports: Reports) -> None:
        self._s = services
        self._reports = reports

    @classmethod
    async def create(cls, services: Services, db_path: Path) -> ReportApi:
        store = await ReportStore.open(db_path, services.settings.sqlite_synchronous)
        return cls(services, Reports(services.log, store, services.rooms))

    @property
    def reports(self) -> Reports:
        return self._reports

    def routes(self) -> list[web.RouteDef]:
        stream = "/api/rooms/{room}/streams/{stream}/report"
        return [
            web.get("/api/rooms/{room}/report", self.latest),
            web.get("/api/rooms/{room}/reports", self.list_reports),
            web.get(stream, self.get_report),
            web.post(stream, self.build_report),
            web.delete(stream, self.delete_report),
            web.get(stream + "/segments/{segment}.csv", self.segment),
            web.post(stream + "/link", self.link),
        ]

    async def stream_stopped(self, room_id: str, stream_id: str) -> None:
        """Hook for the REST API's stop: build and store the report in the background."""
        await self._reports.stream_stopped(room_id, stream_id)

    # -- handlers ------------------------------------------------------------------------

    async def _room(self, request: web.Request) -> Room:
        room = await self._s.rooms.get(request.match_info["room"])
        self._s.auth.require_staff(bearer_of(request.headers.get("Authorization")), room)
        return room

    async def _stream(self, request: web.Request, room: Room) -> Stream:
        return await self._reports.stream(room.id, request.match_info["stream"])

    async def latest(self, request: web.Request) -> web.Response:
        room = await self._room(request)
        fmt, lang = _format(request)
        stream = await self._reports.latest(room.id)
        return self._respond(await self._reports.report(room.id, stream), fmt, lang)

    async def list_reports(self, request: web.Request) -> web.Response:
        room = await self._room(request)
        infos = await self._reports.list(room.id)
        return web.json_response({"reports": msgspec.to_builtins(infos)})

    async def get_report(self, request: web.Request) -> web.Response:
        sig = request.query.get("sig")
        if sig is None:
            room = await self._room(request)
        else:  # a browser tab opened from a signed link (see ``link``)
            room = await self._s.rooms.get(request.match_info["room"])
            tokens.verify_link(
                sig, self._s.auth.secret, room=room.id, stream=request.match_info["stream"]
            )
        fmt, lang = _format(request)
        stream = await self._stream(request, room)
        return self._respond(await self._reports.report(room.id, stream), fmt, lang)

    async def link(self, request: web.Request) -> web.Response:
        """A five-minute link that opens this report's HTML in a new tab."""
        room = await self._room(request)
        stream = await self._stream(request, room)
        sig = tokens.mint_link(self._s.auth.secret, room=room.id, stream=stream.id)
        query = urlencode({"format": "html", "lang": request.query.get("lang", "en"), "sig": sig})
        path = f"/api/rooms/{room.id}/streams/{stream.id}/report?{query}"
        return web.json_response({"url": path, "expires_in": 300}, status=201)

    async def build_report(self, request: web.Request) -> web.Response:
        room = await self._room(request)
        stream = await self._stream(request, room)
        report = await self._reports.rebuild(room.id, stream)
        return web.Response(
            body=export.to_json(report), status=201, content_type="application/json"
        )

    async def delete_report(self, request: web.Request) -> web.Response:
        room = await self._room(request)
        stream_id = request.match_info["stream"]
        if not await self._reports.delete(room.id, stream_id):
            raise NotFound("not_found", "No stored report for this stream.")
        return web.json_response({"ok": True})

    async def segment(self, request: web.Request) -> web.Response:
        room = await self._room(request)
        key = request.match_info["segment"]
        if key not in SEGMENT_KEYS:
            raise NotFound("not_found", f"No segment {key!r}; segments: {', '.join(SEGMENT_KEYS)}.")
        stream = await self._stream(request, room)
        report = await self._reports.report(room.id, stream)
        segment = report.segment(key)
        assert segment is not None  # every report has every segment
        return _download(export.segment_csv(segment), export.filename(report, "csv", key))

    def _respond(self, report: Report, fmt: str, lang: str) -> web.Response:
        if fmt == "csv":
            return _download(export.viewers_csv(report), export.filename(report, "csv", "viewers"))
        if fmt == "html":
            renderer = export.html_renderer()
            if renderer is None:
                raise NotFound("html_unavailable", "HTML reports are not available here.")
            render, headers = renderer
            response = web.Response(
                text=render(report, lang), content_type="text/html", charset="utf-8"
            )
            for name, value in headers.items():
                if name.lower() != "content-type":
                    response.headers[name] = value
            return response
        response = web.Response(body=export.to_json(report), content_type="application/json")
        response.headers["Cache-Control"] = "no-store"
        return response


def _format(request: web.Request) -> tuple[str, str]:
    fmt = request.query.get("format", "json")
    if fmt not in FORMATS:
        raise ProtocolError("bad_format", f"format is one of {', '.join(FORMATS)}.")
    lang = request.query.get("lang", "en")
    if len(lang) > 16:
        raise ProtocolError("bad_lang", "lang is a language tag such as en or zh-CN.")
    return fmt, lang


def _download(body: bytes, name: str) -> web.Response:
    headers: dict[str, Any] = {
        "Content-Disposition": f'attachment; filename="{name}"',
        "Cache-Control": "no-store",
    }
    return web.Response(body=body, content_type="text/csv", charset="utf-8", headers=headers)
