"""The REST API and the pages, through a real server over HTTP.

Most tests are about the edge, not the store, and run on the in-memory store
only; /healthz runs on both stores.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from support import SECRET, Refused, Server, refusal_code, wait_disconnected

from livehub.app import WEB_DIR
from livehub.rooms import tokens
from livehub.signaling.auth import ALL_ROLES

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)
SOCKET_IO_CLIENT = WEB_DIR / "node_modules" / "socket.io-client" / "dist" / "socket.io.min.js"


def new_id() -> str:
    return "r" + uuid.uuid4().hex[:8]


def verify(token: str, room: str) -> Any:
    """The principal a server-secret token stands for in ``room``."""
    return tokens.verify(token, [(SECRET, ALL_ROLES)], room)


# -- rooms -------------------------------------------------------------------------


async def test_create_room_returns_staff_tokens_for_it(memory_server: Server) -> None:
    srv = memory_server
    rid = new_id()
    status, body = await srv.api("POST", "/api/rooms", json={"id": rid, "title": " Demo "})
    assert status == 201, body
    assert body["room"]["id"] == rid and body["room"]["title"] == "Demo"
    assert body["room"]["private"] is False and body["room"]["closed"] is False
    assert body["room"]["live"] is False and body["room"]["stream_id"] is None
    assert "room_key" not in body and "room_key" not in body["room"]
    host = verify(body["host_token"], rid)
    mod = verify(body["moderator_token"], rid)
    assert (host.role, mod.role) == ("host", "moderator")
    assert host.viewer_id != mod.viewer_id
    assert host.room == mod.room == rid


async def test_create_room_refuses_duplicates_and_bad_ids(memory_server: Server) -> None:
    srv = memory_server
    rid = new_id()
    await srv.create_room(rid)
    status, body = await srv.api("POST", "/api/rooms", json={"id": rid, "title": "Again"})
    assert (status, body["code"]) == (409, "room_exists")
    for bad in ("Has Caps", "-lead", "a/b", "x" * 65, "sp ace", "ü"):
        status, body = await srv.api("POST", "/api/rooms", json={"id": bad, "title": "T"})
        assert (status, body["code"]) == (400, "bad_room_id"), bad


async def test_create_room_needs_the_admin_key(memory_server: Server) -> None:
    srv = memory_server
    body = {"id": new_id(), "title": "T"}
    status, error = await srv.api("POST", "/api/rooms", token=None, json=body)
    assert (status, error["code"]) == (401, "admin_required")
    status, error = await srv.api("POST", "/api/rooms", token="not-the-key", json=body)
    assert (status, error["code"]) == (403, "admin_required")


async def test_private_room_key_is_returned_once_and_never_shown(memory_server: Server) -> None:
    srv = memory_server
    created = await srv.create_room(private=True)
    rid = created["room"]["id"]
    key = created["room_key"]
    assert isinstance(key, str) and len(key) >= 32
    assert created["room"]["private"] is True and "room_key" not in created["room"]

    async with srv.http.get(f"{srv.url}/api/rooms/{rid}") as resp:
        assert resp.status == 200
        text = await resp.text()
        room = await resp.json()
    assert key not in text and "room_key" not in room
    assert room["id"] == rid and room["private"] is True


async def test_get_room_is_public_and_404s_unknown_rooms(memory_server: Server) -> None:
    srv = memory_server
    rid = (await srv.create_room(title="Hello"))["room"]["id"]
    status, room = await srv.api("GET", f"/api/rooms/{rid}", token=None)
    assert status == 200
    assert set(room) == {
        "id",
        "title",
        "private",
        "closed",
        "live",
        "stream_id",
        "paused",
        "created_at",
        "settings",
    }
    assert room["title"] == "Hello"
    assert room["settings"]["slow_mode_seconds"] == 0
    status, error = await srv.api("GET", "/api/rooms/nosuchroom", token=None)
    assert (status, error["code"]) == (404, "room_not_found")


async def test_patch_room_by_host_and_admin_not_moderator(memory_server: Server) -> None:
    srv = memory_server
    created = await srv.create_room()
    rid = created["room"]["id"]
    viewer = await srv.client(rid, name="Ann")
    path = f"/api/rooms/{rid}"

    status, room = await srv.api(
        "PATCH", path, token=created["host_token"], json={"settings": {"slow_mode_seconds": 5}}
    )
    assert status == 200, room
    assert room["settings"]["slow_mode_seconds"] == 5
    assert room["settings"]["max_message_chars"] == 200  # a partial update keeps the rest
    await viewer.wait_for("room", lambda r: r["settings"]["slow_mode_seconds"] == 5)

    status, error = await srv.api(
        "PATCH", path, token=created["moderator_token"], json={"title": "Mine now"}
    )
    assert (status, error["code"]) == (403, "forbidden")
    status, error = await srv.api("PATCH", path, token=srv.token(rid), json={"title": "x"})
    assert (status, error["code"]) == (403, "forbidden")
    status, error = await srv.api("PATCH", path, token=None, json={"title": "x"})
    assert (status, error["code"]) == (401, "token_missing")
    other = await srv.create_room()
    status, error = await srv.api("PATCH", path, token=other["host_token"], json={"title": "x"})
    assert (status, error["code"]) == (403, "token_wrong_room")

    status, room = await srv.api("PATCH", path, json={"title": "Renamed"})
    assert status == 200 and room["title"] == "Renamed"
    assert room["settings"]["slow_mode_seconds"] == 5
    status, fetched = await srv.api("GET", path)
    assert fetched["title"] == "Renamed"
    log = [e async for e in srv.services.log.scan(rid) if e.kind == "room.updated"]
    assert [e.actor for e in log] == [verify(created["host_token"], rid).viewer_id, "admin"]


async def test_patch_room_validates_settings(memory_server: Server) -> None:
    srv = memory_server
    created = await srv.create_room()
    rid = created["room"]["id"]
    path = f"/api/rooms/{rid}"
    for settings in (
        {"slow_mode_seconds": 99999},
        {"slow_mode_seconds": -1},
        {"max_message_chars": 0},
        {"slow_mode_seconds": "ten"},
        {"no_such_setting": 1},
        {"question_interval_seconds": 3601},
        {"chat_burst": 0},
    ):
        status, error = await srv.api("PATCH", path, json={"settings": settings})
        assert (status, error["code"]) == (400, "bad_settings"), settings
    status, error = await srv.api("PATCH", path, json={"colour": "red"})
    assert (status, error["code"]) == (400, "bad_payload")
    status, error = await srv.api("PATCH", path, data=b"{not json", headers=_json_type())
    assert (status, error["code"]) == (400, "bad_json")
    status, room = await srv.api("GET", path)
    assert room["settings"] == created["room"]["settings"]


def _json_type() -> dict[str, str]:
    return {"Content-Type": "application/json"}


async def test_delete_closes_the_room_and_disconnects_everyone(memory_server: Server) -> None:
    srv = memory_server
    created = await srv.create_room()
    rid = created["room"]["id"]
    ann = await srv.client(rid, name="Ann")
    host = await srv.client(rid, created["host_token"])

    status, error = await srv.api("DELETE", f"/api/rooms/{rid}", token=created["host_token"])
    assert (status, error["code"]) == (403, "admin_required")

    status, room = await srv.api("DELETE", f"/api/rooms/{rid}")
    assert status == 200 and room["closed"] is True
    for client in (ann, host):
        update = await client.wait_for("room", lambda r: r["closed"] is True)
        assert update["id"] == rid
        await wait_disconnected(client)

    with pytest.raises(Refused) as refused:
        await srv.client(rid, name="Late")
    assert refusal_code(refused) == "room_closed"
    status, error = await srv.api("POST", f"/api/rooms/{rid}/join", token=None, json={"name": "B"})
    assert (status, error["code"]) == (409, "room_closed")
    status, error = await srv.api("POST", f"/api/rooms/{rid}/tokens", json={"name": "C"})
    assert (status, error["code"]) == (409, "room_closed")
    status, error = await srv.api("PATCH", f"/api/rooms/{rid}", json={"title": "reopen?"})
    assert (status, error["code"]) == (409, "room_closed")
    status, fetched = await srv.api("GET", f"/api/rooms/{rid}")
    assert status == 200 and fetched["closed"] is True


# -- tokens and joining --------------------------------------------------------------


async def test_tokens_endpoint_is_admin_only_and_honours_role(memory_server: Server) -> None:
    srv = memory_server
    created = await srv.create_room()
    rid = created["room"]["id"]
    path = f"/api/rooms/{rid}/tokens"

    status, issued = await srv.api("POST", path, json={"role": "moderator", "name": "Mia"})
    assert status == 201, issued
    who = verify(issued["token"], rid)
    assert (who.role, who.name, who.viewer_id) == ("moderator", "Mia", issued["viewer_id"])
    assert issued["expires_at"] > 0

    status, issued = await srv.api(
        "POST", path, json={"name": "Ann", "viewer_id": "crm-42", "ttl_seconds": 3600}
    )
    assert status == 201
    who = verify(issued["token"], rid)
    assert (who.role, who.viewer_id, issued["viewer_id"]) == ("viewer", "crm-42", "crm-42")
    client = await srv.client(rid, issued["token"])
    assert client.welcome["you"] == {"viewer_id": "crm-42", "name": "Ann", "role": "viewer"}

    status, error = await srv.api("POST", path, token=created["host_token"], json={"name": "X"})
    assert (status, error["code"]) == (403, "admin_required")
    status, error = await srv.api("POST", path, token=None, json={"name": "X"})
    assert (status, error["code"]) == (401, "admin_required")
    status, error = await srv.api("POST", path, json={"name": "X", "role": "admin"})
    assert (status, error["code"]) == (400, "bad_payload")
    status, error = await srv.api("POST", "/api/rooms/nosuchroom/tokens", json={"name": "X"})
    assert (status, error["code"]) == (404, "room_not_found")


async def test_join_public_room(memory_server: Server) -> None:
    srv = memory_server
    rid = (await srv.create_room())["room"]["id"]
    status, joined = await srv.api(
        "POST", f"/api/rooms/{rid}/join", token=None, json={"name": "  Zoë\u200b  "}
    )
    assert status == 201, joined
    who = verify(joined["token"], rid)
    assert (who.role, who.name, who.viewer_id) == ("viewer", "Zoë", joined["viewer_id"])
    client = await srv.client(rid, joined["token"])
    assert client.welcome["you"]["role"] == "viewer"

    status, again = await srv.api("POST", f"/api/rooms/{rid}/join", token=None, json={"name": "Z"})
    assert status == 201 and again["viewer_id"] != joined["viewer_id"]


async def test_join_refuses_bad_names_and_private_rooms(memory_server: Server) -> None:
    srv = memory_server
    rid = (await srv.create_room())["room"]["id"]
    path = f"/api/rooms/{rid}/join"
    for name in ("\u200b", "   ", "\u202e\u200d"):
        status, error = await srv.api("POST", path, token=None, json={"name": name})
        assert 400 <= status < 500 and error["code"] == "bad_name", (name, status, error)
    status, error = await srv.api("POST", path, token=None, json={"name": ""})
    assert (status, error["code"]) == (400, "bad_payload")
    status, error = await srv.api("POST", path, token=None, json={"name": "A", "role": "host"})
    assert (status, error["code"]) == (400, "bad_payload")

    private = (await srv.create_room(private=True))["room"]["id"]
    status, error = await srv.api(
        "POST", f"/api/rooms/{private}/join", token=None, json={"name": "Ann"}
    )
    assert (status, error["code"]) == (403, "room_private")


async def test_private_room_admits_viewer_tokens_signed_with_its_key(
    memory_server: Server,
) -> None:
    srv = memory_server
    created = await srv.create_room(private=True)
    rid, key = created["room"]["id"], created["room_key"]
    other = await srv.create_room(private=True)

    viewer, vid, _ = tokens.mint(key, room=rid, role="viewer", name="Paid", viewer_id="cust-1")
    client = await srv.client(rid, viewer)
    assert client.welcome["you"] == {"viewer_id": vid, "name": "Paid", "role": "viewer"}
    assert (await client.chat("thanks"))["ok"] is True

    for role in ("host", "moderator"):
        forged, _, _ = tokens.mint(key, room=rid, role=role, name="Boss")
        with pytest.raises(Refused) as refused:
            await srv.client(rid, forged)
        assert refusal_code(refused) == "forbidden", role
        status, error = await srv.api("PATCH", f"/api/rooms/{rid}", token=forged, json={})
        assert (status, error["code"]) == (403, "forbidden")

    foreign, _, _ = tokens.mint(other["room_key"], room=rid, role="viewer", name="Eve")
    with pytest.raises(Refused) as refused:
        await srv.client(rid, foreign)
    assert refusal_code(refused) == "token_invalid"

    other_room, _, _ = tokens.mint(
        other["room_key"], room=other["room"]["id"], role="viewer", name="E"
    )
    with pytest.raises(Refused) as refused:
        await srv.client(rid, other_room)
    assert refusal_code(refused) == "token_invalid"

    public = await srv.create_room()
    # A public room has no key of its own; a token "signed" with another room's key is nothing.
    stray, _, _ = tokens.mint(key, room=public["room"]["id"], role="viewer", name="S")
    with pytest.raises(Refused) as refused:
        await srv.client(public["room"]["id"], stray)
    assert refusal_code(refused) == "token_invalid"


# -- streams -----------------------------------------------------------------------


async def test_stream_lifecycle(memory_server: Server) -> None:
    srv = memory_server
    created = await srv.create_room()
    rid, host = created["room"]["id"], created["host_token"]
    streams = f"/api/rooms/{rid}/streams"
    viewer = await srv.client(rid, name="Ann")

    status, error = await srv.api("POST", streams, token=created["moderator_token"])
    assert (status, error["code"]) == (403, "forbidden")

    status, first = await srv.api("POST", streams, token=host)
    assert status == 201, first
    assert first["id"].startswith("s_") and first["room"] == rid and first["ended_at"] is None
    status, room = await srv.api("GET", f"/api/rooms/{rid}")
    assert room["live"] is True and room["stream_id"] == first["id"]
    await viewer.wait_for("room", lambda r: r["stream_id"] == first["id"])

    status, error = await srv.api("POST", streams, token=host)
    assert (status, error["code"]) == (409, "already_live")
    during = (await viewer.chat("during the first stream"))["id"]

    status, stopped = await srv.api("DELETE", f"{streams}/current", token=host)
    assert status == 200, stopped
    assert stopped["id"] == first["id"] and stopped["ended_at"] >= stopped["started_at"]
    status, room = await srv.api("GET", f"/api/rooms/{rid}")
    assert room["live"] is False and room["stream_id"] is None
    await viewer.wait_for("room", lambda r: r["live"] is False)
    status, error = await srv.api("DELETE", f"{streams}/current", token=host)
    assert (status, error["code"]) == (409, "not_live")
    between = (await viewer.chat("between streams"))["id"]

    status, second = await srv.api("POST", streams)  # the admin key works too
    assert status == 201 and second["id"] != first["id"]
    status, _ = await srv.api("DELETE", f"{streams}/current")
    assert status == 200

    status, listed = await srv.api("GET", streams, token=created["moderator_token"])
    assert status == 200
    assert [s["id"] for s in listed["streams"]] == [first["id"], second["id"]]
    assert all(s["ended_at"] is not None for s in listed["streams"])
    status, error = await srv.api("GET", streams, token=srv.token(rid))
    assert (status, error["code"]) == (403, "forbidden")
    status, error = await srv.api("GET", streams, token=None)
    assert (status, error["code"]) == (401, "token_missing")

    log = srv.services.log
    assert (await log.get(during)).stream == first["id"]  # type: ignore[union-attr]
    assert (await log.get(between)).stream is None  # type: ignore[union-attr]
    events = [e async for e in log.scan(rid)]
    marks = [
        (e.kind, e.data["stream_id"], e.stream) for e in events if e.kind.startswith("stream.")
    ]
    assert marks == [
        ("stream.started", first["id"], first["id"]),
        ("stream.stopped", first["id"], first["id"]),
        ("stream.started", second["id"], second["id"]),
        ("stream.stopped", second["id"], second["id"]),
    ]
    in_first = [e.kind async for e in log.scan(rid, first["id"])]
    assert in_first[0] == "stream.started" and in_first[-1] == "stream.stopped"
    assert "chat.message" in in_first


async def test_closing_a_live_room_ends_its_stream(memory_server: Server) -> None:
    srv = memory_server
    created = await srv.create_room()
    rid = created["room"]["id"]
    status, stream = await srv.api("POST", f"/api/rooms/{rid}/streams", token=created["host_token"])
    assert status == 201
    status, room = await srv.api("DELETE", f"/api/rooms/{rid}")
    assert status == 200 and room["closed"] is True and room["live"] is False
    status, listed = await srv.api("GET", f"/api/rooms/{rid}/streams")
    assert [s["id"] for s in listed["streams"]] == [stream["id"]]
    assert listed["streams"][0]["ended_at"] is not None
    status, error = await srv.api("POST", f"/api/rooms/{rid}/streams", token=created["host_token"])
    assert (status, error["code"]) == (409, "room_closed")


# -- health and pages ------------------------------------------------------------------


async def test_healthz_names_the_store(server: Server) -> None:
    status, body = await server.api("GET", "/healthz", token=None)
    assert status == 200
    expected = "memory" if server.settings.redis_url is None else "redis"
    assert body["ok"] is True and body["store"] == expected
    assert isinstance(body["node"], str) and body["node"]


@pytest.mark.parametrize("path", ["/", "/watch/demo", "/moderate/demo"])
async def test_pages_are_html_with_strict_headers(memory_server: Server, path: str) -> None:
    srv = memory_server
    async with srv.http.get(srv.url + path) as resp:
        assert resp.status == 200
        assert resp.content_type == "text/html"
        body = await resp.text()
        headers = resp.headers
    assert "<html" in body.lower()
    assert headers["Content-Security-Policy"] == CSP
    assert "unsafe-inline" not in headers["Content-Security-Policy"]
    assert "unsafe-eval" not in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"


async def test_api_answers_carry_the_security_headers_too(memory_server: Server) -> None:
    srv = memory_server
    async with srv.http.get(srv.url + "/api/rooms/nosuchroom") as resp:
        assert resp.status == 404
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Content-Security-Policy"] == CSP


async def test_socket_io_client_is_served_from_node_modules(memory_server: Server) -> None:
    assert SOCKET_IO_CLIENT.is_file(), (
        f"{SOCKET_IO_CLIENT} is missing: run `npm ci` in {WEB_DIR} (the pages need it)"
    )
    srv = memory_server
    async with srv.http.get(srv.url + "/static/vendor/socket.io.min.js") as resp:
        assert resp.status == 200
        assert resp.content_type in ("application/javascript", "text/javascript")
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        body = await resp.read()
    assert body == SOCKET_IO_CLIENT.read_bytes()
    assert b"Socket.IO" in body or b"socket.io" in body

    async with srv.http.get(srv.url + "/static/vendor/nothing.js") as resp:
        assert resp.status == 404
    async with srv.http.get(srv.url + "/static/vendor/..%2F..%2Fpackage.json") as resp:
        assert resp.status == 404
