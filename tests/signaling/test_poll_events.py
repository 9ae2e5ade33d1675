"""Polls through a real server and real Socket.IO clients, on both stores, and on two
server processes sharing one Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path
from typing import Any

from processes import NodeClients, ServerProcess, TwoNodes, create_room
from support import LiveClient, Server, error_code, mint_token, new_room, ok


async def create_poll(host: LiveClient, **body: Any) -> dict[str, Any]:
    payload = {"question": "Best fruit?", "kind": "single", "options": ["Apple", "Pear", "Plum"]}
    payload.update(body)
    poll = ok(await host.call("poll_create", payload))["poll"]
    return dict(poll)


async def open_poll(host: LiveClient, **body: Any) -> str:
    poll_id = (await create_poll(host, **body))["id"]
    ok(await host.call("poll_open", {"poll_id": poll_id}))
    return str(poll_id)


def pushed(poll_id: str, **want: Any) -> Any:
    def match(view: dict[str, Any]) -> bool:
        return view["id"] == poll_id and all(view.get(k) == v for k, v in want.items())

    return match


async def vote_events(server: Server, room: str) -> list[Any]:
    return [e async for e in server.services.log.scan(room) if e.kind == "poll.vote"]


async def test_a_poll_from_creation_to_results(server: Server) -> None:
    room = await new_room(server)
    host = await server.client(room, role="host", name="Host")
    ann = await server.client(room, name="Ann", viewer_id="v_ann")
    bob = await server.client(room, name="Bob", viewer_id="v_bob")

    draft = await create_poll(host)
    assert draft["status"] == "draft" and draft["tally"] == {"counts": [0, 0, 0]}
    assert error_code(await ann.call("poll_vote", {"poll_id": draft["id"], "choices": [0]})) == (
        "poll_closed"
    )
    assert (await ann.call("poll_state"))["polls"] == []  # drafts are not shown to viewers

    ok(await host.call("poll_open", {"poll_id": draft["id"]}))
    opened = await ann.wait_for("poll", pushed(draft["id"], status="open"))
    assert opened["question"] == "Best fruit?" and opened["turnout"] == 0
    assert "tally" not in opened  # results hidden: viewers see only the turnout

    vote = ok(await ann.call("poll_vote", {"poll_id": draft["id"], "choices": [1]}))
    assert vote["choices"] == [1] and vote["held"] is False
    ok(await bob.call("poll_vote", {"poll_id": draft["id"], "choices": [1]}))
    staff = await host.wait_for("poll_staff", pushed(draft["id"], turnout=2))
    assert staff["tally"] == {"counts": [0, 2, 0]}
    public = await ann.wait_for("poll", pushed(draft["id"], turnout=2))
    assert "tally" not in public

    assert error_code(await ann.call("poll_vote", {"poll_id": draft["id"], "choices": [0]})) == (
        "already_voted"
    )
    ok(await host.call("poll_results", {"poll_id": draft["id"], "visible": True}))
    shown = await bob.wait_for("poll", pushed(draft["id"], results_visible=True))
    assert shown["tally"] == {"counts": [0, 2, 0]}

    ok(await host.call("poll_close", {"poll_id": draft["id"]}))
    await ann.wait_for("poll", pushed(draft["id"], status="closed"))
    cat = await server.client(room, name="Cat", viewer_id="v_cat")
    assert error_code(await cat.call("poll_vote", {"poll_id": draft["id"], "choices": [0]})) == (
        "poll_closed"
    )

    # a late or returning viewer sees the poll and whether they voted
    state = await ann.call("poll_state")
    assert [p["id"] for p in state["polls"]] == [draft["id"]]
    assert state["polls"][0]["tally"] == {"counts": [0, 2, 0]}
    assert state["votes"] == {draft["id"]: {"choices": [1], "text": None}}
    assert (await cat.call("poll_state"))["votes"] == {}

    listed = ok(await host.call("poll_list"))["polls"]
    assert [(p["id"], p["status"], p["turnout"]) for p in listed] == [(draft["id"], "closed", 2)]
    assert sorted(e.actor for e in await vote_events(server, room)) == ["v_ann", "v_bob"]
    counters = await server.services.counters.viewer(room, "-", "v_ann")
    assert counters["votes"] == 1


async def test_refusals(server: Server) -> None:
    room = await new_room(server)
    host = await server.client(room, role="host", name="Host")
    ann = await server.client(room, name="Ann")
    poll_id = await open_poll(host)

    def vote(**body: Any) -> Any:
        return ann.call("poll_vote", {"poll_id": poll_id, **body})

    assert error_code(await vote(choices=[3])) == "bad_choice"
    assert error_code(await vote(choices=[])) == "bad_choice"
    assert error_code(await vote(choices=[0, 0])) == "bad_choice"
    assert error_code(await vote(choices=[0, 1])) == "bad_choice"
    assert error_code(await vote(text="apple")) == "bad_choice"
    assert error_code(await vote(choices="0")) == "bad_payload"
    assert error_code(await vote(choices=[0], viewer_id="v_x")) == "bad_payload"
    assert error_code(await ann.call("poll_vote", {"poll_id": "p_nope", "choices": [0]})) == (
        "not_found"
    )
    for event, payload in [
        ("poll_create", {"question": "Mine?", "kind": "rating"}),
        ("poll_open", {"poll_id": poll_id}),
        ("poll_close", {"poll_id": poll_id}),
        ("poll_results", {"poll_id": poll_id, "visible": True}),
        ("poll_list", {}),
    ]:
        assert error_code(await ann.call(event, payload)) == "forbidden", event
    assert (
        error_code(
            await host.call("poll_create", {"question": "Q", "kind": "rating", "options": ["x"]})
        )
        == "bad_poll"
    )
    assert error_code(await host.call("poll_open", {"poll_id": "p_nope"})) == "not_found"
    assert await vote_events(server, room) == []
    ok(await vote(choices=[2]))  # none of that counted as a vote


async def test_a_hundred_concurrent_votes_from_one_viewer_count_once(server: Server) -> None:
    room = await new_room(server)
    host = await server.client(room, role="host", name="Host")
    # one viewer on two sockets
    tabs = [await server.client(room, name="Ann", viewer_id="v_ann") for _ in range(2)]
    poll_id = await open_poll(host, kind="multiple", max_choices=2)
    acks = await asyncio.gather(
        *(
            tabs[i % 2].call("poll_vote", {"poll_id": poll_id, "choices": [i % 3]})
            for i in range(100)
        )
    )
    assert sum(1 for a in acks if a["ok"]) == 1
    assert {a["error"]["code"] for a in acks if not a["ok"]} == {"already_voted"}
    listed = ok(await host.call("poll_list"))["polls"]
    assert listed[0]["turnout"] == 1 and sum(listed[0]["tally"]["counts"]) == 1
    assert len(await vote_events(server, room)) == 1
    assert (await server.services.counters.viewer(room, "-", "v_ann"))["votes"] == 1


async def test_tallies_are_pushed_coalesced_not_per_vote(server: Server) -> None:
    room = await new_room(server)
    host = await server.client(room, role="host", name="Host")
    viewers = [await server.client(room, name=f"V{i}") for i in range(20)]
    poll_id = await open_poll(host)
    await host.wait_for("poll_staff", pushed(poll_id, status="open"))
    before = len(host.events["poll_staff"])
    acks = await asyncio.gather(
        *(
            v.call("poll_vote", {"poll_id": poll_id, "choices": [i % 3]})
            for i, v in enumerate(viewers)
        )
    )
    assert all(a["ok"] for a in acks)
    final = await host.wait_for("poll_staff", pushed(poll_id, turnout=20))
    assert final["tally"]["counts"] == [7, 7, 6]
    await viewers[0].wait_for("poll", pushed(poll_id, turnout=20))
    tally_pushes = len(host.events["poll_staff"]) - before
    assert 1 <= tally_pushes < len(viewers)


async def test_word_cloud_through_the_rule_chain(server: Server) -> None:
    room = await new_room(server)
    host = await server.client(room, role="host", name="Host")
    ok(await host.call("mod_rule_add", {"pattern": "rude", "action": "block"}))
    ok(await host.call("mod_rule_add", {"pattern": "iffy", "action": "hold"}))
    ann = await server.client(room, name="Ann")
    bob = await server.client(room, name="Bob")
    cat = await server.client(room, name="Cat")
    poll_id = await open_poll(host, kind="word_cloud", options=[], results_visible=True)
    assert error_code(await ann.call("poll_vote", {"poll_id": poll_id, "text": "RUDE"})) == (
        "blocked"
    )
    assert error_code(await ann.call("poll_vote", {"poll_id": poll_id, "text": "x" * 41})) == (
        "bad_choice"
    )
    ok(await ann.call("poll_vote", {"poll_id": poll_id, "text": "Sunny"}))
    held = ok(await bob.call("poll_vote", {"poll_id": poll_id, "text": "iffy"}))
    assert held["held"] is True
    ok(await cat.call("poll_vote", {"poll_id": poll_id, "text": "sunny"}))
    public = await ann.wait_for("poll", pushed(poll_id, turnout=3))
    assert public["tally"]["words"] == [{"word": "sunny", "count": 2}]
    assert "held_words" not in public["tally"]
    staff = await host.wait_for("poll_staff", pushed(poll_id, turnout=3))
    assert staff["tally"]["held_words"] == [{"word": "iffy", "count": 1}]


# ---------------------------------------------------------------- two processes, one Redis

ROOM = "pollmulti"


async def test_one_viewer_voting_on_two_nodes_at_once_counts_once(
    two_nodes: TwoNodes, node_clients: NodeClients, tmp_path: Path
) -> None:
    a, b = two_nodes
    data = tmp_path / "data"
    await create_room(a.url, ROOM, "Multi")

    async def connect(node: ServerProcess, role: str, name: str, viewer_id: str) -> LiveClient:
        return await node_clients.connect(node, ROOM, mint_token(ROOM, role, name, viewer_id))

    host = await connect(a, "host", "Host", "v_host")
    on_a = await connect(a, "viewer", "Ann", "v_ann")
    on_b = await connect(b, "viewer", "Ann", "v_ann")
    watcher = await connect(b, "viewer", "Bob", "v_bob")
    poll_id = await open_poll(host, results_visible=True)
    await watcher.wait_for("poll", pushed(poll_id, status="open"))

    acks = await asyncio.gather(
        *(
            (on_a if i % 2 else on_b).call("poll_vote", {"poll_id": poll_id, "choices": [i % 3]})
            for i in range(40)
        )
    )
    assert sum(1 for a_ in acks if a_["ok"]) == 1
    assert {a_["error"]["code"] for a_ in acks if not a_["ok"]} == {"already_voted"}
    # the tally pushed by whichever node took the vote reaches a viewer on the other node
    seen = await watcher.wait_for("poll", pushed(poll_id, turnout=1))
    assert sum(seen["tally"]["counts"]) == 1
    listed = ok(await host.call("poll_list"))["polls"]
    assert listed[0]["turnout"] == 1
    with contextlib.closing(sqlite3.connect(data / "livehub.db", timeout=10)) as db:
        rows = list(db.execute("SELECT actor FROM events WHERE kind = 'poll.vote'"))
    assert rows == [("v_ann",)]
