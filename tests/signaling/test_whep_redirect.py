"""Two server processes on one Redis: the node with a room's media takes its WHEP requests.

The publisher and viewers are real aiortc peers in the test process (the helpers
of ``test_whip``); the nodes are real ``python -m livehub serve`` processes. HTTP
clients drop ``Authorization`` when a redirect changes origin (aiohttp does, and
so do browsers), so the viewer here does what a WHEP client must: it reads the
307's ``Location`` and posts its offer there again with its token.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import aiohttp
import pytest
from aiortc import RTCSessionDescription
from processes import ServerProcess, TwoNodes, api, create_room
from support import mint_token
from test_whip import SDP, Clients, Peer, read, until


@dataclass
class Node:
    """What ``test_whip``'s helpers need of a server: its URL and an HTTP session."""

    url: str
    http: aiohttp.ClientSession


@dataclass
class Answer:
    status: int
    headers: Any
    text: str


async def post(http: aiohttp.ClientSession, url: str, sdp: str, token: str | None) -> Answer:
    """One POST of an offer, redirects not followed."""
    headers = {"Content-Type": SDP}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    async with http.post(url, data=sdp, headers=headers, allow_redirects=False) as resp:
        return Answer(resp.status, resp.headers, await resp.text())


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        yield session


@pytest.fixture
async def peers(two_nodes: TwoNodes, http: aiohttp.ClientSession) -> AsyncIterator[Clients]:
    """Peers of the test; ``publish`` and ``watch`` go to the first node (A)."""
    made = Clients(Node(two_nodes[0].url, http))
    yield made
    await made.close()


async def a_room(node: ServerProcess, room: str) -> str:
    created = await create_room(node.url, room, "Redirects")
    return str(created["host_token"])


async def watch_via(peers: Clients, http: aiohttp.ClientSession, url: str, token: str) -> Peer:
    """A WHEP viewer that follows one 307 by posting again, with its token, where it says."""
    peer = await peers.offer(("video",), "recvonly")
    peer.pc.on("track", lambda track: peer.tasks.append(asyncio.create_task(read(peer, track))))
    sdp = peer.pc.localDescription.sdp
    first = await post(http, url, sdp, token)
    assert first.status == 307, (first.status, first.text)
    target = first.headers["Location"]
    answer = await post(http, target, sdp, token)
    assert answer.status == 201, answer.text
    peer.location = urljoin(target, answer.headers["Location"])
    await peer.pc.setRemoteDescription(RTCSessionDescription(answer.text, "answer"))
    return peer


async def test_whep_on_the_other_node_is_redirected_to_the_owner_while_it_publishes(
    two_nodes: TwoNodes, peers: Clients, http: aiohttp.ClientSession
) -> None:
    a, b = two_nodes
    room = "redir"
    host = await a_room(a, room)
    viewer = mint_token(room, "viewer", "Vi", "v_vi")
    offer = (await peers.offer(("video",), "recvonly")).pc.localDescription.sdp

    # Nobody owns the media: B answers as it always did.
    not_live = await post(http, f"{b.url}/whep/{room}", offer, viewer)
    assert not_live.status == 409 and "not_live" in not_live.text
    assert (await api(a.url, "POST", f"/api/rooms/{room}/streams", token=host))[0] == 201
    no_media = await post(http, f"{b.url}/whep/{room}", offer, viewer)
    assert no_media.status == 409 and "no_media" in no_media.text

    publisher = await peers.publish(room, host, audio=False)  # to A, which now owns it

    # The token is checked before anything is said about where the media is.
    for token, status in [(None, 401), ("garbage", 401), (mint_token("elsewhere"), 403)]:
        refused = await post(http, f"{b.url}/whep/{room}", offer, token)
        assert refused.status == status, (token, refused.status, refused.text)
        assert "Location" not in refused.headers
    moved = await post(http, f"{b.url}/whep/{room}", offer, viewer)
    assert moved.status == 307, moved.text
    assert moved.headers["Location"] == f"{a.url}/whep/{room}"
    assert moved.headers["Access-Control-Allow-Origin"] == "*"
    # A second publisher on B is sent to A as well (where it is refused: one per room).
    whip = await post(http, f"{b.url}/whip/{room}", offer, host)
    assert whip.status == 307 and whip.headers["Location"] == f"{a.url}/whip/{room}"

    # Following the redirect gives a session on A that plays the publisher's frames.
    watching = await watch_via(peers, http, f"{b.url}/whep/{room}", viewer)
    assert watching.location.startswith(f"{a.url}/whep/{room}/")
    await until(lambda: len(watching.video) >= 10, 10, "frames through the owner")

    # The publisher leaves: nobody owns the media, and B no longer redirects.
    headers = {"Authorization": f"Bearer {host}"}
    async with http.delete(a.url + publisher.location, headers=headers) as resp:
        assert resp.status == 200
    after = await post(http, f"{b.url}/whep/{room}", offer, viewer)
    assert after.status == 409 and "not_live" in after.text


