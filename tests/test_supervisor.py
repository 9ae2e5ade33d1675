"""The supervisor keeps every background part running and says which one is not."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from livehub.supervisor import Supervisor

BOUND = 10.0  # seconds an event-driven wait may take before the test fails


async def wait_until(condition: Callable[[], bool], within: float = BOUND) -> None:
    """Poll: the supervisor has no event to wait on for "a part is down", by design."""
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


async def test_a_failing_part_is_logged_named_and_restarted_until_it_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    supervisor = Supervisor(base_delay=0.01, max_delay=0.02)
    attempts = 0
    healthy = asyncio.Event()
    release = asyncio.Event()

    async def flaky() -> None:
        nonlocal attempts
        attempts += 1
        if attempts <= 3:
            raise ConnectionError(f"attempt {attempts}")
        healthy.set()
        await release.wait()  # runs, as a loop does
        await asyncio.Event().wait()

    async def steady() -> None:
        await asyncio.Event().wait()

    supervisor.add("flaky", flaky)
    supervisor.add("steady", steady)
    with caplog.at_level(logging.ERROR, logger="livehub.supervisor"):
        await supervisor.start()
        await asyncio.wait_for(healthy.wait(), BOUND)
    assert supervisor.restarts("flaky") == 3
    assert supervisor.restarts("steady") == 0
    assert supervisor.failing() == []
    snapshot = supervisor.snapshot()
    assert snapshot["flaky"]["ok"] is True and snapshot["flaky"]["restarts"] == 3
    failures = [r for r in caplog.records if "flaky failed" in r.getMessage()]
    assert len(failures) == 3 and all(r.exc_info for r in failures)  # each with its cause
    await supervisor.stop()


async def test_a_part_that_is_down_is_named_until_it_runs_again() -> None:
    supervisor = Supervisor(base_delay=0.2, max_delay=0.2)
    failed = asyncio.Event()
    calls = 0

    async def part() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            failed.set()
            raise RuntimeError("boom")
        await asyncio.Event().wait()

    supervisor.add("part", part)
    await supervisor.start()
    await asyncio.wait_for(failed.wait(), BOUND)
    await wait_until(lambda: supervisor.failing() == ["part"])
    assert supervisor.snapshot()["part"]["error"] == "RuntimeError: boom"
    await wait_until(lambda: supervisor.failing() == [])
    assert supervisor.restarts("part") == 1
    await supervisor.stop()


async def test_a_part_that_returns_is_restarted_too() -> None:
    supervisor = Supervisor(base_delay=0.01, max_delay=0.01)
    runs = 0

    async def returns() -> None:
        nonlocal runs
        runs += 1
        if runs > 2:
            await asyncio.Event().wait()

    supervisor.add("returns", returns)
    await supervisor.start()
    await wait_until(lambda: runs == 3)
    assert supervisor.restarts("returns") == 2
    await supervisor.stop()


async def test_backoff_doubles_to_its_cap_and_starts_over_after_a_settled_run() -> None:
    now = [0.0]
    supervisor = Supervisor(base_delay=0.001, max_delay=0.004, settle=5.0, clock=lambda: now[0])
    sleeps: list[float] = []
    original = asyncio.sleep

    async def recording_sleep(delay: float) -> None:
        sleeps.append(delay)
        await original(0)

    runs = 0
    done = asyncio.Event()

    async def part() -> None:
        nonlocal runs
        runs += 1
        if runs == 5:
            now[0] += 10.0  # this run lasted past ``settle``: healthy again
        if runs == 7:
            done.set()
            await asyncio.Event().wait()
        raise ValueError("again")

    supervisor.add("part", part)
    mp = pytest.MonkeyPatch()
    mp.setattr("livehub.supervisor.asyncio.sleep", recording_sleep)
    try:
        await supervisor.start()
        await asyncio.wait_for(done.wait(), BOUND)
    finally:
        mp.undo()
    assert sleeps == [0.001, 0.002, 0.004, 0.004, 0.001, 0.002]
    await supervisor.stop()


async def test_dependencies_are_named_while_they_fail_and_logged_once_per_change(
    caplog: pytest.LogCaptureFixture,
) -> None:
    supervisor = Supervisor()
    with caplog.at_level(logging.WARNING, logger="livehub.supervisor"):
        supervisor.report("store", "ConnectionError: refused")
        supervisor.report("store", "ConnectionError: refused")
        supervisor.report("database", "OperationalError: disk full")
        assert supervisor.failing() == ["database", "store"]
        supervisor.report("store", None)
        supervisor.report("store", None)
    assert supervisor.failing() == ["database"]
    assert supervisor.snapshot()["store"]["ok"] is True
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "store is failing: ConnectionError: refused",
        "database is failing: OperationalError: disk full",
        "store works again",
    ]


async def test_stop_cancels_every_part_and_a_part_added_late_starts_at_once() -> None:
    supervisor = Supervisor()
    cancelled: list[str] = []
    started = asyncio.Event()

    def forever(name: str) -> object:
        async def run() -> None:
            started.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.append(name)
                raise

        return run

    supervisor.add("early", forever("early"))  # type: ignore[arg-type]
    await supervisor.start()
    supervisor.add("late", forever("late"))  # type: ignore[arg-type]
    await asyncio.wait_for(started.wait(), BOUND)
    await wait_until(lambda: all(s["ok"] for s in supervisor.snapshot().values()))
    with pytest.raises(ValueError, match="already supervised"):
        supervisor.add("early", forever("again"))  # type: ignore[arg-type]
    await supervisor.stop()
    assert sorted(cancelled) == ["early", "late"]
    assert supervisor.failing() == []  # stopped on purpose is not failing


async def test_a_part_cancelled_by_someone_else_is_restarted_and_starts_clean() -> None:
    supervisor = Supervisor(base_delay=0.01, max_delay=0.01)
    runs = 0
    clean = asyncio.Event()

    async def part() -> None:
        nonlocal runs
        runs += 1
        task = asyncio.current_task()
        assert task is not None
        if runs == 1:
            task.cancel()  # a library's stray cancel, as a swallowed timeout leaves
            await asyncio.sleep(1)
        if task.cancelling() == 0:  # the new attempt carries no stale cancel count
            clean.set()
        await asyncio.Event().wait()

    supervisor.add("part", part)
    await supervisor.start()
    await asyncio.wait_for(clean.wait(), BOUND)
    assert supervisor.restarts("part") == 1
    assert supervisor.failing() == []
    await supervisor.stop()
