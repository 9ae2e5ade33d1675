"""The per-room batcher: one frame per changed room per tick, sampled fairly under a cap."""

from __future__ import annotations

import itertools
import random

import pytest

from livehub.interactions.batcher import Batch, Batcher
from livehub.interactions.messages import ChatMessage

TICK = 0.1
UNLIMITED = 0
_ids = itertools.count(1)


def msg(viewer: str = "v_ann", role: str = "viewer", text: str = "hi") -> ChatMessage:
    return ChatMessage(
        id=next(_ids),
        viewer_id=viewer,
        name=viewer,
        role=role,
        text=text,
        mode="scroll",
        color="#ffffff",
        offset_ms=None,
        ts=0.0,
    )


@pytest.fixture
def batcher() -> Batcher:
    return Batcher(TICK, random.Random(7))


def by_room(batches: list[Batch]) -> dict[str, Batch]:
    rooms = [b.room for b in batches]
    assert len(rooms) == len(set(rooms)), "one batch per room"
    return {b.room: b for b in batches}


def test_messages_are_batched_per_room_and_drained_once(batcher: Batcher) -> None:
    a1, a2, b1 = msg("v_1"), msg("v_2"), msg("v_3")
    batcher.add_message("a", UNLIMITED, a1)
    batcher.add_message("b", UNLIMITED, b1)
    batcher.add_message("a", UNLIMITED, a2)
    batches = by_room(batcher.drain())
    assert batches == {
        "a": Batch("a", [a1, a2], [], 0),
        "b": Batch("b", [b1], [], 0),
    }
    assert batcher.drain() == []
    a3 = msg("v_1")
    batcher.add_message("a", UNLIMITED, a3)
    assert batcher.drain() == [Batch("a", [a3], [], 0)]


def test_deleted_ids_are_carried(batcher: Batcher) -> None:
    kept = msg()
    batcher.add_deleted("a", UNLIMITED, 41)
    batcher.add_message("a", UNLIMITED, kept)
    batcher.add_deleted("a", UNLIMITED, 42)
    assert batcher.drain() == [Batch("a", [kept], [41, 42], 0)]
    batcher.add_deleted("a", UNLIMITED, 43)
    assert batcher.drain() == [Batch("a", [], [43], 0)]
    assert batcher.drain() == []


def test_touch_makes_a_frame_without_messages(batcher: Batcher) -> None:
    batcher.touch("a", UNLIMITED)
    assert batcher.drain() == [Batch("a", [], [], 0)]
    assert batcher.drain() == []


def test_unlimited_keeps_everything(batcher: Batcher) -> None:
    messages = [msg(f"v_{i % 7}") for i in range(500)]
    for m in messages:
        batcher.add_message("hot", UNLIMITED, m)
    [batch] = batcher.drain()
    assert batch.messages == messages
    assert batch.dropped == 0


def test_cap_keeps_staff_and_counts_drops(batcher: Batcher) -> None:
    cap = 50  # 5 messages a tick at 100 ms
    staff = [msg("v_host", "host"), msg("v_mod", "moderator")]
    viewers = [msg(f"v_{i}") for i in range(20)]
    for m in [viewers[0], staff[0], *viewers[1:10], staff[1], *viewers[10:]]:
        batcher.add_message("hot", cap, m)
    [batch] = batcher.drain()
    assert len(batch.messages) == 5
    assert batch.dropped == 22 - 5
    assert set(staff) <= set(batch.messages)
    assert len(batch.messages) + batch.dropped == 22
    # Kept messages stay in their original order.
    assert [m.id for m in batch.messages] == sorted(m.id for m in batch.messages)


def test_staff_are_never_dropped_even_over_the_budget(batcher: Batcher) -> None:
    cap = 10  # one message a tick
    staff = [msg("v_host", "host") for _ in range(4)]
    viewers = [msg(f"v_{i}") for i in range(6)]
    for m in [*viewers, *staff]:
        batcher.add_message("hot", cap, m)
    [batch] = batcher.drain()
    assert batch.messages == staff
    assert batch.dropped == 6


def test_cap_is_shared_fairly_between_senders(batcher: Batcher) -> None:
    cap = 30  # 3 a tick
    spam = [msg("v_spammer") for _ in range(50)]
    others = [msg("v_a"), msg("v_b")]
    for m in [*spam, *others]:
        batcher.add_message("hot", cap, m)
    [batch] = batcher.drain()
    assert set(others) <= set(batch.messages)
    assert sum(m.viewer_id == "v_spammer" for m in batch.messages) == 1
    assert batch.dropped == 49


def test_low_caps_carry_fractions_over_ticks(batcher: Batcher) -> None:
    cap = 5  # half a message a tick
    kept = 0
    dropped = 0
    for _ in range(10):
        batcher.add_message("hot", cap, msg("v_a"))
        batcher.add_message("hot", cap, msg("v_b"))
        [batch] = batcher.drain()
        kept += len(batch.messages)
        dropped += batch.dropped
    assert (kept, dropped) == (5, 15)


