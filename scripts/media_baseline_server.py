"""The baseline for scripts/bench_media.py: WHIP/WHEP served the usual aiortc way.

One publisher per room over WHIP; viewers over WHEP each get
``MediaRelay().subscribe(track)``, so the publisher's stream is decoded once and
every viewer's RTCRtpSender re-encodes it (libx264 for H.264) for that viewer.
That is what aiortc's examples do and what livehub's forwarding avoids.

No authentication, no validation beyond what aiortc does: a benchmark baseline,
never to be exposed. Listens on 127.0.0.1 only.

    python scripts/media_baseline_server.py --port 8099

Endpoints: GET /healthz; POST /whip/{room} and POST /whep/{room} (application/sdp
offer -> 201 with the answer and a Location); DELETE /whip/{room}/{id} and
DELETE /whep/{room}/{id}. GET /stats gives session counts (for the benchmark).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import secrets
from dataclasses import dataclass, field

from aiohttp import web
from aiortc import (
    MediaStreamError,
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaRelay

HOST = "127.0.0.1"
NO_ICE_SERVERS = RTCConfiguration(iceServers=[])  # never aiortc's default public STUN server


@dataclass
class Room:
    relay: MediaRelay = field(default_factory=MediaRelay)
    tracks: dict[str, MediaStreamTrack] = field(default_factory=dict)
    publisher: str | None = None
    drains: list[asyncio.Task[None]] = field(default_factory=list)


class Baseline:
    def __init__(self) -> None:
        self.rooms: dict[str, Room] = {}
        self.pcs: dict[str, tuple[str, str, RTCPeerConnection]] = {}  # id -> (room, kind, pc)

    def room(self, name: str) -> Room:
        return self.rooms.setdefault(name, Room())

    async def drop(self, sid: str) -> None:
        entry = self.pcs.pop(sid, None)
        if entry is None:
            return
        name, kind, pc = entry
        room = self.rooms.get(name)
        if kind == "whip" and room is not None and room.publisher == sid:
            for task in room.drains:
                task.cancel()
            await asyncio.gather(*room.drains, return_exceptions=True)
            self.rooms.pop(name, None)
        await pc.close()

    def watch(self, sid: str, pc: RTCPeerConnection) -> None:
        @pc.on("connectionstatechange")
        async def _() -> None:
            if pc.connectionState in ("failed", "closed"):
                await self.drop(sid)

    # handlers

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def stats(self, request: web.Request) -> web.Response:
        kinds = [kind for _, kind, _ in self.pcs.values()]
        return web.json_response(
            {"publishers": kinds.count("whip"), "viewers": kinds.count("whep")}
        )

    async def whip(self, request: web.Request) -> web.Response:
        name = request.match_info["room"]
        room = self.room(name)
        if room.publisher is not None:
            return web.json_response({"code": "publisher_exists"}, status=409)
        offer = await request.text()
        sid = secrets.token_urlsafe(12)
        pc = RTCPeerConnection(NO_ICE_SERVERS)
        self.pcs[sid] = (name, "whip", pc)
        room.publisher = sid
        self.watch(sid, pc)

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            room.tracks[track.kind] = track
            # The usual aiortc pattern: everything reads the source through the relay.
            # One consumer that discards frames keeps the decoded frames from piling
            # up in the remote track's queue while nobody watches (a fixed cost, not
            # per viewer; like MediaBlackhole).
            room.drains.append(asyncio.ensure_future(drain(room.relay.subscribe(track))))

        try:
            await pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:
            await self.drop(sid)
            return web.json_response({"code": "bad_sdp", "message": str(exc)}, status=400)
        return answer(pc, f"/whip/{name}/{sid}")

    async def whep(self, request: web.Request) -> web.Response:
        name = request.match_info["room"]
        room = self.rooms.get(name)
        if room is None or not room.tracks:
            return web.json_response({"code": "not_live"}, status=409)
        offer = await request.text()
        sid = secrets.token_urlsafe(12)
        pc = RTCPeerConnection(NO_ICE_SERVERS)
        self.pcs[sid] = (name, "whep", pc)
        self.watch(sid, pc)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
            for transceiver in pc.getTransceivers():
                track = room.tracks.get(transceiver.kind)
                if track is not None:
                    pc.addTrack(room.relay.subscribe(track))  # re-encoded for this viewer
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:
            await self.drop(sid)
            return web.json_response({"code": "bad_sdp", "message": str(exc)}, status=400)
        return answer(pc, f"/whep/{name}/{sid}")

    async def delete(self, request: web.Request) -> web.Response:
        sid = request.match_info["sid"]
        if sid not in self.pcs:
            return web.json_response({"code": "session_not_found"}, status=404)
        await self.drop(sid)
        return web.Response(status=200)

    async def close(self, app: web.Application) -> None:
        for sid in list(self.pcs):
            await self.drop(sid)


async def drain(track: MediaStreamTrack) -> None:
    try:
        while True:
            await track.recv()
    except MediaStreamError:
        return


def answer(pc: RTCPeerConnection, location: str) -> web.Response:
    return web.Response(
        status=201,
        text=pc.localDescription.sdp,
        content_type="application/sdp",
        headers={"Location": location},
    )


def make_app() -> web.Application:
    state = Baseline()
    app = web.Application(client_max_size=256 * 1024)
    app.router.add_get("/healthz", state.healthz)
    app.router.add_get("/stats", state.stats)
    app.router.add_post("/whip/{room}", state.whip)
    app.router.add_post("/whep/{room}", state.whep)
    app.router.add_delete("/whip/{room}/{sid}", state.delete)
    app.router.add_delete("/whep/{room}/{sid}", state.delete)
    app.on_shutdown.append(state.close)
    return app


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=8099)
    ap.add_argument("--log-level", default="WARNING")
    args = ap.parse_args()
    logging.basicConfig(level=args.log_level.upper())
    web.run_app(make_app(), host=HOST, port=args.port, print=None, shutdown_timeout=5.0)


if __name__ == "__main__":
    main()
