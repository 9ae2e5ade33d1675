"""The chat pipeline: ChatService and Moderation over MemoryStore and a real event log."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest

from livehub.errors import Forbidden, LivehubError, RateLimited, UserError
from livehub.interactions.chat import (
    REPEAT_WINDOW_SECONDS,
    ChatResult,
    ChatService,
    repeat_key,
    slow_key,
)
from livehub.interactions.messages import Draft
from livehub.interactions.moderation import Moderation
from livehub.interactions.normalise import clean_text
from livehub.rooms.eventlog import Event
from livehub.rooms.memory_store import MemoryStore
from livehub.rooms.models import NO_STREAM, Principal, Room

from .domain import ANN, BOB, CAT, DAN, HOST, MOD, Domain


@dataclass
class Chat(Domain):
    chat: ChatService

    async def room(self, room_id: str = "r1", **settings: object) -> Room:
        room = await self.rooms.create("Room", room_id=room_id)
        if settings:
            room = await self.rooms.update(room_id, "admin", settings=settings)
        return room

    async def send(self, room: Room, who: Principal, text: str, cid: str = "") -> ChatResult:
        return await self.chat.send(room, who, Draft(text=text, client_id=cid or next_id()))

    async def events(self, room: str = "r1", prefix: str = "") -> list[Event]:
        return [e async for e in self.log.scan(room) if e.kind.startswith(prefix)]


_ids = itertools.count()


def next_id() -> str:
    return f"c{next(_ids)}"


@pytest.fixture
def env(domain: Domain) -> Chat:
    d = domain
    chat = ChatService(d.store, d.log, d.counters, d.moderation, clock=d.clock)
    return Chat(**d.parts(), chat=chat)


async def refused(env: Chat, room: Room, who: Principal, text: str, cid: str = "") -> LivehubError:
    with pytest.raises(LivehubError) as info:
        await env.send(room, who, text, cid)
    return info.value


# -- the message itself ------------------------------------------------------------


async def test_accepted_message_is_recorded(env: Chat) -> None:
    room = await env.room()
    draft = Draft(text="hello", client_id="c-1", mode="top", color="#AABBCC")
    result = await env.chat.send(room, ANN, draft)
    assert (result.held, result.duplicate) == (False, False)
    message = result.message
    assert (message.viewer_id, message.name, message.role, message.text) == (
        "v_ann",
        "Ann",
        "viewer",
        "hello",
    )
    assert (message.mode, message.color, message.offset_ms, message.ts) == (
        "top",
        "#aabbcc",
        None,
        10_000.0,
    )
    [event] = await env.events(prefix="chat.")
    assert (event.id, event.kind, event.actor) == (message.id, "chat.message", "v_ann")
    assert await env.log.find("r1", "v_ann", "c-1") == event


async def test_offset_from_stream_start(env: Chat) -> None:
    await env.room()
    live, stream = await env.rooms.start_stream("r1", "v_host")
    env.clock.advance(12.345)
    result = await env.send(live, ANN, "hi")
    assert result.message.offset_ms == 12_345
    [event] = await env.events(prefix="chat.")
    assert event.stream == stream.id


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("  hello    world  ", "hello world"),
        ("line\nbreak\ttab", "line break tab"),
        ("ｆｕｌｌ　ｗｉｄｔｈ", "full width"),
        ("zero\u200bwidth", "zerowidth"),
        ("<b>kept</b>", "<b>kept</b>"),
    ],
)
async def test_text_is_normalised(env: Chat, raw: str, clean: str) -> None:
    room = await env.room()
    assert (await env.send(room, ANN, raw)).message.text == clean


@pytest.mark.parametrize("text", ["", "   ", "\u200b\u200b", "\n\t"])
async def test_empty_message(env: Chat, text: str) -> None:
    room = await env.room()
    error = await refused(env, room, ANN, text)
    assert isinstance(error, UserError) and error.code == "empty_message"
    assert await env.events(prefix="chat.") == []


async def test_message_too_long(env: Chat) -> None:
    room = await env.room(max_message_chars=10)
    assert (await env.send(room, ANN, "x" * 10)).message.text == "x" * 10
    error = await refused(env, room, BOB, "y" * 11)
    assert error.code == "message_too_long"
    # Length is measured after cleaning.
    assert (await env.send(room, BOB, "  " + "z" * 10 + "  ")).message.text == "z" * 10


async def test_staff_are_held_to_the_length_limit_too(env: Chat) -> None:
    room = await env.room(max_message_chars=5)
    assert (await refused(env, room, HOST, "toolong")).code == "message_too_long"


# -- rate limit, repeats and slow mode ---------------------------------------------


async def test_rate_limit(env: Chat) -> None:
    room = await env.room(chat_burst=3, chat_rate_per_second=2.0)
    for i in range(3):
        await env.send(room, ANN, f"message {i}")
    error = await refused(env, room, ANN, "one more")
    assert isinstance(error, RateLimited)
    assert error.code == "rate_limited"
    assert error.retry_after == pytest.approx(0.5)
    assert error.details == {"retry_after": 0.5}
    # Somebody else is not limited by Ann.
    await env.send(room, BOB, "me too")
    env.clock.advance(0.5)
    assert (await env.send(room, ANN, "one more")).message.text == "one more"
    assert (await refused(env, room, ANN, "and another")).code == "rate_limited"
    assert len(await env.events(prefix="chat.")) == 5


async def test_repeat_suppression(env: Chat) -> None:
    room = await env.room()
    await env.send(room, ANN, "Hello")
    assert (await refused(env, room, ANN, "Hello")).code == "repeated_message"
    assert (await refused(env, room, ANN, "hello\u200b")).code == "repeated_message"
    assert (await refused(env, room, ANN, "  H e l l o!")).code == "repeated_message"
    # Other viewers may say the same.
    await env.send(room, BOB, "Hello")
    env.clock.advance(REPEAT_WINDOW_SECONDS - 1)
    assert (await refused(env, room, ANN, "HELLO")).code == "repeated_message"
    env.clock.advance(1)
    assert (await env.send(room, ANN, "Hello")).message.text == "Hello"
    assert [e.actor for e in await env.events(prefix="chat.")] == ["v_ann", "v_bob", "v_ann"]


async def test_slow_mode(env: Chat) -> None:
    room = await env.room(slow_mode_seconds=10)
    await env.send(room, ANN, "first")
    env.clock.advance(4)
    error = await refused(env, room, ANN, "second")
    assert error.code == "slow_mode"
    assert error.details["retry_after"] == pytest.approx(6.0)
    await env.send(room, BOB, "not limited by Ann")
    env.clock.advance(6)
    assert (await env.send(room, ANN, "third")).message.text == "third"


async def test_slow_mode_refusal_does_not_make_the_retry_a_repeat(env: Chat) -> None:
    room = await env.room(slow_mode_seconds=10)
    await env.send(room, ANN, "first")
    env.clock.advance(4)
    error = await refused(env, room, ANN, "second")
    assert error.code == "slow_mode"
    env.clock.advance(error.details["retry_after"])
    # Waiting as told and sending the refused message again must work: it was never shown.
    assert (await env.send(room, ANN, "second")).message.text == "second"


async def test_staff_are_exempt(env: Chat) -> None:
    room = await env.room(slow_mode_seconds=60, chat_burst=1, chat_rate_per_second=0.01)
    await env.moderation.add_rule(room, HOST, "spam", "word", "block")
    room = await env.rooms.get("r1")
    for who in (HOST, MOD):
        for _ in range(5):
            result = await env.send(room, who, "spam again")
            assert not result.held
    assert len(await env.events(prefix="chat.message")) == 10
    assert await env.events(prefix="automod.") == []


# -- moderation state --------------------------------------------------------------


async def test_paused(env: Chat) -> None:
    room = await env.room()
    room = await env.moderation.pause(room, HOST, True)
    assert (await refused(env, room, ANN, "hi")).code == "chat_paused"
    assert (await env.send(room, MOD, "staff may still talk")).message.role == "moderator"
    room = await env.moderation.pause(room, HOST, False)
    await env.send(room, ANN, "hi")


async def test_muted(env: Chat) -> None:
    room = await env.room()
    until = await env.moderation.mute(room, MOD, "v_ann", 60)
    assert until == 10_060.0
    env.clock.advance(20)
    error = await refused(env, room, ANN, "hi")
    assert isinstance(error, UserError)
    assert (error.code, error.details) == ("muted", {"until": 10_060.0})
    await env.send(room, BOB, "bob is fine")
    env.clock.advance(40)
    await env.send(room, ANN, "free again")
    await env.moderation.mute(room, MOD, "v_ann", 60)
    await env.moderation.unmute(room, MOD, "v_ann")
    await env.send(room, ANN, "unmuted early")


async def test_banned(env: Chat) -> None:
    room = await env.room()
    await env.moderation.ban(room, HOST, "v_ann", "spam")
    error = await refused(env, room, ANN, "hi")
    assert isinstance(error, Forbidden) and error.code == "banned"
    assert await env.moderation.is_banned("r1", "v_ann")
    await env.moderation.unban(room, HOST, "v_ann")
    await env.send(room, ANN, "back")


# -- rules -------------------------------------------------------------------------


async def test_held_message_counts_only_once_approved(env: Chat) -> None:
    room = await env.room()
    await env.moderation.add_rule(room, HOST, "link", "word", "hold")
    room = await env.rooms.get("r1")
    result = await env.send(room, ANN, "see my l.i.n.k")
    assert (result.held, result.duplicate) == (True, False)
    [held_event] = await env.events(prefix="chat.")
    assert held_event.kind == "chat.held"
    assert [m.id for m in await env.moderation.held(room)] == [result.message.id]
    assert await env.counters.viewer("r1", NO_STREAM, "v_ann") == {}
    assert await env.counters.room("r1", NO_STREAM) == {}

    approved = await env.moderation.approve(room, MOD, result.message.id)
    assert approved == result.message
    assert await env.moderation.held(room) == []
    assert (await env.counters.viewer("r1", NO_STREAM, "v_ann"))["messages"] == 1
    assert await env.counters.room("r1", NO_STREAM) == {"messages": 1}


async def test_rejected_message_is_never_counted(env: Chat) -> None:
    room = await env.room()
    await env.moderation.add_rule(room, HOST, "link", "word", "hold")
    room = await env.rooms.get("r1")
    result = await env.send(room, ANN, "link")
    await env.moderation.reject(room, MOD, result.message.id)
    assert await env.moderation.held(room) == []
    assert await env.counters.room("r1", NO_STREAM) == {}


async def test_blocked_message_is_logged_and_refused(env: Chat) -> None:
    room = await env.room()
    rule = await env.moderation.add_rule(room, HOST, "badword", "word", "block")
    room = await env.rooms.get("r1")
    error = await refused(env, room, ANN, "you B.A.D.W.O.R.D")
    assert error.code == "blocked"
    assert await env.events(prefix="chat.") == []
    [block] = await env.events(prefix="automod.")
    assert (block.kind, block.actor, block.data) == (
        "automod.block",
        "automod",
        {"viewer_id": "v_ann", "rule_id": rule.id, "text": "you B.A.D.W.O.R.D"},
    )
    # A block does not use up the rate limit or mark the text as a repeat.
    await env.send(room, ANN, "something else")
    assert await env.counters.room("r1", NO_STREAM) == {"messages": 1}


async def test_mute_rule_mutes(env: Chat) -> None:
    room = await env.room()
    await env.moderation.add_rule(room, HOST, "insult", "word", "mute", mute_seconds=30)
    room = await env.rooms.get("r1")
    error = await refused(env, room, ANN, "insult")
    assert (error.code, error.details) == ("muted", {"until": 10_030.0, "by": "automod"})
    still = await refused(env, room, ANN, "sorry")
    assert (still.code, still.details) == ("muted", {"until": 10_030.0})
    env.clock.advance(30)
    await env.send(room, ANN, "sorry")


async def test_ban_rule_bans(env: Chat) -> None:
    room = await env.room()
    await env.moderation.add_rule(room, HOST, "scam", "word", "ban")
    room = await env.rooms.get("r1")
    banned = await refused(env, room, ANN, "buy my scam")
    assert (banned.code, banned.details) == ("banned", {"by": "automod"})
    again = await refused(env, room, ANN, "hello")
    assert (again.code, again.details) == ("banned", {})
    assert await env.moderation.is_banned("r1", "v_ann")


# -- idempotency -----------------------------------------------------------------------


async def test_retry_returns_the_first_result(env: Chat) -> None:
    room = await env.room(chat_burst=1, chat_rate_per_second=0.01)
    first = await env.send(room, ANN, "only once", cid="retry-me")
    assert first.duplicate is False
    # The rate limit would refuse a new message now, and the text is a repeat: a retry is neither.
    assert (await refused(env, room, ANN, "new one")).code == "rate_limited"
    again = await env.send(room, ANN, "only once", cid="retry-me")
    assert again.message == first.message
    assert (again.held, again.duplicate) == (False, True)
    # Even with other text, the client id decides.
    other = await env.send(room, ANN, "different text", cid="retry-me")
    assert other.message == first.message and other.duplicate
    assert len(await env.events(prefix="chat.")) == 1
    assert (await env.counters.viewer("r1", NO_STREAM, "v_ann"))["messages"] == 1


async def test_retry_of_a_held_message_stays_held(env: Chat) -> None:
    room = await env.room()
    await env.moderation.add_rule(room, HOST, "link", "word", "hold")
    room = await env.rooms.get("r1")
    first = await env.send(room, ANN, "link", cid="h1")
    again = await env.send(room, ANN, "link", cid="h1")
    assert (again.message, again.held, again.duplicate) == (first.message, True, True)
    assert len(await env.moderation.held(room)) == 1


async def test_concurrent_identical_client_ids(env: Chat) -> None:
    room = await env.room()
    results = await asyncio.gather(
        *(env.chat.send(room, ANN, Draft(text="burst", client_id="same")) for _ in range(20))
    )
    assert len({r.message.id for r in results}) == 1
    assert sorted(r.duplicate for r in results) == [False] + [True] * 19
    assert len(await env.events(prefix="chat.")) == 1
    assert (await env.counters.viewer("r1", NO_STREAM, "v_ann"))["messages"] == 1
    assert await env.counters.room("r1", NO_STREAM) == {"messages": 1}


async def test_a_claim_left_without_its_event_does_not_block_the_retry(env: Chat) -> None:
    """A crash between the store's claims and the log write: the retry is recorded."""
    room = await env.room(slow_mode_seconds=60)
    text = clean_text("hello after the crash")
    await env.store.set_if_absent(repeat_key("r1", "v_ann", text), "lost", REPEAT_WINDOW_SECONDS)
    await env.store.set_if_absent(slow_key("r1", "v_ann"), "lost", 60)
    first = await env.send(room, ANN, text, cid="lost")
    assert (first.message.text, first.duplicate) == (text, False)
    again = await env.send(room, ANN, text, cid="lost")  # and then it is in the log
    assert (again.message, again.duplicate) == (first.message, True)
    assert [e.id for e in await env.events(prefix="chat.")] == [first.message.id]
    # The claims are still the message's: another one is refused as before.
    assert (await refused(env, room, ANN, text)).code == "repeated_message"
    assert (await refused(env, room, ANN, "something else")).code == "slow_mode"


