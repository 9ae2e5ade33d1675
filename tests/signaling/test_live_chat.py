"""Danmaku and chat through a real server and real Socket.IO clients, on both stores."""

from __future__ import annotations

import asyncio
import uuid

from support import Server


async def test_message_reaches_every_viewer_in_a_batch(server: Server) -> None:
    room = (await server.create_room())["room"]["id"]
    ann = await server.client(room, name="Ann")
    bob = await server.client(room, name="Bob")
    ack = await ann.chat("hello 你好", mode="top", color="#FF0000")
    assert ack["ok"] is True and ack["held"] is False and ack["duplicate"] is False
    for viewer in (ann, bob):
        await viewer.wait_until(lambda v=viewer: "hello 你好" in v.message_texts())
    message = next(m for m in bob.messages() if m["text"] == "hello 你好")
    assert message["id"] == ack["id"]
    assert message["name"] == "Ann" and message["role"] == "viewer"
    assert message["mode"] == "top" and message["color"] == "#ff0000"
    assert message["viewer_id"] == ann.welcome["you"]["viewer_id"]


async def test_retry_with_same_client_id_records_once(server: Server) -> None:
    room = (await server.create_room())["room"]["id"]
    ann = await server.client(room)
    payload = {"text": "only once", "client_id": "c-1"}
    first, second = await asyncio.gather(ann.call("chat", payload), ann.call("chat", payload))
    third = await ann.call("chat", payload)
    ids = {first["id"], second["id"], third["id"]}
    assert len(ids) == 1
    assert sorted([first["duplicate"], second["duplicate"], third["duplicate"]]) == [
        False,
        True,
        True,
    ]
    events = [e async for e in server.services.log.scan(room) if e.kind == "chat.message"]
    assert [e.data["text"] for e in events] == ["only once"]
    await asyncio.sleep(0.2)
    assert ann.message_texts().count("only once") == 1


async def test_staff_badge_comes_from_token_not_name(server: Server) -> None:
    # uncapped: with the default cap a tick's budget may be one message, which the
    # host's (never sampled away) takes; the viewer then sees their own from the ack
    room = (await server.create_room(settings={"max_danmaku_per_second": 0}))["room"]["id"]
    fake = await server.client(room, name="Host")
    host = await server.client(room, role="host", name="Real host")
    await fake.chat("I am the host")
    await host.chat("welcome all")
    await fake.wait_until(lambda: len(fake.messages()) >= 2)
    roles = {m["text"]: m["role"] for m in fake.messages()}
    assert roles == {"I am the host": "viewer", "welcome all": "host"}


async def test_text_is_normalised_before_recording(server: Server) -> None:
    room = (await server.create_room())["room"]["id"]
    ann = await server.client(room)
    ack = await ann.chat("  he\u200bllo\u202e  ｗｏｒｌｄ  ")
    assert ack["message"]["text"] == "hello world"


async def test_likes_are_counted_and_broadcast(server: Server) -> None:
    room = (await server.create_room())["room"]["id"]
    ann = await server.client(room)
    bob = await server.client(room, name="Bob")
    assert (await ann.call("like", {"count": 5}))["likes"] == 5
    assert (await bob.call("like", {"count": 3}))["likes"] == 8
    await ann.wait_for("batch", lambda b: b["likes"] == 8)
    vid = ann.welcome["you"]["viewer_id"]
    scope = "-"
    counters = await server.services.counters.viewer(room, scope, vid)
    assert counters["likes"] == 5


async def test_viewer_count_and_peak_follow_presence(server: Server) -> None:
    room = (await server.create_room())["room"]["id"]
    ann = await server.client(room)
    bob = await server.client(room, name="Bob")
    await ann.wait_for("batch", lambda b: b["viewers"] == 2)
    await bob.close()
    await ann.wait_for("batch", lambda b: b["viewers"] == 1 and b["peak"] == 2)


async def test_two_tabs_of_one_viewer_count_once(server: Server) -> None:
    room = (await server.create_room())["room"]["id"]
    token = server.token(room, name="Ann")
    tab1 = await server.client(room, token)
    tab2 = await server.client(room, token)
    await tab1.wait_for("batch", lambda b: b["viewers"] == 1)
    await tab2.close()
    await asyncio.sleep(0.2)
    joins = [e async for e in server.services.log.scan(room) if e.kind == "presence.join"]
    assert len(joins) == 1


async def test_reconnect_receives_what_was_missed(server: Server) -> None:
    room = (await server.create_room())["room"]["id"]
    ann = await server.client(room)
    bob = await server.client(room, name="Bob")
    seen = (await ann.chat("before"))["id"]
    await ann.close()
    await bob.chat("while away 1")
    await bob.chat("while away 2")
    deleted_target = (await bob.chat("to be deleted"))["id"]
    mod = await server.client(room, role="moderator", name="Mod")
    assert (await mod.call("mod_delete", {"message_id": deleted_target}))["ok"]
    back = await server.client(room, name="Ann", last_event_id=seen)
    welcome = back.welcome
    assert welcome["resumed"] is True
    assert [m["text"] for m in welcome["messages"]] == ["while away 1", "while away 2"]
    assert deleted_target in welcome["deleted"]


async def test_welcome_carries_recent_messages(server: Server) -> None:
    room = (await server.create_room())["room"]["id"]
    ann = await server.client(room)
    for i in range(3):
        await ann.chat(f"m{i}")
    late = await server.client(room, name="Late")
    assert [m["text"] for m in late.welcome["messages"]] == ["m0", "m1", "m2"]
    assert late.welcome["resumed"] is False


async def test_messages_carry_stream_offset_while_live(server: Server) -> None:
    created = await server.create_room()
    room = created["room"]["id"]
    status, stream = await server.api(
        "POST", f"/api/rooms/{room}/streams", token=created["host_token"]
    )
    assert status == 201
    ann = await server.client(room)
    await asyncio.sleep(0.1)
    ack = await ann.chat("during the stream")
    assert ack["message"]["offset_ms"] >= 100
    event = await server.services.log.get(ack["id"])
    assert event is not None and event.stream == stream["id"]


async def test_unique_client_ids_give_distinct_messages(server: Server) -> None:
    room = (await server.create_room())["room"]["id"]
    ann = await server.client(room)
    acks = [
        await ann.call("chat", {"text": f"t{i}", "client_id": uuid.uuid4().hex}) for i in range(3)
    ]
    assert len({a["id"] for a in acks}) == 3
    assert [a["id"] for a in acks] == sorted(a["id"] for a in acks)
