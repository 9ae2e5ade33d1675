"""Shared test fixtures."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from processes import NodeClients, ProcessGroup, TwoNodes
from redis_server import OwnRedis, RedisProcess, start_redis
from support import Server, make_settings, start_server, stop_server


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    """One real redis-server for the whole test session."""
    server = start_redis(tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    """A Redis of the test's own (not started yet: set ``persist``, then ``start()``),
    to kill, freeze and start again on the same port; every server stopped in teardown."""
    own = OwnRedis(tmp_path / "own-redis")
    try:
        yield own
    finally:
        own.stop_all()


@pytest.fixture
def redis_url(redis_server: RedisProcess) -> Iterator[str]:
    """The session server's URL, emptied (FLUSHALL) before each test."""
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.flushall()
    finally:
        client.close()
    yield redis_server.url


@pytest.fixture(params=["memory", "redis"])
async def server(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Server]:
    """A real livehub on a free port, on the in-memory store and on a real Redis."""
    overrides: dict[str, Any] = {}
    if request.param == "redis":
        overrides["redis_url"] = request.getfixturevalue("redis_url")
    srv = await start_server(make_settings(tmp_path / "data", **overrides))
    yield srv
    await stop_server(srv)


@pytest.fixture
async def memory_server(tmp_path: Path) -> AsyncIterator[Server]:
    """A real livehub on the in-memory store only (for tests about the edge, not the store)."""
    srv = await start_server(make_settings(tmp_path / "data"))
    yield srv
    await stop_server(srv)


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[ProcessGroup]:
    """Server processes (``python -m livehub serve``), every one stopped in teardown."""
    group = ProcessGroup(tmp_path / "logs")
    try:
        yield group
    finally:
        group.stop_all()


@pytest.fixture
async def node_clients(procs: ProcessGroup) -> AsyncIterator[NodeClients]:
    """Clients of those processes, closed before the processes stop (hence ``procs``)."""
    made = NodeClients()
    yield made
    await made.close_all()


@pytest.fixture
def two_nodes(procs: ProcessGroup, redis_url: str, tmp_path: Path) -> TwoNodes:
    """Two server processes sharing one Redis and one data directory, ``tmp_path / "data"``."""
    data = tmp_path / "data"
    a = procs.serve(data, redis_url=redis_url)
    b = procs.serve(data, redis_url=redis_url)
    return a, b