async def test_a_claim_of_another_client_id_still_refuses(env: Chat) -> None:
    room = await env.room()
    text = clean_text("claimed by another message")
    await env.store.set_if_absent(repeat_key("r1", "v_ann", text), "other", REPEAT_WINDOW_SECONDS)
    assert (await refused(env, room, ANN, text, cid="mine")).code == "repeated_message"
    assert await env.events(prefix="chat.") == []


async def test_a_message_the_log_refused_claims_nothing(env: Chat, tmp_path: Path) -> None:
    """A failed commit (here a trigger refusing every insert, as a full disk would):
    the error reaches the sender, and neither the text nor the slow-mode slot is taken."""
    room = await env.room(slow_mode_seconds=60)
    with contextlib.closing(sqlite3.connect(tmp_path / "livehub.db")) as db:
        db.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON events "
            "BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
        db.commit()
        with pytest.raises((sqlite3.DatabaseError, LivehubError)):  # raw, or as unavailable
            await env.send(room, ANN, "not recorded", cid="c-fail")
        db.execute("DROP TRIGGER refuse")
        db.commit()
    assert await env.events(prefix="chat.") == []
    again = await env.send(room, ANN, "not recorded", cid="c-other")  # neither repeat nor slow
    assert (again.message.text, again.duplicate) == ("not recorded", False)


