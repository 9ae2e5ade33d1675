"""Moderation through a real server and real Socket.IO clients, on both stores:
delete, mute, ban, the rule chain and its hold-for-review queue, slow mode,
pausing chat, the roster and stats, and the log of who did what.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from support import (
    LiveClient,
    Refused,
    Server,
    error_of,
    make_settings,
    refusal_code,
    start_server,
    stop_server,
    vid,
    wait_disconnected,
)

TICK = 0.05  # make_settings uses tick_ms=50


async def new_room(server: Server) -> str:
    # No per-viewer danmaku cap: these tests look for every message, none sampled away.
    created = await server.create_room(settings={"max_danmaku_per_second": 0})
    return str(created["room"]["id"])


async def mod_events(server: Server, room: str, kind: str | None = None) -> list[Any]:
    return [
        e
        async for e in server.services.log.scan(room)
        if e.kind.startswith("mod.") and (kind is None or e.kind == kind)
    ]


async def settle() -> None:
    """Long enough for several batch ticks to go out."""
    await asyncio.sleep(TICK * 5)


# -- delete ------------------------------------------------------------------------


async def test_delete_reaches_every_viewer_and_is_logged(server: Server) -> None:
    room = await new_room(server)
    ann = await server.client(room, name="Ann")
    bob = await server.client(room, name="Bob")
    mod = await server.client(room, role="moderator", name="Mod")
    target = (await ann.chat("delete me"))["id"]
    await bob.wait_until(lambda: "delete me" in bob.message_texts())

    assert (await mod.call("mod_delete", {"message_id": target})) == {"ok": True}
    for client in (ann, bob, mod):
        await client.wait_for("batch", lambda b: target in b["deleted"])

    [event] = await mod_events(server, room, "mod.delete")
    assert event.actor == vid(mod)
    assert event.data == {"message_id": target, "viewer_id": vid(ann)}

    late = await server.client(room, name="Late")
    assert target not in [m["id"] for m in late.welcome["messages"]]


async def test_delete_unknown_or_foreign_message_is_not_found(server: Server) -> None:
    room = await new_room(server)
    other = await new_room(server)
    mod = await server.client(room, role="moderator", name="Mod")
    elsewhere = await server.client(other, name="Eve")
    foreign = (await elsewhere.chat("in another room"))["id"]

    assert error_of(await mod.call("mod_delete", {"message_id": 10**9}))["code"] == "not_found"
    assert error_of(await mod.call("mod_delete", {"message_id": foreign}))["code"] == "not_found"
    assert await mod_events(server, room) == []
    await settle()
    assert foreign not in elsewhere.deleted()


async def test_viewers_cannot_use_moderator_events(server: Server) -> None:
    room = await new_room(server)
    ann = await server.client(room, name="Ann")
    bob = await server.client(room, name="Bob")
    target = (await bob.chat("hi"))["id"]
    for event, payload in [
        ("mod_delete", {"message_id": target}),
        ("mod_mute", {"viewer_id": vid(bob), "seconds": 60}),
        ("mod_ban", {"viewer_id": vid(bob)}),
        ("mod_slow", {"seconds": 5}),
        ("mod_pause", {"paused": True}),
        ("mod_viewers", {}),
    ]:
        assert error_of(await ann.call(event, payload))["code"] == "forbidden", event
    assert await mod_events(server, room) == []
    assert (await bob.chat("still here"))["ok"] is True


# -- mute --------------------------------------------------------------------------


async def test_mute_blocks_only_the_muted_viewer_until_unmuted(server: Server) -> None:
    room = await new_room(server)
    ann = await server.client(room, name="Ann")
    bob = await server.client(room, name="Bob")
    mod = await server.client(room, role="moderator", name="Mod")

    before = time.time()
    ack = await mod.call("mod_mute", {"viewer_id": vid(ann), "seconds": 120})
    assert ack["ok"] is True
    assert before + 119 <= ack["until"] <= time.time() + 121

    muted = await ann.wait_for("muted")
    assert muted == {"until": ack["until"]}
    await settle()
    assert "muted" not in bob.events and "muted" not in mod.events

    error = error_of(await ann.chat("can I talk?"))
    assert error["code"] == "muted"
    assert abs(error["details"]["until"] - ack["until"]) < 2
    assert (await bob.chat("bob talks"))["ok"] is True

    assert (await mod.call("mod_unmute", {"viewer_id": vid(ann)})) == {"ok": True}
    assert (await ann.chat("back again"))["ok"] is True
    await bob.wait_until(lambda: "back again" in bob.message_texts())
    assert "can I talk?" not in bob.message_texts()

    [mute] = await mod_events(server, room, "mod.mute")
    assert mute.actor == vid(mod)
    assert mute.data["viewer_id"] == vid(ann) and mute.data["seconds"] == 120
    [unmute] = await mod_events(server, room, "mod.unmute")
    assert unmute.actor == vid(mod) and unmute.data == {"viewer_id": vid(ann)}


async def test_mute_expires_by_itself(server: Server) -> None:
    room = await new_room(server)
    ann = await server.client(room, name="Ann")
    host = await server.client(room, role="host", name="Host")
    assert (await host.call("mod_mute", {"viewer_id": vid(ann), "seconds": 1}))["ok"] is True
    assert error_of(await ann.chat("too soon"))["code"] == "muted"
    await asyncio.sleep(1.2)
    assert (await ann.chat("free again"))["ok"] is True


async def test_mute_seconds_are_validated(server: Server) -> None:
    room = await new_room(server)
    ann = await server.client(room, name="Ann")
    mod = await server.client(room, role="moderator", name="Mod")
    for seconds in (0, 86401):
        ack = await mod.call("mod_mute", {"viewer_id": vid(ann), "seconds": seconds})
        assert error_of(ack)["code"] == "bad_payload"
    assert (await ann.chat("not muted"))["ok"] is True


async def test_moderator_cannot_mute_or_ban_themselves(server: Server) -> None:
    room = await new_room(server)
    mod = await server.client(room, role="moderator", name="Mod")
    me = vid(mod)
    assert (
        error_of(await mod.call("mod_mute", {"viewer_id": me, "seconds": 60}))["code"]
        == "not_yourself"
    )
    assert error_of(await mod.call("mod_ban", {"viewer_id": me}))["code"] == "not_yourself"
    assert await mod_events(server, room) == []
    assert mod.sio.connected
    assert (await mod.chat("still fine"))["ok"] is True


# -- ban ---------------------------------------------------------------------------


async def test_ban_disconnects_and_refuses_reconnects_until_unban(server: Server) -> None:
    room = await new_room(server)
    token = server.token(room, name="Ann", viewer_id="v_ann")
    ann = await server.client(room, token)
    bob = await server.client(room, name="Bob")
    mod = await server.client(room, role="moderator", name="Mod")

    ack = await mod.call("mod_ban", {"viewer_id": "v_ann", "reason": "spam"})
    assert ack == {"ok": True}
    assert await ann.wait_for("banned") == {"reason": "spam"}
    await wait_disconnected(ann)
    assert "banned" not in bob.events
    assert bob.sio.connected and (await bob.chat("bob stays"))["ok"] is True

    with pytest.raises(Refused) as same_token:
        await server.client(room, token)
    assert refusal_code(same_token) == "banned"
    with pytest.raises(Refused) as fresh_token:
        await server.client(room, name="Ann again", viewer_id="v_ann")
    assert refusal_code(fresh_token) == "banned"

    assert (await mod.call("mod_unban", {"viewer_id": "v_ann"})) == {"ok": True}
    back = await server.client(room, token)
    assert vid(back) == "v_ann"
    assert (await back.chat("thanks for unbanning"))["ok"] is True

    [ban] = await mod_events(server, room, "mod.ban")
    assert ban.actor == vid(mod) and ban.data == {"viewer_id": "v_ann", "reason": "spam"}
    [unban] = await mod_events(server, room, "mod.unban")
    assert unban.actor == vid(mod) and unban.data == {"viewer_id": "v_ann"}


async def test_ban_survives_a_restart(server: Server, tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "restart", redis_url=server.settings.redis_url)
    first = await start_server(settings)
    try:
        room = await new_room(first)
        mod_token = first.token(room, role="moderator", name="Mod")
        ann = await first.client(room, name="Ann", viewer_id="v_ann")
        mod = await first.client(room, mod_token)
        assert (await mod.call("mod_ban", {"viewer_id": "v_ann", "reason": "x"}))["ok"] is True
        await wait_disconnected(ann)
    finally:
        await stop_server(first)

    second = await start_server(make_settings(settings.data_dir, redis_url=settings.redis_url))
    try:
        with pytest.raises(Refused) as refused:
            await second.client(room, name="Ann", viewer_id="v_ann")
        assert refusal_code(refused) == "banned"
        mod = await second.client(room, mod_token)
        assert (await mod.call("mod_unban", {"viewer_id": "v_ann"}))["ok"] is True
        ann = await second.client(room, name="Ann", viewer_id="v_ann")
        assert (await ann.chat("hello after restart"))["ok"] is True
    finally:
        await stop_server(second)


async def test_mute_survives_a_restart(server: Server, tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "restart", redis_url=server.settings.redis_url)
    first = await start_server(settings)
    try:
        room = await new_room(first)
        mod = await first.client(room, role="moderator", name="Mod")
        ack = await mod.call("mod_mute", {"viewer_id": "v_ann", "seconds": 600})
        assert ack["ok"] is True, ack
        ann = await first.client(room, name="Ann", viewer_id="v_ann")
        until = error_of(await ann.chat("muted here"))["details"]["until"]
    finally:
        await stop_server(first)

    second = await start_server(make_settings(settings.data_dir, redis_url=settings.redis_url))
    try:
        ann = await second.client(room, name="Ann", viewer_id="v_ann")
        error = error_of(await ann.chat("and after a restart"))
        assert error["code"] == "muted" and abs(error["details"]["until"] - until) < 2
        bob = await second.client(room, name="Bob")
        assert (await bob.chat("bob is not muted"))["ok"] is True
    finally:
        await stop_server(second)


# -- rules -------------------------------------------------------------------------


async def add_rule(mod: LiveClient, **rule: Any) -> dict[str, Any]:
    ack = await mod.call("mod_rule_add", rule)
    assert ack["ok"] is True, ack
    return dict(ack["rule"])


async def test_hold_rule_queues_for_review_then_approve_and_reject(server: Server) -> None:
    room = await new_room(server)
    ann = await server.client(room, name="Ann")
    bob = await server.client(room, name="Bob")
    mod = await server.client(room, role="moderator", name="Mod")
    rule = await add_rule(mod, pattern="spoiler", kind="word", action="hold")
    assert rule["pattern"] == "spoiler" and rule["action"] == "hold"

    first = await ann.chat("big SPOILER ahead")
    assert first["ok"] is True and first["held"] is True
    second = await ann.chat("another spoiler")
    assert second["held"] is True

    held = await mod.wait_for("held", lambda m: m["id"] == first["id"])
    assert held["text"] == "big SPOILER ahead" and held["viewer_id"] == vid(ann)
    await mod.wait_for("held", lambda m: m["id"] == second["id"])
    await settle()
    assert "held" not in ann.events and "held" not in bob.events
    for client in (ann, bob, mod):
        assert not client.messages(), client.message_texts()

    listed = await mod.call("mod_held", {})
    assert [m["id"] for m in listed["messages"]] == [first["id"], second["id"]]

    assert (await mod.call("mod_approve", {"message_id": first["id"]})) == {"ok": True}
    for client in (ann, bob, mod):
        await client.wait_for("batch", lambda b: first["id"] in [m["id"] for m in b["messages"]])
    delivered = next(m for m in bob.messages() if m["id"] == first["id"])
    assert delivered["text"] == "big SPOILER ahead" and delivered["viewer_id"] == vid(ann)
    await mod.wait_for("held_resolved", lambda r: r == {"id": first["id"], "approved": True})

    assert (await mod.call("mod_reject", {"message_id": second["id"]})) == {"ok": True}
    await mod.wait_for("held_resolved", lambda r: r == {"id": second["id"], "approved": False})
    assert (await mod.call("mod_held", {}))["messages"] == []
    again = await mod.call("mod_approve", {"message_id": second["id"]})
    assert error_of(again)["code"] == "not_found"
    await settle()
    for client in (ann, bob, mod):
        assert second["id"] not in [m["id"] for m in client.messages()]

    late = await server.client(room, name="Late")
    assert [m["id"] for m in late.welcome["messages"]] == [first["id"]]

    approve = await mod_events(server, room, "mod.approve")
    reject = await mod_events(server, room, "mod.reject")
    assert [e.actor for e in approve + reject] == [vid(mod), vid(mod)]


async def test_mute_rule_mutes_the_sender(server: Server) -> None:
    room = await new_room(server)
    ann = await server.client(room, name="Ann", viewer_id="v_ann")
    ann_tab = await server.client(room, name="Ann", viewer_id="v_ann")
    bob = await server.client(room, name="Bob")
    mod = await server.client(room, role="moderator", name="Mod")
    await add_rule(mod, pattern="badword", kind="word", action="mute", mute_seconds=60)

    error = error_of(await ann.chat("you b4dw0rd"))
    assert error["code"] == "muted" and error["details"]["until"] > time.time() + 50
    # Every tab of the viewer is told, as with a moderator's mute.
    for tab in (ann, ann_tab):
        assert await tab.wait_for("muted") == {"until": error["details"]["until"]}
    again = error_of(await ann.chat("innocent now"))
    assert again["code"] == "muted" and "by" not in again["details"]
    await settle()
    assert len(ann.events["muted"]) == 1  # refusing a muted viewer is not a new mute
    assert "muted" not in bob.events
    assert (await bob.chat("bob is fine"))["ok"] is True
    await settle()
    assert not [t for t in bob.message_texts() if t != "bob is fine"]

    automod = [e async for e in server.services.log.scan(room) if e.kind == "automod.mute"]
    assert [e.data["viewer_id"] for e in automod] == [vid(ann)]


async def test_ban_rule_bans_the_sender(server: Server) -> None:
    room = await new_room(server)
    ann = await server.client(room, name="Ann", viewer_id="v_ann")
    ann_tab = await server.client(room, name="Ann", viewer_id="v_ann")
    mod = await server.client(room, role="moderator", name="Mod")
    await add_rule(mod, pattern=r"buy\s+cheap", kind="regex", action="ban")

    assert error_of(await ann.chat("BUY   cheap watches"))["code"] == "banned"
    for tab in (ann, ann_tab):
        assert await tab.wait_for("banned") == {"reason": "automod"}
        await wait_disconnected(tab)
    with pytest.raises(Refused) as refused:
        await server.client(room, name="Ann", viewer_id="v_ann")
    assert refusal_code(refused) == "banned"
    assert [e.data["viewer_id"] for e in await mod_events(server, room, "mod.ban")] == ["v_ann"]


async def test_rules_list_and_remove(server: Server) -> None:
    room = await new_room(server)
    ann = await server.client(room, name="Ann")
    mod = await server.client(room, role="moderator", name="Mod")
    rule = await add_rule(mod, pattern="forbidden", kind="word", action="block")

    assert (await mod.call("mod_rules", {}))["rules"] == [rule]
    assert error_of(await ann.chat("a forbidden word"))["code"] == "blocked"

    assert (await mod.call("mod_rule_remove", {"rule_id": rule["id"]})) == {"ok": True}
    assert (await mod.call("mod_rules", {}))["rules"] == []
    assert (await ann.chat("a forbidden word"))["ok"] is True
    gone = await mod.call("mod_rule_remove", {"rule_id": rule["id"]})
    assert error_of(gone)["code"] == "not_found"

    [added] = await mod_events(server, room, "mod.rule_add")
    [removed] = await mod_events(server, room, "mod.rule_remove")
    assert added.actor == removed.actor == vid(mod)
    assert added.data["id"] == rule["id"] and removed.data == {"rule_id": rule["id"]}


async def test_invalid_regex_rule_is_refused(server: Server) -> None:
    room = await new_room(server)
    mod = await server.client(room, role="moderator", name="Mod")
    for pattern in ("(unclosed", r"(a)\1"):  # RE2 has no back-references
        ack = await mod.call("mod_rule_add", {"pattern": pattern, "kind": "regex"})
        assert error_of(ack)["code"] == "bad_rule", pattern
    assert (await mod.call("mod_rules", {}))["rules"] == []
    assert await mod_events(server, room) == []


# -- room-wide switches --------------------------------------------------------------


async def test_slow_mode_limits_viewers_but_not_staff(server: Server) -> None:
    room = await new_room(server)
    ann = await server.client(room, name="Ann")
    bob = await server.client(room, name="Bob")
    mod = await server.client(room, role="moderator", name="Mod")
    host = await server.client(room, role="host", name="Host")

    assert (await mod.call("mod_slow", {"seconds": 2})) == {"ok": True}
    for client in (ann, bob):
        update = await client.wait_for("room", lambda r: r["settings"]["slow_mode_seconds"] == 2)
        assert update["id"] == room
    status, fetched = await server.api("GET", f"/api/rooms/{room}")
    assert status == 200 and fetched["settings"]["slow_mode_seconds"] == 2

    assert (await ann.chat("first"))["ok"] is True
    error = error_of(await ann.chat("second"))
    assert error["code"] == "slow_mode"
    assert 0 < error["details"]["retry_after"] <= 2
    assert (await bob.chat("bob's first"))["ok"] is True
    for staff in (mod, host):
        assert (await staff.chat(f"{staff.welcome['you']['role']} one"))["ok"] is True
        assert (await staff.chat(f"{staff.welcome['you']['role']} two"))["ok"] is True

    assert (await mod.call("mod_slow", {"seconds": 0}))["ok"] is True
    await ann.wait_for("room", lambda r: r["settings"]["slow_mode_seconds"] == 0)
    assert error_of(await mod.call("mod_slow", {"seconds": 3601}))["code"] == "bad_payload"

    events = await mod_events(server, room, "mod.slow")
    assert [(e.actor, e.data) for e in events] == [
        (vid(mod), {"seconds": 2}),
        (vid(mod), {"seconds": 0}),
    ]


async def test_pause_stops_viewers_but_not_staff(server: Server) -> None:
    room = await new_room(server)
    ann = await server.client(room, name="Ann")
    mod = await server.client(room, role="moderator", name="Mod")
    host = await server.client(room, role="host", name="Host")

    assert (await host.call("mod_pause", {"paused": True})) == {"ok": True}
    await ann.wait_for("room", lambda r: r["settings"]["chat_paused"] is True)
    assert error_of(await ann.chat("hello?"))["code"] == "chat_paused"
    assert (await mod.chat("staff can still post"))["ok"] is True
    assert (await host.chat("host too"))["ok"] is True
    await ann.wait_until(lambda: "host too" in ann.message_texts())

    assert (await host.call("mod_pause", {"paused": False})) == {"ok": True}
    await ann.wait_for("room", lambda r: r["settings"]["chat_paused"] is False)
    assert (await ann.chat("hello again"))["ok"] is True

    events = await mod_events(server, room, "mod.pause")
    assert [(e.actor, e.data) for e in events] == [
        (vid(host), {"paused": True}),
        (vid(host), {"paused": False}),
    ]


# -- roster and stats ------------------------------------------------------------------


async def test_mod_viewers_lists_connected_people(server: Server) -> None:
    room = await new_room(server)
    ann = await server.client(room, name="Ann")
    bob = await server.client(room, name="Bob")
    mod = await server.client(room, role="moderator", name="Mod")

    listed = (await mod.call("mod_viewers", {}))["viewers"]
    expected = [
        {"viewer_id": vid(ann), "name": "Ann", "role": "viewer"},
        {"viewer_id": vid(bob), "name": "Bob", "role": "viewer"},
        {"viewer_id": vid(mod), "name": "Mod", "role": "moderator"},
    ]
    assert sorted(listed, key=lambda v: v["name"]) == expected

    await bob.close()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while True:
        listed = (await mod.call("mod_viewers", {}))["viewers"]
        if vid(bob) not in [v["viewer_id"] for v in listed]:
            break
        assert loop.time() < deadline, listed
        await asyncio.sleep(0.02)
    assert sorted(v["name"] for v in listed) == ["Ann", "Mod"]


async def test_mod_stats_counts_messages_and_likes(server: Server) -> None:
    room = await new_room(server)
    ann = await server.client(room, name="Ann")
    bob = await server.client(room, name="Bob")
    mod = await server.client(room, role="moderator", name="Mod")
    await ann.chat("one")
    await bob.chat("two")
    await mod.chat("three")
    await ann.call("like", {"count": 4})
    await bob.call("like", {"count": 2})

    stats = await mod.call("mod_stats", {})
    assert stats["ok"] is True
    assert stats["messages"] == 3
    assert stats["likes"] == 6
    assert stats["viewers"] == 3 and stats["peak"] == 3
    assert stats["sampled_away"] == 0


async def test_every_action_is_logged_with_its_moderator(server: Server) -> None:
    room = await new_room(server)
    ann = await server.client(room, name="Ann", viewer_id="v_ann")
    mod = await server.client(room, role="moderator", name="Mod")
    host = await server.client(room, role="host", name="Host")
    message = (await ann.chat("to delete"))["id"]
    rule = await add_rule(mod, pattern="hmm", kind="word", action="hold")
    held = (await ann.chat("hmm one"))["id"]
    held2 = (await ann.chat("hmm two"))["id"]

    calls: list[tuple[LiveClient, str, dict[str, Any]]] = [
        (mod, "mod_delete", {"message_id": message}),
        (host, "mod_approve", {"message_id": held}),
        (mod, "mod_reject", {"message_id": held2}),
        (mod, "mod_rule_remove", {"rule_id": rule["id"]}),
        (host, "mod_mute", {"viewer_id": "v_ann", "seconds": 30}),
        (host, "mod_unmute", {"viewer_id": "v_ann"}),
        (mod, "mod_slow", {"seconds": 1}),
        (host, "mod_pause", {"paused": True}),
        (mod, "mod_ban", {"viewer_id": "v_ann"}),
        (host, "mod_unban", {"viewer_id": "v_ann"}),
    ]
    for client, event, payload in calls:
        assert (await client.call(event, payload))["ok"] is True, event

    logged = [(e.kind, e.actor) for e in await mod_events(server, room)]
    expected = [("mod.rule_add", vid(mod))] + [
        ("mod." + event.removeprefix("mod_"), vid(client)) for client, event, _ in calls
    ]
    assert logged == expected
