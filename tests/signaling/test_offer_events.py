"""Offer cards through a real server, on both stores: pushes to viewers, the
counted click-through redirect and its refusals, withdrawal, staff click counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from pathlib import Path
from typing import Any

import aiohttp
from processes import NodeClients, TwoNodes, create_room
from support import SECRET, LiveClient, Server, error_code, mint_token, new_room, vid

from livehub.rooms import tokens

OFFER = {"title": "Course -30%", "text": "Until midnight", "url": "https://shop.example/c?x=1"}


async def open_link(server: Server, path: str, method: str = "GET") -> tuple[int, Any, str]:
    """(status, JSON body or None, Location) without following the redirect."""
    async with server.http.request(method, server.url + path, allow_redirects=False) as resp:
        body = await resp.json() if resp.content_type == "application/json" else None
        return resp.status, body, resp.headers.get("Location", "")


async def clicks_logged(server: Server, room: str) -> list[str]:
    return [e.actor async for e in server.services.log.scan(room) if e.kind == "offer.click"]


async def push(staff: LiveClient, **body: Any) -> dict[str, Any]:
    ack = await staff.call("offer_push", {**OFFER, **body})
    assert ack["ok"], ack
    return dict(ack["offer"])


async def test_push_click_withdraw(server: Server) -> None:
    room = await new_room(server)
    host = await server.client(room, role="host", name="Host")
    ann = await server.client(room, name="Ann")
    bob = await server.client(room, name="Bob")

    offer = await push(host, cta="Get it")
    offer_id = offer["offer_id"]
    assert (offer["title"], offer["url"], offer["cta"], offer["clicks"]) == (
        "Course -30%",
        OFFER["url"],
        "Get it",
        0,
    )
    seen = await ann.wait_for("offer", lambda o: o["offer_id"] == offer_id)
    assert seen["click_path"] == f"/o/{room}/{offer_id}"
    assert "clicks" not in seen
    late = await server.client(room, name="Late")
    assert [o["offer_id"] for o in (await late.call("offer_state"))["offers"]] == [offer_id]

    # Five concurrent clicks by one viewer: five redirects, one count.
    link = f"{seen['click_path']}?t={ann.auth['token']}"
    results = await asyncio.gather(*(open_link(server, link) for _ in range(5)))
    assert results == [(302, None, OFFER["url"])] * 5
    status, _, location = await open_link(server, f"{seen['click_path']}?t={bob.auth['token']}")
    assert (status, location) == (302, OFFER["url"])
    await host.wait_for("offer_clicks", lambda c: c == {"offer_id": offer_id, "clicks": 2})
    listed = (await host.call("offer_list"))["offers"]
    assert [(o["offer_id"], o["clicks"]) for o in listed] == [(offer_id, 2)]
    assert sorted(await clicks_logged(server, room)) == sorted([vid(ann), vid(bob)])
    counters = await server.services.counters.viewer(room, "-", vid(ann))
    assert counters["offer_clicks"] == 1

    # A host click goes through and is not counted.
    host_link = f"{seen['click_path']}?t={host.auth['token']}"
    assert (await open_link(server, host_link))[0] == 302

    # Withdrawn: pushed to viewers, gone from the state, the link answers 410.
    ack = await host.call("offer_withdraw", {"offer_id": offer_id})
    assert ack["ok"] and ack["offer"]["status"] == "withdrawn"
    await bob.wait_for("offer_withdrawn", lambda w: w == {"offer_id": offer_id})
    assert (await late.call("offer_state"))["offers"] == []
    status, body, location = await open_link(server, link)
    assert (status, body["code"], location) == (410, "offer_withdrawn", "")
    assert error_code(await host.call("offer_withdraw", {"offer_id": offer_id})) == (
        "already_withdrawn"
    )
    assert len(await clicks_logged(server, room)) == 2
    kinds = [e.kind async for e in server.services.log.scan(room) if e.kind.startswith("offer.")]
    assert kinds.count("offer.pushed") == 1 and kinds.count("offer.withdrawn") == 1


async def test_bad_tokens_are_refused_and_count_nothing(server: Server) -> None:
    room = await new_room(server)
    other = await new_room(server)
    host = await server.client(room, role="host", name="Host")
    offer = await push(host)
    path = f"/o/{room}/{offer['offer_id']}"
    forged, _, _ = tokens.mint(
        "not-the-server-secret-0123456789abcdef", room=room, role="viewer", name="Eve"
    )
    expired = server.token(room, name="Old", now=time.time() - 7200, ttl_seconds=3600)
    cases = {
        "": (401, "token_missing"),
        "?t=": (401, "token_missing"),
        "?t=garbage": (401, "token_invalid"),
        f"?t={forged}": (401, "token_invalid"),
        f"?t={expired}": (401, "token_expired"),
        f"?t={server.token(other, name='Elsewhere')}": (403, "token_wrong_room"),
    }
    for query, (status, code) in cases.items():
        got, body, location = await open_link(server, path + query)
        assert (got, body["code"], location) == (status, code, ""), query

    valid = server.token(room, name="Ann")
    got, body, _ = await open_link(server, f"/o/{room}/o_nope?t={valid}")
    assert (got, body["code"]) == (404, "not_found")
    got, body, _ = await open_link(server, f"/o/nosuchroom/{offer['offer_id']}?t={valid}")
    assert (got, body["code"]) == (404, "room_not_found")
    # A HEAD (link previews, prefetch) is not a click.
    assert (await open_link(server, f"{path}?t={valid}", method="HEAD"))[0] == 405

    assert await clicks_logged(server, room) == []
    assert (await host.call("offer_list"))["offers"][0]["clicks"] == 0


async def test_refusals(server: Server) -> None:
    room = await new_room(server)
    host = await server.client(room, role="host", name="Host")
    mod = await server.client(room, role="moderator", name="Mod")
    ann = await server.client(room, name="Ann")
    for url in ("javascript:alert(document.cookie)", "data:text/html,<b>x</b>", "//evil.example"):
        ack = await mod.call("offer_push", {**OFFER, "url": url})
        assert error_code(ack) == "bad_url", url
    assert error_code(await ann.call("offer_push", OFFER)) == "forbidden"
    assert error_code(await ann.call("offer_list")) == "forbidden"
    assert error_code(await host.call("offer_push", {**OFFER, "title": "t" * 81})) == "bad_title"
    assert error_code(await host.call("offer_push", {**OFFER, "extra": 1})) == "bad_payload"
    assert error_code(await host.call("offer_withdraw", {"offer_id": "o_nope"})) == "not_found"

    offer = await push(mod)
    assert error_code(await ann.call("offer_withdraw", {"offer_id": offer["offer_id"]})) == (
        "forbidden"
    )
    offers = (await ann.call("offer_state"))["offers"]
    assert [o["offer_id"] for o in offers] == [offer["offer_id"]]
    # Only the one good push reached viewers or the log.
    await ann.wait_for("offer")
    assert len(ann.events["offer"]) == 1
    kinds = [e.kind async for e in server.services.log.scan(room) if e.kind.startswith("offer.")]
    assert kinds == ["offer.pushed"]


# -- two nodes ---------------------------------------------------------------------------


async def test_clicks_on_two_nodes_count_once(
    two_nodes: TwoNodes, node_clients: NodeClients, tmp_path: Path
) -> None:
    a, b = two_nodes
    data = tmp_path / "data"
    await create_room(a.url, "two", "Two")
    host = await node_clients.connect(a, "two", mint_token("two", "host", "Host"))
    viewer_token, ann_id, _ = tokens.mint(SECRET, room="two", role="viewer", name="Ann")
    ann = await node_clients.connect(b, "two", viewer_token)

    offer = await push(host)
    seen = await ann.wait_for("offer", lambda o: o["offer_id"] == offer["offer_id"])
    path = f"{seen['click_path']}?t={viewer_token}"

    async def click(base: str) -> tuple[int, str]:
        async with (
            aiohttp.ClientSession() as http,
            http.get(base + path, allow_redirects=False) as resp,
        ):
            return resp.status, resp.headers.get("Location", "")

    results = await asyncio.gather(*(click(node.url) for node in (a, b) * 5))
    assert results == [(302, OFFER["url"])] * 10
    # The click counted on either node reaches the host on A.
    await host.wait_for("offer_clicks", lambda c: c["clicks"] == 1)
    listed = (await host.call("offer_list"))["offers"]
    assert [o["clicks"] for o in listed] == [1]
    with contextlib.closing(sqlite3.connect(data / "livehub.db", timeout=10)) as db:
        actors = [
            row[0]
            for row in db.execute(
                "SELECT actor FROM events WHERE room = 'two' AND kind = 'offer.click'"
            )
        ]
    assert actors == [ann_id]
