"""Signed links open a report's HTML in a browser tab without a staff token in the address."""

from __future__ import annotations

from support import Server

from livehub.rooms import tokens


async def _stream(server: Server) -> tuple[str, str, str]:
    created = await server.create_room()
    room, host = created["room"]["id"], created["host_token"]
    status, stream = await server.api("POST", f"/api/rooms/{room}/streams", token=host)
    assert status == 201
    status, _ = await server.api("DELETE", f"/api/rooms/{room}/streams/current", token=host)
    assert status == 200
    return room, stream["id"], host


async def test_staff_get_a_link_that_opens_the_html_report(memory_server: Server) -> None:
    room, stream, host = await _stream(memory_server)
    status, link = await memory_server.api(
        "POST", f"/api/rooms/{room}/streams/{stream}/report/link?lang=zh-CN", token=host
    )
    assert status == 201 and host not in link["url"]
    async with memory_server.http.get(memory_server.url + link["url"]) as resp:
        assert resp.status == 200
        assert resp.content_type == "text/html"
        assert "<svg" in await resp.text()


async def test_a_link_opens_only_its_own_report_and_not_after_tampering(
    memory_server: Server,
) -> None:
    room, stream, _ = await _stream(memory_server)
    _, other_stream, _ = await _stream(memory_server)
    sig = tokens.mint_link(memory_server.services.auth.secret, room=room, stream=stream)
    base = f"{memory_server.url}/api/rooms/{room}/streams"
    async with memory_server.http.get(f"{base}/{other_stream}/report?sig={sig}") as resp:
        assert resp.status in (403, 404)
    async with memory_server.http.get(f"{base}/{stream}/report?sig={sig}x") as resp:
        assert resp.status == 401 and (await resp.json())["code"] == "link_invalid"
    forged = tokens.mint_link(
        "not-the-server-secret-but-long-enough-1234", room=room, stream=stream
    )
    async with memory_server.http.get(f"{base}/{stream}/report?sig={forged}") as resp:
        assert resp.status == 401


async def test_viewers_cannot_get_a_link(memory_server: Server) -> None:
    room, stream, _ = await _stream(memory_server)
    viewer = memory_server.token(room)
    status, body = await memory_server.api(
        "POST", f"/api/rooms/{room}/streams/{stream}/report/link", token=viewer
    )
    assert status == 403 and body["code"] == "forbidden"
