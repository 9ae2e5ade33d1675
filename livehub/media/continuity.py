"""Grace periods of paused streams: one timer per room, ending the stream when it runs out.

A stream whose publisher is lost (its connection closed or failed, or the server
restarted) is paused for the room's ``publisher_grace_seconds``; a publisher
that comes back in time continues it, and the timer is cancelled. When a timer
runs out, ``expire(room, stream)`` is awaited; it must check the stream is still
the room's, and still paused, before ending it. No aiortc and no HTTP here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("livehub.media")

Expire = Callable[[str, str], Awaitable[None]]


class GraceTimers:
    def __init__(self, expire: Expire) -> None:
        self._expire = expire
        self._timers: dict[str, tuple[str, asyncio.Task[None]]] = {}

    def pending(self, room: str) -> str | None:
        """The stream whose grace period is running in ``room``, if any."""
        timer = self._timers.get(room)
        return timer[0] if timer else None

    def start(self, room: str, stream: str, seconds: float) -> None:
        """End ``stream`` in ``seconds`` unless cancelled; replaces the room's timer."""
        self.cancel(room)
        task = asyncio.create_task(self._run(room, stream, max(0.0, seconds)))
        self._timers[room] = (stream, task)

    def cancel(self, room: str) -> None:
        timer = self._timers.pop(room, None)
        if timer is not None and timer[1] is not asyncio.current_task():
            timer[1].cancel()

    async def close(self) -> None:
        tasks = [task for _, task in self._timers.values()]
        self._timers.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, room: str, stream: str, seconds: float) -> None:
        await asyncio.sleep(seconds)
        timer = self._timers.get(room)
        if timer is None or timer[0] != stream:
            return
        del self._timers[room]  # first: ending the stream cancels no timer, not this one
        try:
            await self._expire(room, stream)
        except Exception:  # a background path: report it, keep serving the other rooms
            log.exception("room %s: ending stream %s after its grace period failed", room, stream)
