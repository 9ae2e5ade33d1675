"""HTTP for what the media subscribers write: live HLS, recordings, and replay chat.

* ``GET /hls/{room}/index.m3u8`` and ``GET /hls/{room}/{segment}``: the live
  playlist (never cached) and its fMP4 segments (immutable names).
* ``GET /recordings/{room}/{stream}.mp4`` (or ``.webm``): a stream's recording,
  with Range requests (``FileResponse``) so a ``<video>`` can seek.
* ``GET /api/rooms/{room}/streams/{stream}/danmaku``: the stream's visible chat
  with each message's offset into the recording, for the replay page.

Public rooms need no token. Private rooms need a token of the room (or the
admin key) as ``?t=`` (a ``<video>`` or HLS player cannot send headers) or as
a bearer; the playlist served with ``?t=`` carries the token on every segment
URI so players keep it. File names are matched against strict patterns before
they touch the file system, so no path can leave the data directory.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web

from livehub.errors import Forbidden, NotFound
from livehub.interactions.messages import VISIBLE_KINDS, ChatMessage
from livehub.media.hls import HlsPackager
from livehub.media.recorder import RecordingInfo, RecordingManager
from livehub.rooms.eventlog import EventLog
from livehub.rooms.models import Room, Stream
from livehub.signaling.auth import bearer_of
from livehub.signaling.context import Services

PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
SEGMENT_TYPES = {".m4s": "video/iso.segment", ".mp4": "video/mp4"}
RECORDING_TYPES = {".mp4": "video/mp4", ".webm": "video/webm"}
MAX_REPLAY_MESSAGES = 20_000
RECORDINGS = web.AppKey("recordings", RecordingManager)
HLS = web.AppKey("hls", HlsPackager)
_MAP_URI = re.compile(r'(#EXT-X-MAP:URI=")([^"]+)(")')


class HlsApi:
    def __init__(self, services: Services, hls: HlsPackager, recordings: RecordingManager) -> None:
        self._s = services
        self._hls = hls
        self._recordings = recordings

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/hls/{room}/index.m3u8", self.playlist),
            web.get("/hls/{room}/{segment}", self.segment),
            web.get("/recordings/{room}/{name}", self.recording),
            web.get("/api/rooms/{room}/streams/{stream}/danmaku", self.danmaku),
        ]

    # access

    async def _admit(self, request: web.Request) -> tuple[Room, str | None]:
        """The room, and the token to pass on (private rooms only)."""
        room = await self._s.rooms.get(request.match_info["room"])
        if not room.private:
            return room, None
        token = request.query.get("t") or bearer_of(request.headers.get("Authorization"))
        if self._s.auth.is_admin(token):
            return room, token
        who = self._s.auth.principal(token, room)
        if not who.is_staff and await self._s.moderation.is_banned(room.id, who.viewer_id):
            raise Forbidden("banned", "You are banned from this room.")
        return room, token

    @staticmethod
    def _cache(room: Room, seconds: int) -> str:
        return f"{'private' if room.private else 'public'}, max-age={seconds}"

    # HLS

    async def playlist(self, request: web.Request) -> web.StreamResponse:
        room, token = await self._admit(request)
        path = self._hls.playlist(room.id)
        if path is None or not (room.live or _fresh(path, self._hls.config.linger)):
            reason = self._hls.unavailable(room.id)
            if reason is not None:
                raise NotFound("hls_unavailable", reason)
            if not room.live:
                raise NotFound("not_live", "The room is not live.")
            raise NotFound("hls_unavailable", "This stream has no HLS playlist (yet).")
        try:
            text = await asyncio.to_thread(path.read_text, "utf-8")
        except FileNotFoundError:
            raise NotFound("hls_unavailable", "The playlist has just ended.") from None
        if token is not None:
            text = with_token(text, token)
        headers = {"Cache-Control": "no-cache", "Content-Type": PLAYLIST_TYPE}
        if not room.private:
            headers["Access-Control-Allow-Origin"] = "*"
        return web.Response(body=text.encode(), headers=headers)

    async def segment(self, request: web.Request) -> web.StreamResponse:
        room, _ = await self._admit(request)
        name = request.match_info["segment"]
        path = self._hls.segment(room.id, name)
        if path is None:
            raise NotFound("segment_not_found", "No such segment (it may have slid out).")
        headers = {
            "Content-Type": SEGMENT_TYPES[path.suffix],
            "Cache-Control": self._cache(room, 86400),
        }
        if not room.private:
            headers["Access-Control-Allow-Origin"] = "*"
        return web.FileResponse(path, headers=headers)

    # recordings

    async def recording(self, request: web.Request) -> web.StreamResponse:
        room, _ = await self._admit(request)
        name = request.match_info["name"]
        path = self._recordings.file(room.id, name)
        if path is None:
            raise NotFound("recording_not_found", "This stream has no recording.")
        info = self._recordings.info(room.id, Path(name).stem)
        complete = info is not None and info.complete
        headers = {
            "Content-Type": RECORDING_TYPES[path.suffix],
            "Cache-Control": self._cache(room, 3600) if complete else "no-cache",
        }
        return web.FileResponse(path, headers=headers)

    # replay chat

    async def danmaku(self, request: web.Request) -> web.StreamResponse:
        room, _ = await self._admit(request)
        stream_id = request.match_info["stream"]
        stream = next((s for s in await self._s.rooms.streams(room.id) if s.id == stream_id), None)
        if stream is None:
            raise NotFound("stream_not_found", "No such stream in this room.")
        info = self._recordings.info(room.id, stream.id)
        shift = recording_offset_ms(stream, info)
        messages = await replay_messages(self._s.log, stream)
        return web.json_response(
            {
                "stream": msgspec.to_builtins(stream),
                "recording": info.public() if info is not None else None,
                "recording_offset_ms": shift,
                "messages": [
                    {**view, "offset_ms": max(0, int(view["offset_ms"]) - shift)}
                    for view in messages
                ],
            }
        )


def with_token(playlist: str, token: str) -> str:
    """Carry ``?t=`` on every URI of a playlist (segments and the init segment)."""
    suffix = "?t=" + token
    lines = []
    for line in playlist.splitlines():
        if line and not line.startswith("#"):
            line += suffix
        elif line.startswith("#EXT-X-MAP:"):
            line = _MAP_URI.sub(lambda m: m.group(1) + m.group(2) + suffix + m.group(3), line)
        lines.append(line)
    return "\n".join(lines) + "\n"


def _fresh(path: Path, linger: float) -> bool:
    """A playlist written in the last ``linger`` seconds (an ended stream's, still served)."""
    try:
        return time.time() - path.stat().st_mtime < linger
    except FileNotFoundError:
        return False


def recording_offset_ms(stream: Stream, info: RecordingInfo | None) -> int:
    """How far into the stream its recording starts (chat offsets count from the stream)."""
    if info is None or info.started_at is None:
        return 0
    return max(0, round((info.started_at - stream.started_at) * 1000))


async def replay_messages(log: EventLog, stream: Stream) -> list[dict[str, Any]]:
    """The chat viewers saw during ``stream``, oldest first, deleted messages left out.

    A message shows at the moment it appeared live: its own time, or for a held
    message the moment a moderator approved it.
    """
    shown: dict[int, tuple[int, ChatMessage]] = {}
    first_id: int | None = None
    async for event in log.scan(stream.room, stream.id):
        first_id = event.id if first_id is None else first_id
        if event.kind not in VISIBLE_KINDS or len(shown) >= MAX_REPLAY_MESSAGES:
            continue
        message = ChatMessage.from_event(event)
        offset = message.offset_ms if event.kind == "chat.message" else None
        if offset is None:
            offset = round((event.ts - stream.started_at) * 1000)
        shown[message.id] = (offset, message)
    if first_id is not None:
        after = first_id - 1
        while True:  # deletions may come after the stream ended (no stream on the event)
            deletions = await log.by_kinds(stream.room, ["mod.delete"], after_id=after, limit=500)
            for event in deletions:
                shown.pop(int(event.data.get("message_id", -1)), None)
            if len(deletions) < 500:
                break
            after = deletions[-1].id
    ordered = sorted(shown.values(), key=lambda item: (item[0], item[1].id))
    return [
        {
            "id": message.id,
            "name": message.name,
            "role": message.role,
            "text": message.text,
            "mode": message.mode,
            "color": message.color,
            "offset_ms": offset,
        }
        for offset, message in ordered
    ]