async def test_client_ids_are_per_viewer(env: Chat) -> None:
    room = await env.room()
    a = await env.send(room, ANN, "hi", cid="x")
    b = await env.send(room, BOB, "hi", cid="x")
    assert a.message.id != b.message.id
    assert not a.duplicate and not b.duplicate


# -- counters --------------------------------------------------------------------------


async def test_counters_per_viewer_and_room(env: Chat) -> None:
    room = await env.room()
    for i in range(3):
        await env.send(room, ANN, f"ann {i}")
    await env.send(room, BOB, "bob")
    await env.send(room, HOST, "host")
    assert (await env.counters.viewer("r1", NO_STREAM, "v_ann"))["messages"] == 3
    assert (await env.counters.viewer("r1", NO_STREAM, "v_bob"))["messages"] == 1
    assert (await env.counters.viewer("r1", NO_STREAM, "v_host"))["messages"] == 1
    assert await env.counters.room("r1", NO_STREAM) == {"messages": 5}


async def test_counters_are_per_stream(env: Chat) -> None:
    room = await env.room()
    await env.send(room, ANN, "before")
    live, stream = await env.rooms.start_stream("r1", "v_host")
    await env.send(live, ANN, "during")
    await env.send(live, BOB, "during too")
    assert await env.counters.room("r1", NO_STREAM) == {"messages": 1}
    assert await env.counters.room("r1", stream.id) == {"messages": 2}
    assert (await env.counters.viewer("r1", stream.id, "v_ann"))["messages"] == 1


