"""WHIP ingest and WHEP playback (RFC 9725 and its playback twin) over the forwarding relay.

Endpoints ``/whip/{room}`` (publish, host token) and ``/whep/{room}`` (play, any
token of the room); sessions at ``/whip/{room}/{session}`` and
``/whep/{room}/{session}``. POST an SDP offer -> 201 with the answer, Location
and ETag; PATCH trickled candidates -> 204; DELETE -> 200; OPTIONS -> 204
without a token (CORS preflight); anything else -> 405. Errors are the usual
JSON body ``{"code", "message"}``. Going live over WHIP starts the room's
stream; a DELETE ends it, and stopping the stream otherwise (over REST, on any
node) disconnects the publisher. A DELETE of a session the server already saw
close answers 200 as well (clients close their peer connection first).

Continuity: a publisher that is lost (its connection closed or failed, the
watchdog, a server restart) pauses the stream for the room's
``publisher_grace_seconds`` instead of ending it; the room's viewers are told
(``media`` event ``{"state": "paused", "stream"}``) and keep their WHEP sessions
on this node. A publisher back in time continues the same stream (``"live"``);
when the grace period runs out the stream ends as a normal stop (``"ended"``,
every WHEP session closed). A server that shuts down pauses its streams, and one
that starts pauses the streams a previous run left live, their grace period
counted from when their media was last seen.

Several nodes: the node that accepts a room's publisher owns the room's media
(``livehub.media.ownership``); a WHEP or WHIP POST on another node is answered
``307`` with the owner's absolute endpoint URL in ``Location``, after the token
was checked. The client POSTs there again, with its ``Authorization``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import ClassVar, Literal
from urllib.parse import quote

import msgspec
from aiohttp import web

from livehub.errors import Conflict, Forbidden, LivehubError, NotFound
from livehub.media.continuity import GraceTimers
from livehub.media.ownership import MediaOwnership, Node
from livehub.media.relay import RoomRelay
from livehub.media.sdp import MAX_SDP_BYTES, BadSdp, parse_offer, parse_sdpfrag
from livehub.media.sessions import Ended, MediaConfig, MediaSessions, Session
from livehub.rooms.models import MediaState, Room
from livehub.signaling.auth import bearer_of
from livehub.signaling.context import Services
from livehub.signaling.live import LiveNamespace
from livehub.signaling.replies import http_error
from livehub.tasks import cancel_and_wait

log = logging.getLogger("livehub.whip")

MEDIA = web.AppKey("media", MediaSessions)
SDP = "application/sdp"
SDPFRAG = "application/trickle-ice-sdpfrag"
Direction = Literal["whip", "whep"]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, If-Match",
    "Access-Control-Expose-Headers": "Location, ETag, Link, Accept-Patch, Accept-Post",
    "Access-Control-Max-Age": "86400",
}
ENDPOINT_METHODS = "OPTIONS, POST"
SESSION_METHODS = "OPTIONS, PATCH, DELETE"
SEEN_EVERY = 5.0  # seconds between records of a live stream's media being alive


class MediaEvent(msgspec.Struct, frozen=True):
    """The ``media`` socket event: the room's stream is live, paused or ended."""

    state: MediaState
    stream: str


class MethodNotAllowed(LivehubError):
    status = 405


class UnsupportedMediaType(LivehubError):
    status = 415


class PreconditionFailed(LivehubError):
    status = 412