def test_budget_is_not_banked_while_quiet(batcher: Batcher) -> None:
    cap = 10
    batcher.touch("hot", cap)
    batcher.drain()
    for _ in range(20):
        assert batcher.drain() == []
    for i in range(5):
        batcher.add_message("hot", cap, msg(f"v_{i}"))
    [batch] = batcher.drain()
    assert (len(batch.messages), batch.dropped) == (1, 4)


def test_cap_change_applies(batcher: Batcher) -> None:
    for i in range(5):
        batcher.add_message("hot", 10, msg(f"v_{i}"))
    assert len(batcher.drain()[0].messages) == 1
    for i in range(5):
        batcher.add_message("hot", UNLIMITED, msg(f"v_{i}"))
    [batch] = batcher.drain()
    assert (len(batch.messages), batch.dropped) == (5, 0)


def test_room_with_nothing_new_yields_no_batch(batcher: Batcher) -> None:
    batcher.add_message("a", UNLIMITED, msg())
    batcher.add_message("b", UNLIMITED, msg())
    batcher.drain()
    fresh = msg()
    batcher.add_message("b", UNLIMITED, fresh)
    assert batcher.drain() == [Batch("b", [fresh], [], 0)]
    assert batcher.drain() == []


def test_forget(batcher: Batcher) -> None:
    batcher.add_message("a", UNLIMITED, msg())
    batcher.add_deleted("a", UNLIMITED, 1)
    keep = msg()
    batcher.add_message("b", UNLIMITED, keep)
    batcher.forget("a")
    batcher.forget("never-seen")
    assert batcher.drain() == [Batch("b", [keep], [], 0)]
    later = msg()
    batcher.add_message("a", UNLIMITED, later)
    assert batcher.drain() == [Batch("a", [later], [], 0)]


def test_drained_lists_are_not_reused(batcher: Batcher) -> None:
    first = msg()
    batcher.add_message("a", UNLIMITED, first)
    batcher.add_deleted("a", UNLIMITED, 9)
    [batch] = batcher.drain()
    batcher.add_message("a", UNLIMITED, msg())
    batcher.add_deleted("a", UNLIMITED, 10)
    assert batch.messages == [first]
    assert batch.deleted == [9]


def test_totals_alone_go_out_at_most_once_a_second() -> None:
    batcher = Batcher(tick_seconds=0.1, rng=random.Random(1))
    frames = 0
    for _ in range(50):  # five seconds of ticks, a like or a join on every one
        batcher.touch("busy", UNLIMITED)
        frames += len(batcher.drain())
    assert frames == 5


def test_messages_go_out_every_tick_and_reset_the_totals_clock() -> None:
    batcher = Batcher(tick_seconds=0.1, rng=random.Random(1))
    for i in range(10):
        batcher.touch("busy", UNLIMITED)
        batcher.add_message("busy", UNLIMITED, msg(f"v_{i}"))
        assert len(batcher.drain()) == 1
    batcher.touch("busy", UNLIMITED)
    assert batcher.drain() == []


def kept_over(batcher: Batcher, room: str, cap: int, ticks: int, per_tick: int) -> int:
    kept = 0
    for tick in range(ticks):
        for n in range(per_tick):
            batcher.add_message(room, cap, msg(f"v_{tick}_{n}"))
        kept += sum(len(b.messages) for b in batcher.drain())
    return kept


def test_a_share_of_the_cap_scales_what_goes_out(batcher: Batcher) -> None:
    assert kept_over(batcher, "r", 20, 10, 10) == 20  # one second at the whole cap
    batcher.set_share("r", 0.25)
    assert kept_over(batcher, "r", 20, 10, 10) == 5
    batcher.set_share("r", 1.0)
    assert kept_over(batcher, "r", 20, 10, 10) == 20


def test_a_tiny_share_never_means_unlimited(batcher: Batcher) -> None:
    batcher.add_message("r", 20, msg())
    batcher.set_share("r", 0.0)
    assert kept_over(batcher, "r", 20, 10, 10) <= 1
    batcher.add_message("u", UNLIMITED, msg())
    batcher.set_share("u", 0.1)  # an unlimited room stays unlimited
    assert kept_over(batcher, "u", UNLIMITED, 2, 10) == 21


def test_demand_counts_what_could_be_sampled_in_capped_rooms(batcher: Batcher) -> None:
    for _ in range(3):
        batcher.add_message("hot", 5, msg())
    batcher.add_message("hot", 5, msg("v_host", role="host"))  # staff is never sampled
    batcher.add_message("free", UNLIMITED, msg())
    assert batcher.demand() == {"hot": 3}
    assert batcher.demand() == {"hot": 0}  # counts restart
