"""Presence under faults, with real processes: SIGTERM and kill -9 of a node, a Redis
server killed under two nodes and started again (empty, or from its append-only
file). Viewer counts converge to the truth and every leave is in the log once, at
the viewer's last sign of life when a crash cut it off.

Counts are read from Redis itself, and leaves from the nodes' SQLite file.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import redis
from processes import NodeClients, ProcessGroup, ServerProcess, api, create_room
from redis_server import OwnRedis
from support import LiveClient, mint_token, store_redis_url

from livehub.rooms.node_presence import Held, held_key, lease_key, seen_key
from livehub.rooms.presence import conns_key

ROOM = "crowd"
HEARTBEAT = 1.0  # seconds: a lease lasts 3 of them
ENV = {"LIVEHUB_HEARTBEAT_SECONDS": str(HEARTBEAT)}
CONVERGE = 30.0  # generous bound for "within a lease" on a loaded machine
CONNECT_AT_ONCE = 20


async def eventually(check: Callable[[], Any], what: str, timeout: float = CONVERGE) -> None:
    """Wait until ``check()`` is truthy (it is cheap: a Redis or SQLite read)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout:.0f} s: {what}"
        await asyncio.sleep(0.05)


def count(url: str, room: str = ROOM) -> int:
    with contextlib.closing(redis.Redis.from_url(url, decode_responses=True)) as client:
        return int(client.hlen(conns_key(room)))


def conns(url: str, room: str = ROOM) -> dict[str, str]:
    with contextlib.closing(redis.Redis.from_url(url, decode_responses=True)) as client:
        return dict(client.hgetall(conns_key(room)))


def held_of(url: str, node: str) -> dict[str, Held]:
    with contextlib.closing(redis.Redis.from_url(url, decode_responses=True)) as client:
        raw = client.hgetall(held_key(node))
    return {h.who.viewer_id: h for h in (msgspec.json.decode(v, type=Held) for v in raw.values())}


def db_rows(data: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(data / "livehub.db", timeout=10)) as db:
        return list(db.execute(sql, args))


def presence_rows(data: Path, kind: str) -> list[tuple[str, float]]:
    return [
        (str(actor), float(ts))
        for actor, ts in db_rows(
            data, "SELECT actor, ts FROM events WHERE room = ? AND kind = ? ORDER BY id", ROOM, kind
        )
    ]


def presence_of(data: Path, viewer: str) -> list[tuple[str, float]]:
    """(kind, ts) of the viewer's joins and leaves, in log order."""
    return [
        (str(kind), float(ts))
        for kind, ts in db_rows(
            data,
            "SELECT kind, ts FROM events WHERE room = ? AND actor = ? AND kind IN (?, ?) "
            "ORDER BY id",
            ROOM,
            viewer,
            "presence.join",
            "presence.leave",
        )
    ]


def last_leaves(data: Path) -> dict[str, float]:
    return dict(presence_rows(data, "presence.leave"))


def node_of(server: ServerProcess) -> str:
    status, body = server.health()
    assert status == 200, body
    return str(body["node"])


async def crowd(
    clients: NodeClients, server: ServerProcess, prefix: str, n: int
) -> list[LiveClient]:
    """``n`` viewers of ROOM on ``server``, viewer ids ``{prefix}{i}``."""
    made: list[LiveClient] = []
    for start in range(0, n, CONNECT_AT_ONCE):
        made += await asyncio.gather(
            *(
                clients.connect(server, ROOM, mint_token(ROOM, "viewer", f"V{i}", f"{prefix}{i}"))
                for i in range(start, min(n, start + CONNECT_AT_ONCE))
            )
        )
    return made


def ids(prefix: str, n: int) -> set[str]:
    return {f"{prefix}{i}" for i in range(n)}


@pytest.fixture(params=["empty", "persisted", "snapshot"])
def own_redis(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OwnRedis]:
    """The shared helper in each of its three restart modes, started."""
    server = OwnRedis(tmp_path / "redis", keeps=request.param)
    server.start()
    try:
        yield server
    finally:
        server.stop_all()


def two_nodes(procs: ProcessGroup, data: Path, url: str) -> tuple[ServerProcess, ServerProcess]:
    return (
        procs.serve(data, redis_url=url, env=ENV),
        procs.serve(data, redis_url=url, env=ENV),
    )


async def bounded(coro: Awaitable[None], seconds: float = 120.0) -> None:
    await asyncio.wait_for(coro, seconds)