class WhipEndpoints:
    """The HTTP edge of media: authorises, validates, and hands over to ``MediaSessions``."""

    cors: ClassVar[dict[str, str]] = CORS

    def __init__(
        self, services: Services, live: LiveNamespace, config: MediaConfig, node_id: str
    ) -> None:
        self._s = services
        self._live = live
        self.sessions = MediaSessions(config, self._stream_ended, self._publisher_lost)
        self._grace = GraceTimers(self._grace_over)
        # Pausing, resuming and ending at the end of a grace period take turns, so that a
        # publisher coming back as its old one is found lost never leaves a stream paused.
        self._pausing = asyncio.Lock()
        # room -> its last publisher's session: a late DELETE of that one ends the stream
        self._last_publisher: dict[str, str] = {}
        # room -> when its live stream was last recorded as seen (monotonic seconds)
        self._seen: dict[str, float] = {}
        self._tasks: list[asyncio.Task[None]] = []  # while serving (see cleanup)
        me = Node(node_id, services.settings.base_url)
        self.ownership = MediaOwnership(services.store, me, config.owner_ttl)
        # Refreshing claims and giving them up take turns: a refresh that read the rooms
        # here just before a room's media ended cannot then re-claim the room after it.
        self._claims = asyncio.Lock()
        # room -> the stream this node's media carries (checked against the shared room)
        self._streams: dict[str, str] = {}
        # Media subscribers (recording, HLS): awaited with (room, stream id, relay) once a
        # publisher is live (again, if it came back), and with the room when its media ended.
        self.on_media_live: list[Callable[[str, str, RoomRelay], Awaitable[None]]] = []
        self.on_media_ended: list[Callable[[str], Awaitable[None]]] = []
        # (room, stream) after a publisher's leaving ended the stream (reports build here)
        self.on_stream_stopped: list[Callable[[str, str], Awaitable[None]]] = []

    def routes(self) -> list[web.RouteDef]:
        routes: list[web.RouteDef] = []
        for direction, post in (("whip", self.publish), ("whep", self.play)):
            endpoint = f"/{direction}/{{room}}"
            session = f"/{direction}/{{room}}/{{session}}"
            routes += [
                web.options(endpoint, self._guard(self._preflight(ENDPOINT_METHODS))),
                web.post(endpoint, self._guard(post)),
                web.route("*", endpoint, self._guard(self._not_allowed(ENDPOINT_METHODS))),
                web.options(session, self._guard(self._preflight(SESSION_METHODS))),
                web.patch(session, self._guard(self.patch)),
                web.delete(session, self._guard(self.delete)),
                web.route("*", session, self._guard(self._not_allowed(SESSION_METHODS))),
            ]
        return routes

    async def cleanup(self, app: web.Application) -> AsyncIterator[None]:
        """aiohttp cleanup context: the watchdog and the ownership check while serving
        (and the streams a previous run left live paused); after, every stream here
        paused (or ended, with no grace period), every peer closed, every claim released."""
        await self._forget_previous_run()
        self._tasks = [
            asyncio.create_task(self.sessions.run()),
            asyncio.create_task(self._keep()),
            asyncio.create_task(self._restore()),
        ]
        yield
        await self.shutdown(app)
        await self._grace.close()
        await self.sessions.close_all()

    async def shutdown(self, app: web.Application) -> None:
        """aiohttp on_shutdown, registered before the sockets are closed so that viewers
        hear it: every stream with media here is paused (ended, with no grace period)."""
        await cancel_and_wait(self._tasks)
        self._tasks = []
        for room_id in sorted(self.sessions.rooms()):
            await _quietly(self._suspend(room_id), room_id)

    async def stream_stopped(self, room_id: str, stream_id: str) -> None:
        """A stream was stopped over REST (or its room closed): its media here ends now."""
        self._grace.cancel(room_id)
        self._last_publisher.pop(room_id, None)
        await self._tell_media(room_id, "ended", stream_id)
        if room_id in self.sessions.rooms():
            await self._end_media(room_id)

    async def _end_media(self, room_id: str) -> None:
        # The claim goes first, so a publisher that sees its connection close may publish
        # again on any node at once.
        await _quietly(self._release(room_id), room_id)
        await _quietly(self.sessions.stop_room(room_id, "system"), room_id)

    async def _release(self, room_id: str) -> None:
        async with self._claims:
            await self.ownership.release(room_id)

    async def _keep(self) -> None:
        """Refresh this node's media claims; end media whose stream was stopped elsewhere;
        record now and then that the live streams' media is alive."""
        while True:
            await asyncio.sleep(self.sessions.config.owner_check)
            try:
                async with self._claims:
                    await self.ownership.keep(self.sessions.rooms())
                for room_id, stream_id in list(self._streams.items()):
                    if room_id not in self.sessions.rooms():
                        self._streams.pop(room_id, None)  # ended without a stream end (aborted)
                        continue
                    stream = (await self._s.rooms.get(room_id)).stream
                    if stream is None or stream.id != stream_id:
                        log.info("room %s: stream %s was stopped elsewhere", room_id, stream_id)
                        await self._end_media(room_id)
                    elif self.sessions.publisher(room_id) is not None:
                        await self._mark_seen(room_id, stream_id)
                for room_id in sorted(self.sessions.rooms()):
                    if self.sessions.holding(room_id) and self._grace.pending(room_id) is None:
                        # its publisher was lost while the store was down, say: pause it now
                        await self._publisher_lost(room_id, "no grace period running")
            except Exception:  # the store is down, say: try again next time
                log.exception("checking this node's media failed")

    async def _mark_seen(self, room_id: str, stream_id: str) -> None:
        now = time.monotonic()
        if now - self._seen.get(room_id, float("-inf")) >= SEEN_EVERY:
            self._seen[room_id] = now
            await self._s.rooms.stream_seen(stream_id)

    # continuity

    async def _publisher_lost(self, room_id: str, reason: str) -> None:
        """The room's publisher vanished; its relay and viewers are held here."""
        async with self._pausing:
            if self.sessions.publisher(room_id) is not None:
                return  # a new publisher took over already
            room = await self._s.rooms.get(room_id)
            grace = room.settings.publisher_grace_seconds
            if room.stream is not None and grace > 0:
                log.info("room %s: publisher lost (%s): paused for %d s", room_id, reason, grace)
                await self._pause(room, None)
                return
            if self.sessions.publisher(room_id) is None:
                await self.sessions.stop_room(room_id, "system")  # no grace: ends at once

    async def _pause(self, room: Room, since: float | None) -> None:
        """Pause the room's stream (since ``since``, or now) and run its grace period."""
        assert room.stream is not None
        stream_id = room.stream.id
        paused = await self._s.rooms.pause_stream(room.id, stream_id, at=since)
        current = paused or await self._s.rooms.get(room.id)
        if current.stream is None or current.stream.id != stream_id or not current.paused:
            return
        if paused is not None:
            await self._tell(paused)
        deadline = (current.stream.paused_at or 0.0) + current.settings.publisher_grace_seconds
        self._grace.start(room.id, stream_id, deadline - self._s.rooms.now())

    async def _grace_over(self, room_id: str, stream_id: str) -> None:
        async with self._pausing:
            room = await self._s.rooms.get(room_id)
            if room.stream is None or room.stream.id != stream_id or not room.paused:
                return  # stopped, or resumed, meanwhile
            if self.sessions.publisher(room_id) is not None:
                return
            log.info("room %s: the publisher did not come back: stream %s ends", room_id, stream_id)
            if room_id in self.sessions.rooms():
                await self.sessions.stop_room(room_id, "system")  # ends it via _stream_ended
            else:
                await self._stream_ended(room_id, "system")  # nothing here (after a restart)

    async def _suspend(self, room_id: str) -> None:
        """Shutdown: pause the room's stream so that a publisher back after the restart
        continues it; with no grace period, end it."""
        room = await self._s.rooms.get(room_id)
        if room.stream is None or room.settings.publisher_grace_seconds == 0:
            await self.sessions.stop_room(room_id, "system")
            return
        paused = await self._s.rooms.pause_stream(room_id, room.stream.id)
        if paused is not None:
            await self._tell(paused)
        self._streams.pop(room_id, None)
        for hook in self.on_media_ended:  # recordings and HLS finalised
            await _quietly(hook(room_id), room_id)
        await _quietly(self._release(room_id), room_id)

    async def _forget_previous_run(self) -> None:
        """Before serving: drop the media claims this node's previous run left (kill -9)."""
        try:
            for room_id in await self._s.rooms.open_room_ids():
                if (await self._s.rooms.get(room_id)).live:
                    await self.ownership.forget_previous_run(room_id)
        except Exception:  # the store is down, say: those claims lapse by themselves
            log.exception("forgetting the previous run's media claims failed")

    async def _restore(self) -> None:
        """On start: pause the streams whose media a previous run left live (a restart,
        a crash), unless another node has it; end those whose grace period ran out.
        Tried again until it succeeds (the database or the store may be down)."""
        while True:
            try:
                await self._restore_once()
                return
            except Exception:
                log.exception("pausing the streams a previous run left live failed")
            await asyncio.sleep(self.sessions.config.owner_check)

    async def _restore_once(self) -> None:
        waiting: list[str] = []
        for room_id in await self._s.rooms.open_room_ids():
            if (await self._s.rooms.get(room_id)).stream is None:
                continue
            if await self.ownership.elsewhere(room_id) is not None:
                waiting.append(room_id)  # alive, or a dead node's claim lapsing
                continue
            await self._orphaned(room_id)
        if waiting:
            await asyncio.sleep(self.ownership.ttl + self.sessions.config.owner_check)
            for room_id in waiting:
                if await self.ownership.elsewhere(room_id) is None:
                    await self._orphaned(room_id)

    async def _orphaned(self, room_id: str) -> None:
        async with self._pausing:
            room = await self._s.rooms.get(room_id)
            if room.stream is None or room_id in self.sessions.rooms():
                return
            since = await self._s.rooms.last_seen(room.stream)
            if since is None:
                return  # a stream without media (started over REST): not ours to pause
            left = since + room.settings.publisher_grace_seconds - self._s.rooms.now()
            if left <= 0 or room.settings.publisher_grace_seconds == 0:
                log.info("room %s: stream %s was left live: it ends", room_id, room.stream.id)
                await self._stream_ended(room_id, "system")
                return
            log.info(
                "room %s: stream %s was left live: paused for %.0f s", room_id, room.stream.id, left
            )
            await self._pause(room, since)

    async def _tell(self, room: Room) -> None:
        """Tell the room's sockets its new state, and the media state it has."""
        await self._live.emit("room", room.public_view(), room=f"room:{room.id}")
        if room.stream is not None:
            await self._tell_media(room.id, room.media_state, room.stream.id)

    async def _tell_media(self, room_id: str, state: MediaState, stream_id: str) -> None:
        await self._live.to_room(
            "media", msgspec.to_builtins(MediaEvent(state, stream_id)), room_id
        )

    # WHIP

    async def publish(self, request: web.Request) -> web.StreamResponse:
        room = await self._s.rooms.get_open(request.match_info["room"])
        actor = self._s.auth.require_staff(_bearer(request), room, host_only=True)
        owner = await self.ownership.claim(room.id)
        if owner is not None:
            if self._shares_my_url(owner, room.id):
                raise Conflict("publisher_exists", "Someone is already publishing to this room.")
            return self._moved(owner, "whip", room.id)
        try:
            _require_type(request, SDP)
            offer = parse_offer(await _read_capped(request), "publish")
            session = await self.sessions.publish(room.id, actor, offer)
        except BaseException:
            await self._release_unless_here(room.id)
            raise
        try:
            await self._go_live(room.id, actor)
        except BaseException:
            await self.sessions.abort(session)
            await self._release_unless_here(room.id)
            raise
        self._last_publisher[room.id] = session.id
        await self._media_live(room.id)
        return self._created("whip", session)

    async def _release_unless_here(self, room_id: str) -> None:
        if room_id not in self.sessions.rooms():
            await self._release(room_id)

    async def _media_live(self, room_id: str) -> None:
        relay = self.sessions.relay(room_id)
        room = await self._s.rooms.get(room_id)
        if relay is not None and room.stream is not None:
            self._streams[room_id] = room.stream.id
            self._seen.pop(room_id, None)  # seen now: a restart from here on continues it
            await _quietly(self._mark_seen(room_id, room.stream.id), room_id)
            for hook in self.on_media_live:
                await _quietly(hook(room_id, room.stream.id, relay), room_id)

    async def _go_live(self, room_id: str, actor: str) -> None:
        async with self._pausing:
            room = await self._s.rooms.get_open(room_id)
            if room.live:
                # a stream started over REST, or a publisher back within its grace period
                resumed = await self._s.rooms.resume_stream(room_id, actor)
                self._grace.cancel(room_id)  # only now: a failed resume leaves it paused
                if resumed is not None:
                    log.info("room %s: the publisher is back on %s", room_id, room.scope)
                await self._tell(resumed or room)
                return
            try:
                live, _ = await self._s.rooms.start_stream(room_id, actor)
            except Conflict as exc:
                if exc.code != "already_live":
                    raise
                return
            await self._tell(live)

    async def _stream_ended(self, room_id: str, actor: str) -> None:
        if self.sessions.publisher(room_id) is not None:
            return  # a new publisher took the room over while the old one was ending
        self._grace.cancel(room_id)
        self._streams.pop(room_id, None)
        self._seen.pop(room_id, None)
        self._last_publisher.pop(room_id, None)
        await _quietly(self._release(room_id), room_id)
        for hook in self.on_media_ended:
            await _quietly(hook(room_id), room_id)
        current = (await self._s.rooms.get(room_id)).stream
        try:
            stopped = await self._s.rooms.stop_stream(room_id, actor)
        except Conflict:
            return  # already stopped (over REST, or the room was closed)
        await self._live.emit("room", stopped.public_view(), room=f"room:{room_id}")
        if current is not None:
            await self._tell_media(room_id, "ended", current.id)
            for done in self.on_stream_stopped:
                await _quietly(done(room_id, current.id), room_id)

    # WHEP

    async def play(self, request: web.Request) -> web.StreamResponse:
        room = await self._s.rooms.get_open(request.match_info["room"])
        owner = await self._viewer(request, room.id)  # the token first: never redirect without
        if room.id not in self.sessions.rooms():
            elsewhere = await self.ownership.elsewhere(room.id)
            if elsewhere is not None and not self._shares_my_url(elsewhere, room.id):
                return self._moved(elsewhere, "whep", room.id)
        if not room.live:
            raise Conflict("not_live", "The room is not live.")
        _require_type(request, SDP)
        offer = parse_offer(await _read_capped(request), "play")
        session = await self.sessions.play(room.id, owner, offer)
        return self._created("whep", session)

    async def _viewer(self, request: web.Request, room_id: str) -> str:
        """Who plays: any token of the room (or the admin key); banned viewers may not."""
        bearer = _bearer(request)
        if self._s.auth.is_admin(bearer):
            return "admin"
        room = await self._s.rooms.get(room_id)
        who = self._s.auth.principal(bearer, room)
        if not who.is_staff and await self._s.moderation.is_banned(room_id, who.viewer_id):
            raise Forbidden("banned", "You are banned from this room.")
        return who.viewer_id

    # sessions

    async def patch(self, request: web.Request) -> web.StreamResponse:
        session, _ = await self._owned_session(request)
        assert isinstance(session, Session)
        _require_type(request, SDPFRAG)
        match = request.headers.get("If-Match")
        if match is not None and match.strip() not in ("*", session.etag):
            raise PreconditionFailed("etag_mismatch", "If-Match does not match this session.")
        frag = parse_sdpfrag(await _read_capped(request))
        await self.sessions.add_candidates(session, frag)
        return web.Response(status=204, headers={**CORS, "ETag": session.etag})

    async def delete(self, request: web.Request) -> web.StreamResponse:
        session, actor = await self._owned_session(request, ended_too=True)
        if isinstance(session, Session):
            await self.sessions.end(session, actor)
        elif session.role == "publisher":
            await self._publisher_deleted_late(session, actor)
        return web.Response(status=200, headers=CORS)

    async def _publisher_deleted_late(self, ended: Ended, actor: str) -> None:
        """A publisher DELETEd its session after its connection closed (OBS and other
        clients close first): the stream it paused ends now, unless another took over."""
        async with self._pausing:
            room_id = ended.room
            if self._last_publisher.get(room_id) != ended.id:
                return  # an older session, or the stream ended already
            if self.sessions.publisher(room_id) is not None:
                return
            if room_id in self.sessions.rooms():
                await self.sessions.stop_room(room_id, actor)
            else:
                await self._stream_ended(room_id, actor)

    async def _owned_session(
        self, request: web.Request, *, ended_too: bool = False
    ) -> tuple[Session | Ended, str]:
        """The session named in the path, if the caller may touch it; and who the caller is.
        With ``ended_too``, a session that was here and is over counts as well."""
        direction = request.path.split("/")[1]
        room = await self._s.rooms.get(request.match_info["room"])
        bearer = _bearer(request)
        if direction == "whip":
            actor = self._s.auth.require_staff(bearer, room, host_only=True)
            staff = True
        elif self._s.auth.is_admin(bearer):
            actor, staff = "admin", True
        else:
            who = self._s.auth.principal(bearer, room)
            actor, staff = who.viewer_id, who.is_staff
        session_id = request.match_info["session"]
        session: Session | Ended | None = self.sessions.get(session_id)
        if session is None and ended_too:
            session = self.sessions.ended(session_id)
        wanted = "publisher" if direction == "whip" else "viewer"
        if session is None or session.room != room.id or session.role != wanted:
            raise NotFound("session_not_found", "No such session (it may have ended).")
        if not staff and actor != session.owner:
            raise Forbidden("not_your_session", "This session belongs to someone else.")
        return session, actor

    # responses

    def _shares_my_url(self, owner: Node, room_id: str) -> bool:
        """Nodes that advertise one URL cannot be told apart by a client: no redirect then."""
        if owner.url != self.ownership.me.url:
            return False
        log.warning("room %s: node %s has the media and this node's URL", room_id, owner.id)
        return True

    def _moved(self, owner: Node, direction: Direction, room_id: str) -> web.Response:
        """307 to the node that owns the room's media (RFC 9725 section 4.5)."""
        location = f"{owner.url}/{direction}/{quote(room_id, safe='')}"
        log.info("room %s: %s sent to %s", room_id, direction, owner.url)
        headers = {**CORS, "Location": location, "Cache-Control": "no-store"}
        return web.Response(status=307, headers=headers)

    def _created(self, direction: Direction, session: Session) -> web.Response:
        response = web.Response(
            status=201,
            body=session.answer.encode(),
            content_type=SDP,
            headers={
                **CORS,
                "Location": f"/{direction}/{session.room}/{session.id}",
                "ETag": session.etag,
                "Accept-Patch": SDPFRAG,
            },
        )
        # TURN credentials are the session owner's: per user, and only with a token.
        for server in self.sessions.config.ice_servers_for(session.owner):
            response.headers.add("Link", server.link())
        return response

    @staticmethod
    def _preflight(methods: str) -> Handler:
        async def preflight(request: web.Request) -> web.StreamResponse:
            headers = {**CORS, "Access-Control-Allow-Methods": methods, "Allow": methods}
            if "POST" in methods:
                headers["Accept-Post"] = SDP
            else:
                headers["Accept-Patch"] = SDPFRAG
            return web.Response(status=204, headers=headers)

        return preflight

    @staticmethod
    def _not_allowed(methods: str) -> Handler:
        async def not_allowed(request: web.Request) -> web.StreamResponse:
            raise MethodNotAllowed(
                "method_not_allowed", f"{request.method} is not allowed here; use {methods}."
            )

        return not_allowed

    @staticmethod
    def _guard(handler: Handler) -> Handler:
        """Errors become the usual JSON body, with the CORS headers a browser client needs."""

        async def guarded(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request)
            except LivehubError as err:
                log.info("%s %s -> %s %s", request.method, request.path, err.status, err.code)
                response = http_error(err)
                response.headers.update(CORS)
                if isinstance(err, MethodNotAllowed):
                    is_session = request.match_info.get("session") is not None
                    response.headers["Allow"] = SESSION_METHODS if is_session else ENDPOINT_METHODS
                return response

        return guarded


async def _quietly(hook: Awaitable[object], room_id: str) -> None:
    """A media subscriber that fails must not fail publishing or ending the stream."""
    try:
        await hook
    except Exception:
        log.exception("room %s: a media subscriber hook failed", room_id)


def _bearer(request: web.Request) -> str | None:
    return bearer_of(request.headers.get("Authorization"))


def _require_type(request: web.Request, wanted: str) -> None:
    if request.content_type != wanted:
        raise UnsupportedMediaType(
            "unsupported_media_type", f"Send the body as {wanted}, not {request.content_type}."
        )


async def _read_capped(request: web.Request) -> bytes:
    """The body, refusing more than ``MAX_SDP_BYTES`` without reading it all."""
    if request.content_length is not None and request.content_length > MAX_SDP_BYTES:
        raise BadSdp(f"The body is larger than {MAX_SDP_BYTES // 1024} KiB.")
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(16 * 1024):
        size += len(chunk)
        if size > MAX_SDP_BYTES:
            raise BadSdp(f"The body is larger than {MAX_SDP_BYTES // 1024} KiB.")
        chunks.append(chunk)
    return b"".join(chunks)
