"""Coalesce pushes: whatever changed is sent at most once per interval.

Poll tallies, Q&A rankings and the like change on every vote; viewers need to
see them move a few times a second, not once per vote. Marking a key is cheap
and synchronous; a loop sends each marked key once per interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from livehub.errors import LivehubError

K = TypeVar("K", bound=Hashable)
log = logging.getLogger("livehub.throttle")


class Coalescer(Generic[K]):
    def __init__(self, interval: float, send: Callable[[K], Awaitable[None]]) -> None:
        self._interval = interval
        self._send = send
        self._marked: dict[K, None] = {}

    def mark(self, key: K) -> None:
        self._marked[key] = None

    async def flush(self) -> None:
        marked, self._marked = self._marked, {}
        for key in marked:
            try:
                await self._send(key)
            except LivehubError as err:  # the thing went away since it was marked
                log.info("not pushing %r: %s", key, err.code)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.flush()

    async def stop(self) -> None:
        with contextlib.suppress(LivehubError):
            await self.flush()