async def test_stopping_the_stream_on_the_other_node_disconnects_the_publisher(
    two_nodes: TwoNodes, peers: Clients, http: aiohttp.ClientSession
) -> None:
    a, b = two_nodes
    room = "stopper"
    host = await a_room(a, room)
    publisher = await peers.publish(room, host, audio=False)  # on A
    await until(lambda: publisher.pc.connectionState == "connected", 10, "the publisher up")
    status, stopped = await api(b.url, "DELETE", f"/api/rooms/{room}/streams/current", token=host)
    assert status == 200, stopped
    # A sees the stream stopped within its ownership check (1 s) and lets the publisher go.
    await until(
        lambda: publisher.pc.connectionState in ("closed", "failed"), 5, "the publisher cut off"
    )
    # Now B may take the room's media, and A sends viewers there.
    again = Clients(Node(b.url, http))
    try:
        await again.publish(room, host, audio=False)
        watcher = await peers.offer(("video",), "recvonly")
        moved = await post(
            http,
            f"{a.url}/whep/{room}",
            watcher.pc.localDescription.sdp,
            mint_token(room, "viewer", "Vi"),
        )
        assert moved.status == 307 and moved.headers["Location"] == f"{b.url}/whep/{room}"
        status, view = await api(a.url, "GET", f"/api/rooms/{room}", token=None)
        assert view["live"] and view["stream_id"] != stopped["id"]
    finally:
        await again.close()


async def test_hls_is_served_by_every_node_from_the_shared_data_directory(
    two_nodes: TwoNodes, peers: Clients, http: aiohttp.ClientSession
) -> None:
    """Only A, with the publisher, packages HLS; B, on the same data directory (nodes
    share one host), serves A's playlist and segments itself: no redirect needed."""
    a, b = two_nodes
    room = "hlsshared"
    host = await a_room(a, room)
    playlist = f"/hls/{room}/index.m3u8"
    await peers.publish(room, host)  # to A, which packages the HLS

    async def b_playlist() -> str:
        for _ in range(100):
            async with http.get(b.url + playlist, allow_redirects=False) as resp:
                if resp.status == 200:
                    text = await resp.text()
                    if "#EXTINF" in text:
                        return text
            await asyncio.sleep(0.2)
        raise AssertionError("B never served a playlist with a segment")

    text = await b_playlist()
    segment = next(line for line in text.splitlines() if line and not line.startswith("#"))
    async with http.get(f"{b.url}/hls/{room}/{segment}", allow_redirects=False) as resp:
        body = await resp.read()
        assert resp.status == 200 and body[4:8] in (b"moof", b"styp", b"ftyp"), body[:16]
    async with http.get(f"{a.url}/hls/{room}/{segment}") as resp:
        assert resp.status == 200 and await resp.read() == body
