"""The REST API: rooms, tokens, streams and health."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web

from livehub.errors import Forbidden, Unavailable
from livehub.interactions.normalise import clean_name
from livehub.rooms import tokens
from livehub.rooms.models import Room, RoomSettings
from livehub.signaling import payloads as p
from livehub.signaling.auth import bearer_of
from livehub.signaling.context import Services
from livehub.signaling.live import LiveNamespace

log = logging.getLogger("livehub.api")
HEALTH_PROBE_SECONDS = 2.0


class RestApi:
    def __init__(self, services: Services, live: LiveNamespace, node_id: str) -> None:
        self._s = services
        self._live = live
        self._node = node_id
        # Awaited with (room id, stream id) after a stream stopped (e.g. to build its report).
        self.on_stream_stopped: list[Callable[[str, str], Awaitable[None]]] = []
        # (room id, stream id) -> the stream's recording (url, duration, size), if it has one.
        self.recording_of: Callable[[str, str], dict[str, Any] | None] = lambda room, stream: None

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/healthz", self.health),
            web.post("/api/rooms", self.create_room),
            web.get("/api/rooms/{room}", self.get_room),
            web.patch("/api/rooms/{room}", self.update_room),
            web.delete("/api/rooms/{room}", self.close_room),
            web.post("/api/rooms/{room}/tokens", self.issue_token),
            web.post("/api/rooms/{room}/join", self.join),
            web.post("/api/rooms/{room}/streams", self.start_stream),
            web.delete("/api/rooms/{room}/streams/current", self.stop_stream),
            web.get("/api/rooms/{room}/streams", self.list_streams),
        ]

    async def health(self, request: web.Request) -> web.Response:
        """200 while every supervised part runs and the store and database answer;
        503 naming what fails otherwise."""
        try:
            await asyncio.wait_for(self._s.store.get("health"), HEALTH_PROBE_SECONDS)
        except Exception as exc:  # any failure of a backing service means unhealthy
            cause = exc.__cause__ or exc  # the store's own error, as it reports it
            self._s.supervisor.report("store", f"{type(cause).__name__}: {cause}")
        else:
            self._s.supervisor.report("store", None)
        # A tiny write through the log's writer, so a full disk or a stuck writer shows;
        # the log reports "database" itself (as each commit of an event does).
        with contextlib.suppress(Unavailable):
            await self._s.log.probe(HEALTH_PROBE_SECONDS)
        failing = self._s.supervisor.failing()
        kind = "memory" if self._s.settings.redis_url is None else "redis"
        body = {
            "ok": not failing,
            "store": kind,
            "node": self._node,
            "failing": failing,
            "parts": self._s.supervisor.snapshot(),
        }
        return web.json_response(body, status=503 if failing else 200)

    async def create_room(self, request: web.Request) -> web.Response:
        self._s.auth.require_admin(bearer_of(request.headers.get("Authorization")))
        body = p.decode(p.CreateRoomIn, await request.read())
        settings = self._settings(body.settings)
        room = await self._s.rooms.create(
            body.title, room_id=body.id, private=body.private, settings=settings
        )
        result: dict[str, Any] = {"room": room.public_view(), **self._staff_tokens(room)}
        if room.room_key:
            result["room_key"] = room.room_key
        log.info("room %s created (private=%s)", room.id, room.private)
        return web.json_response(result, status=201)

    def _settings(self, raw: dict[str, Any] | None) -> RoomSettings:
        if not raw:
            return self._s.rooms.defaults
        merged = {**msgspec.to_builtins(self._s.rooms.defaults), **raw}
        return p.parse(RoomSettings, merged)

    def _staff_tokens(self, room: Room) -> dict[str, str]:
        ttl = self._s.settings.token_ttl_seconds
        host, _, _ = tokens.mint(
            self._s.auth.secret, room=room.id, role="host", name="Host", ttl_seconds=ttl
        )
        mod, _, _ = tokens.mint(
            self._s.auth.secret, room=room.id, role="moderator", name="Moderator", ttl_seconds=ttl
        )
        return {"host_token": host, "moderator_token": mod}

    async def get_room(self, request: web.Request) -> web.Response:
        room = await self._s.rooms.get(request.match_info["room"])
        return web.json_response(room.public_view())

    async def update_room(self, request: web.Request) -> web.Response:
        room = await self._s.rooms.get_open(request.match_info["room"])
        actor = self._s.auth.require_staff(
            bearer_of(request.headers.get("Authorization")), room, host_only=True
        )
        body = p.decode(p.UpdateRoomIn, await request.read())
        updated = await self._s.rooms.update(
            room.id, actor, title=body.title, settings=body.settings
        )
        await self._live.emit("room", updated.public_view(), room=f"room:{room.id}")
        return web.json_response(updated.public_view())

    async def close_room(self, request: web.Request) -> web.Response:
        self._s.auth.require_admin(bearer_of(request.headers.get("Authorization")))
        before = await self._s.rooms.get(request.match_info["room"])
        closed = await self._s.rooms.close(before.id, "admin")
        await self._live.close_room(closed)
        if before.stream is not None:
            await self._stream_stopped(closed.id, before.stream.id)
        return web.json_response(closed.public_view())

    async def issue_token(self, request: web.Request) -> web.Response:
        self._s.auth.require_admin(bearer_of(request.headers.get("Authorization")))
        room = await self._s.rooms.get_open(request.match_info["room"])
        body = p.decode(p.TokenIn, await request.read())
        token, vid, expires = tokens.mint(
            self._s.auth.secret,
            room=room.id,
            role=body.role,
            name=clean_name(body.name),
            viewer_id=body.viewer_id,
            ttl_seconds=body.ttl_seconds or self._s.settings.token_ttl_seconds,
        )
        return web.json_response(
            {"token": token, "viewer_id": vid, "expires_at": expires}, status=201
        )

    async def join(self, request: web.Request) -> web.Response:
        room = await self._s.rooms.get_open(request.match_info["room"])
        if room.private:
            raise Forbidden("room_private", "This room admits invited viewers only.")
        body = p.decode(p.JoinIn, await request.read())
        token, vid, expires = tokens.mint(
            self._s.auth.secret,
            room=room.id,
            role="viewer",
            name=clean_name(body.name),
            ttl_seconds=self._s.settings.token_ttl_seconds,
        )
        return web.json_response(
            {"token": token, "viewer_id": vid, "expires_at": expires}, status=201
        )

    async def start_stream(self, request: web.Request) -> web.Response:
        room = await self._s.rooms.get_open(request.match_info["room"])
        actor = self._s.auth.require_staff(
            bearer_of(request.headers.get("Authorization")), room, host_only=True
        )
        live, stream = await self._s.rooms.start_stream(room.id, actor)
        await self._live.emit("room", live.public_view(), room=f"room:{room.id}")
        return web.json_response(msgspec.to_builtins(stream), status=201)

    async def stop_stream(self, request: web.Request) -> web.Response:
        room = await self._s.rooms.get(request.match_info["room"])
        actor = self._s.auth.require_staff(
            bearer_of(request.headers.get("Authorization")), room, host_only=True
        )
        stream = room.stream
        stopped = await self._s.rooms.stop_stream(room.id, actor)
        await self._live.emit("room", stopped.public_view(), room=f"room:{room.id}")
        if stream is not None:
            await self._stream_stopped(room.id, stream.id)
        ended = [s for s in await self._s.rooms.streams(room.id) if stream and s.id == stream.id]
        return web.json_response(msgspec.to_builtins(ended[0]))

    async def _stream_stopped(self, room_id: str, stream_id: str) -> None:
        for hook in self.on_stream_stopped:
            await hook(room_id, stream_id)

    async def list_streams(self, request: web.Request) -> web.Response:
        room = await self._s.rooms.get(request.match_info["room"])
        self._s.auth.require_staff(bearer_of(request.headers.get("Authorization")), room)
        streams = await self._s.rooms.streams(room.id)
        views = []
        for stream in streams:
            view = msgspec.to_builtins(stream)
            if (recording := self.recording_of(room.id, stream.id)) is not None:
                view["recording"] = recording
            views.append(view)
        return web.json_response({"streams": views})
