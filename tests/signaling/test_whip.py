"""WHIP ingest and WHEP playback against the real server, with real aiortc peers.

The publisher sends 30 fps frames whose pixels spell a frame counter (and Opus
silence); viewers decode what the server forwards and read the counter back.
Every wait is bounded. Timing bounds here are behavioural (a keyframe asked for
versus one that would come 250 frames later), never performance figures.
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import itertools
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import av
import pytest
from aioice import stun
from aiortc import (
    AudioStreamTrack,
    MediaStreamError,
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
    rtcrtpreceiver,
    rtcrtpsender,
)
from support import (
    COUNTER_H,
    COUNTER_W,
    Server,
    counter_frame,
    make_settings,
    read_counter,
    start_server,
    stop_server,
)

from livehub import settings
from livehub.errors import Unavailable
from livehub.media.forwarding import is_forwarding
from livehub.media.ownership import owner_key
from livehub.media.relay import RoomRelay
from livehub.media.sessions import MediaSessions
from livehub.rooms import tokens
from livehub.signaling.whip import MEDIA

SDP = "application/sdp"
NO_ICE_SERVERS = RTCConfiguration(iceServers=[])
W, H = COUNTER_W, COUNTER_H
FPS = 30
NATURAL_KEYFRAME_INTERVAL = 250  # libx264's default keyint, which aiortc's encoder keeps
GRACE = 1  # the rooms' publisher_grace_seconds here, unless a test says otherwise
# How a publisher's close is seen when the peer connection's state changes (not the watchdog)
CLOSED_REASONS = ("connection closed", "connection failed", "ICE closed", "ICE failed")
MEDIA_TIMING = {
    "peer_timeout": 3.0,
    "connect_timeout": 8.0,
    "check_interval": 0.1,
}


# a publisher track whose frames carry their number


class CounterTrack(MediaStreamTrack):
    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self.running = asyncio.Event()
        self.running.set()
        self._start: float | None = None

    async def recv(self) -> av.VideoFrame:
        await self.running.wait()
        self._start = self._start or time.monotonic()
        await asyncio.sleep(max(0.0, self._start + self.count / FPS - time.monotonic()))
        frame = counter_frame(self.count)
        frame.pts = self.count * (90000 // FPS)
        frame.time_base = fractions.Fraction(1, 90000)
        self.count += 1
        return frame


# clients


@dataclass
class Reply:
    status: int
    headers: Any
    text: str

    def json(self) -> Any:
        import json

        return json.loads(self.text)


async def request(
    server: Server,
    method: str,
    path: str,
    body: bytes | str = b"",
    token: str | None = None,
    content_type: str | None = SDP,
    headers: dict[str, str] | None = None,
) -> Reply:
    h = dict(headers or {})
    if token:
        h["Authorization"] = f"Bearer {token}"
    if content_type:
        h["Content-Type"] = content_type
    data = body.encode() if isinstance(body, str) else body
    async with server.http.request(method, server.url + path, data=data, headers=h) as resp:
        return Reply(resp.status, resp.headers, await resp.text())


@dataclass
class Peer:
    pc: RTCPeerConnection
    location: str = ""
    etag: str = ""
    track: CounterTrack | None = None
    video: list[tuple[float, int]] = field(default_factory=list)
    audio: int = 0
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def counters(self) -> list[int]:
        return [n for _, n in self.video]


class Clients:
    """Every peer a test makes, closed before the server stops."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.peers: list[Peer] = []

    async def offer(
        self,
        kinds: tuple[str, ...],
        direction: str,
        track: CounterTrack | None = None,
        prefer: str | None = None,
    ) -> Peer:
        peer = Peer(RTCPeerConnection(NO_ICE_SERVERS), track=track)
        self.peers.append(peer)
        for kind in kinds:
            if direction == "sendonly":
                source = track if kind == "video" else AudioStreamTrack()
                transceiver = peer.pc.addTransceiver(source, direction="sendonly")
            else:
                transceiver = peer.pc.addTransceiver(kind, direction="recvonly")
            if prefer and kind == "video":
                transceiver.setCodecPreferences(
                    [
                        c
                        for c in RTCRtpSender.getCapabilities("video").codecs
                        if c.mimeType == prefer
                    ]
                )
        await peer.pc.setLocalDescription(await peer.pc.createOffer())
        return peer

    async def exchange(self, peer: Peer, path: str, token: str, sdp: str) -> Reply:
        reply = await request(self.server, "POST", path, sdp, token)
        if reply.status == 201:
            peer.location, peer.etag = reply.headers["Location"], reply.headers["ETag"]
            await peer.pc.setRemoteDescription(RTCSessionDescription(reply.text, "answer"))
        return reply

    async def publish(
        self, room: str, token: str, *, audio: bool = True, prefer: str | None = None
    ) -> Peer:
        kinds = ("video", "audio") if audio else ("video",)
        peer = await self.offer(kinds, "sendonly", CounterTrack(), prefer)
        # Without abs-send-time the server sends no REMB, so aiortc's encoder never
        # restarts (which would make a keyframe nobody asked for).
        sdp = "".join(
            line
            for line in peer.pc.localDescription.sdp.splitlines(keepends=True)
            if "abs-send-time" not in line
        )
        reply = await self.exchange(peer, f"/whip/{room}", token, sdp)
        assert reply.status == 201, reply.text
        return peer

    async def watch(
        self, room: str, token: str, *, audio: bool = True, prefer: str | None = None
    ) -> Peer:
        kinds = ("video", "audio") if audio else ("video",)
        peer = await self.offer(kinds, "recvonly", prefer=prefer)
        peer.pc.on("track", lambda track: peer.tasks.append(asyncio.create_task(read(peer, track))))
        reply = await self.exchange(peer, f"/whep/{room}", token, peer.pc.localDescription.sdp)
        assert reply.status == 201, reply.text
        return peer

    async def close(self) -> None:
        for peer in self.peers:
            for task in peer.tasks:
                task.cancel()
            await asyncio.gather(*peer.tasks, return_exceptions=True)
            await peer.pc.close()


