"""TURN REST API credentials: the formula, the Link headers, and a real coturn.

coturn (Debian's ``turnserver``, see tests/turn_server.py) runs with
``--use-auth-secret``; the credentials come out of real WHIP and WHEP answers
of a real livehub, and aioice's TURN client allocates a relay with them.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import re
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aioice import stun
from aioice.turn import create_turn_endpoint
from aiortc import (
    AudioStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from publishing import MEDIA_TIMING, PatternTrack
from support import Server, make_settings, start_server, stop_server
from turn_server import TurnProcess, start_turn

from livehub import settings
from livehub.media.sessions import MediaConfig
from livehub.media.turn import IceServer, TurnCredential, ice_servers, quoted, user_part

TURN_SECRET = "turn-shared-secret-0123456789abcdef"
TTL = 600
# Computed with another implementation, not this module:
#   printf '1700000000:v_ann' | openssl dgst -sha1 -hmac north-secret -binary | base64
OPENSSL_VECTOR = ("north-secret", "1700000000:v_ann", "3B2z6c61FkoJoMEmimm5YbVltnY=")

LINK = re.compile(r'<([^>]*)>((?:\s*;\s*[\w-]+\s*=\s*(?:"(?:[^"\\]|\\.)*"|[^;,"]*))*)')
PARAM = re.compile(r';\s*([\w-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;,"]*))')


def parse_links(values: list[str]) -> list[dict[str, str]]:
    """Link header values (RFC 8288) as dicts: "url" and each parameter, unquoted."""
    links = []
    for match in LINK.finditer(", ".join(values)):
        link = {"url": match[1]}
        for p in PARAM.finditer(match[2]):
            value = p[3] if p[2] is None else re.sub(r"\\(.)", r"\1", p[2])
            link[p[1]] = value.strip()
        links.append(link)
    return links


def rest_credential(secret: str, username: str) -> str:
    """The documented formula, written out here independently of livehub.media.turn."""
    mac = hmac.new(secret.encode(), username.encode(), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode()


# the formula and the headers


def test_credentials_follow_the_turn_rest_formula() -> None:
    secret, username, credential = OPENSSL_VECTOR
    minted = TurnCredential.mint(secret, "v_ann", now=1_699_999_000, ttl=1000)
    assert (minted.username, minted.credential) == (username, credential)
    assert minted.expires_at == 1_700_000_000
    assert rest_credential(secret, username) == credential

    other = TurnCredential.mint(TURN_SECRET, "host-7", now=1_234_567_890.9, ttl=86400)
    assert other.username == "1234654290:host-7"
    assert other.credential == rest_credential(TURN_SECRET, "1234654290:host-7")
    assert TURN_SECRET not in repr(other) and other.credential not in repr(other)

    with pytest.raises(ValueError):
        TurnCredential.mint("", "v_ann", now=0)
    with pytest.raises(ValueError):
        TurnCredential.mint(TURN_SECRET, "v_ann", now=0, ttl=0)


def test_user_ids_that_are_not_plain_are_hashed_stably() -> None:
    assert user_part("v_ann") == "v_ann"
    for odd in ('Ann "the" admin', "a:b", "ünï", "x" * 65, ""):
        part = user_part(odd)
        assert re.fullmatch(r"u[0-9a-f]{24}", part), (odd, part)
        assert part == user_part(odd)
    assert user_part("a:b") != user_part("a:c")


def test_only_turn_urls_get_credentials_and_values_are_quoted() -> None:
    urls = ("stun:s.example:3478", "turn:t.example:3478?transport=udp", "turns:t.example:5349")
    servers = ice_servers(urls, TURN_SECRET, "v_ann", now=1000, ttl=TTL)
    assert servers[0] == IceServer(urls[0])
    assert servers[0].link() == '<stun:s.example:3478>; rel="ice-server"'
    links = parse_links([s.link() for s in servers])
    assert [link["url"] for link in links] == list(urls)
    assert links[0] == {"url": urls[0], "rel": "ice-server"}
    for link in links[1:]:
        assert link["username"] == "1600:v_ann"
        assert link["credential"] == rest_credential(TURN_SECRET, "1600:v_ann")
        assert link["credential-type"] == "password" and link["rel"] == "ice-server"

    assert [s.turn for s in ice_servers(urls, None, "v_ann", now=1000)] == [None] * 3
    assert quoted('a"b\\c') == '"a\\"b\\\\c"'
    with pytest.raises(ValueError):
        quoted("a\r\nSet-Cookie: x")


def test_the_server_peer_connections_use_credentials_for_turn_only() -> None:
    urls = ("stun:s.example:3478", "turn:t.example:3478")
    config = MediaConfig(ice_servers=urls, turn_secret=TURN_SECRET, turn_ttl=TTL)
    stun_server, turn_server = config.rtc_configuration().iceServers or []
    assert (stun_server.urls, stun_server.username, stun_server.credential) == (urls[0], None, None)
    assert turn_server.urls == urls[1] and turn_server.credentialType == "password"
    assert turn_server.username is not None
    assert turn_server.credential == rest_credential(TURN_SECRET, turn_server.username)
    assert TURN_SECRET not in repr(config)
    bare = MediaConfig(ice_servers=urls).rtc_configuration().iceServers or []
    assert [(s.username, s.credential) for s in bare] == [(None, None)] * 2


def test_turn_settings_from_flags_or_the_environment() -> None:
    parser = argparse.ArgumentParser()
    settings.add_arguments(parser)
    flags = ["--ice-server", "turn:t.example", "--turn-secret", TURN_SECRET, "--turn-ttl", "600"]
    loaded = settings.load(parser.parse_args(flags), env={})
    assert (loaded.turn_secret, loaded.turn_ttl) == (TURN_SECRET, 600)
    assert TURN_SECRET not in repr(loaded)
    env = {"LIVEHUB_ICE_SERVERS": "turns:t.example:5349", "LIVEHUB_TURN_SECRET": TURN_SECRET}
    from_env = settings.load(None, env=env)
    assert (from_env.turn_secret, from_env.turn_ttl) == (TURN_SECRET, 86400)
    assert settings.load(None, env={}).turn_secret is None
    with pytest.raises(ValueError, match=r"--turn-secret.*turn: or turns:"):
        settings.load(None, env={"LIVEHUB_TURN_SECRET": TURN_SECRET})


# a real coturn


@pytest.fixture(scope="module")
def coturn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TurnProcess]:
    server = start_turn(tmp_path_factory.mktemp("turn"), TURN_SECRET)
    try:
        yield server
    finally:
        server.stop()


class Relayed(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


async def allocate(turn: TurnProcess, username: str, password: str) -> tuple[str, int]:
    """A relay allocated with these credentials (then deleted), or TransactionFailed."""
    transport, protocol = await asyncio.wait_for(
        create_turn_endpoint(Relayed, turn.address, username, password), 10
    )
    relayed: tuple[str, int] = transport.get_extra_info("sockname")
    transport.close()
    await asyncio.wait_for(protocol.closed, 10)
    return relayed


async def refused(turn: TurnProcess, username: str, password: str) -> int:
    with pytest.raises(stun.TransactionFailed) as failed:
        await allocate(turn, username, password)
    code: int = failed.value.response.attributes["ERROR-CODE"][0]
    return code


async def test_coturn_accepts_minted_credentials_and_refuses_wrong_or_expired_ones(
    coturn: TurnProcess,
) -> None:
    now = time.time()
    good = TurnCredential.mint(TURN_SECRET, "v_ann", now, TTL)
    assert (await allocate(coturn, good.username, good.credential))[0] == "127.0.0.1"

    wrong_secret = TurnCredential.mint("not-" + TURN_SECRET, "v_ann", now, TTL)
    assert await refused(coturn, wrong_secret.username, wrong_secret.credential) == 401
    other_user = TurnCredential.mint(TURN_SECRET, "v_bob", now, TTL)
    assert await refused(coturn, good.username, other_user.credential) == 401
    expired = TurnCredential.mint(TURN_SECRET, "v_ann", now - TTL - 60, TTL)
    assert await refused(coturn, expired.username, expired.credential) == 401


@pytest.fixture
async def turn_livehub(tmp_path: Path, coturn: TurnProcess) -> AsyncIterator[Server]:
    off = {"enabled": False}
    stun_url = f"stun:127.0.0.1:{coturn.port}"
    srv = await start_server(
        make_settings(
            tmp_path / "data",
            ice_servers=(stun_url, coturn.url),
            turn_secret=TURN_SECRET,
            turn_ttl=TTL,
            extra={"media": MEDIA_TIMING, "recording": off, "hls": off},
        )
    )
    yield srv
    await stop_server(srv)


async def post_offer(
    server: Server, path: str, token: str, pc: RTCPeerConnection
) -> tuple[list[dict[str, str]], str]:
    await pc.setLocalDescription(await pc.createOffer())
    headers = {"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"}
    async with server.http.post(
        server.url + path, data=pc.localDescription.sdp, headers=headers
    ) as reply:
        assert reply.status == 201, await reply.text()
        links = parse_links(reply.headers.getall("Link", []))
        answer = await reply.text()
    await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    return links, answer


def turn_link(links: list[dict[str, str]], server: TurnProcess) -> dict[str, str]:
    stun_links = [link for link in links if link["url"].startswith("stun:")]
    assert stun_links == [{"url": f"stun:127.0.0.1:{server.port}", "rel": "ice-server"}]
    (link,) = [link for link in links if link["url"] == server.url]
    assert link["rel"] == "ice-server" and link["credential-type"] == "password"
    return link


async def test_whip_and_whep_answers_carry_credentials_that_coturn_accepts(
    turn_livehub: Server, coturn: TurnProcess
) -> None:
    server = turn_livehub
    made = await server.create_room()
    rid = made["room"]["id"]
    peers = [RTCPeerConnection(RTCConfiguration(iceServers=[])) for _ in range(2)]
    try:
        publisher, viewer = peers
        publisher.addTransceiver(PatternTrack(), direction="sendonly")
        publisher.addTransceiver(AudioStreamTrack(), direction="sendonly")
        whip_links, whip_answer = await post_offer(
            server, f"/whip/{rid}", made["host_token"], publisher
        )
        viewer.addTransceiver("video", direction="recvonly")
        viewer.addTransceiver("audio", direction="recvonly")
        token = server.token(rid, viewer_id="v_ann")
        whep_links, whep_answer = await post_offer(server, f"/whep/{rid}", token, viewer)

        # The server's own peer connections got a relay from coturn with their credential.
        for answer in (whip_answer, whep_answer):
            assert re.search(r"a=candidate:.* 127\.0\.0\.1 \d+ typ relay", answer), answer

        host, ann = turn_link(whip_links, coturn), turn_link(whep_links, coturn)
        assert ann["username"].endswith(":v_ann")
        assert host["username"].split(":", 1)[1] not in ("", "v_ann"), "per user"
        for link in (host, ann):
            expiry = int(link["username"].split(":", 1)[0])
            assert time.time() + TTL - 30 < expiry <= time.time() + TTL + 1
            assert (await allocate(coturn, link["username"], link["credential"]))[0] == "127.0.0.1"
        assert await refused(coturn, ann["username"], host["credential"]) == 401

        options = await server.http.options(f"{server.url}/whep/{rid}")
        assert "Link" not in options.headers, "no credentials to someone without a token"
        options.release()
    finally:
        for pc in peers:
            await pc.close()


def test_a_server_without_turn_secret_sends_bare_turn_urls() -> None:
    config = MediaConfig(ice_servers=("turn:t.example:3478",))
    assert [s.link() for s in config.ice_servers_for("v_ann")] == [
        '<turn:t.example:3478>; rel="ice-server"'
    ]
