"""Hostile clients against a real server: every attack gets a clear error code,
changes nothing, and leaves the server serving everyone else.

Each test checks three things:

* the refusal: an error ack ``{"ok": false, "error": {"code": ...}}``, a connect
  refusal carrying a code, a closed connection, or an HTTP status with a JSON code;
* nothing changed: :func:`snapshot` (event log without presence, counters, room
  settings and rules, bans, mutes, held messages) is the same before and after,
  and no message or deletion reached the other viewers;
* the server still serves: :func:`assert_still_serving` has a bystander chat and
  another viewer receive it (and nothing else).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import jwt
import jwt.warnings
import msgspec
import pytest
from support import (
    ADMIN_KEY,
    SECRET,
    LiveClient,
    Refused,
    Server,
    vid,
    viewers_now,
    wait_viewers,
)

NS = "/live"
# Counters that move just by being connected; everything else must stand still.
VOLATILE_COUNTERS = frozenset({"last_seen", "first_seen", "watch_seconds"})


# -- what "nothing changed" means --------------------------------------------------------------


async def snapshot(server: Server, room: str, *viewer_ids: str) -> dict[str, Any]:
    """Everything a hostile request could have changed, minus presence bookkeeping."""
    s = server.services
    current = await s.rooms.get(room)
    events = [
        (e.id, e.kind, e.actor, e.data)
        async for e in s.log.scan(room)
        if not e.kind.startswith("presence.")
    ]
    viewers: dict[str, Any] = {}
    for viewer_id in viewer_ids:
        counters = await s.counters.viewer(room, current.scope, viewer_id)
        viewers[viewer_id] = {
            "counters": {k: v for k, v in counters.items() if k not in VOLATILE_COUNTERS},
            "banned": await s.moderation.is_banned(room, viewer_id),
            "muted": await s.store.ttl(f"mute:{room}:{viewer_id}"),
        }
    return {
        "room": msgspec.to_builtins(current),
        "events": events,
        "counters": await s.counters.room(room, current.scope),
        "held": msgspec.to_builtins(await s.moderation.held(current)),
        "viewers": viewers,
    }


async def new_events(server: Server, room: str, after: int) -> list[tuple[str, str, Any]]:
    return [
        (e.kind, e.actor, e.data)
        async for e in server.services.log.scan(room)
        if e.id > after and not e.kind.startswith("presence.")
    ]


async def last_event_id(server: Server, room: str) -> int:
    return max([e.id async for e in server.services.log.scan(room)], default=0)


class Watch:
    """What one viewer has received so far, to assert nothing more arrives."""

    def __init__(self, viewer: LiveClient) -> None:
        self.viewer = viewer
        self.messages = len(viewer.messages())
        self.deleted = len(viewer.deleted())
        self.rooms = len(viewer.events["room"])

    def new_texts(self) -> list[str]:
        return self.viewer.message_texts()[self.messages :]


async def assert_still_serving(sender: LiveClient, watch: Watch) -> None:
    """A bystander's message reaches another viewer, and it is all that arrived."""
    text = f"still serving {uuid.uuid4().hex[:8]}"
    ack = await sender.chat(text)
    assert ack["ok"] is True, ack
    receiver = watch.viewer
    await receiver.wait_until(lambda: text in receiver.message_texts())
    assert watch.new_texts() == [text], "a hostile message reached other viewers"
    assert receiver.deleted()[watch.deleted :] == []
    assert len(receiver.events["room"]) == watch.rooms, "room settings were broadcast"


def error_code(ack: Any) -> str:
    assert isinstance(ack, dict) and ack.get("ok") is False, ack
    code = ack["error"]["code"]
    assert isinstance(code, str) and ack["error"]["message"]
    return code


def refusal_code(refusal: Any) -> str:
    """The code in a connect_error: python-socketio wraps the error body in ``data``."""
    assert isinstance(refusal, dict), refusal
    body = refusal.get("data", refusal)
    assert isinstance(body, dict) and body.get("message"), refusal
    return str(body["code"])


@dataclass
class Untouched:
    """What an attack must leave as it was: :func:`snapshot` of the room and of the
    given viewers, and the bystanders' chat (:func:`assert_still_serving`)."""

    server: Server
    room: str
    viewer_ids: tuple[str, ...]
    before: dict[str, Any]
    sender: LiveClient
    watch: Watch

    @classmethod
    async def note(
        cls, server: Server, room: str, sender: LiveClient, receiver: LiveClient, *viewer_ids: str
    ) -> Untouched:
        before = await snapshot(server, room, *viewer_ids)
        return cls(server, room, viewer_ids, before, sender, Watch(receiver))

    async def check(self) -> None:
        assert await snapshot(self.server, self.room, *self.viewer_ids) == self.before
        await assert_still_serving(self.sender, self.watch)


async def room_with_bystanders(server: Server, **room: Any) -> tuple[str, LiveClient, LiveClient]:
    room_id = (await server.create_room(**room))["room"]["id"]
    sender = await server.client(room_id, name="Bystander")
    receiver = await server.client(room_id, name="Receiver")
    await receiver.wait_for("batch", lambda b: b["viewers"] == 2)
    return room_id, sender, receiver


# -- a hand-rolled Engine.IO v4 / Socket.IO v5 client ------------------------------------------