# -- SIGTERM ---------------------------------------------------------------------------------


@pytest.mark.parametrize("store", ["memory", "redis"])
async def test_sigterm_records_every_leave_before_the_node_exits(
    store: str,
    procs: ProcessGroup,
    node_clients: NodeClients,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    async def run() -> None:
        data = tmp_path / "data"
        url = store_redis_url(request, store)
        stopping = procs.serve(data, redis_url=url, env=ENV)
        staying = procs.serve(data, redis_url=url, env=ENV) if url else None
        await create_room(stopping.url, ROOM, "Crowd")
        n = 150
        await crowd(node_clients, stopping, "v_a", n)
        if staying is not None:
            await crowd(node_clients, staying, "v_b", 10)
            await eventually(lambda: count(url) == n + 10, "all viewers counted")
        stopped_node = node_of(stopping)

        # in a thread: the clients here take their close packets meanwhile
        assert await asyncio.to_thread(stopping.stop, 30) == 0, stopping.output()

        # every leave was in the log when the process exited: no waiting here
        assert set(last_leaves(data)) == ids("v_a", n)
        assert len(presence_rows(data, "presence.leave")) == n
        if staying is not None and url is not None:
            assert count(url) == 10  # the count is true at once, not one lease later
            with contextlib.closing(redis.Redis.from_url(url, decode_responses=True)) as r:
                assert r.exists(held_key(stopped_node)) == 0

    await bounded(run())


# -- kill -9 ---------------------------------------------------------------------------------


async def test_kill_9_of_one_node_converges_within_a_lease_with_leaves_at_its_last_heartbeat(
    procs: ProcessGroup, node_clients: NodeClients, redis_url: str, tmp_path: Path
) -> None:
    async def run() -> None:
        data = tmp_path / "data"
        a, b = two_nodes(procs, data, redis_url)
        await create_room(a.url, ROOM, "Crowd")
        await crowd(node_clients, a, "v_a", 20)
        b_clients = await crowd(node_clients, b, "v_b", 20)
        await eventually(lambda: count(redis_url) == 40, "all viewers counted")
        dead = node_of(a)
        # one of a's viewers chats: a sign of life of their own
        chat = await node_clients[0].chat("still here")
        assert chat["ok"] is True, chat
        await eventually(
            lambda: (h := held_of(redis_url, dead).get("v_a0")) and h.active > h.since,
            "the chat written as v_a0's last activity with a heartbeat",
        )

        a.kill()
        killed_at = time.time()
        with contextlib.closing(redis.Redis.from_url(redis_url, decode_responses=True)) as r:
            heartbeat = float(r.get(seen_key(dead)) or 0)
            assert r.exists(lease_key(dead)) == 1, "swept before its lease ran out"
        held = list(held_of(redis_url, dead).values())
        assert heartbeat > 0 and len(held) == 20
        expected = {h.who.viewer_id: h.last_seen(heartbeat) for h in held}
        # one of them is back at once through b, before a is swept
        back = await node_clients.connect(b, ROOM, mint_token(ROOM, "viewer", "V0", "v_a0"))

        await eventually(
            lambda: (
                count(redis_url) == 21
                and len(last_leaves(data)) == 20
                and presence_of(data, "v_a0")[-1][0] == "presence.join"
            ),
            "the killed node's viewers removed and their leaves recorded",
        )
        converged_at = time.time()
        leaves = last_leaves(data)
        assert leaves == expected
        # at their last heartbeat, before the kill: not at the sweep, a lease later
        assert max(leaves.values()) <= killed_at < converged_at
        assert converged_at - killed_at >= (3 - 1) * HEARTBEAT  # the lease, not sooner
        # the one who came back: away from their last heartbeat until they reconnected
        [*_, (_, left_ts), (_, back_ts)] = presence_of(data, "v_a0")
        assert left_ts == expected["v_a0"] and killed_at < back_ts < converged_at
        # the survivors are still counted and still leave normally
        await asyncio.gather(*(c.close() for c in [*b_clients[:5], back]))
        await eventually(
            lambda: count(redis_url) == 15 and ids("v_b", 5) <= set(last_leaves(data)),
            "leaves on the live node",
        )

    await bounded(run())


async def test_kill_9_on_the_memory_store_ends_watch_time_at_the_last_heartbeat(
    procs: ProcessGroup, node_clients: NodeClients, tmp_path: Path
) -> None:
    """One node on the memory store, killed mid-stream and started again: the viewers it
    held leave at the last heartbeat logged before the crash, and the stream's report
    counts none of the outage as watched."""

    async def run() -> None:
        data = tmp_path / "data"
        env = {"LIVEHUB_HEARTBEAT_SECONDS": "0.5"}  # a heartbeat logged every 3 s
        node = procs.serve(data, env=env)
        await create_room(node.url, ROOM, "Crowd")
        status, stream = await api(node.url, "POST", f"/api/rooms/{ROOM}/streams")
        assert status == 201, stream
        await crowd(node_clients, node, "v_", 8)
        await eventually(
            lambda: presence_rows(data, "presence.heartbeat"), "a heartbeat in the log"
        )
        node.kill()
        [*_, (_, beat)] = presence_rows(data, "presence.heartbeat")
        joins = dict(presence_rows(data, "presence.join"))
        await asyncio.sleep(2.0)  # the outage
        again = procs.serve(data, env=env)

        assert last_leaves(data) == {viewer: beat for viewer in joins}
        status, stopped = await api(again.url, "DELETE", f"/api/rooms/{ROOM}/streams/current")
        assert status == 200, stopped
        report = await built_report(again)
        watched = sum(beat - max(ts, stream["started_at"]) for ts in joins.values())
        assert report["summary"]["total_watch_seconds"] == pytest.approx(watched, abs=0.5)
        assert report["summary"]["unique_viewers"] == 8

    await bounded(run())


async def built_report(server: ServerProcess) -> dict[str, Any]:
    deadline = time.monotonic() + CONVERGE
    while True:
        status, report = await api(server.url, "GET", f"/api/rooms/{ROOM}/report")
        if status == 200:
            return dict(report)
        assert time.monotonic() < deadline, (status, report)
        await asyncio.sleep(0.1)


# -- Redis restarted empty -----------------------------------------------------------------------


async def test_counts_and_leaves_come_through_a_redis_restart(
    procs: ProcessGroup, node_clients: NodeClients, own_redis: OwnRedis, tmp_path: Path
) -> None:
    """Redis killed under two nodes, viewers leaving while it is down, then started
    again (empty, from its append-only file, or from an older snapshot): the count is
    the truth again and the outage's leaves are recorded at the time they closed."""

    async def run() -> None:
        url = own_redis.url
        data = tmp_path / "data"
        a, b = two_nodes(procs, data, url)
        await create_room(a.url, ROOM, "Crowd")
        a_clients = await crowd(node_clients, a, "v_a", 15)
        second_tabs = await crowd(node_clients, b, "v_a", 3)  # v_a0-2 on both nodes
        await crowd(node_clients, b, "v_b", 12)
        await eventually(lambda: count(url) == 27, "all viewers counted")
        own_redis.snapshot()
        await asyncio.gather(*(c.close() for c in a_clients[13:]))  # left after the snapshot
        await eventually(
            lambda: count(url) == 25 and {"v_a13", "v_a14"} <= set(last_leaves(data)),
            "leaves before the outage",
        )

        own_redis.kill()
        down_at = time.time()
        await asyncio.gather(*(c.close() for c in a_clients[8:13]))  # leave while it is down
        await asyncio.sleep(2 * HEARTBEAT)  # their leaves fail, and so do the heartbeats
        up_at = time.time()
        own_redis.start()
        assert count(url) == {"empty": 0, "persisted": 25, "snapshot": 27}[own_redis.keeps]
        await eventually(
            lambda: count(url) == 20 and ids("v_a", 13) - ids("v_a", 8) <= set(last_leaves(data)),
            f"the count rebuilt and the outage's leaves recorded {conns(url)}",
        )
        outage = {v: ts for v, ts in last_leaves(data).items() if v in ids("v_a", 13)}
        assert len(outage) == 5 and all(down_at < ts < up_at for ts in outage.values())

        # counted once per connection, not twice: a viewer's last tab still ends them
        await asyncio.gather(*(c.close() for c in second_tabs + a_clients[3:8]))
        await eventually(lambda: count(url) == 15, "leaves after the rebuild")
        await asyncio.gather(*(c.close() for c in a_clients[:3]))
        await eventually(lambda: count(url) == 12, f"the last tabs {conns(url)}")
        await asyncio.sleep(3 * HEARTBEAT)  # several heartbeats: nothing re-asserted twice
        assert count(url) == 12
        assert len(presence_rows(data, "presence.leave")) == len(set(last_leaves(data)))

    await bounded(run())
