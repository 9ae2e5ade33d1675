"""Broadcast continuity with real server processes and real aiortc publishers.

A publisher that is lost (its peer connection closed without a DELETE, or the
server killed or restarted under it) pauses the stream; viewers' sockets are
told (``media`` events); a publisher back within the room's
``publisher_grace_seconds`` continues the same stream (one ``stream.started``
in the log), and after the grace period the stream ends as a normal stop.
Every wait is event-driven with a generous bound; nothing asserts a duration.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import aiohttp
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription, VideoStreamTrack
from processes import NodeClients, ProcessGroup, ServerProcess, TwoNodes, api, create_room
from support import LiveClient, mint_token, store_redis_url

from livehub.app import DB_FILE

CONNECT_TIMEOUT = 15.0
EVENT_TIMEOUT = 15.0


@dataclass
class Publisher:
    pc: RTCPeerConnection
    location: str


@asynccontextmanager
async def publishers() -> AsyncIterator[list[Publisher]]:
    made: list[Publisher] = []
    try:
        yield made
    finally:
        for publisher in made:
            await publisher.pc.close()


async def publish(made: list[Publisher], node: ServerProcess, room: str, token: str) -> Publisher:
    """A WHIP publisher of a test picture, connected; a 307 is followed with the token (as a
    WHIP client must)."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    publisher = Publisher(pc, "")
    made.append(publisher)
    pc.addTransceiver(VideoStreamTrack(), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    headers = {"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"}
    offer = pc.localDescription.sdp
    url = f"{node.url}/whip/{room}"
    async with aiohttp.ClientSession() as http:
        for _ in range(2):
            async with http.post(url, data=offer, headers=headers, allow_redirects=False) as r:
                status, answer = r.status, await r.text()
                publisher.location = urljoin(url, r.headers.get("Location", ""))
            if status != 307:
                break
            url = publisher.location
    assert status == 201, answer
    await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    await _until(lambda: pc.connectionState == "connected", "the publisher to connect")
    return publisher


async def _until(condition: Any, what: str, timeout: float = CONNECT_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def room_view(node: ServerProcess, room: str) -> dict[str, Any]:
    status, view = await api(node.url, "GET", f"/api/rooms/{room}")
    assert status == 200, view
    return dict(view)


async def streams(node: ServerProcess, room: str) -> list[dict[str, Any]]:
    status, body = await api(node.url, "GET", f"/api/rooms/{room}/streams")
    assert status == 200, body
    return list(body["streams"])


def logged(data: Path, room: str) -> list[tuple[str, str | None, str]]:
    """(kind, stream, actor) of the room's stream events in the durable log."""
    with sqlite3.connect(f"file:{data / DB_FILE}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT kind, stream, actor FROM events WHERE room = ? AND kind LIKE 'stream.%'"
            " ORDER BY id",
            (room,),
        ).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


async def media_state(client: LiveClient, state: str) -> dict[str, Any]:
    event = await client.wait_for("media", lambda m: m["state"] == state, EVENT_TIMEOUT)
    return dict(event)


def no_lost_tasks(*nodes: ServerProcess) -> None:
    for node in nodes:
        assert "Task exception was never retrieved" not in node.output(), node.output()


async def test_a_publisher_back_within_the_grace_period_continues_the_same_stream(
    procs: ProcessGroup, node_clients: NodeClients, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    node = procs.serve(data)
    made = await create_room(node.url, "show", "Show")
    host = made["host_token"]
    async with publishers() as pubs:
        first = await publish(pubs, node, "show", host)
        stream_id = (await room_view(node, "show"))["stream_id"]
        viewer = await node_clients.connect(node, "show", mint_token("show"))
        await first.pc.close()  # lost without a DELETE
        assert await media_state(viewer, "paused") == {"state": "paused", "stream": stream_id}
        # seen as the connection closed, before the watchdog's timeouts could have said so
        assert re.search(r"publisher \S+ ends \((connection|ICE) (closed|failed)\)", node.stderr())
        assert "ends (no media)" not in node.stderr()
        assert (await room_view(node, "show"))["paused"] is True
        await publish(pubs, node, "show", host)
        assert await media_state(viewer, "live") == {"state": "live", "stream": stream_id}
        view = await room_view(node, "show")
        assert view["live"] and not view["paused"] and view["stream_id"] == stream_id
        assert [s["id"] for s in await streams(node, "show")] == [stream_id], "one stream"
        assert [k for k, _, _ in logged(data, "show")] == [
            "stream.started",
            "stream.paused",
            "stream.resumed",
        ]
    no_lost_tasks(node)


async def test_a_publisher_not_back_in_time_ends_the_stream_as_a_stop(
    procs: ProcessGroup, node_clients: NodeClients, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    node = procs.serve(data)
    made = await create_room(node.url, "brief", "Brief", settings={"publisher_grace_seconds": 1})
    host = made["host_token"]
    async with publishers() as pubs:
        first = await publish(pubs, node, "brief", host)
        stream_id = (await room_view(node, "brief"))["stream_id"]
        viewer = await node_clients.connect(node, "brief", mint_token("brief"))
        await first.pc.close()
        await media_state(viewer, "paused")
        assert await media_state(viewer, "ended") == {"state": "ended", "stream": stream_id}
        assert not (await room_view(node, "brief"))["live"]
        [ended] = await streams(node, "brief")
        assert ended["id"] == stream_id and ended["ended_at"] is not None
        assert logged(data, "brief")[-1] == ("stream.stopped", stream_id, "system")
        await publish(pubs, node, "brief", host)  # publishing again is a new stream
        assert await media_state(viewer, "live") != {"state": "live", "stream": stream_id}
        assert len(await streams(node, "brief")) == 2
    no_lost_tasks(node)


async def test_on_two_nodes_the_publisher_is_sent_back_to_the_node_holding_the_pause(
    two_nodes: TwoNodes, node_clients: NodeClients, tmp_path: Path
) -> None:
    a, b = two_nodes
    made = await create_room(a.url, "duo", "Duo")
    host = made["host_token"]
    async with publishers() as pubs:
        first = await publish(pubs, a, "duo", host)
        stream_id = (await room_view(a, "duo"))["stream_id"]
        on_b = await node_clients.connect(b, "duo", mint_token("duo"))
        await first.pc.close()
        assert await media_state(on_b, "paused") == {"state": "paused", "stream": stream_id}
        # Posted to B, the publisher is sent to A, which holds the relay and its viewers.
        back = await publish(pubs, b, "duo", host)
        assert back.location.startswith(f"{a.url}/whip/duo/"), back.location
        assert await media_state(on_b, "live") == {"state": "live", "stream": stream_id}
        assert [s["id"] for s in await streams(b, "duo")] == [stream_id]
        kinds = [k for k, _, _ in logged(tmp_path / "data", "duo")]
        assert kinds == ["stream.started", "stream.paused", "stream.resumed"], kinds
    no_lost_tasks(a, b)


RESTARTS = [
    pytest.param("memory", "kill", id="memory-kill9"),
    pytest.param("memory", "term", id="memory-sigterm"),
    pytest.param("redis", "kill", id="redis-kill9"),
]


@pytest.mark.parametrize(("store", "how"), RESTARTS)
async def test_a_server_restart_within_the_grace_period_continues_the_same_stream(
    procs: ProcessGroup,
    node_clients: NodeClients,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    store: str,
    how: str,
) -> None:
    data = tmp_path / "data"
    redis_url = store_redis_url(request, store)
    node = procs.serve(data, redis_url=redis_url)
    made = await create_room(node.url, "show", "Show")
    host = made["host_token"]
    async with publishers() as pubs:
        before = await publish(pubs, node, "show", host)
        stream_id = (await room_view(node, "show"))["stream_id"]
        watching = await node_clients.connect(node, "show", mint_token("show"))
        if how == "kill":
            node.kill()
        else:
            # A graceful stop pauses the stream, and tells the viewers, on its way out.
            await asyncio.to_thread(node.stop)
            assert await media_state(watching, "paused") == {"state": "paused", "stream": stream_id}
        await watching.close()
        await before.pc.close()
        # The same address, as an upgraded server would have (and its public URL).
        restarted = procs.serve(data, port=node.port, redis_url=redis_url)
        viewer = await node_clients.connect(restarted, "show", mint_token("show"))
        room = viewer.welcome["room"]
        assert room["live"] and room["stream_id"] == stream_id, "still the same stream"
        if how == "term":
            assert room["paused"], "paused when the server stopped"
        # Back as soon as the server is, even on Redis: the killed run's media claim was
        # forgotten on start, not left to lapse (which would answer 409 until then).
        await publish(pubs, restarted, "show", host)
        assert await media_state(viewer, "live") == {"state": "live", "stream": stream_id}
        view = await room_view(restarted, "show")
        assert view["live"] and not view["paused"] and view["stream_id"] == stream_id
    assert [s["id"] for s in await streams(restarted, "show")] == [stream_id]
    kinds = [k for k, _, _ in logged(data, "show")]
    assert kinds.count("stream.started") == 1 and "stream.stopped" not in kinds, kinds
    no_lost_tasks(node, restarted)


@pytest.mark.parametrize("store", ["memory", "redis"])
async def test_after_a_kill_the_restarted_server_shows_the_stream_paused(
    procs: ProcessGroup,
    node_clients: NodeClients,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    store: str,
) -> None:
    data = tmp_path / "data"
    redis_url = store_redis_url(request, store)
    node = procs.serve(data, redis_url=redis_url)
    made = await create_room(node.url, "show", "Show")
    async with publishers() as pubs:
        await publish(pubs, node, "show", made["host_token"])
        stream_id = (await room_view(node, "show"))["stream_id"]
        node.kill()
    restarted = procs.serve(data, port=node.port, redis_url=redis_url)
    viewer = await node_clients.connect(restarted, "show", mint_token("show"))
    if not viewer.welcome["room"]["paused"]:  # the start pauses it in the background
        assert await media_state(viewer, "paused") == {"state": "paused", "stream": stream_id}
    view = await room_view(restarted, "show")
    assert view["live"] and view["paused"] and view["stream_id"] == stream_id
    no_lost_tasks(node, restarted)


async def test_a_stream_left_live_longer_than_its_grace_period_ends_on_start(
    procs: ProcessGroup, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    node = procs.serve(data)
    made = await create_room(node.url, "gone", "Gone", settings={"publisher_grace_seconds": 1})
    # A stream without media (started over REST, for chat alone) is not the publisher's.
    chat = await create_room(node.url, "chat", "Chat", settings={"publisher_grace_seconds": 1})
    token = chat["host_token"]
    status, _ = await api(node.url, "POST", "/api/rooms/chat/streams", token=token)
    assert status == 201
    async with publishers() as pubs:
        await publish(pubs, node, "gone", made["host_token"])
        stream_id = (await room_view(node, "gone"))["stream_id"]
        node.kill()
        killed_at = time.time()
    await asyncio.sleep(max(0.0, killed_at + 1.5 - time.time()))  # past the grace period
    restarted = procs.serve(data)
    deadline = time.monotonic() + EVENT_TIMEOUT
    while (await room_view(restarted, "gone"))["live"]:
        assert time.monotonic() < deadline, "the stream left live was never ended"
        await asyncio.sleep(0.1)
    chat_view = await room_view(restarted, "chat")
    assert chat_view["live"] and not chat_view["paused"], "left alone"
    [ended] = await streams(restarted, "gone")
    assert ended["id"] == stream_id and ended["ended_at"] is not None
    events = logged(data, "gone")
    assert [(k, s) for k, s, _ in events] == [
        ("stream.started", stream_id),
        ("stream.stopped", stream_id),
    ]
    assert events[-1][2] == "system"
    no_lost_tasks(node, restarted)