class RawSocket:
    """A bare websocket speaking the Socket.IO wire format by hand."""

    def __init__(self, http: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.http = http
        self.ws = ws
        self.received: list[str | bytes] = []
        self.closed = False

    async def receive(self, timeout: float = 5.0) -> str | bytes | None:
        """The next frame, answering pings; None once the server closed the socket."""
        while True:
            msg = await self.ws.receive(timeout=timeout)
            if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                if msg.data == "2":  # Engine.IO ping
                    await self.ws.send_str("3")
                    continue
                if msg.data == "1":  # Engine.IO close: the server ended the session
                    self.closed = True
                    return None
                self.received.append(msg.data)
                return msg.data  # type: ignore[no-any-return]
            self.closed = True
            return None

    async def send(self, frame: str | bytes) -> None:
        if isinstance(frame, bytes):
            await self.ws.send_bytes(frame)
        else:
            await self.ws.send_str(frame)

    async def connect(self, auth: Any) -> str:
        await self.send(f"40{NS}," + json.dumps(auth))
        while True:
            frame = await self.receive()
            assert frame is not None, "closed during connect"
            if isinstance(frame, str) and frame.startswith((f"40{NS},", f"44{NS},")):
                return frame

    async def emit(self, ack_id: int, event: Any, *args: Any) -> None:
        await self.send(f"42{NS},{ack_id}" + json.dumps([event, *args]))

    async def ack(self, ack_id: int, timeout: float = 5.0) -> Any:
        prefix = f"43{NS},{ack_id}["
        deadline = time.monotonic() + timeout
        while True:
            frame = await self.receive(max(0.01, deadline - time.monotonic()))
            assert frame is not None, "closed instead of acking"
            if isinstance(frame, str) and frame.startswith(prefix):
                return json.loads(frame[len(prefix) - 1 :])[0]

    async def wait_closed(self, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        with contextlib.suppress(TimeoutError):
            while not self.closed:
                await self.receive(max(0.01, deadline - time.monotonic()))
        return self.closed


@contextlib.asynccontextmanager
async def raw_socket(
    server: Server, *, origin: str | None = None, connect_to: str | None = None
) -> AsyncIterator[RawSocket]:
    """A raw websocket, opened (and connected to ``connect_to`` as a viewer if given)."""
    url = f"ws://127.0.0.1:{server.settings.port}/socket.io/?EIO=4&transport=websocket"
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(url, origin=origin)
        try:
            sock = RawSocket(http, ws)
            opening = await sock.receive()
            assert isinstance(opening, str) and opening.startswith("0{"), opening
            assert json.loads(opening[1:])["maxPayload"] == server.settings.max_frame_bytes
            if connect_to is not None:
                auth = {"room": connect_to, "token": server.token(connect_to, name="Raw")}
                reply = await sock.connect(auth)
                assert reply.startswith(f"40{NS},"), reply
            yield sock
        finally:
            await ws.close()


# -- 1. oversized frames and over-long messages ------------------------------------------------


async def test_oversized_frame_closes_only_the_offender(memory_server: Server) -> None:
    server = memory_server
    room, sender, receiver = await room_with_bystanders(server)
    async with raw_socket(server, connect_to=room) as raw:
        await wait_viewers(server, room, 3)
        untouched = await Untouched.note(server, room, sender, receiver, vid(sender))
        text = "x" * (server.settings.max_frame_bytes + 1024)
        await raw.emit(1, "chat", {"text": text, "client_id": "big"})
        assert await raw.wait_closed(), "the oversized frame did not close the connection"
        assert raw.ws.close_code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
        assert not any(isinstance(f, str) and f.startswith(f"43{NS},1") for f in raw.received)
    await wait_viewers(server, room, 2)  # the offender's presence was cleaned up
    await untouched.check()


async def test_message_over_room_limit_and_payload_cap(memory_server: Server) -> None:
    server = memory_server
    room, sender, receiver = await room_with_bystanders(server)
    ann = await server.client(room, name="Ann")
    limit = (await server.services.rooms.get(room)).settings.max_message_chars
    assert limit == 200
    untouched = await Untouched.note(server, room, sender, receiver, vid(ann))
    assert error_code(await ann.chat("y" * (limit + 1))) == "message_too_long"
    assert error_code(await ann.chat("长" * (limit + 1))) == "message_too_long"
    assert error_code(await ann.chat("z" * 2001)) == "bad_payload"
    await untouched.check()
    # the hostile viewer's connection itself is fine too, and the limit is inclusive
    ok = await ann.chat("y" * limit)
    assert ok["ok"] is True and len(ok["message"]["text"]) == limit


# -- 2. malformed Socket.IO packets over a raw websocket ---------------------------------------

UNDECODABLE = [
    pytest.param(f"42{NS},[[[", id="truncated-json"),
    pytest.param(f'42{NS},7["chat",{{"text":', id="truncated-event-with-ack"),
    pytest.param("4Z", id="bad-packet-type"),
    pytest.param(f"42{NS},8", id="event-without-data"),
    pytest.param(f"42{NS},9[]", id="empty-event"),
    pytest.param(f'42{NS},10{{"event":"chat"}}', id="object-not-array"),
    pytest.param(f"42{NS},11['chat']", id="single-quotes"),
    pytest.param(f"44{NS},{{}}", id="client-sent-connect-error"),
    pytest.param(b"\x00\xff\xfe\x04 junk", id="binary-junk"),
    pytest.param("X", id="engineio-garbage"),
]


@pytest.mark.parametrize("frame", UNDECODABLE)
async def test_undecodable_packet_closes_the_offender(
    memory_server: Server, frame: str | bytes
) -> None:
    server = memory_server
    room, sender, receiver = await room_with_bystanders(server)
    async with raw_socket(server, connect_to=room) as raw:
        await wait_viewers(server, room, 3)
        untouched = await Untouched.note(server, room, sender, receiver, vid(sender))
        await raw.send(frame)
        await raw.emit(99, "heartbeat", {})
        assert await raw.wait_closed(), f"{frame!r} was silently dropped, connection left open"
        assert not any(isinstance(f, str) and f.startswith(f"43{NS},99[") for f in raw.received)
    await wait_viewers(server, room, 2)
    await untouched.check()


ANSWERED = [
    pytest.param("nope", [{}], "unknown_event", id="unknown-event"),
    pytest.param(123, [{}], "unknown_event", id="number-as-event"),
    pytest.param(None, [{}], "unknown_event", id="null-as-event"),
    pytest.param({"a": 1}, [{}], "unknown_event", id="object-as-event"),
    pytest.param(["chat"], [{}], "unknown_event", id="array-as-event"),
    pytest.param("chat", ["not json object"], "bad_payload", id="string-payload"),
    pytest.param("chat", [{"text": {"$gt": ""}, "client_id": "c"}], "bad_payload", id="nosql"),
]


@pytest.mark.parametrize(("event", "args", "code"), ANSWERED)
async def test_well_formed_nonsense_is_acked_with_a_code(
    memory_server: Server, event: Any, args: list[Any], code: str
) -> None:
    server = memory_server
    room, sender, receiver = await room_with_bystanders(server)
    async with raw_socket(server, connect_to=room) as raw:
        untouched = await Untouched.note(server, room, sender, receiver, vid(sender))
        await raw.emit(5, event, *args)
        assert error_code(await raw.ack(5)) == code
        # the offender's own connection keeps working after a refused event
        await raw.emit(6, "heartbeat", {})
        assert (await raw.ack(6))["ok"] is True
        await untouched.check()


async def test_packets_for_other_namespaces_are_refused(memory_server: Server) -> None:
    server = memory_server
    room, sender, receiver = await room_with_bystanders(server)
    async with raw_socket(server, connect_to=room) as raw:
        untouched = await Untouched.note(server, room, sender, receiver, vid(sender))
        # an event for a namespace the socket never joined is dropped, not handled
        await raw.send('42/nope,3["chat",{"text":"sneaky","client_id":"n"}]')
        await raw.send('424["chat",{"text":"sneaky root","client_id":"r"}]')
        # connecting to an unknown namespace is refused with a connect error
        await raw.send('40/nope,{"room":"x"}')
        while True:
            frame = await raw.receive()
            assert frame is not None, "closed instead of refusing the namespace"
            if isinstance(frame, str) and frame.startswith("44/nope,"):
                break
        await raw.emit(6, "heartbeat", {})
        assert (await raw.ack(6))["ok"] is True
        await untouched.check()


# -- 3. unknown events and lifecycle names sent as events --------------------------------------


async def test_unknown_and_magic_event_names(memory_server: Server) -> None:
    server = memory_server
    room, sender, receiver = await room_with_bystanders(server)
    ann = await server.client(room, name="Ann")
    await receiver.wait_for("batch", lambda b: b["viewers"] == 3)
    after = await last_event_id(server, room)
    untouched = await Untouched.note(server, room, sender, receiver, vid(ann))
    names = [
        "nope",
        "__class__",
        "__init__",
        "__dict__",
        "_dispatch",
        "_connect",
        "_sessions",
        "trigger_event",
        "on_chat",
        "emit",
        "CHAT",
        "chat ",
        "message",
        "connect_error",
        "welcome",
        "batch",
        "",
        "x" * 1000,
    ]
    for name in names:
        assert error_code(await ann.call(name, {})) == "unknown_event", name
    # a client may name its events after the lifecycle ones: they must not
    # disconnect the session, re-admit it under another token, or touch presence
    assert error_code(await ann.call("disconnect", {})) == "unknown_event"
    assert error_code(await ann.call("disconnect")) == "unknown_event"
    other = server.token(room, name="Mallory")
    env = {"REMOTE_ADDR": "10.0.0.1"}
    assert error_code(await ann.call("connect", env, {"room": room, "token": other})) == (
        "unknown_event"
    )
    assert error_code(await ann.call("connect")) == "unknown_event"
    assert "welcome" in ann.events and len(ann.events["welcome"]) == 1
    heartbeat = await ann.call("heartbeat", {})
    assert heartbeat["ok"] is True, "the session was torn down by a client-sent event"
    assert await viewers_now(server, room) == 3
    assert [e async for e in server.services.log.scan(room) if e.id > after] == []
    await untouched.check()
    mine = await ann.chat("still me")
    assert mine["message"]["viewer_id"] == vid(ann) and mine["message"]["name"] == "Ann"


# -- 4. wrong payload types --------------------------------------------------------------------

BAD_VIEWER_PAYLOADS: list[tuple[str, tuple[Any, ...]]] = [
    ("chat", ({"text": 5, "client_id": "c1"},)),
    ("chat", ({"text": None, "client_id": "c1"},)),
    ("chat", ({"text": ["hi"], "client_id": "c1"},)),
    ("chat", ({"client_id": "c1"},)),
    ("chat", ({"text": "hi"},)),
    ("chat", ({"text": "hi", "client_id": ""},)),
    ("chat", ({"text": "hi", "client_id": "c" * 65},)),
    ("chat", ({"text": "hi", "client_id": 7},)),
    ("chat", ({"text": "hi", "client_id": "c1", "mode": "sideways"},)),
    ("chat", ({"text": "hi", "client_id": "c1", "mode": None},)),
    ("chat", ({"text": "hi", "client_id": "c1", "color": "red"},)),
    ("chat", ({"text": "hi", "client_id": "c1", "color": "#12345g"},)),
    ("chat", ({"text": "hi", "client_id": "c1", "color": "#fff"},)),
    ("chat", ({"text": "hi", "client_id": "c1", "color": "#ffffff\n"},)),
    ("chat", ({"text": "hi", "client_id": "c1", "extra": True},)),
    ("chat", (["hi", "c1"],)),
    ("chat", ("hi",)),
    ("chat", (42,)),
    ("chat", ({"text": "hi", "client_id": "c1"}, {"text": "again", "client_id": "c2"})),
    ("chat", ()),
    ("like", ({"count": 0},)),
    ("like", ({"count": 51},)),
    ("like", ({"count": -5},)),
    ("like", ({"count": "5"},)),
    ("like", ({"count": True},)),
    ("like", ({"count": 1.5},)),
    ("like", ({"count": 10**30},)),
    ("like", ({"count": 1, "viewer_id": "v_other"},)),
    ("like", ([1],)),
    ("like", ({"count": 1}, {"count": 1})),
    ("heartbeat", ({"now": 1},)),
    ("heartbeat", ("ping",)),
]

BAD_STAFF_PAYLOADS: list[tuple[str, tuple[Any, ...]]] = [
    ("mod_delete", ({"message_id": "1"},)),
    ("mod_delete", ({"message_id": 0},)),
    ("mod_delete", ({},)),
    ("mod_mute", ({"viewer_id": "v_x", "seconds": 0},)),
    ("mod_mute", ({"viewer_id": "v_x", "seconds": 86401},)),
    ("mod_mute", ({"viewer_id": "", "seconds": 10},)),
    ("mod_ban", ({"viewer_id": "v_x", "reason": "r" * 201},)),
    ("mod_ban", ({"viewer_id": ["v_x"]},)),
    ("mod_rule_add", ({"pattern": "", "kind": "word", "action": "block"},)),
    ("mod_rule_add", ({"pattern": "bad", "kind": "glob", "action": "block"},)),
    ("mod_rule_add", ({"pattern": "bad", "kind": "word", "action": "explode"},)),
    ("mod_slow", ({"seconds": -1},)),
    ("mod_slow", ({"seconds": "10"},)),
    ("mod_pause", ({"paused": "yes"},)),
    ("mod_pause", ({"paused": 1},)),
    ("mod_stats", ({"all": True},)),
]


async def test_wrong_payload_types_are_bad_payload(memory_server: Server) -> None:
    server = memory_server
    room, sender, receiver = await room_with_bystanders(server)
    ann = await server.client(room, name="Ann")
    mod = await server.client(room, role="moderator", name="Mod")
    untouched = await Untouched.note(
        server, room, sender, receiver, vid(ann), vid(mod), vid(sender)
    )
    for client, cases in ((ann, BAD_VIEWER_PAYLOADS), (mod, BAD_STAFF_PAYLOADS)):
        for event, args in cases:
            ack = await client.call(event, *args) if args else await client.call(event)
            assert error_code(ack) == "bad_payload", (event, args, ack)
    await untouched.check()


# -- 5. deeply nested JSON ---------------------------------------------------------------------


def nested(depth: int, leaf: str = "") -> str:
    return "[" * depth + leaf + "]" * depth


DEEP = [
    pytest.param(
        f'42{NS},1["chat",{{"text":"hi","client_id":"d","x":{nested(10_000)}}}]', id="arr"
    ),
    pytest.param(f'42{NS},1["chat",{nested(10_000)}]', id="payload-is-deep"),
    pytest.param(f'42{NS},1["chat",' + '{"a":' * 5000 + "1" + "}" * 5000 + "]", id="objects"),
    pytest.param(f"42{NS},1{nested(20_000)}", id="event-array-deep"),
]


@pytest.mark.parametrize("frame", DEEP)
async def test_deeply_nested_json_is_refused(memory_server: Server, frame: str) -> None:
    server = memory_server
    assert len(frame.encode()) < server.settings.max_frame_bytes
    room, sender, receiver = await room_with_bystanders(server)
    async with raw_socket(server, connect_to=room) as raw:
        untouched = await Untouched.note(server, room, sender, receiver, vid(sender))
        await raw.send(frame)
        await raw.emit(2, "heartbeat", {})
        refused = None
        while refused is None:
            got = await raw.receive()
            if got is None:
                refused = "closed"
            elif isinstance(got, str) and got.startswith(f"43{NS},1["):
                refused = error_code(json.loads(got[len(f"43{NS},1") :])[0])
                assert refused == "bad_payload"
            elif isinstance(got, str) and got.startswith(f"43{NS},2["):
                pytest.fail("the deep packet was silently dropped: no error ack, not closed")
        await untouched.check()


async def test_nesting_within_the_parser_limit_is_bad_payload(memory_server: Server) -> None:
    server = memory_server
    room, sender, receiver = await room_with_bystanders(server)
    ann = await server.client(room, name="Ann")
    untouched = await Untouched.note(server, room, sender, receiver, vid(ann))
    deep: Any = "x"
    for _ in range(200):  # python-socketio's client recurses over what it sends
        deep = [deep]
    assert error_code(await ann.call("chat", {"text": deep, "client_id": "d"})) == "bad_payload"
    assert error_code(await ann.call("chat", deep)) == "bad_payload"
    assert error_code(await ann.call("like", {"count": deep})) == "bad_payload"
    await untouched.check()


async def test_deeply_nested_connect_auth_is_refused(memory_server: Server) -> None:
    server = memory_server
    room, sender, receiver = await room_with_bystanders(server)
    untouched = await Untouched.note(server, room, sender, receiver, vid(sender))
    async with raw_socket(server) as raw:
        token = server.token(room)
        await raw.send(f'40{NS},{{"room":"{room}","token":"{token}","x":{nested(10_000)}}}')
        frame = await raw.receive()
        assert frame is None or (isinstance(frame, str) and frame.startswith(f"44{NS},")), frame
    assert await viewers_now(server, room) == 2
    await untouched.check()


# -- 6. a flood from one viewer ----------------------------------------------------------------


async def test_flood_is_rate_limited_without_hurting_others(server: Server) -> None:
    # Danmaku sampling off (0 = unlimited): this is about the rate limit, and a
    # 50 ms test tick at the default 30/s may fairly sample one of two senders away.
    room = (await server.create_room(settings={"max_danmaku_per_second": 0}))["room"]["id"]
    flooder = await server.client(room, name="Flooder")
    steady = await server.client(room, name="Steady")
    watcher = await server.client(room, name="Watcher")
    settings = (await server.services.rooms.get(room)).settings
    assert (settings.chat_burst, settings.chat_rate_per_second) == (5, 1.5)

    flood_seconds = 0.0

    async def flood() -> list[Any]:
        nonlocal flood_seconds
        started = time.monotonic()
        acks = await asyncio.gather(*(flooder.chat(f"flood {i}") for i in range(100)))
        flood_seconds = time.monotonic() - started
        return list(acks)

    async def chat_steadily() -> list[Any]:
        acks = []
        for i in range(3):
            if i:
                await asyncio.sleep(1.0)
            acks.append(await steady.chat(f"steady {i}"))
        return acks

    flood_acks, steady_acks = await asyncio.gather(flood(), chat_steadily())

    accepted = [a for a in flood_acks if a["ok"]]
    refused = [a for a in flood_acks if not a["ok"]]
    # the burst, plus what the bucket refilled while the flood was being answered
    refilled = int(settings.chat_rate_per_second * flood_seconds) + 1
    assert settings.chat_burst <= len(accepted) <= settings.chat_burst + refilled, len(accepted)
    assert {error_code(a) for a in refused} == {"rate_limited"}
    for ack in refused:
        retry_after = ack["error"]["details"]["retry_after"]
        assert 0 < retry_after <= 1 / settings.chat_rate_per_second + 0.01, ack
    assert all(a["ok"] for a in steady_acks), steady_acks

    expected = {a["message"]["text"] for a in accepted} | {f"steady {i}" for i in range(3)}
    await watcher.wait_until(lambda: expected <= set(watcher.message_texts()))
    await asyncio.sleep(0.2)
    assert sorted(watcher.message_texts()) == sorted(expected)

    logged = [e async for e in server.services.log.scan(room) if e.kind == "chat.message"]
    by_flooder = {e.id for e in logged if e.actor == vid(flooder)}
    assert by_flooder == {a["id"] for a in accepted}
    assert {e.actor for e in logged} == {vid(flooder), vid(steady)}
    scope = (await server.services.rooms.get(room)).scope
    assert (await server.services.counters.room(room, scope))["messages"] == len(logged)
    counted = await server.services.counters.viewer(room, scope, vid(flooder))
    assert counted["messages"] == len(accepted)

    # the limit is a rate, not a punishment: after waiting, the flooder may post again
    await asyncio.sleep(1 / settings.chat_rate_per_second)
    assert (await flooder.chat("sorry"))["ok"] is True


# -- 7. markup in text and names ---------------------------------------------------------------

XSS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    '"><svg/onload=alert(1)>',
    "javascript:alert(1)",
    "{{constructor.constructor('alert(1)')()}}",
    "&lt;b&gt;&amp;",
]


async def test_markup_is_plain_text_end_to_end(memory_server: Server) -> None:
    server = memory_server
    unsampled = {"max_danmaku_per_second": 0}  # every message must arrive
    room, _sender, receiver = await room_with_bystanders(server, settings=unsampled)
    status, joined = await server.api(
        "POST", f"/api/rooms/{room}/join", token=None, json={"name": "<script>alert(1)</script>"}
    )
    assert status == 201, joined
    evil = await server.client(room, joined["token"])
    assert evil.welcome["you"]["name"] == "<script>alert(1)</script>"
    svg = await server.client(room, name='"><svg/onload=alert(1)>')
    acks = []
    for i, text in enumerate(XSS):
        author = evil if i % 2 == 0 else svg
        ack = await author.chat(text)
        assert ack["ok"] is True, ack
        assert ack["message"]["text"] == text
        acks.append(ack)
    await receiver.wait_until(lambda: set(XSS) <= set(receiver.message_texts()))
    delivered = {m["text"]: m for m in receiver.messages()}
    for i, text in enumerate(XSS):
        name = "<script>alert(1)</script>" if i % 2 == 0 else '"><svg/onload=alert(1)>'
        assert delivered[text]["name"] == name
        assert delivered[text]["role"] == "viewer"
    stored = {
        e.data["text"]: e.data["name"]
        async for e in server.services.log.scan(room)
        if e.kind == "chat.message"
    }
    assert set(XSS) <= set(stored)
    late = await server.client(room, name="Late")
    assert set(XSS) <= {m["text"] for m in late.welcome["messages"]}

    async with server.http.get(f"{server.url}/watch/{room}") as resp:
        assert resp.status == 200
        page = await resp.text()
        csp = resp.headers["Content-Security-Policy"]
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
    directives = {part.split()[0]: part.split()[1:] for part in csp.split(";") if part.strip()}
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
    assert directives["script-src"] == ["'self'"]
    assert directives["object-src"] == ["'none'"]
    assert "<script>" not in page, "an inline script would be blocked by the CSP"
    # the room id in the path is not reflected into the page
    async with server.http.get(f"{server.url}/watch/%3Cscript%3Ealert(1)%3C%2Fscript%3E") as resp:
        assert "<script>alert(1)</script>" not in await resp.text()
        assert "'unsafe-inline'" not in resp.headers.get("Content-Security-Policy", "")


# -- 8. blocked-word evasion -------------------------------------------------------------------

EVASIONS = [
    "b\u200badword",
    "bаdword",  # Cyrillic а
    "B A D W O R D",
    "ｂａｄｗｏｒｄ",
    "b4dw0rd",
    "BADWORD",
    "b.a.d.w.o.r.d",
    "bad\u00adword",
    "b\u0301adword",
    "you are a badword!",
]
CHINESE_EVASIONS = ["傻逼", "傻 逼", "傻\u200b逼", "你是傻逼吗"]


async def test_blocked_words_survive_evasion(server: Server) -> None:
    room, sender, receiver = await room_with_bystanders(server)
    mod = await server.client(room, role="moderator", name="Mod")
    for pattern in ("badword", "傻逼"):
        added = await mod.call(
            "mod_rule_add", {"pattern": pattern, "kind": "word", "action": "block"}
        )
        assert added["ok"] is True, added
    ann = await server.client(room, name="Ann")
    before = await snapshot(server, room, vid(ann))
    after = await last_event_id(server, room)
    watch = Watch(receiver)
    for text in EVASIONS + CHINESE_EVASIONS:
        assert error_code(await ann.chat(text)) == "blocked", text
    events = await new_events(server, room, after)
    assert [kind for kind, _, _ in events] == ["automod.block"] * len(events)
    assert len(events) == len(EVASIONS) + len(CHINESE_EVASIONS)
    assert all(actor == "automod" and data["viewer_id"] == vid(ann) for _, actor, data in events)
    now = await snapshot(server, room, vid(ann))
    assert {**now, "events": []} == {**before, "events": []}
    assert mod.events.get("held", []) == []
    await assert_still_serving(sender, watch)
    for innocent in ("a good word", "你好，傻瓜"):
        ack = await ann.chat(innocent)
        assert ack["ok"] is True and ack["held"] is False, (innocent, ack)
        shown = ack["message"]["text"]  # NFKC: the full-width comma becomes ","
        await receiver.wait_until(lambda t=shown: t in receiver.message_texts())


# -- 9. identity forged in the payload ---------------------------------------------------------


async def test_identity_cannot_be_forged_in_a_payload(memory_server: Server) -> None:
    server = memory_server
    room, sender, receiver = await room_with_bystanders(server)
    victim = vid(sender)
    ann = await server.client(room, name="Ann", viewer_id="v_ann")
    untouched = await Untouched.note(server, room, sender, receiver, "v_ann", victim)
    forged = [
        {"viewer_id": victim},
        {"role": "host"},
        {"name": "Bystander"},
        {"sub": victim},
        {"id": 1},
        {"ts": 0},
        {"viewer_id": victim, "role": "moderator", "name": "Bystander"},
    ]
    for extra in forged:
        payload = {"text": "I am someone else", "client_id": uuid.uuid4().hex, **extra}
        assert error_code(await ann.call("chat", payload)) == "bad_payload", extra
    await untouched.check()
    first = next(m for m in receiver.messages()[untouched.watch.messages :])

    # reusing a client_id the victim already used must not return the victim's message
    victim_ack = await sender.call("chat", {"text": "victim's words", "client_id": "shared"})
    assert victim_ack["ok"] is True
    ack = await ann.call("chat", {"text": "ann's words", "client_id": "shared"})
    assert ack["ok"] is True and ack["duplicate"] is False, ack
    assert ack["id"] != victim_ack["id"]
    assert ack["message"]["viewer_id"] == "v_ann" and ack["message"]["name"] == "Ann"
    await receiver.wait_until(lambda: "ann's words" in receiver.message_texts())
    for message in receiver.messages():
        expected = {"Ann": "v_ann", "Bystander": victim}[message["name"]]
        assert message["viewer_id"] == expected and message["role"] == "viewer", message
    assert first["viewer_id"] == victim
    logged = {
        e.data["text"]: e.actor
        async for e in server.services.log.scan(room)
        if e.kind == "chat.message"
    }
    assert logged["ann's words"] == "v_ann" and logged["victim's words"] == victim


# -- 10. tokens --------------------------------------------------------------------------------


def forge(claims: dict[str, Any], key: str = SECRET, algorithm: str = "HS256") -> str:
    now = int(time.time())
    base = {"aud": "livehub", "role": "viewer", "sub": "v_forged", "name": "F", "iat": now}
    with warnings.catch_warnings():  # the test secret is short for HS512
        warnings.simplefilter("ignore", jwt.warnings.InsecureKeyLengthWarning)
        return jwt.encode({**base, "exp": now + 600, **claims}, key, algorithm=algorithm)


def unsigned(claims: dict[str, Any]) -> str:
    now = int(time.time())
    body = {
        "aud": "livehub",
        "role": "host",
        "sub": "v_forged",
        "name": "F",
        "iat": now,
        "exp": now + 600,
        **claims,
    }
    return jwt.encode(body, None, algorithm="none")  # type: ignore[arg-type]


async def test_bad_tokens_are_refused_with_a_code(memory_server: Server) -> None:
    server = memory_server
    room, sender, receiver = await room_with_bystanders(server)
    other = (await server.create_room())["room"]["id"]
    viewers = await viewers_now(server, room)
    untouched = await Untouched.note(server, room, sender, receiver, vid(sender))
    cases: list[tuple[str, dict[str, Any] | None, str]] = [
        ("expired", {"room": room, "token": server.token(room, ttl_seconds=-10)}, "token_expired"),
        ("wrong room", {"room": room, "token": server.token(other)}, "token_wrong_room"),
        (
            "wrong key",
            {"room": room, "token": forge({"room": room}, key="x" * 40)},
            "token_invalid",
        ),
        ("alg none", {"room": room, "token": unsigned({"room": room})}, "token_invalid"),
        (
            "HS512",
            {"room": room, "token": forge({"room": room}, algorithm="HS512")},
            "token_invalid",
        ),
        ("no aud", {"room": room, "token": forge({"room": room, "aud": "other"})}, "token_invalid"),
        (
            "bad role",
            {"room": room, "token": forge({"room": room, "role": "admin"})},
            "token_invalid",
        ),
        ("no sub", {"room": room, "token": forge({"room": room, "sub": ""})}, "token_invalid"),
        (
            "long sub",
            {"room": room, "token": forge({"room": room, "sub": "v" * 65})},
            "token_invalid",
        ),
        ("garbage", {"room": room, "token": "not-a-jwt"}, "token_invalid"),
        ("dots", {"room": room, "token": "a.b.c"}, "token_invalid"),
        ("missing", {"room": room}, "token_missing"),
        ("empty", {"room": room, "token": ""}, "token_missing"),
        ("null", {"room": room, "token": None}, "token_missing"),
        (
            "no room",
            {"room": "no-such-room", "token": server.token("no-such-room")},
            "room_not_found",
        ),
        ("bad room id", {"room": "../etc", "token": server.token(room)}, "room_not_found"),
        ("no auth", None, "bad_payload"),
        ("auth not object", {"room": [room], "token": server.token(room)}, "bad_payload"),
        ("extra auth", {"room": room, "token": server.token(room), "role": "host"}, "bad_payload"),
        ("huge token", {"room": room, "token": "x" * 5000}, "bad_payload"),
    ]
    for label, auth, code in cases:
        client = LiveClient(server.url, room, "unused")
        client.auth = auth  # type: ignore[assignment]
        try:
            with pytest.raises(Refused) as refused:
                await client.connect()
        finally:
            await client.close()
        assert refusal_code(refused.value.data) == code, (label, refused.value.data)
    assert await viewers_now(server, room) == viewers
    await untouched.check()


async def test_room_key_cannot_mint_staff(memory_server: Server) -> None:
    server = memory_server
    created = await server.create_room(private=True)
    room, key = created["room"]["id"], created["room_key"]
    sender = await server.client(room, name="Bystander")
    receiver = await server.client(room, name="Receiver")
    untouched = await Untouched.note(server, room, sender, receiver, vid(sender))
    token = forge({"room": room, "role": "host"}, key=key)
    with pytest.raises(Refused) as refused:
        await server.client(room, token)
    assert refusal_code(refused.value.data) == "forbidden"
    viewer = await server.client(room, forge({"room": room, "sub": "v_paid"}, key=key))
    assert viewer.welcome["you"] == {"viewer_id": "v_paid", "name": "F", "role": "viewer"}
    await untouched.check()


# -- 11. moderator events from a viewer --------------------------------------------------------


async def test_viewer_cannot_moderate(memory_server: Server) -> None:
    server = memory_server
    room, sender, receiver = await room_with_bystanders(server)
    target = vid(sender)
    message_id = (await sender.chat("please do not delete me"))["id"]
    await receiver.wait_until(lambda: "please do not delete me" in receiver.message_texts())
    ann = await server.client(room, name="Ann")
    untouched = await Untouched.note(server, room, sender, receiver, vid(ann), target)
    calls: list[tuple[str, dict[str, Any]]] = [
        ("mod_delete", {"message_id": message_id}),
        ("mod_mute", {"viewer_id": target, "seconds": 600}),
        ("mod_unmute", {"viewer_id": target}),
        ("mod_ban", {"viewer_id": target, "reason": "because"}),
        ("mod_unban", {"viewer_id": target}),
        ("mod_rule_add", {"pattern": "hello", "kind": "word", "action": "ban"}),
        ("mod_rule_remove", {"rule_id": "r_00000000"}),
        ("mod_rules", {}),
        ("mod_held", {}),
        ("mod_approve", {"message_id": message_id}),
        ("mod_reject", {"message_id": message_id}),
        ("mod_slow", {"seconds": 3600}),
        ("mod_pause", {"paused": True}),
        ("mod_viewers", {}),
        ("mod_stats", {}),
    ]
    for event, payload in calls:
        assert error_code(await ann.call(event, payload)) == "forbidden", event
        # a broken payload does not reveal more than "forbidden" either
        assert error_code(await ann.call(event, {"junk": 1})) == "forbidden", event
    await untouched.check()
    assert "muted" not in sender.events and "banned" not in sender.events


# -- 12. origins -------------------------------------------------------------------------------


async def test_disallowed_origin_is_refused(memory_server: Server) -> None:
    server = memory_server
    room, sender, receiver = await room_with_bystanders(server)
    untouched = await Untouched.note(server, room, sender, receiver, vid(sender))
    polling = f"{server.url}/socket.io/?EIO=4&transport=polling"
    port = server.settings.port
    evil = [
        "http://evil.example",
        "null",
        f"http://127.0.0.1:{port}.evil.example",
        "https://127.0.0.1",
    ]
    for origin in evil:
        async with server.http.get(polling, headers={"Origin": origin}) as resp:
            assert resp.status == 400, origin
            assert "origin" in (await resp.text()).lower()
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            async with raw_socket(server, origin=origin):
                pass
        assert refused.value.status == 400, origin

    async with server.http.get(polling, headers={"Origin": server.url}) as resp:
        assert resp.status == 200
        body = await resp.text()
        assert body.startswith("0{")
        assert resp.headers["Access-Control-Allow-Origin"] == server.url
    sid = json.loads(body[1:])["sid"]
    async with server.http.post(f"{polling}&sid={sid}", data="1", headers={"Origin": server.url}):
        pass  # close the polling session
    async with raw_socket(server, origin=server.url, connect_to=room) as raw:
        await raw.emit(1, "heartbeat", {})
        assert (await raw.ack(1))["ok"] is True
    await untouched.check()


# -- 13. REST ----------------------------------------------------------------------------------


async def test_rest_refuses_hostile_requests(memory_server: Server) -> None:
    server = memory_server
    room, sender, receiver = await room_with_bystanders(server)
    created = await server.create_room()
    other_room = created["room"]["id"]
    host = server.token(room, role="host", name="Host")
    viewer = server.token(room, name="Ann")
    moderator = server.token(room, role="moderator", name="Mod")
    room_view = (await server.api("GET", f"/api/rooms/{room}"))[1]
    untouched = await Untouched.note(server, room, sender, receiver, vid(sender))
    json_h = {"Content-Type": "application/json"}
    big = b'{"title": "' + b"x" * (server.settings.max_frame_bytes + 1) + b'"}'

    async def expect(
        status: int, code: str, method: str, path: str, token: str | None = ADMIN_KEY, **kw: Any
    ) -> None:
        got, body = await server.api(method, path, token=token, **kw)
        assert (got, body.get("code") if isinstance(body, dict) else body) == (status, code), (
            method,
            path,
            kw,
            body,
        )
        assert body["message"]

    # malformed and oversized bodies
    await expect(400, "bad_json", "POST", "/api/rooms", data=b'{"title": ', headers=json_h)
    await expect(400, "bad_json", "POST", "/api/rooms", data=b"\xff\xfe\x00", headers=json_h)
    await expect(400, "bad_json", "PATCH", f"/api/rooms/{room}", token=host, data=b"{,}")
    await expect(413, "too_large", "POST", "/api/rooms", data=big, headers=json_h)
    await expect(413, "too_large", "PATCH", f"/api/rooms/{room}", token=host, data=big)
    await expect(413, "too_large", "POST", f"/api/rooms/{room}/join", token=None, data=big)
    # wrong types
    for body in (
        [],
        "room",
        {"title": 5},
        {"title": ""},
        {"title": "t", "private": "yes"},
        {"title": "t", "settings": "fast"},
        {"title": "t", "settings": {"chat_burst": "many"}},
        {"title": "t", "owner": "me"},
        {"id": "hostile-made", "title": ["t"]},
    ):
        await expect(400, "bad_payload", "POST", "/api/rooms", json=body)
    for body in (
        {"name": 5},
        {"name": ""},
        {"name": "n", "role": "admin"},
        {"name": "n", "ttl_seconds": "60"},
        {"name": "n", "ttl_seconds": 10**9},
    ):
        await expect(400, "bad_payload", "POST", f"/api/rooms/{room}/tokens", json=body)
    await expect(
        400, "bad_payload", "POST", f"/api/rooms/{room}/join", token=None, json={"name": []}
    )
    await expect(400, "bad_payload", "PATCH", f"/api/rooms/{room}", token=host, json={"title": 5})
    await expect(
        400, "bad_payload", "PATCH", f"/api/rooms/{room}", token=host, json={"closed": True}
    )
    # admin endpoints without, or with a wrong, admin key
    for method, path, body in (
        ("POST", "/api/rooms", {"title": "mine"}),
        ("POST", f"/api/rooms/{room}/tokens", {"name": "Boss", "role": "host"}),
        ("DELETE", f"/api/rooms/{room}", None),
    ):
        await expect(401, "admin_required", method, path, token=None, json=body)
        await expect(403, "admin_required", method, path, token="wrong-key", json=body)
        await expect(403, "admin_required", method, path, token=host, json=body)
        await expect(
            401,
            "admin_required",
            method,
            path,
            token=None,
            json=body,
            headers={"Authorization": f"Basic {ADMIN_KEY}"},
        )
    # room changes from the wrong people
    patch = {"title": "pwned", "settings": {"chat_paused": True}}
    await expect(403, "forbidden", "PATCH", f"/api/rooms/{room}", token=viewer, json=patch)
    await expect(403, "forbidden", "PATCH", f"/api/rooms/{room}", token=moderator, json=patch)
    await expect(
        403, "token_wrong_room", "PATCH", f"/api/rooms/{other_room}", token=host, json=patch
    )
    await expect(401, "token_missing", "PATCH", f"/api/rooms/{room}", token=None, json=patch)
    await expect(401, "token_invalid", "PATCH", f"/api/rooms/{room}", token="x.y.z", json=patch)
    expired = server.token(room, role="host", name="Host", ttl_seconds=-10)
    await expect(401, "token_expired", "PATCH", f"/api/rooms/{room}", token=expired, json=patch)
    await expect(403, "forbidden", "POST", f"/api/rooms/{room}/streams", token=viewer)
    await expect(403, "forbidden", "GET", f"/api/rooms/{room}/streams", token=viewer)

    # nothing changed
    assert (await server.api("GET", "/api/rooms/hostile-made"))[0] == 404
    assert (await server.api("GET", f"/api/rooms/{room}"))[1] == room_view
    assert (await server.api("GET", f"/api/rooms/{other_room}"))[1]["title"] == "Test room"
    await untouched.check()
    status, health = await server.api("GET", "/healthz", token=None)
    assert status == 200 and health["ok"] is True
