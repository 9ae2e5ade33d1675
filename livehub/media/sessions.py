"""Publisher and viewer sessions: one peer connection each, and when to free it.

A room has at most one publisher session; its receivers feed the room's
``RoomRelay``. Each viewer session owns a peer connection whose senders drain
the viewer's relay subscriptions. Sessions end when the client deletes them,
when the connection fails or closes, or when the watchdog decides the peer is
gone (never connected in ``connect_timeout``; a publisher sending nothing for
``peer_timeout``; a viewer sent media for ``peer_timeout`` without answering a
single RTCP packet). A killed browser would otherwise linger 30-50 s until
ICE consent expires.

A publisher that vanishes (its connection closed or failed, or the watchdog)
keeps its room's relay and viewers: ``on_publisher_lost`` tells the edge, which
pauses the stream for the room's grace period (a publisher that comes back
continues it) and calls ``stop_room`` when that runs out; ``stop_room`` closes
the relay, disconnects its viewers, and ``on_stream_end`` tells the edge the
stream is over. A DELETE ends at once. The ids of ended sessions are kept for a
while (``ENDED_KEPT``), so a client that DELETEs a session the server already
saw close is answered as if it had been there.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.exceptions import OperationError
from aiortc.sdp import candidate_from_sdp

from livehub.errors import Conflict, ProtocolError, UserError
from livehub.media import forwarding, turn
from livehub.media.relay import EncodedFrame, Kind, RelayConfig, RoomRelay, Subscription
from livehub.media.sdp import (
    BadSdp,
    CodecChoice,
    NoCodec,
    Offer,
    SdpFrag,
    any_codec,
    check_candidate_address,
    ingest_codecs,
    playback_codec,
)

log = logging.getLogger("livehub.media")

Role = Literal["publisher", "viewer"]
SERVER_USER = "livehub"  # whose TURN credential the server's own peer connections use
StreamEnd = Callable[[str, str], Awaitable[None]]
PublisherLost = Callable[[str, str], Awaitable[None]]
ENDED_KEPT = 1024  # ended sessions remembered, so that a late DELETE is answered 200


@dataclass(frozen=True)
class Ended:
    """A session that is over, as a late DELETE needs to know it."""

    id: str
    role: Role
    room: str
    owner: str
    reason: str  # why it ended: "deleted", "connection closed", "no media", ...


@dataclass(frozen=True)
class MediaConfig:
    ice_servers: tuple[str, ...] = ()
    # TURN REST API (livehub.media.turn): TURN URLs get credentials minted per user.
    turn_secret: str | None = field(default=None, repr=False)
    turn_ttl: int = turn.DEFAULT_TTL
    peer_timeout: float = 10.0
    connect_timeout: float = 20.0
    check_interval: float = 0.5
    # The node that has a room's media claims it in the state store for owner_ttl seconds
    # and, every owner_check seconds, refreshes the claim and checks that the stream it
    # carries has not been stopped on another node (livehub.media.ownership).
    owner_ttl: float = 5.0
    owner_check: float = 1.0
    relay: RelayConfig = field(default_factory=RelayConfig)

    @classmethod
    def build(
        cls,
        ice_servers: tuple[str, ...],
        overrides: dict[str, Any] | None,
        turn_secret: str | None = None,
        turn_ttl: int = turn.DEFAULT_TTL,
    ) -> MediaConfig:
        """From the settings' ICE servers and TURN secret, and optional overrides
        (``Settings.extra['media']``)."""
        values = dict(overrides or {})
        relay = values.pop("relay", None)
        config = cls(ice_servers=ice_servers, turn_secret=turn_secret, turn_ttl=turn_ttl, **values)
        if relay is not None:
            config = cls(**{**config.__dict__, "relay": RelayConfig(**relay)})
        return config

    def ice_servers_for(self, user: str, now: float | None = None) -> list[turn.IceServer]:
        """The ICE servers ``user`` may use, TURN credentials included (now: unix seconds)."""
        when = time.time() if now is None else now
        return turn.ice_servers(self.ice_servers, self.turn_secret, user, when, self.turn_ttl)

    def rtc_configuration(self) -> RTCConfiguration:
        # Always explicit: without iceServers aiortc would contact a public STUN server.
        servers = [
            RTCIceServer(urls=s.url)
            if s.turn is None
            else RTCIceServer(urls=s.url, username=s.turn.username, credential=s.turn.credential)
            for s in self.ice_servers_for(SERVER_USER)
        ]
        return RTCConfiguration(iceServers=servers)


class Session:
    """One WHIP or WHEP resource."""

    def __init__(
        self, role: Role, room: str, owner: str, offer: Offer, pc: RTCPeerConnection, now: float
    ) -> None:
        self.id = secrets.token_urlsafe(16)
        self.role = role
        self.room = room
        self.owner = owner
        self.offer = offer
        self.pc = pc
        self.etag = f'"{secrets.token_hex(8)}"'
        self.created_at = now
        self.connected_at: float | None = None
        self.last_heard = now
        self.answer = ""
        self.closed = False
        self.packers: list[forwarding.Packer] = []
        self.keyframes: forwarding.KeyframeAsker | None = None
        self.fresh_relay = False  # a publisher that opened its room's relay (not one held)

    @property
    def state(self) -> str:
        return str(self.pc.connectionState)

    def primary_mid(self, mid: str | None) -> str:
        """Where a trickled candidate goes: bundled media share the first transport."""
        if self.offer.bundle and (mid is None or mid in self.offer.bundle):
            return self.offer.bundle[0]
        known = [s.mid for s in self.offer.sections]
        return mid if mid in known else known[0]


class MediaSessions:
    def __init__(
        self,
        config: MediaConfig,
        on_stream_end: StreamEnd,
        on_publisher_lost: PublisherLost,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._on_stream_end = on_stream_end
        self._on_publisher_lost = on_publisher_lost
        self._clock = clock
        self._sessions: dict[str, Session] = {}
        self._publishers: dict[str, Session] = {}
        self._relays: dict[str, RoomRelay] = {}
        self._ended: OrderedDict[str, Ended] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()

    # lookups

    def get(self, session_id: str) -> Session | None:
        return self._sessions.get(session_id)

    def ended(self, session_id: str) -> Ended | None:
        """A session that was here and is over (one of the last ``ENDED_KEPT``)."""
        return self._ended.get(session_id)

    def holding(self, room: str) -> bool:
        """The room's relay (and viewers) are held for a publisher that may come back."""
        relay = self._relays.get(room)
        return relay is not None and not relay.closed and room not in self._publishers

    def relay(self, room: str) -> RoomRelay | None:
        return self._relays.get(room)

    def publisher(self, room: str) -> Session | None:
        return self._publishers.get(room)

    def sessions(self, room: str | None = None) -> list[Session]:
        return [s for s in self._sessions.values() if room is None or s.room == room]

    def rooms(self) -> set[str]:
        """Rooms whose media is here: a publisher (even one negotiating) or an open relay."""
        relayed = {room for room, relay in self._relays.items() if not relay.closed}
        return relayed | set(self._publishers)

    # publishing

    async def publish(self, room: str, owner: str, offer: Offer) -> Session:
        choices = ingest_codecs(offer)
        if room in self._publishers:
            raise Conflict("publisher_exists", "Someone is already publishing to this room.")
        pc = RTCPeerConnection(self.config.rtc_configuration())
        session = Session("publisher", room, owner, offer, pc, self._clock())
        self._publishers[room] = session  # reserved before the first await
        self._sessions[session.id] = session
        relay = self._relays.get(room)
        if relay is None or relay.closed:
            relay = RoomRelay(room, self.config.relay, self._clock)
            session.fresh_relay = True
        try:
            for section in offer.sections:
                transceiver = pc.addTransceiver(section.kind, direction="recvonly")
                transceiver.setCodecPreferences(list(choices[section.kind].preferences))
                sink = self._sink(session, relay)
                forwarding.forward_receiver(
                    transceiver.receiver,
                    section.kind,
                    sink,
                    self.config.relay,
                    relay.request_keyframe,
                )
                if section.kind == "video":
                    session.keyframes = forwarding.KeyframeAsker(transceiver.receiver)
            await self._negotiate(session)
        except BaseException:
            await self._discard(session)
            raise
        self._relays[room] = relay
        codecs = {kind: choice.mime for kind, choice in choices.items()}
        asker = session.keyframes or _no_video
        for viewer_id in relay.attach_publisher(codecs, asker):
            self._spawn(self._close_viewer_id(viewer_id, "the stream changed codec"))
        self._watch(session)
        log.info("room %s: publisher %s (%s)", room, session.id, codecs)
        return session

    def _sink(self, session: Session, relay: RoomRelay) -> Callable[[EncodedFrame], None]:
        def take(frame: EncodedFrame) -> None:
            if self._publishers.get(session.room) is session:
                session.last_heard = self._clock()
                relay.publish(frame)

        return take

    # playback

    async def play(self, room: str, owner: str, offer: Offer) -> Session:
        relay = self._relays.get(room)
        if relay is None or relay.closed:
            raise Conflict("no_media", "Nothing is being published to this room on this server.")
        codecs = relay.codecs
        choices = self._playback_choices(offer, codecs)
        kinds = tuple(s.kind for s in offer.sections if s.kind in codecs)
        if not kinds:
            have = " and ".join(sorted(codecs)) or "nothing"
            raise NoCodec(f"The stream carries {have}; the offer asks for none of it.")
        pc = RTCPeerConnection(self.config.rtc_configuration())
        session = Session("viewer", room, owner, offer, pc, self._clock())
        self._sessions[session.id] = session
        viewer = relay.add_viewer(session.id, kinds)
        try:
            for section in offer.sections:
                choice = choices[section.kind]
                transceiver = self._viewer_transceiver(session, relay, viewer.subscriptions, choice)
                transceiver.setCodecPreferences(list(choice.preferences))
            await self._negotiate(session)
        except BaseException:
            relay.remove_viewer(session.id)
            await self._discard(session)
            raise
        self._watch(session)
        log.info("room %s: viewer %s (%d watching)", room, session.id, relay.viewer_count)
        return session

    @staticmethod
    def _playback_choices(offer: Offer, codecs: dict[Kind, str]) -> dict[Kind, CodecChoice]:
        return {
            s.kind: playback_codec(s, codecs[s.kind]) if s.kind in codecs else any_codec(s)
            for s in offer.sections
        }

    def _viewer_transceiver(
        self,
        session: Session,
        relay: RoomRelay,
        subscriptions: dict[Kind, Subscription],
        choice: CodecChoice,
    ) -> RTCRtpTransceiver:
        pc = session.pc
        sub = subscriptions.get(choice.kind)
        if sub is None:
            return pc.addTransceiver(choice.kind, direction="inactive")
        track = forwarding.ForwardedTrack(sub, choice.mime)
        transceiver = pc.addTransceiver(track, direction="sendonly")

        def heard() -> None:
            session.last_heard = self._clock()

        packer = forwarding.forward_sender(
            transceiver.sender, choice.mime, relay.request_keyframe, heard
        )
        session.packers.append(packer)
        return transceiver

    # negotiation and trickle

    async def _negotiate(self, session: Session) -> None:
        pc = session.pc
        try:
            await pc.setRemoteDescription(RTCSessionDescription(session.offer.sdp, "offer"))
        except OperationError as exc:
            raise NoCodec(f"No common codec: {exc}.") from None
        except ValueError as exc:
            raise BadSdp(f"The offer was refused: {exc}.") from None
        await pc.setLocalDescription(await pc.createAnswer())
        session.answer = pc.localDescription.sdp

    async def add_candidates(self, session: Session, frag: SdpFrag) -> None:
        """Apply trickled remote candidates (RFC 8840 fragment); ICE restarts are refused."""
        if frag.ice_ufrag is not None and frag.ice_ufrag != session.offer.ice_ufrag:
            raise UserError(
                "ice_restart_unsupported", "ICE restarts are not supported; start a new session."
            )
        for item in frag.candidates:
            try:
                candidate = candidate_from_sdp(item.line)
            except (AssertionError, ValueError, IndexError):
                raise ProtocolError(
                    "bad_sdpfrag", "An a=candidate line cannot be parsed."
                ) from None
            check_candidate_address(candidate.ip, "bad_sdpfrag")
            candidate.sdpMid = session.primary_mid(item.mid)
            await session.pc.addIceCandidate(candidate)
        if frag.end_of_candidates:
            await session.pc.addIceCandidate(None)

    # ending

    async def end(self, session: Session, actor: str) -> None:
        """The client deleted its session: free it now (a publisher ends the stream)."""
        if session.role == "viewer":
            await self._close_viewer(session, "deleted")
            return
        await self._drop_publisher(session, "deleted")
        await self._end_room(session.room, actor)

    async def stop_room(self, room: str, actor: str) -> bool:
        """The stream was stopped from outside (over REST, the room closed, another node):
        close the room's publisher, relay and viewers now. False if none were here."""
        publisher = self._publishers.get(room)
        if publisher is not None:
            await self._drop_publisher(publisher, "the stream was stopped")
        relay = self._relays.get(room)
        if relay is None or relay.closed:
            return publisher is not None
        await self._end_room(room, actor)
        return True

    async def abort(self, session: Session) -> None:
        """Undo a publish the edge could not complete (no stream-end callback)."""
        await self._drop_publisher(session, "aborted")
        if session.fresh_relay and session.room not in self._publishers:
            relay = await self._close_relay(session.room, "the stream did not start")
            if relay is not None:
                self._forget(relay)

    async def _discard(self, session: Session, reason: str = "discarded") -> None:
        """Forget a session (no callbacks); a late DELETE of it is still recognised."""
        if self._sessions.pop(session.id, None) is not None:
            ended = Ended(session.id, session.role, session.room, session.owner, reason)
            self._ended[session.id] = ended
            while len(self._ended) > ENDED_KEPT:
                self._ended.popitem(last=False)
        if self._publishers.get(session.room) is session:
            del self._publishers[session.room]
        session.closed = True
        if session.keyframes is not None:
            await session.keyframes.close()
        await session.pc.close()

    async def _close_viewer(self, session: Session, reason: str) -> None:
        if session.closed:
            return
        relay = self._relays.get(session.room)
        if relay is not None:
            relay.remove_viewer(session.id)
        log.info("room %s: viewer %s ends (%s)", session.room, session.id, reason)
        await self._discard(session, reason)

    async def _close_viewer_id(self, session_id: str, reason: str) -> None:
        session = self._sessions.get(session_id)
        if session is not None:
            await self._close_viewer(session, reason)

    async def _drop_publisher(self, session: Session, reason: str) -> None:
        if session.closed:
            return
        relay = self._relays.get(session.room)
        if relay is not None and self._publishers.get(session.room) is session:
            relay.detach_publisher()
        log.info("room %s: publisher %s ends (%s)", session.room, session.id, reason)
        await self._discard(session, reason)

    async def _publisher_vanished(self, session: Session, reason: str) -> None:
        if session.closed:
            return
        was_current = self._publishers.get(session.room) is session
        await self._drop_publisher(session, reason)
        if not was_current or not self.holding(session.room):
            return  # taken over already, or the room's media ended meanwhile
        try:
            await self._on_publisher_lost(session.room, reason)
        except Exception:  # a background path: report it, keep serving the other rooms
            log.exception("room %s: pausing the stream failed", session.room)

    async def _end_room(self, room: str, actor: str) -> None:
        """Close the room's relay and viewers, then tell the edge the stream is over."""
        relay = await self._close_relay(room, "the stream ended")
        if relay is None:
            return
        try:
            await self._on_stream_end(room, actor)
        except Exception:  # a background path: report it, keep serving the other rooms
            log.exception("room %s: ending the stream failed", room)
        finally:
            self._forget(relay)  # only now: no relay means the stream has ended

    async def _close_relay(self, room: str, reason: str) -> RoomRelay | None:
        relay = self._relays.get(room)
        if relay is None or relay.closed:
            return None
        for viewer_id in relay.close():  # a closed relay refuses new viewers at once
            await self._close_viewer_id(viewer_id, reason)
        return relay

    def _forget(self, relay: RoomRelay) -> None:
        if self._relays.get(relay.room) is relay:
            del self._relays[relay.room]

    async def close_all(self) -> None:
        """Shutdown: close every peer connection and relay (no callbacks: the edge has
        paused or ended the streams first)."""
        for session in list(self._publishers.values()):
            await self._drop_publisher(session, "shutdown")
        for room in list(self._relays):
            relay = await self._close_relay(room, "shutdown")
            if relay is not None:
                self._forget(relay)
        for session in list(self._sessions.values()):
            await self._discard(session, "shutdown")
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # watching

    def _watch(self, session: Session) -> None:
        def changed() -> None:
            state = session.pc.connectionState
            if state == "connected" and session.connected_at is None:
                session.connected_at = session.last_heard = self._clock()
            elif state in ("failed", "closed") and not session.closed:
                self._spawn(self._vanished(session, f"connection {state}"))

        def ice_changed() -> None:
            state = session.pc.iceConnectionState
            if state in ("failed", "closed") and not session.closed:
                self._spawn(self._vanished(session, f"ICE {state}"))

        # Both, so that the first sign of a lost peer (DTLS closed by the peer, ICE
        # failed) frees it at once rather than on the watchdog's timeouts.
        session.pc.on("connectionstatechange", changed)
        session.pc.on("iceconnectionstatechange", ice_changed)

    async def _vanished(self, session: Session, reason: str) -> None:
        if session.role == "publisher":
            await self._publisher_vanished(session, reason)
        else:
            await self._close_viewer(session, reason)

    def gone_reason(self, session: Session, now: float) -> str | None:
        """Why the watchdog should free ``session`` now, or None."""
        cfg = self.config
        if session.connected_at is None:
            if now - session.created_at > cfg.connect_timeout:
                return "never connected"
            return None
        if session.role == "publisher":
            if now - session.last_heard > cfg.peer_timeout:
                return "no media"
            return None
        relay = self._relays.get(session.room)
        viewer = relay.viewer(session.id) if relay else None
        sent = viewer.last_taken() if viewer else None
        if sent is not None and sent - session.last_heard > cfg.peer_timeout:
            return "no RTCP"
        return None

    async def run(self) -> None:
        """The watchdog: frees vanished peers sooner than ICE consent expiry would."""
        while True:
            await asyncio.sleep(self.config.check_interval)
            now = self._clock()
            for session in list(self._sessions.values()):
                reason = self.gone_reason(session, now)
                if reason is not None and not session.closed:
                    await self._vanished(session, reason)

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _no_video() -> bool:
    return False
