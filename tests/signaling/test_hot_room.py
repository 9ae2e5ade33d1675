"""A hot room: fair sampling down to the per-viewer cap, staff never sampled away;
a small room: a burst under the cap reaches everybody whole."""

from __future__ import annotations

import asyncio

import pytest
from support import LiveClient, Server


async def test_hot_room_is_sampled_fairly_and_every_drop_is_counted(server: Server) -> None:
    # 66 messages against a cap of 5 a second (a burst of 5): sampled however slowly they come
    settings = {"max_danmaku_per_second": 5, "chat_rate_per_second": 100, "chat_burst": 100}
    created = await server.create_room(settings=settings)
    room = created["room"]["id"]
    watcher = await server.client(room, name="Watcher")
    host = await server.client(room, created["host_token"], role="host", name="Host")
    senders = [await server.client(room, name=f"s{i}") for i in range(10)]

    async def burst(client: object, tag: str) -> list[int]:
        acks = [await client.chat(f"{tag} {n}") for n in range(6)]  # type: ignore[attr-defined]
        assert all(a["ok"] for a in acks), acks
        return [a["id"] for a in acks]

    viewer_ids = await asyncio.gather(*(burst(s, f"v{i}") for i, s in enumerate(senders)))
    host_ids = await burst(host, "host")
    sent = [i for ids in viewer_ids for i in ids] + host_ids

    def settled() -> bool:
        seen = {m["id"] for m in watcher.messages()}
        dropped = sum(b["dropped"] for b in watcher.events["batch"])
        return set(host_ids) <= seen and len(seen) + dropped >= len(sent)

    await watcher.wait_until(settled, timeout=15)
    seen = [m["id"] for m in watcher.messages()]
    dropped = sum(b["dropped"] for b in watcher.events["batch"])
    assert set(host_ids) <= set(seen)  # the host's messages are never sampled away
    assert len(seen) + dropped == len(sent) and dropped > 0  # every message sent or counted
    assert len(seen) == len(set(seen)) and set(seen) <= set(sent)
    assert len(set(seen) - set(host_ids)) < len(sent) - len(host_ids)  # viewers were sampled
    stats = await host.call("mod_stats")
    assert stats["sampled_away"] == dropped
    await asyncio.sleep(0.3)  # the sampled-away record is written off the tick's path
    logged = [e async for e in server.services.log.scan(room) if e.kind == "chat.sampled"]
    assert sum(e.data["dropped"] for e in logged) == dropped


@pytest.mark.parametrize("cap", [30, 5])  # the default, and a burst of exactly the cap
async def test_simultaneous_greetings_in_a_small_room_reach_every_viewer(
    server: Server, cap: int
) -> None:
    created = await server.create_room(settings={"max_danmaku_per_second": cap})
    room = created["room"]["id"]
    viewers = [await server.client(room, name=f"Viewer {i}") for i in range(9)]
    greeters = viewers[:5]
    acks = await asyncio.gather(*(v.chat(f"hello from {i}") for i, v in enumerate(greeters)))
    assert all(a["ok"] for a in acks), acks
    sent = {a["id"] for a in acks}

    def settled(viewer: LiveClient) -> bool:  # each message seen or counted as dropped
        seen = sent & {m["id"] for m in viewer.messages()}
        return len(seen) + sum(b["dropped"] for b in viewer.events["batch"]) >= len(sent)

    for viewer in viewers:
        await viewer.wait_until(lambda v=viewer: settled(v), timeout=10)
    for viewer in viewers:
        assert sum(b["dropped"] for b in viewer.events["batch"]) == 0
        assert sorted(m["id"] for m in viewer.messages()) == sorted(sent)
