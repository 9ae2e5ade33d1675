"""Shared test fixtures."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis_server import RedisProcess, start_redis
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