async def read(peer: Peer, track: MediaStreamTrack) -> None:
    try:
        while True:
            frame = await track.recv()
            if isinstance(frame, av.VideoFrame):
                peer.video.append((time.monotonic(), read_counter(frame)))
            else:
                peer.audio += 1
    except MediaStreamError:
        return


async def until(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Wait for ``condition``; returns the seconds it took, fails after ``timeout``."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


def in_order(counters: list[int]) -> None:
    assert counters == sorted(counters) and len(set(counters)) == len(counters), counters
    steps = [b - a for a, b in itertools.pairwise(counters)]
    assert sum(s == 1 for s in steps) >= 0.9 * len(steps), f"too many frames lost: {counters}"


# fixtures


@pytest.fixture
async def media_server(tmp_path: Path) -> AsyncIterator[Server]:
    # Forwarding alone: no recorder or HLS packager subscribed to the relay (tests/media).
    off = {"enabled": False}
    extra = {"media": MEDIA_TIMING, "recording": off, "hls": off}
    srv = await start_server(make_settings(tmp_path / "data", extra=extra))
    yield srv
    await stop_server(srv)


@pytest.fixture
async def clients(media_server: Server) -> AsyncIterator[Clients]:
    made = Clients(media_server)
    yield made
    await made.close()


@pytest.fixture
async def room(media_server: Server) -> dict[str, Any]:
    return await media_server.create_room(settings={"publisher_grace_seconds": GRACE})


def media(server: Server) -> MediaSessions:
    return server.app[MEDIA]


def relay_of(server: Server, room_id: str) -> RoomRelay:
    relay = media(server).relay(room_id)
    assert relay is not None, f"room {room_id} has no relay"
    return relay


async def room_view(server: Server, room_id: str) -> dict[str, Any]:
    status, view = await server.api("GET", f"/api/rooms/{room_id}")
    assert status == 200
    return dict(view)


async def stream_events(server: Server, room_id: str) -> list[str]:
    kinds = ["stream.started", "stream.stopped"]
    return [e.kind for e in await server.services.log.by_kinds(room_id, kinds)]


# publishing and watching


async def test_published_frames_reach_every_viewer_in_order_with_no_codec_on_the_server(
    media_server: Server,
    clients: Clients,
    room: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    decoders: list[str] = []
    encoders: list[str] = []

    def counting(real: Callable[[Any], Any], calls: list[str]) -> Callable[[Any], Any]:
        def make(codec: Any) -> Any:
            calls.append(codec.mimeType)
            return real(codec)

        return make

    monkeypatch.setattr(
        rtcrtpreceiver, "get_decoder", counting(rtcrtpreceiver.get_decoder, decoders)
    )
    monkeypatch.setattr(rtcrtpsender, "get_encoder", counting(rtcrtpsender.get_encoder, encoders))
    rid = room["room"]["id"]
    assert not (await room_view(media_server, rid))["live"]
    publisher = await clients.publish(rid, room["host_token"])
    view = await room_view(media_server, rid)
    assert view["live"] and view["stream_id"], "going live over WHIP starts the stream"
    assert await stream_events(media_server, rid) == ["stream.started"]
    viewers = [await clients.watch(rid, media_server.token(rid)) for _ in range(2)]
    for viewer in viewers:
        await until(lambda v=viewer: len(v.video) >= 30 and v.audio >= 10, 10, "frames")
        in_order(viewer.counters())
    assert publisher.location.startswith(f"/whip/{rid}/")
    sessions = media(media_server)
    relay = sessions.relay(rid)
    assert relay is not None and relay.viewer_count == 2
    server_publisher = sessions.publisher(rid)
    assert server_publisher is not None
    assert all(is_forwarding(r) for r in server_publisher.pc.getReceivers())
    for session in sessions.sessions(rid):
        if session.role == "viewer":
            assert {p.mime for p in session.packers} == {"video/h264", "audio/opus"}
            assert all(p.packed > 0 for p in session.packers)
    # Only the test's own peers ever built a codec: the publisher's two encoders and
    # each viewer's two decoders. The server forwarded without either.
    assert sorted(encoders) == ["audio/opus", "video/H264"]
    assert sorted(decoders) == ["audio/opus", "audio/opus", "video/H264", "video/H264"]


async def test_a_late_viewer_starts_on_a_keyframe_requested_for_it(
    media_server: Server, clients: Clients, room: dict[str, Any]
) -> None:
    rid = room["room"]["id"]
    publisher = await clients.publish(rid, room["host_token"], audio=False)
    track = publisher.track
    assert track is not None
    first = await clients.watch(rid, media_server.token(rid), audio=False)
    await until(lambda: len(first.video) >= 40, 10, "the first viewer's frames")
    relay = media(media_server).relay(rid)
    assert relay is not None
    asked_before, keyframes_before = relay.keyframes.sent, relay.keyframes_in
    joined_at, count_at_join = time.monotonic(), track.count
    late = await clients.watch(rid, media_server.token(rid), audio=False)
    await until(lambda: bool(late.video), 5, "the late viewer's first frame")
    waited = late.video[0][0] - joined_at
    first_counter = late.video[0][1]
    # Without a keyframe request the late viewer could decode nothing before frame
    # 250, over 5 s away. It started on a fresh keyframe made for it instead.
    next_natural = (count_at_join // NATURAL_KEYFRAME_INTERVAL + 1) * NATURAL_KEYFRAME_INTERVAL
    assert (next_natural - count_at_join) / FPS > 5
    assert count_at_join <= first_counter < count_at_join + FPS, (count_at_join, first_counter)
    assert waited < 2.0, f"the late viewer waited {waited:.2f} s"
    assert relay.keyframes.sent > asked_before and relay.keyframes_in > keyframes_before
    await until(lambda: len(late.video) >= 15, 5, "more frames")
    in_order(late.counters())


async def test_a_vp8_publisher_is_forwarded_as_vp8(
    media_server: Server, clients: Clients, room: dict[str, Any]
) -> None:
    rid = room["room"]["id"]
    await clients.publish(rid, room["host_token"], audio=False, prefer="video/VP8")
    assert relay_of(media_server, rid).codecs == {"video": "video/VP8"}
    viewer = await clients.watch(rid, media_server.token(rid), audio=False)
    await until(lambda: len(viewer.video) >= 15, 10, "VP8 frames")
    in_order(viewer.counters())
    h264_only = await clients.offer(("video",), "recvonly", prefer="video/H264")
    reply = await request(
        media_server,
        "POST",
        f"/whep/{rid}",
        h264_only.pc.localDescription.sdp,
        media_server.token(rid),
    )
    assert reply.status == 400 and reply.json()["code"] == "no_codec"
    assert "VP8" in reply.json()["message"]


# freeing sessions


async def test_a_deleted_viewer_is_freed_at_once(
    media_server: Server, clients: Clients, room: dict[str, Any]
) -> None:
    rid = room["room"]["id"]
    await clients.publish(rid, room["host_token"], audio=False)
    token = media_server.token(rid, viewer_id="v_del")
    staying = await clients.watch(rid, media_server.token(rid), audio=False)
    leaving = await clients.watch(rid, token, audio=False)
    await until(lambda: len(leaving.video) >= 5, 10, "frames")
    relay = media(media_server).relay(rid)
    assert relay is not None and relay.viewer_count == 2
    session = media(media_server).get(leaving.location.rsplit("/", 1)[1])
    assert session is not None
    reply = await request(media_server, "DELETE", leaving.location, token=token, content_type=None)
    assert reply.status == 200
    assert relay.viewer_count == 1 and session.pc.connectionState == "closed"
    assert media(media_server).get(session.id) is None
    again = await request(media_server, "DELETE", leaving.location, token=token, content_type=None)
    assert again.status == 200, "a DELETE of a session that ended is answered as done"
    seen = len(staying.video)
    await until(lambda: len(staying.video) > seen + 5, 5, "the other viewer carrying on")


VIEWER_SCRIPT = """
import asyncio, sys
import aiohttp
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

async def main(url, token):
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("video", direction="recvonly")
    track = asyncio.get_running_loop().create_future()
    pc.on("track", track.set_result)
    await pc.setLocalDescription(await pc.createOffer())
    headers = {"Content-Type": "application/sdp", "Authorization": "Bearer " + token}
    async with aiohttp.ClientSession() as http:
        async with http.post(url, data=pc.localDescription.sdp, headers=headers) as r:
            assert r.status == 201, await r.text()
            print(r.headers["Location"], flush=True)
            answer = await r.text()
    await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    await (await track).recv()
    print("receiving", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


async def test_a_killed_viewer_is_freed_by_the_server_timeout(
    media_server: Server, clients: Clients, room: dict[str, Any]
) -> None:
    rid = room["room"]["id"]
    await clients.publish(rid, room["host_token"], audio=False)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        VIEWER_SCRIPT,
        f"{media_server.url}/whep/{rid}",
        media_server.token(rid),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        location = (await asyncio.wait_for(process.stdout.readline(), 20)).decode().strip()
        assert location.startswith(f"/whep/{rid}/"), location
        line = await asyncio.wait_for(process.stdout.readline(), 10)
        assert line.strip() == b"receiving"
        relay = media(media_server).relay(rid)
        assert relay is not None and relay.viewer_count == 1
        process.kill()  # SIGKILL: no DELETE, no DTLS close, just silence
        await process.wait()
        took = await until(lambda: relay.viewer_count == 0, 15, "the server to free the viewer")
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    # ICE consent would take 30 s or more; the RTCP watchdog takes peer_timeout.
    assert took < 10
    assert media(media_server).get(location.rsplit("/", 1)[1]) is None


async def test_a_vanished_publisher_ends_the_stream_after_the_grace_period(
    media_server: Server, clients: Clients, room: dict[str, Any]
) -> None:
    rid = room["room"]["id"]
    publisher = await clients.publish(rid, room["host_token"], audio=False)
    viewer = await clients.watch(rid, media_server.token(rid), audio=False)
    await until(lambda: len(viewer.video) >= 5, 10, "frames")
    await publisher.pc.close()  # gone without a DELETE
    gone = time.monotonic()
    await until(lambda: media(media_server).publisher(rid) is None, 5, "the publisher to drop")
    assert (await room_view(media_server, rid))["live"], "still live during the grace period"
    await until(lambda: media(media_server).relay(rid) is None, 5, "the grace period to end")
    assert time.monotonic() - gone >= GRACE
    assert not (await room_view(media_server, rid))["live"]
    assert await stream_events(media_server, rid) == ["stream.started", "stream.stopped"]
    assert media(media_server).sessions(rid) == [], "its viewers were freed too"
    reply = await request(media_server, "POST", f"/whep/{rid}", "v=0", media_server.token(rid))
    assert reply.status == 409 and reply.json()["code"] == "not_live"


async def test_a_publisher_back_within_the_grace_period_continues_the_stream(
    media_server: Server, clients: Clients, room: dict[str, Any]
) -> None:
    rid = room["room"]["id"]
    first = await clients.publish(rid, room["host_token"], audio=False)
    stream_id = (await room_view(media_server, rid))["stream_id"]
    viewer = await clients.watch(rid, media_server.token(rid), audio=False)
    sock = await media_server.client(rid)
    await until(lambda: len(viewer.video) >= 5, 10, "frames")
    await first.pc.close()
    paused = await sock.wait_for("media", lambda m: m["state"] == "paused")
    assert paused == {"state": "paused", "stream": stream_id}
    view = await room_view(media_server, rid)
    assert view["live"] and view["paused"] and view["stream_id"] == stream_id
    late = await media_server.client(rid)
    assert late.welcome["room"]["paused"] is True, "a viewer joining now is told it is paused"
    second = await clients.publish(rid, room["host_token"], audio=False)
    assert second.track is not None
    back = await sock.wait_for("media", lambda m: m["state"] == "live")
    assert back == {"state": "live", "stream": stream_id}
    # The new publisher's counter starts again at 0: the viewer decodes those frames,
    # on the WHEP session it had.
    await until(
        lambda: any(n < 30 for n in viewer.counters()[5:]), 10, "the new publisher's frames"
    )
    await asyncio.sleep(GRACE + 0.3)
    view = await room_view(media_server, rid)
    assert view["live"] and not view["paused"] and view["stream_id"] == stream_id
    assert await stream_events(media_server, rid) == ["stream.started"], "the same stream"
    kinds = ["stream.paused", "stream.resumed"]
    assert [e.kind for e in await media_server.services.log.by_kinds(rid, kinds)] == kinds
    assert [m["state"] for m in sock.events["media"]] == ["paused", "live"]


async def test_a_closed_publisher_is_seen_at_once_not_by_the_watchdog(
    media_server: Server, clients: Clients
) -> None:
    made = await media_server.create_room()  # the default grace period (30 s): paused
    rid = made["room"]["id"]
    assert made["room"]["settings"]["publisher_grace_seconds"] == 30
    publisher = await clients.publish(rid, made["host_token"], audio=False)
    sock = await media_server.client(rid)
    await until(lambda: relay_of(media_server, rid).frames_in > 5, 10, "frames")
    await publisher.pc.close()  # no DELETE: DTLS close_notify, then nothing
    await sock.wait_for("media", lambda m: m["state"] == "paused")
    # The watchdog would take the publisher for gone only after peer_timeout without media:
    # the connection's state change came first.
    ended = media(media_server).ended(publisher.location.rsplit("/", 1)[1])
    assert ended is not None and ended.reason in CLOSED_REASONS, ended
    assert media(media_server).publisher(rid) is None and media(media_server).holding(rid)
    assert (await room_view(media_server, rid))["live"], "paused, not ended"


async def test_a_pause_that_failed_is_made_by_the_next_media_check(
    media_server: Server, clients: Clients, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = await media_server.create_room()
    rid = made["room"]["id"]
    publisher = await clients.publish(rid, made["host_token"], audio=False)
    sock = await media_server.client(rid)
    await until(lambda: relay_of(media_server, rid).frames_in > 3, 10, "frames")
    rooms = media_server.services.rooms
    real = rooms.pause_stream
    failures: list[str] = []

    async def down_once(room_id: str, stream_id: str, **kw: Any) -> Any:
        if not failures:
            failures.append(room_id)
            raise Unavailable("The state store cannot be reached.")
        return await real(room_id, stream_id, **kw)

    monkeypatch.setattr(rooms, "pause_stream", down_once)
    await publisher.pc.close()
    await sock.wait_for("media", lambda m: m["state"] == "paused")
    assert failures == [rid], "the first attempt failed; the media check paused it after"
    assert (await room_view(media_server, rid))["paused"]


async def test_with_no_grace_period_a_lost_publisher_ends_the_stream_at_once(
    media_server: Server, clients: Clients
) -> None:
    made = await media_server.create_room(settings={"publisher_grace_seconds": 0})
    rid = made["room"]["id"]
    publisher = await clients.publish(rid, made["host_token"], audio=False)
    stream_id = (await room_view(media_server, rid))["stream_id"]
    viewer = await clients.watch(rid, media_server.token(rid), audio=False)
    sock = await media_server.client(rid)
    await until(lambda: len(viewer.video) >= 5, 10, "frames")
    await publisher.pc.close()
    ended = await sock.wait_for("media", lambda m: m["state"] == "ended")
    assert ended == {"state": "ended", "stream": stream_id}
    gone = media(media_server).ended(publisher.location.rsplit("/", 1)[1])
    assert gone is not None and gone.reason in CLOSED_REASONS, "seen closed, not timed out"
    assert [m["state"] for m in sock.events["media"]] == ["ended"], "never paused"
    assert not (await room_view(media_server, rid))["live"]
    assert await stream_events(media_server, rid) == ["stream.started", "stream.stopped"]
    assert media(media_server).sessions(rid) == [], "the viewers' sessions were closed"
    await until(lambda: viewer.pc.connectionState in ("closed", "failed"), 5, "the viewer cut off")


async def test_a_delete_after_the_peer_connection_closed_answers_200_and_ends_the_stream(
    media_server: Server, clients: Clients
) -> None:
    made = await media_server.create_room()  # 30 s of grace: only the DELETE ends it now
    rid, host = made["room"]["id"], made["host_token"]
    sock = await media_server.client(rid)
    # As OBS and the npm whip client do: close the peer connection, then DELETE at once.
    racing = await clients.publish(rid, host, audio=False)
    await until(lambda: relay_of(media_server, rid).frames_in > 3, 10, "frames")
    await racing.pc.close()
    reply = await request(media_server, "DELETE", racing.location, token=host, content_type=None)
    assert reply.status == 200, reply.text
    await sock.wait_for("media", lambda m: m["state"] == "ended")
    assert not (await room_view(media_server, rid))["live"]
    # And after the server surely saw the close (the stream was paused for it).
    late = await clients.publish(rid, host, audio=False)
    await until(lambda: relay_of(media_server, rid).frames_in > 3, 10, "frames")
    await late.pc.close()
    await sock.wait_for("media", lambda m: m["state"] == "paused")
    assert media(media_server).get(late.location.rsplit("/", 1)[1]) is None, "gone here"
    reply = await request(media_server, "DELETE", late.location, token=host, content_type=None)
    assert reply.status == 200, reply.text
    assert not (await room_view(media_server, rid))["live"], "ended by the DELETE, not later"
    assert media(media_server).sessions(rid) == [] and media(media_server).relay(rid) is None
    states = ["live", "ended", "live", "paused", "ended"]
    await sock.wait_until(lambda: len(sock.events["media"]) == len(states))
    assert [m["state"] for m in sock.events["media"]] == states
    assert await stream_events(media_server, rid) == ["stream.started", "stream.stopped"] * 2
    again = await request(media_server, "DELETE", late.location, token=host, content_type=None)
    assert again.status == 200
    viewer_token = media_server.token(rid)
    refused = await request(
        media_server, "DELETE", late.location, token=viewer_token, content_type=None
    )
    assert refused.status == 403, "an ended session is checked like a live one"


async def test_a_late_delete_of_an_old_publisher_leaves_its_successor_alone(
    media_server: Server, clients: Clients
) -> None:
    made = await media_server.create_room()
    rid, host = made["room"]["id"], made["host_token"]
    sock = await media_server.client(rid)
    old = await clients.publish(rid, host, audio=False)
    await until(lambda: relay_of(media_server, rid).frames_in > 3, 10, "frames")
    await old.pc.close()
    await sock.wait_for("media", lambda m: m["state"] == "paused")
    new = await clients.publish(rid, host, audio=False)
    await sock.wait_for("media", lambda m: m["state"] == "live")
    reply = await request(media_server, "DELETE", old.location, token=host, content_type=None)
    assert reply.status == 200
    view = await room_view(media_server, rid)
    assert view["live"] and not view["paused"]
    assert media(media_server).publisher(rid) is not None
    assert new.track is not None
    seen = new.track.count
    await until(lambda: relay_of(media_server, rid).frames_in > seen + 5, 10, "more frames")


async def test_whep_viewers_are_told_the_stream_ended_and_their_sessions_closed(
    media_server: Server, clients: Clients, room: dict[str, Any]
) -> None:
    rid = room["room"]["id"]
    publisher = await clients.publish(rid, room["host_token"], audio=False)
    stream_id = (await room_view(media_server, rid))["stream_id"]
    viewers = [await clients.watch(rid, media_server.token(rid), audio=False) for _ in range(2)]
    sock = await media_server.client(rid)
    for viewer in viewers:
        await until(lambda v=viewer: len(v.video) >= 3, 10, "frames")
    reply = await request(
        media_server, "DELETE", publisher.location, token=room["host_token"], content_type=None
    )
    assert reply.status == 200
    assert await sock.wait_for("media") == {"state": "ended", "stream": stream_id}
    assert media(media_server).sessions(rid) == []
    for viewer in viewers:
        await until(
            lambda v=viewer: v.pc.connectionState in ("closed", "failed"), 5, "the viewer cut off"
        )


async def test_a_publisher_that_stops_sending_is_taken_for_gone(
    media_server: Server, clients: Clients, room: dict[str, Any]
) -> None:
    rid = room["room"]["id"]
    publisher = await clients.publish(rid, room["host_token"], audio=False)
    assert publisher.track is not None
    await until(lambda: relay_of(media_server, rid).frames_in > 5, 10, "frames")
    publisher.track.running.clear()  # connected, but no media any more
    timeout = MEDIA_TIMING["peer_timeout"] + GRACE + 3
    await until(lambda: media(media_server).relay(rid) is None, timeout, "the stream to end")
    assert not (await room_view(media_server, rid))["live"]


async def test_deleting_the_publisher_ends_the_stream_now(
    media_server: Server, clients: Clients, room: dict[str, Any]
) -> None:
    rid = room["room"]["id"]
    publisher = await clients.publish(rid, room["host_token"], audio=False)
    viewer = await clients.watch(rid, media_server.token(rid), audio=False)
    await until(lambda: len(viewer.video) >= 3, 10, "frames")
    reply = await request(
        media_server, "DELETE", publisher.location, token=room["host_token"], content_type=None
    )
    assert reply.status == 200
    assert not (await room_view(media_server, rid))["live"]
    assert media(media_server).sessions(rid) == []
    assert await stream_events(media_server, rid) == ["stream.started", "stream.stopped"]
    assert await media_server.services.store.get(owner_key(rid)) is None


async def test_stopping_the_stream_over_rest_disconnects_the_publisher(
    media_server: Server, clients: Clients, room: dict[str, Any]
) -> None:
    rid, host = room["room"]["id"], room["host_token"]
    publisher = await clients.publish(rid, host, audio=False)
    viewer = await clients.watch(rid, media_server.token(rid), audio=False)
    await until(lambda: len(viewer.video) >= 3, 10, "frames")
    assert await media_server.services.store.get(owner_key(rid)) is not None, "this node owns it"
    status, stopped = await media_server.api(
        "DELETE", f"/api/rooms/{rid}/streams/current", token=host
    )
    assert status == 200 and stopped["ended_at"] is not None
    # By the time the stop answers, the server has let go of every peer of the room.
    assert media(media_server).sessions(rid) == [] and media(media_server).relay(rid) is None
    assert await media_server.services.store.get(owner_key(rid)) is None
    await until(
        lambda: publisher.pc.connectionState in ("closed", "failed"), 5, "the publisher cut off"
    )
    await until(lambda: viewer.pc.connectionState in ("closed", "failed"), 5, "the viewer cut off")
    assert await stream_events(media_server, rid) == ["stream.started", "stream.stopped"]
    # The host can go live again at once, as a new stream.
    again = await clients.publish(rid, host, audio=False)
    view = await room_view(media_server, rid)
    assert view["live"] and view["stream_id"] != stopped["id"]
    watcher = await clients.watch(rid, media_server.token(rid), audio=False)
    await until(lambda: len(watcher.video) >= 3, 10, "the new stream's frames")
    assert again.pc.connectionState == "connected"


async def test_closing_the_room_disconnects_the_publisher(
    media_server: Server, clients: Clients, room: dict[str, Any]
) -> None:
    rid = room["room"]["id"]
    publisher = await clients.publish(rid, room["host_token"], audio=False)
    await until(lambda: relay_of(media_server, rid).frames_in > 3, 10, "frames")
    status, _ = await media_server.api("DELETE", f"/api/rooms/{rid}")
    assert status == 200
    assert media(media_server).sessions(rid) == []
    await until(
        lambda: publisher.pc.connectionState in ("closed", "failed"), 5, "the publisher cut off"
    )


class StunResponder(asyncio.DatagramProtocol):
    """Just enough of a STUN server to answer binding requests on loopback."""

    def __init__(self) -> None:
        self.hits = 0
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        asked = stun.parse_message(data)
        answer = stun.Message(
            message_method=stun.Method.BINDING,
            message_class=stun.Class.RESPONSE,
            transaction_id=asked.transaction_id,
        )
        answer.attributes["XOR-MAPPED-ADDRESS"] = addr
        self.hits += 1
        assert self.transport is not None
        self.transport.sendto(bytes(answer), addr)


async def test_configured_ice_servers_are_used_and_announced(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    transport, responder = await loop.create_datagram_endpoint(
        StunResponder, local_addr=("0.0.0.0", 0)
    )
    port = transport.get_extra_info("sockname")[1]
    url = f"stun:127.0.0.1:{port}"
    server = await start_server(make_settings(tmp_path / "data", ice_servers=(url,)))
    peers = Clients(server)
    try:
        made = await server.create_room()
        offer = await peers.offer(("video",), "sendonly", CounterTrack())
        reply = await peers.exchange(
            offer,
            f"/whip/{made['room']['id']}",
            made["host_token"],
            offer.pc.localDescription.sdp,
        )
        assert reply.status == 201
        assert reply.headers.getall("Link") == [f'<{url}>; rel="ice-server"']
        assert responder.hits > 0 and "typ srflx" in reply.text
        options = await request(server, "OPTIONS", f"/whip/{made['room']['id']}", content_type=None)
        assert "Link" not in options.headers, "no ICE servers to someone without a token"
    finally:
        await peers.close()
        await stop_server(server)
        transport.close()


def test_ice_servers_come_from_flags_or_the_environment() -> None:
    parser = argparse.ArgumentParser()
    settings.add_arguments(parser)
    flags = ["--ice-server", "stun:a.example:3478", "--ice-server", "turn:b.example,stun:c.example"]
    loaded = settings.load(parser.parse_args(flags), env={})
    assert loaded.ice_servers == ("stun:a.example:3478", "turn:b.example", "stun:c.example")
    env = {"LIVEHUB_ICE_SERVERS": "stun:x.example, stuns:y.example"}
    assert settings.load(None, env=env).ice_servers == ("stun:x.example", "stuns:y.example")
    assert settings.load(None, env={}).ice_servers == (), "none unless configured"
    with pytest.raises(ValueError, match=r"LIVEHUB_ICE_SERVERS.*http://x"):
        settings.load(None, env={"LIVEHUB_ICE_SERVERS": "http://x"})


# hostile and wrong requests


async def an_offer(clients: Clients, kinds: tuple[str, ...] = ("video", "audio")) -> str:
    peer = await clients.offer(kinds, "sendonly", CounterTrack())
    return str(peer.pc.localDescription.sdp)


async def test_options_answers_without_a_token_and_other_methods_are_refused(
    media_server: Server, room: dict[str, Any]
) -> None:
    rid = room["room"]["id"]
    for path in (f"/whip/{rid}", f"/whep/{rid}"):
        reply = await request(media_server, "OPTIONS", path, content_type=None)
        assert reply.status == 204
        assert reply.headers["Accept-Post"] == SDP
        assert reply.headers["Access-Control-Allow-Origin"] == "*"
        assert "POST" in reply.headers["Access-Control-Allow-Methods"]
        assert "Authorization" in reply.headers["Access-Control-Allow-Headers"]
        for method in ("GET", "PUT", "PATCH", "DELETE"):
            refused = await request(media_server, method, path, token=room["host_token"])
            assert refused.status == 405, (method, path)
            assert refused.json()["code"] == "method_not_allowed"
            assert refused.headers["Allow"] == "OPTIONS, POST"
        session = await request(media_server, "OPTIONS", f"{path}/nosuch", content_type=None)
        assert session.status == 204 and "Accept-Patch" in session.headers
        for method in ("GET", "POST", "PUT"):
            refused = await request(media_server, method, f"{path}/nosuch", token="x")
            assert refused.status == 405 and refused.headers["Allow"] == "OPTIONS, PATCH, DELETE"


async def test_whip_refuses_tokens_that_do_not_grant_publishing(
    media_server: Server, clients: Clients, room: dict[str, Any]
) -> None:
    rid = room["room"]["id"]
    other = await media_server.create_room()
    sdp = await an_offer(clients)
    expired, _, _ = tokens.mint(
        media_server.services.auth.secret, room=rid, role="host", name="Old", now=1_000_000
    )
    cases = [
        (None, 401, "token_missing"),
        ("garbage", 401, "token_invalid"),
        (expired, 401, "token_expired"),
        (media_server.token(rid), 403, "forbidden"),
        (media_server.token(rid, role="moderator"), 403, "forbidden"),
        (other["host_token"], 403, "token_wrong_room"),
    ]
    for token, status, code in cases:
        reply = await request(media_server, "POST", f"/whip/{rid}", sdp, token)
        assert (reply.status, reply.json()["code"]) == (status, code), token
        assert reply.headers["Access-Control-Allow-Origin"] == "*"
    missing = await request(media_server, "POST", "/whip/nosuchroom", sdp, room["host_token"])
    assert missing.status == 404
    assert not (await room_view(media_server, rid))["live"]
    assert media(media_server).sessions() == []


async def test_garbage_and_oversized_sdp_are_refused_and_change_nothing(
    media_server: Server, clients: Clients, room: dict[str, Any]
) -> None:
    rid, host = room["room"]["id"], room["host_token"]
    good = await an_offer(clients)
    without_ice = "".join(
        line for line in good.splitlines(keepends=True) if not line.startswith("a=ice-ufrag")
    )
    without_fingerprint = "".join(
        line for line in good.splitlines(keepends=True) if not line.startswith("a=fingerprint")
    )
    with_data = good + "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:9\r\n"
    bodies: list[bytes | str] = [
        b"",
        b"hello",
        b"\xff\xfe\x00\x01" * 10,
        "v=0\r\nm=video garbage\r\n",
        "v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n",
        good[: len(good) // 3],
        good.replace("a=rtpmap:", "a=rtpmap:x"),
        good.replace("c=IN IP4", "c=IN IP9"),
        good.replace("a=mid:0\r\n", "a=mid:0\r\na=candidate:1 1 udp 1 evil.example 9 typ host\r\n"),
        without_ice,
        without_fingerprint,
        with_data,
        good + "a=x-padding:" + "x" * (64 * 1024) + "\r\n",
        good.replace("a=sendonly", "a=recvonly"),
    ]
    for body in bodies:
        reply = await request(media_server, "POST", f"/whip/{rid}", body, host)
        assert reply.status == 400, (reply.status, reply.text, body[:80])
        assert reply.json()["code"] == "bad_sdp" and reply.json()["message"]
    wrong_type = await request(media_server, "POST", f"/whip/{rid}", good, host, "text/plain")
    assert wrong_type.status == 415 and wrong_type.json()["code"] == "unsupported_media_type"
    assert not (await room_view(media_server, rid))["live"]
    assert media(media_server).sessions() == [] and await stream_events(media_server, rid) == []
    await clients.publish(rid, host)  # and the server still serves a proper publisher


async def test_an_offer_without_a_usable_codec_is_refused(
    media_server: Server, clients: Clients, room: dict[str, Any]
) -> None:
    rid, host = room["room"]["id"], room["host_token"]
    good = await an_offer(clients, ("video",))
    vp9_av1 = good.replace("VP8/90000", "VP9/90000").replace("H264/90000", "AV1/90000")
    reply = await request(media_server, "POST", f"/whip/{rid}", vp9_av1, host)
    assert reply.status == 400 and reply.json()["code"] == "no_codec"
    assert "AV1" in reply.json()["message"] and "H264" in reply.json()["message"]
    pcmu = await clients.offer(("audio",), "sendonly")
    pcmu.pc.getTransceivers()[0].setCodecPreferences(
        [c for c in RTCRtpSender.getCapabilities("audio").codecs if c.mimeType == "audio/PCMU"]
    )
    await pcmu.pc.setLocalDescription(await pcmu.pc.createOffer())
    reply = await request(media_server, "POST", f"/whip/{rid}", pcmu.pc.localDescription.sdp, host)
    assert reply.status == 400 and reply.json()["code"] == "no_codec"
    assert "Opus" in reply.json()["message"]
    assert media(media_server).sessions() == []


async def test_a_second_publisher_is_refused(
    media_server: Server, clients: Clients, room: dict[str, Any]
) -> None:
    rid, host = room["room"]["id"], room["host_token"]
    await clients.publish(rid, host, audio=False)
    second = await an_offer(clients)
    reply = await request(media_server, "POST", f"/whip/{rid}", second, host)
    assert reply.status == 409 and reply.json()["code"] == "publisher_exists"
    assert len(media(media_server).sessions(rid)) == 1


async def test_whep_needs_a_token_a_live_room_and_a_matching_codec(
    media_server: Server, clients: Clients, room: dict[str, Any]
) -> None:
    rid = room["room"]["id"]
    other = await media_server.create_room()
    watcher = await clients.offer(("video",), "recvonly")
    sdp = watcher.pc.localDescription.sdp
    not_live = await request(media_server, "POST", f"/whep/{rid}", sdp, media_server.token(rid))
    assert not_live.status == 409 and not_live.json()["code"] == "not_live"
    await clients.publish(rid, room["host_token"], audio=False)
    for token, status, code in [
        (None, 401, "token_missing"),
        (other["host_token"], 403, "token_wrong_room"),
        (media_server.token(other["room"]["id"]), 403, "token_wrong_room"),
    ]:
        reply = await request(media_server, "POST", f"/whep/{rid}", sdp, token)
        assert (reply.status, reply.json()["code"]) == (status, code)
    host = media_server.services.auth.principal(room["host_token"], await _room(media_server, rid))
    await media_server.services.moderation.ban(await _room(media_server, rid), host, "v_bad", "")
    banned = await request(
        media_server, "POST", f"/whep/{rid}", sdp, media_server.token(rid, viewer_id="v_bad")
    )
    assert banned.status == 403 and banned.json()["code"] == "banned"
    vp8_only = await clients.offer(("video",), "recvonly", prefer="video/VP8")
    reply = await request(
        media_server,
        "POST",
        f"/whep/{rid}",
        vp8_only.pc.localDescription.sdp,
        media_server.token(rid),
    )
    assert reply.status == 400 and reply.json()["code"] == "no_codec"
    assert "H264" in reply.json()["message"]
    sending = await an_offer(clients, ("video",))
    reply = await request(media_server, "POST", f"/whep/{rid}", sending, media_server.token(rid))
    assert reply.status == 400 and reply.json()["code"] == "bad_sdp"
    assert relay_of(media_server, rid).viewer_count == 0


async def _room(server: Server, room_id: str) -> Any:
    return await server.services.rooms.get(room_id)


async def test_session_requests_check_who_owns_the_session(
    media_server: Server, clients: Clients, room: dict[str, Any]
) -> None:
    rid = room["room"]["id"]
    await clients.publish(rid, room["host_token"], audio=False)
    mine = media_server.token(rid, viewer_id="v_mine")
    theirs = media_server.token(rid, viewer_id="v_theirs")
    viewer = await clients.watch(rid, mine, audio=False)
    frag = "a=mid:0\r\na=candidate:1 1 udp 2130706431 192.0.2.9 9 typ host\r\n"
    unknown = f"/whep/{rid}/no-such-session"
    for method in ("PATCH", "DELETE"):
        reply = await request(
            media_server, method, unknown, frag, mine, "application/trickle-ice-sdpfrag"
        )
        assert reply.status == 404 and reply.json()["code"] == "session_not_found"
        reply = await request(
            media_server, method, viewer.location, frag, theirs, "application/trickle-ice-sdpfrag"
        )
        assert reply.status == 403 and reply.json()["code"] == "not_your_session"
        reply = await request(
            media_server, method, viewer.location, frag, None, "application/trickle-ice-sdpfrag"
        )
        assert reply.status == 401
    as_whip = viewer.location.replace("/whep/", "/whip/")
    reply = await request(
        media_server, "DELETE", as_whip, token=room["host_token"], content_type=None
    )
    assert reply.status == 404, "a viewer session is not a WHIP session"
    assert relay_of(media_server, rid).viewer_count == 1


async def test_trickle_patches(
    media_server: Server, clients: Clients, room: dict[str, Any]
) -> None:
    rid = room["room"]["id"]
    host = room["host_token"]
    publisher = await clients.publish(rid, host, audio=False)
    frag_type = "application/trickle-ice-sdpfrag"
    candidate = "a=mid:0\r\na=candidate:1 1 udp 2130706431 192.0.2.9 9 typ host\r\n"
    ok = await request(
        media_server,
        "PATCH",
        publisher.location,
        candidate + "a=end-of-candidates\r\n",
        host,
        frag_type,
        {"If-Match": publisher.etag},
    )
    assert ok.status == 204 and ok.headers["ETag"] == publisher.etag
    stale = await request(
        media_server, "PATCH", publisher.location, candidate, host, frag_type, {"If-Match": '"old"'}
    )
    assert stale.status == 412
    restart = "a=ice-ufrag:newfrag\r\na=ice-pwd:newpasswordnewpassword00\r\n"
    reply = await request(
        media_server, "PATCH", publisher.location, restart, host, frag_type, {"If-Match": "*"}
    )
    assert reply.status == 422 and reply.json()["code"] == "ice_restart_unsupported"
    for bad in ("a=candidate:1 1 udp\r\n", "a=candidate:1 1 udp 1 not-an-ip 9 typ host\r\n"):
        reply = await request(media_server, "PATCH", publisher.location, bad, host, frag_type)
        assert reply.status == 400 and reply.json()["code"] == "bad_sdpfrag", bad
    reply = await request(media_server, "PATCH", publisher.location, candidate, host, SDP)
    assert reply.status == 415
    track = publisher.track
    assert track is not None
    seen = track.count
    await until(lambda: track.count > seen + 5, 5, "the publisher to keep going")
    assert media(media_server).publisher(rid) is not None
