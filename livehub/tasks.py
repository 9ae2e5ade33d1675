"""Stopping background tasks reliably."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Any


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]], attempts: int = 100) -> None:
    """Cancel tasks and wait until they have ended.

    Python 3.11's asyncio.wait_for, which redis-py sends every command through,
    can swallow a cancellation that races a finished read or send; the task then
    runs on. So cancel again until each task is done (bounded: 100 x 0.2 s).
    """
    pending = {t for t in tasks if not t.done()}
    for _ in range(attempts):
        if not pending:
            break
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.2)
    for task in tasks:
        if task.done() and not task.cancelled():
            with contextlib.suppress(Exception):
                task.result()