async def test_mutes_survive_a_restart_of_the_memory_store(env: Chat) -> None:
    """A restart loses the in-memory store; running mutes come back from SQLite with
    the time they had left, finished and lifted ones do not."""
    room = await env.room()
    await env.moderation.mute(room, MOD, ANN.viewer_id, 60)
    await env.moderation.mute(room, MOD, BOB.viewer_id, 10)
    await env.moderation.mute(room, MOD, CAT.viewer_id, 600)
    await env.moderation.unmute(room, MOD, CAT.viewer_id)
    env.clock.advance(20)  # Bob's mute has run out

    fresh = MemoryStore(clock=env.clock)
    try:
        moderation = Moderation(fresh, env.log, env.rooms, env.repo, env.counters, clock=env.clock)
        assert await moderation.restore_mutes() == 1
        chat = ChatService(fresh, env.log, env.counters, moderation, clock=env.clock)
        with pytest.raises(LivehubError) as info:
            await chat.send(room, ANN, Draft(text="still muted?", client_id=next_id()))
        assert (info.value.code, info.value.details) == ("muted", {"until": 10_060.0})
        for who in (BOB, CAT, DAN):
            await chat.send(room, who, Draft(text=f"hi from {who.name}", client_id=next_id()))
        env.clock.advance(40)
        await chat.send(room, ANN, Draft(text="free again", client_id=next_id()))
        assert await moderation.restore_mutes() == 0  # ran out: gone from SQLite too
    finally:
        await fresh.close()
