"""Q&A through a real server and real Socket.IO clients, on both stores: asking,
the similar-question offer, upvotes, the approval queue, staff actions and pushes.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from support import LiveClient, Server, error_of, new_room, vid

from livehub.interactions.questions import vote_client_id
from livehub.rooms.eventlog import NewEvent


async def ask(client: LiveClient, text: str, **kw: Any) -> dict[str, Any]:
    payload = {"text": text, "client_id": uuid.uuid4().hex, **kw}
    return dict(await client.call("qa_ask", payload))


async def asked(client: LiveClient, text: str, **kw: Any) -> dict[str, Any]:
    ack = await ask(client, text, **kw)
    assert ack["ok"] is True and "question" in ack, ack
    return dict(ack["question"])


async def qa_events(server: Server, room: str) -> list[Any]:
    return [e async for e in server.services.log.scan(room) if e.kind.startswith("qa.")]


def pushed(client: LiveClient, event: str, question_id: int) -> list[dict[str, Any]]:
    return [q for q in client.events[event] if q["id"] == question_id]


async def test_a_question_reaches_everyone(server: Server) -> None:
    room = await new_room(server)
    ann = await server.client(room, name="Ann")
    bob = await server.client(room, name="Bob")
    mod = await server.client(room, role="moderator", name="Mod")

    ack = await ask(ann, "  When does the course start? ")
    assert ack["ok"] is True and ack["duplicate"] is False
    question = ack["question"]
    assert question["text"] == "When does the course start?"
    assert (question["own"], question["upvoted"], question["votes"]) == (True, False, 0)
    for client in (ann, bob, mod):
        got = await client.wait_for("question", lambda q: q["id"] == question["id"])
        assert got["text"] == "When does the course start?"
        assert (got["name"], got["viewer_id"]) == ("Ann", vid(ann))

    listed = await bob.call("qa_list", {"sort": "recent"})
    assert listed["ok"] is True
    assert [(q["id"], q["own"], q["upvoted"]) for q in listed["questions"]] == [
        (question["id"], False, False)
    ]
    assert listed["highlight"] is None and listed["require_approval"] is False

    [event] = await qa_events(server, room)
    assert (event.kind, event.actor, event.id) == ("qa.asked", vid(ann), question["id"])


async def test_anonymous_questions_hide_the_author_from_viewers_only(server: Server) -> None:
    room = await new_room(server)
    ann = await server.client(room, name="Ann")
    bob = await server.client(room, name="Bob")
    mod = await server.client(room, role="moderator", name="Mod")

    question = await asked(ann, "Is this a silly question?", anonymous=True)
    got = await bob.wait_for("question", lambda q: q["id"] == question["id"])
    for view in (got, (await bob.call("qa_list"))["questions"][0]):
        assert view["anonymous"] is True
        assert "name" not in view and "viewer_id" not in view
        assert vid(ann) not in str(view) and "Ann" not in str(view)
    [staff_view] = (await mod.call("qa_list"))["questions"]
    assert (staff_view["name"], staff_view["viewer_id"]) == ("Ann", vid(ann))
    [own_view] = (await ann.call("qa_list"))["questions"]
    assert own_view["own"] is True and "name" not in own_view


async def test_a_similar_question_is_offered_then_upvoted_or_forced(server: Server) -> None:
    room = await new_room(server)
    ann = await server.client(room, name="Ann")
    bob = await server.client(room, name="Bob")
    first = await asked(bob, "How do I reset my password?")
    await ann.wait_for("question", lambda q: q["id"] == first["id"])

    client_id = uuid.uuid4().hex
    offer = await ann.call(
        "qa_ask", {"text": "how can i reset the password", "client_id": client_id}
    )
    assert offer == {
        "ok": True,
        "similar": [
            {"id": first["id"], "text": "How do I reset my password?", "votes": 0, "own": False}
        ],
    }
    assert len(await qa_events(server, room)) == 1

    up = await ann.call("qa_upvote", {"question_id": first["id"]})
    assert up == {"ok": True, "question_id": first["id"], "votes": 1, "upvoted": True}

    forced = await ann.call(
        "qa_ask", {"text": "how can i reset the password", "client_id": client_id, "force": True}
    )
    assert forced["ok"] is True and forced["duplicate"] is False
    await bob.wait_for("question", lambda q: q["id"] == forced["question"]["id"])
    assert [e.kind for e in await qa_events(server, room)] == ["qa.asked", "qa.upvote", "qa.asked"]


async def test_fifty_concurrent_upvotes_from_one_viewer_count_once(server: Server) -> None:
    room = await new_room(server)
    ann = await server.client(room, name="Ann")
    bob = await server.client(room, name="Bob", viewer_id="v_bob")
    bob_again = await server.client(room, name="Bob", viewer_id="v_bob")  # a second tab
    question = await asked(ann, "What is the price?")

    acks = await asyncio.gather(
        *(c.call("qa_upvote", {"question_id": question["id"]}) for c in [bob, bob_again] * 25)
    )
    assert [a["votes"] for a in acks if a["ok"]] == [1]
    assert {error_of(a)["code"] for a in acks if not a["ok"]} == {"already_upvoted"}
    await ann.wait_for("qa_votes", lambda v: v.get(str(question["id"])) == 1)

    [listed] = (await bob.call("qa_list"))["questions"]
    assert (listed["votes"], listed["upvoted"]) == (1, True)
    kinds = [e.kind for e in await qa_events(server, room)]
    assert kinds == ["qa.asked", "qa.upvote"]
    counters = await server.services.counters.viewer(room, "-", "v_bob")
    assert counters["upvotes"] == 1


async def test_unvote_then_upvote_again_moves_the_pushed_tally(server: Server) -> None:
    room = await new_room(server)
    ann = await server.client(room, name="Ann")
    bob = await server.client(room, name="Bob")
    cat = await server.client(room, name="Cat")
    q = (await asked(ann, "What is the price?"))["id"]
    ref = {"question_id": q}

    assert (await bob.call("qa_upvote", ref))["votes"] == 1
    assert (await cat.call("qa_upvote", ref))["votes"] == 2
    assert (await bob.call("qa_unvote", ref))["votes"] == 1
    assert error_of(await bob.call("qa_unvote", ref))["code"] == "not_upvoted"
    assert (await bob.call("qa_upvote", ref))["votes"] == 2
    assert error_of(await bob.call("qa_upvote", ref))["code"] == "already_upvoted"
    await ann.wait_for("qa_votes", lambda v: v.get(str(q)) == 2)
    # pushes carry the tally as it stands: the last one is the final tally
    await ann.wait_until(lambda: ann.events["qa_votes"][-1] == {str(q): 2})
    assert all(set(v) == {str(q)} for v in ann.events["qa_votes"])


async def test_own_missing_and_forbidden(server: Server) -> None:
    room = await new_room(server)
    ann = await server.client(room, name="Ann")
    mod = await server.client(room, role="moderator", name="Mod")
    q = (await asked(ann, "What is the price?"))["id"]

    assert error_of(await ann.call("qa_upvote", {"question_id": q}))["code"] == "own_question"
    for event in ("qa_upvote", "qa_unvote"):
        assert error_of(await ann.call(event, {"question_id": 987654}))["code"] == "not_found"
    for event in ("qa_answer", "qa_dismiss", "qa_highlight", "qa_approve", "qa_reject"):
        assert error_of(await mod.call(event, {"question_id": 987654}))["code"] == "not_found"

    for event, payload in [
        ("qa_answer", {"question_id": q}),
        ("qa_dismiss", {"question_id": q}),
        ("qa_highlight", {"question_id": q}),
        ("qa_approve", {"question_id": q}),
        ("qa_reject", {"question_id": q}),
        ("qa_queue", {}),
        ("qa_settings", {"require_approval": True}),
    ]:
        assert error_of(await ann.call(event, payload))["code"] == "forbidden", event
    [listed] = (await ann.call("qa_list"))["questions"]
    assert (listed["answered"], listed["highlighted"]) == (False, False)
    assert [e.kind for e in await qa_events(server, room)] == ["qa.asked"]


async def test_bad_payloads_are_refused(server: Server) -> None:
    room = await new_room(server)
    ann = await server.client(room, name="Ann")
    for event, payload in [
        ("qa_ask", {"text": "hi?"}),
        ("qa_ask", {"text": "hi?", "client_id": "c1", "viewer_id": "v_x"}),
        ("qa_ask", {"text": "hi?", "client_id": "c1", "anonymous": "yes"}),
        ("qa_upvote", {"question_id": "1"}),
        ("qa_upvote", {"question_id": 0}),
        ("qa_list", {"sort": "random"}),
    ]:
        assert error_of(await ann.call(event, payload))["code"] == "bad_payload", payload
    assert error_of(await ask(ann, " \u200b "))["code"] == "empty_question"
    assert error_of(await ask(ann, "x" * 301))["code"] == "question_too_long"
    assert await qa_events(server, room) == []


async def test_rate_limit_answers_with_retry_after(server: Server) -> None:
    room = await new_room(server)
    ann = await server.client(room, name="Ann")
    await asked(ann, "What is the price?")
    error = error_of(await ask(ann, "When does the course start?"))
    assert error["code"] == "rate_limited"
    assert 50 < error["details"]["retry_after"] <= 60


async def test_approval_queue_over_the_wire(server: Server) -> None:
    room = await new_room(server)
    ann = await server.client(room, name="Ann")
    bob = await server.client(room, name="Bob")
    mod = await server.client(room, role="moderator", name="Mod")
    host = await server.client(room, role="host", name="Host")

    assert (await mod.call("qa_settings", {"require_approval": True}))["require_approval"] is True
    await host.wait_for("qa_settings", lambda s: s == {"require_approval": True})
    pending = await asked(ann, "What is the price?")
    assert pending["status"] == "pending"
    for staff in (mod, host):
        got = await staff.wait_for("question_pending", lambda q: q["id"] == pending["id"])
        assert (got["status"], got["name"]) == ("pending", "Ann")
    [queued] = (await mod.call("qa_queue"))["questions"]
    assert queued["id"] == pending["id"]
    assert (await bob.call("qa_list"))["questions"] == []
    assert error_of(await bob.call("qa_upvote", {"question_id": pending["id"]}))["code"] == (
        "not_found"
    )

    approved = await mod.call("qa_approve", {"question_id": pending["id"]})
    assert approved["question"]["status"] == "open"
    await bob.wait_for("question", lambda q: q["id"] == pending["id"])
    await host.wait_for(
        "question_pending", lambda q: q["id"] == pending["id"] and q["status"] == "open"
    )
    assert (await mod.call("qa_queue"))["questions"] == []
    assert error_of(await host.call("qa_reject", {"question_id": pending["id"]}))["code"] == (
        "not_found"
    )
    assert not pushed(bob, "question_pending", pending["id"])  # staff only


async def test_highlight_answer_and_dismiss_push_to_everyone(server: Server) -> None:
    room = await new_room(server)
    ann = await server.client(room, name="Ann")
    bob = await server.client(room, name="Bob")
    mod = await server.client(room, role="moderator", name="Mod")
    a = (await asked(ann, "What is the price?"))["id"]
    b = (await asked(bob, "When does the course start?"))["id"]

    assert (await mod.call("qa_highlight", {"question_id": a}))["question"]["id"] == a
    for client in (ann, bob, mod):
        got = await client.wait_for(
            "question_highlight", lambda h: h["question"] and h["question"]["id"] == a
        )
        assert got["question"]["highlighted"] is True
    await mod.call("qa_highlight", {"question_id": b})
    await ann.wait_for("question_highlight", lambda h: h["question"] and h["question"]["id"] == b)
    listed = (await ann.call("qa_list"))["questions"]
    assert {q["id"]: q["highlighted"] for q in listed} == {a: False, b: True}
    late = await server.client(room, name="Late")
    assert (await late.call("qa_list"))["highlight"]["id"] == b

    assert (await mod.call("qa_highlight", {"question_id": None}))["question"] is None
    for client in (ann, bob, late):
        await client.wait_for("question_highlight", lambda h: h["question"] is None)

    await mod.call("qa_answer", {"question_id": a})
    await bob.wait_for("question", lambda q: q["id"] == a and q["answered"] is True)

    await mod.call("qa_highlight", {"question_id": b})
    await mod.call("qa_dismiss", {"question_id": b})
    await ann.wait_for("question", lambda q: q["id"] == b and q["status"] == "dismissed")
    await ann.wait_until(lambda: ann.events["question_highlight"][-1] == {"question": None})
    assert [q["id"] for q in (await bob.call("qa_list"))["questions"]] == [a]
    kinds = [e.kind for e in await qa_events(server, room)]
    assert kinds == [
        "qa.asked",
        "qa.asked",
        "qa.highlighted",
        "qa.highlighted",
        "qa.highlighted",
        "qa.answered",
        "qa.highlighted",
        "qa.dismissed",
    ]


async def test_a_held_question_goes_to_the_staff_only(server: Server) -> None:
    room = await new_room(server)
    ann = await server.client(room, name="Ann")
    bob = await server.client(room, name="Bob")
    mod = await server.client(room, role="moderator", name="Mod")
    await mod.call("mod_rule_add", {"pattern": "discount", "action": "hold"})
    await mod.call("mod_rule_add", {"pattern": "spoiler", "action": "block"})

    assert error_of(await ask(ann, "any spoiler?"))["code"] == "blocked"
    held = await asked(ann, "Is there a discount?")
    assert held["status"] == "pending"
    await mod.wait_for(
        "question_pending", lambda q: q["id"] == held["id"] and q["held_by"] == "rule"
    )
    assert (await bob.call("qa_list"))["questions"] == []
    await mod.call("qa_reject", {"question_id": held["id"]})
    await mod.wait_for(
        "question_pending", lambda q: q["id"] == held["id"] and q["status"] == "rejected"
    )
    assert not pushed(bob, "question", held["id"])
    assert [e.kind for e in await qa_events(server, room)] == ["qa.held", "qa.rejected"]


async def test_a_retry_of_a_vote_a_killed_node_recorded_pushes_the_learned_tally(
    server: Server,
) -> None:
    room = await new_room(server)
    ann = await server.client(room, name="Ann")
    bob = await server.client(room, name="Bob", viewer_id="v_bob")
    question = await asked(ann, "What is the price?")
    # Recorded by a node killed before its store heard of it (or answered).
    recorded = NewEvent(
        room=room, kind="qa.upvote", actor="v_bob", data={"question_id": question["id"], "seq": 0},
        client_id=vote_client_id(question["id"], 0),
    )  # fmt: skip
    await server.services.log.append(recorded)
    ack = await bob.call("qa_upvote", {"question_id": question["id"]})
    assert error_of(ack)["code"] == "already_upvoted"
    await ann.wait_for("qa_votes", lambda v: v.get(str(question["id"])) == 1)
    [listed] = (await bob.call("qa_list"))["questions"]
    assert (listed["votes"], listed["upvoted"]) == (1, True)
