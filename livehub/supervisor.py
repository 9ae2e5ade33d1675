"""Supervised background work: every long-running task of a node runs here.

A part is a named coroutine factory. The supervisor runs each part as a task;
when one ends (by an exception, or by returning, which a loop never should) the
failure is logged once with its cause, the part is marked down, and it is
started again after a backoff that doubles from ``base_delay`` up to
``max_delay``. A part that then runs for ``settle`` seconds is healthy again and
its backoff starts over.

Probes are the other half of health: a dependency (the state store, the event
log's disk) that a part or a request found failing is reported with
``report(name, error)`` and cleared with ``report(name, None)``.
``failing()`` names every part that is down and every dependency that fails;
``/healthz`` answers 503 while it is not empty.

Nothing here knows about HTTP or Socket.IO: the edge reads ``snapshot()``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from livehub.tasks import cancel_and_wait

log = logging.getLogger("livehub.supervisor")

Factory = Callable[[], Coroutine[Any, Any, None]]


@dataclass
class PartState:
    """What ``/healthz`` shows of one supervised part or dependency."""

    running: bool = False
    restarts: int = 0
    error: str | None = None
    since: float = field(default_factory=time.time)

    def view(self) -> dict[str, Any]:
        return {
            "ok": self.running and self.error is None,
            "restarts": self.restarts,
            "error": self.error,
            "since": round(self.since, 3),
        }


class Supervisor:
    def __init__(
        self,
        *,
        base_delay: float = 0.05,
        max_delay: float = 2.0,
        settle: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._factories: dict[str, Factory] = {}
        self._parts: dict[str, PartState] = {}
        self._deps: dict[str, PartState] = {}
        self._runners: list[asyncio.Task[None]] = []
        self._base = base_delay
        self._max = max_delay
        self._settle = settle
        self._clock = clock
        self._stopping = False

    def add(self, name: str, factory: Factory) -> None:
        """Register a part; it starts with ``start()`` (or at once when already started)."""
        if name in self._factories:
            raise ValueError(f"part {name!r} is already supervised")
        self._factories[name] = factory
        self._parts[name] = PartState()
        if self._runners:
            self._runners.append(asyncio.create_task(self._keep(name), name=f"keep:{name}"))

    async def start(self) -> None:
        self._stopping = False
        self._runners = [
            asyncio.create_task(self._keep(name), name=f"keep:{name}") for name in self._factories
        ]

    async def stop(self) -> None:
        self._stopping = True
        await cancel_and_wait(self._runners)
        self._runners = []
        for state in self._parts.values():
            state.running = False

    def report(self, dependency: str, error: str | None) -> None:
        """A dependency failed (``error``) or works again (None)."""
        state = self._deps.setdefault(dependency, PartState(running=True))
        if error == state.error:
            return
        if error is None:
            log.warning("%s works again", dependency)
        else:
            log.error("%s is failing: %s", dependency, error)
        state.error = error
        state.since = time.time()

    def failing(self) -> list[str]:
        """Names of the parts that are down and the dependencies that fail, sorted."""
        down = [n for n, s in self._parts.items() if self._runners and not s.running]
        down += [n for n, s in self._deps.items() if s.error is not None]
        return sorted(down)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return {name: state.view() for name, state in {**self._parts, **self._deps}.items()}

    def restarts(self, name: str) -> int:
        return self._parts[name].restarts

    async def _keep(self, name: str) -> None:
        state = self._parts[name]
        delay = self._base
        while not self._stopping:
            started = self._clock()
            state.running, state.error, state.since = True, None, time.time()
            cause = await self._attempt(name)
            state.running, state.error, state.since = False, cause, time.time()
            state.restarts += 1
            if self._clock() - started >= self._settle:
                delay = self._base
            await asyncio.sleep(delay)
            delay = min(self._max, delay * 2)

    async def _attempt(self, name: str) -> str:
        """Run the part once, in a task of its own; why it stopped.

        Its own task: a library that swallows a cancellation (a timeout inside
        redis-py, say) leaves the task's cancel count behind, and every later
        timeout in that task then cancels it. A fresh task per attempt starts
        clean, and a part cancelled by anyone but the supervisor is a failure
        like any other, restarted.
        """
        attempt = asyncio.create_task(self._factories[name](), name=f"part:{name}")
        try:
            await asyncio.wait({attempt})
        except asyncio.CancelledError:  # the supervisor stops
            self._parts[name].running = False
            await cancel_and_wait([attempt])
            raise
        if attempt.cancelled():
            log.error("background part %s was cancelled; restarting", name)
            return "cancelled"
        error = attempt.exception()
        if error is None:
            log.error("background part %s ended; restarting", name)
            return "ended"
        log.error("background part %s failed; restarting", name, exc_info=error)
        return f"{type(error).__name__}: {error}"
