"""OfferService over both state stores and a real event log."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from livehub.errors import Conflict, Forbidden, LivehubError, NotFound, ProtocolError, UserError
from livehub.interactions.offers import (
    MAX_ACTIVE_OFFERS,
    Gone,
    Offer,
    OfferService,
    check_url,
    click_client_id,
    clickers_key,
)
from livehub.rooms.counters import Counters
from livehub.rooms.eventlog import Event, EventLog
from livehub.rooms.memory_store import MemoryStore
from livehub.rooms.models import Room
from livehub.rooms.recorder import room_event
from livehub.rooms.redis_store import RedisStore
from livehub.rooms.store import StateStore

from .domain import ANN, BOB, HOST, MOD

ROOM = Room(id="r1", title="Room", private=False, created_at=0.0)


@dataclass
class Env:
    store: StateStore
    log: EventLog
    counters: Counters
    offers: OfferService

    async def events(self, prefix: str = "offer.") -> list[Event]:
        return [e async for e in self.log.scan("r1") if e.kind.startswith(prefix)]

    async def push(self, **kw: Any) -> Offer:
        values: dict[str, Any] = {
            "title": "50% off",
            "text": "Today only",
            "url": "https://e.com/x",
        }
        values.update(kw)
        return await self.offers.push(ROOM, HOST, **values)


@pytest.fixture(params=["memory", "redis"])
async def env(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Env]:
    store: StateStore
    if request.param == "redis":
        store = await RedisStore.connect(request.getfixturevalue("redis_url"))
    else:
        store = MemoryStore()
    log = await EventLog.open(tmp_path / "livehub.db", "NORMAL")
    counters = Counters(store)
    try:
        yield Env(store, log, counters, OfferService(store, log, counters))
    finally:
        await log.close()
        await store.close()


async def refused(coro: Any) -> LivehubError:
    with pytest.raises(LivehubError) as info:
        await coro
    return info.value


async def test_push_list_withdraw(env: Env) -> None:
    offer = await env.push(title="  50%   off ", cta="Buy now")
    assert (offer.title, offer.text, offer.url, offer.cta) == (
        "50% off",
        "Today only",
        "https://e.com/x",
        "Buy now",
    )
    assert [o.id for o in await env.offers.active("r1")] == [offer.id]
    withdrawn = await env.offers.withdraw(ROOM, MOD, offer.id)
    assert withdrawn.status == "withdrawn" and withdrawn.withdrawn_at is not None
    assert await env.offers.active("r1") == []
    assert [o.status for o in await env.offers.offers("r1")] == ["withdrawn"]
    err = await refused(env.offers.withdraw(ROOM, MOD, offer.id))
    assert (type(err), err.code) == (Conflict, "already_withdrawn")
    events = await env.events()
    assert [(e.kind, e.actor) for e in events] == [
        ("offer.pushed", "v_host"),
        ("offer.withdrawn", "v_mod"),
    ]
    assert events[0].data["url"] == "https://e.com/x"


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        " javascript:alert(document.cookie)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox(1)",
        "file:///etc/passwd",
        "ftp://e.com/x",
        "//evil.example/",
        "/relative/path",
        "https://user:pass@evil.example/",
        "https://good.example\\@evil.example/",
        "https://e.com/\x00x",
        "https://e.com/a b",
        "https:///no-host",
        "https://e.com:99999/",
        "https://e.com/" + "x" * 500,
        "",
    ],
)
async def test_bad_urls_are_refused_and_nothing_changes(env: Env, url: str) -> None:
    err = await refused(env.push(url=url))
    assert (type(err), err.code) == (UserError, "bad_url")
    assert await env.offers.offers("r1") == []
    assert await env.events() == []


def test_urls_are_normalised_to_plain_ascii() -> None:
    assert check_url("HTTPS://Shop.Example/路?q=中#x") == (
        "https://shop.example/%E8%B7%AF?q=%E4%B8%AD#x"
    )
    assert check_url("http://例子.测试/") == "http://xn--fsqu00a.xn--0zwm56d/"
    assert check_url('https://e.com/"<x>') == "https://e.com/%22%3Cx%3E"


@pytest.mark.parametrize(
    ("kw", "code"),
    [
        ({"title": ""}, "bad_title"),
        ({"title": "\u200b"}, "bad_title"),
        ({"title": "t" * 81}, "bad_title"),
        ({"text": "x" * 201}, "bad_text"),
        ({"cta": "c" * 25}, "bad_cta"),
    ],
)
async def test_bad_fields_are_refused(env: Env, kw: dict[str, Any], code: str) -> None:
    err = await refused(env.push(**kw))
    assert (type(err), err.code) == (ProtocolError, code)
    assert await env.events() == []


async def test_viewers_cannot_push_or_withdraw(env: Env) -> None:
    err = await refused(env.offers.push(ROOM, ANN, "t", "x", "https://e.com"))
    assert (type(err), err.code) == (Forbidden, "forbidden")
    offer = await env.push()
    err = await refused(env.offers.withdraw(ROOM, ANN, offer.id))
    assert err.code == "forbidden"
    assert [e.kind for e in await env.events()] == ["offer.pushed"]


async def test_active_offers_are_capped(env: Env) -> None:
    for i in range(MAX_ACTIVE_OFFERS):
        await env.push(title=f"Offer {i}")
    err = await refused(env.push(title="one too many"))
    assert err.code == "too_many_offers"
    first = (await env.offers.offers("r1"))[-1]
    await env.offers.withdraw(ROOM, HOST, first.id)
    await env.push(title="fits again")


async def test_a_viewer_click_counts_once_even_when_concurrent(env: Env) -> None:
    offer = await env.push()
    results = await asyncio.gather(*(env.offers.click(ROOM, ANN, offer.id) for _ in range(5)))
    assert sorted(counted for _, counted in results) == [False, False, False, False, True]
    assert all(o.url == "https://e.com/x" for o, _ in results)
    await env.offers.click(ROOM, BOB, offer.id)
    for staff in (HOST, MOD):  # staff clicks go through but never count
        assert (await env.offers.click(ROOM, staff, offer.id))[1] is False

    assert await env.offers.click_total("r1", offer.id) == 2
    assert await env.offers.clicks("r1") == {offer.id: 2}
    clicks = [e for e in await env.events() if e.kind == "offer.click"]
    assert sorted(e.actor for e in clicks) == ["v_ann", "v_bob"]
    assert all(e.data == {"offer_id": offer.id} for e in clicks)
    ann = await env.counters.viewer("r1", ROOM.scope, ANN.viewer_id)
    assert ann["offer_clicks"] == 1


async def test_a_click_recorded_by_a_killed_node_counts_once(env: Env) -> None:
    offer = await env.push()
    # Ann's click was committed, then the node died before the store heard of it.
    click = room_event(
        ROOM, "offer.click", ANN.viewer_id, {"offer_id": offer.id},
        client_id=click_client_id(offer.id),
    )  # fmt: skip
    await env.log.append(click)
    assert await env.offers.click_total("r1", offer.id) == 0
    assert (await env.offers.click(ROOM, ANN, offer.id))[1] is True  # her retry: learned
    assert (await env.offers.click(ROOM, ANN, offer.id))[1] is False
    assert await env.offers.click_total("r1", offer.id) == 1
    assert len([e for e in await env.events() if e.kind == "offer.click"]) == 1
    ann = await env.counters.viewer("r1", ROOM.scope, ANN.viewer_id)
    assert ann["offer_clicks"] == 1


async def test_rebuild_on_an_empty_store_brings_back_cards_and_clicks(env: Env) -> None:
    shown = await env.push(title="Shown", cta="Buy")
    gone = await env.push(title="Gone")
    await env.push(title="Quiet", text="")
    for who in (ANN, BOB, HOST):
        await env.offers.click(ROOM, who, shown.id)
    await env.offers.click(ROOM, BOB, gone.id)
    await env.offers.withdraw(ROOM, HOST, gone.id)
    before = (await env.offers.offers("r1"), await env.offers.clicks("r1"))
    assert before[1] == {shown.id: 2, gone.id: 1}

    # A restart on the memory store, or Redis restarted without persistence: every key gone.
    await env.store.delete("offers:r1", "offer_clicks:r1", clickers_key("r1", shown.id))
    await env.store.delete(clickers_key("r1", gone.id))
    assert await env.offers.offers("r1") == []
    await env.offers.rebuild("r1")
    assert (await env.offers.offers("r1"), await env.offers.clicks("r1")) == before
    await env.offers.rebuild("r1")  # idempotent
    assert (await env.offers.offers("r1"), await env.offers.clicks("r1")) == before
    assert gone.id not in {o.id for o in await env.offers.active("r1")}
    err = await refused(env.offers.click(ROOM, ANN, gone.id))
    assert err.code == "offer_withdrawn"
    assert (await env.offers.click(ROOM, ANN, shown.id))[1] is False  # counted before
    assert await env.offers.click_total("r1", shown.id) == 2


async def test_withdrawn_and_unknown_offers_count_nothing(env: Env) -> None:
    offer = await env.push()
    await env.offers.withdraw(ROOM, HOST, offer.id)
    err = await refused(env.offers.click(ROOM, ANN, offer.id))
    assert (type(err), err.code, err.status) == (Gone, "offer_withdrawn", 410)
    err = await refused(env.offers.click(ROOM, ANN, "o_nope"))
    assert (type(err), err.code) == (NotFound, "not_found")
    assert await env.offers.clicks("r1") == {}
    assert [e for e in await env.events() if e.kind == "offer.click"] == []
