"""The per-room batcher: one frame per changed room per tick, sampled fairly under a cap
that carries over between ticks (a token bucket on a driven clock)."""

from __future__ import annotations

import itertools
import random

import pytest
from fake_clock import Clock

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
def clock() -> Clock:
    return Clock(50_000.0)


@pytest.fixture
def batcher(clock: Clock) -> Batcher:
    return Batcher(TICK, random.Random(7), clock)


def tick(batcher: Batcher, clock: Clock) -> list[Batch]:
    """A tick of the clock, then the drain."""
    clock.advance(TICK)
    return batcher.drain()


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


def test_cap_keeps_staff_and_counts_drops(batcher: Batcher, clock: Clock) -> None:
    cap = 5  # a burst of 5 at most
    staff = [msg("v_host", "host"), msg("v_mod", "moderator")]
    viewers = [msg(f"v_{i}") for i in range(20)]
    for m in [viewers[0], staff[0], *viewers[1:10], staff[1], *viewers[10:]]:
        batcher.add_message("hot", cap, m)
    [batch] = tick(batcher, clock)
    assert len(batch.messages) == 5
    assert batch.dropped == 22 - 5
    assert set(staff) <= set(batch.messages)
    # Kept messages stay in their original order.
    assert [m.id for m in batch.messages] == sorted(m.id for m in batch.messages)


def test_staff_are_never_dropped_even_over_the_budget(batcher: Batcher, clock: Clock) -> None:
    cap = 3
    staff = [msg("v_host", "host") for _ in range(4)]
    viewers = [msg(f"v_{i}") for i in range(6)]
    for m in [*viewers, *staff]:
        batcher.add_message("hot", cap, m)
    [batch] = tick(batcher, clock)
    assert batch.messages == staff
    assert batch.dropped == 6


def test_cap_is_shared_fairly_between_senders(batcher: Batcher, clock: Clock) -> None:
    cap = 3
    spam = [msg("v_spammer") for _ in range(50)]
    others = [msg("v_a"), msg("v_b")]
    for m in [*spam, *others]:
        batcher.add_message("hot", cap, m)
    [batch] = tick(batcher, clock)
    assert set(others) <= set(batch.messages)
    assert sum(m.viewer_id == "v_spammer" for m in batch.messages) == 1
    assert batch.dropped == 49


def test_simultaneous_greetings_in_a_small_room_all_go_out(batcher: Batcher, clock: Clock) -> None:
    cap = 30  # the default: 3 a tick on average, but a burst of 5 is well under 30 a second
    greetings = [msg(f"v_{i}", text="hello!") for i in range(5)]
    for m in greetings:
        batcher.add_message("small", cap, m)
    assert tick(batcher, clock) == [Batch("small", greetings, [], 0)]


def test_a_burst_of_one_second_of_the_cap_goes_out_whole(batcher: Batcher, clock: Clock) -> None:
    cap = 30
    burst = [msg(f"v_{i}") for i in range(cap + 1)]
    for m in burst[:cap]:
        batcher.add_message("r", cap, m)
    assert tick(batcher, clock) == [Batch("r", burst[:cap], [], 0)]
    clock.advance(1.0)  # a second later the bucket is full again
    for m in burst:
        batcher.add_message("r", cap, m)
    [batch] = tick(batcher, clock)
    assert (len(batch.messages), batch.dropped) == (cap, 1)


def kept_over(
    batcher: Batcher, clock: Clock, room: str, cap: int, seconds: float, per_tick: int
) -> tuple[int, int]:
    """(kept, dropped) over ``seconds`` of ticks with ``per_tick`` new messages each."""
    kept = dropped = 0
    for n in range(round(seconds / TICK)):
        for i in range(per_tick):
            batcher.add_message(room, cap, msg(f"v_{n}_{i}"))
        for batch in tick(batcher, clock):
            kept, dropped = kept + len(batch.messages), dropped + batch.dropped
    return kept, dropped


def test_a_steady_rate_at_the_cap_is_never_sampled(batcher: Batcher, clock: Clock) -> None:
    assert kept_over(batcher, clock, "r", 30, 20, 3) == (600, 0)


def test_sampling_starts_only_when_the_sustained_rate_exceeds_the_cap(
    batcher: Batcher, clock: Clock
) -> None:
    cap = 30
    # 40 a second: for the first second the carried budget covers the excess...
    assert kept_over(batcher, clock, "r", cap, 1, 4) == (40, 0)
    # ...then what goes out is held to the cap a second
    kept_over(batcher, clock, "r", cap, 5, 4)
    assert kept_over(batcher, clock, "r", cap, 10, 4) == (cap * 10, 100)


@pytest.mark.parametrize("per_tick", [4, 6, 30, 100])
def test_sustained_overload_keeps_the_cap_share_of_the_messages(
    batcher: Batcher, clock: Clock, per_tick: int
) -> None:
    cap, seconds = 30, 30
    kept, dropped = kept_over(batcher, clock, "r", cap, seconds, per_tick)
    assert cap * seconds <= kept <= cap * (seconds + 1)  # the cap, plus one carried second
    offered = per_tick * seconds / TICK
    assert kept + dropped == offered
    assert kept / offered == pytest.approx(cap * TICK / per_tick, rel=0.05)


def test_low_caps_carry_fractions_over_ticks(batcher: Batcher, clock: Clock) -> None:
    cap = 5  # half a message a tick
    kept_over(batcher, clock, "hot", cap, 2, 2)  # spend the burst
    assert kept_over(batcher, clock, "hot", cap, 1, 2) == (5, 15)


def test_budget_is_banked_for_one_second_only(batcher: Batcher, clock: Clock) -> None:
    cap = 10
    kept_over(batcher, clock, "hot", cap, 3, 10)  # the bucket is empty
    for _ in range(20):
        assert tick(batcher, clock) == []  # two quiet seconds
    for i in range(15):
        batcher.add_message("hot", cap, msg(f"v_{i}"))
    [batch] = tick(batcher, clock)
    assert (len(batch.messages), batch.dropped) == (10, 5)


def test_cap_change_applies(batcher: Batcher, clock: Clock) -> None:
    for i in range(15):
        batcher.add_message("hot", 10, msg(f"v_{i}"))
    assert len(tick(batcher, clock)[0].messages) == 10
    for i in range(15):
        batcher.add_message("hot", UNLIMITED, msg(f"v_{i}"))
    [batch] = tick(batcher, clock)
    assert (len(batch.messages), batch.dropped) == (15, 0)
    for i in range(15):  # a cap set again starts with a full second of it
        batcher.add_message("hot", 5, msg(f"v_{i}"))
    [batch] = tick(batcher, clock)
    assert (len(batch.messages), batch.dropped) == (5, 10)


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


def test_a_share_of_the_cap_scales_what_goes_out(batcher: Batcher, clock: Clock) -> None:
    kept_over(batcher, clock, "r", 20, 2, 10)  # spend the burst
    assert kept_over(batcher, clock, "r", 20, 2, 10)[0] == 40  # the whole cap
    batcher.set_share("r", 0.25)
    assert kept_over(batcher, clock, "r", 20, 2, 10)[0] == 10
    batcher.set_share("r", 1.0)
    assert kept_over(batcher, clock, "r", 20, 2, 10)[0] == 40


def test_a_share_scales_the_burst_too(clock: Clock) -> None:
    """Two nodes at half the cap each: a burst at both at once stays within one cap."""
    cap = 20
    nodes = [Batcher(TICK, random.Random(n), clock) for n in range(2)]
    for n, node in enumerate(nodes):
        node.add_message("r", cap, msg(f"v_{n}"))
        node.set_share("r", 0.5)
    clock.advance(5)  # quiet: each bucket is full, at half the cap
    for n, node in enumerate(nodes):
        node.drain()
        for i in range(cap):
            node.add_message("r", cap, msg(f"v_{n}_{i}"))
    kept = [len(b.messages) for node in nodes for b in tick(node, clock)]
    assert kept == [cap // 2, cap // 2]


def test_a_node_left_alone_gets_the_whole_burst(batcher: Batcher, clock: Clock) -> None:
    """A share lowered while another node was busy, then raised again when that node is
    gone: the unused budget keeps its fill, so a quiet node's burst is not cut."""
    cap = 30
    batcher.add_message("r", cap, msg())
    batcher.set_share("r", 0.1)  # the other node had most of the demand
    tick(batcher, clock)
    clock.advance(2)
    greetings = [msg(f"v_{i}", text="hi!") for i in range(5)]
    for m in greetings:
        batcher.add_message("r", cap, m)
    batcher.set_share("r", 1.0)  # the other node went quiet
    assert tick(batcher, clock) == [Batch("r", greetings, [], 0)]


def test_a_tiny_share_never_means_unlimited(batcher: Batcher, clock: Clock) -> None:
    batcher.add_message("r", 20, msg())
    batcher.set_share("r", 0.0)
    assert kept_over(batcher, clock, "r", 20, 1, 10)[0] <= 1
    batcher.add_message("u", UNLIMITED, msg())
    batcher.set_share("u", 0.1)  # an unlimited room stays unlimited
    assert kept_over(batcher, clock, "u", UNLIMITED, 0.2, 10) == (21, 0)


def test_demand_counts_what_could_be_sampled_in_capped_rooms(batcher: Batcher) -> None:
    for _ in range(3):
        batcher.add_message("hot", 5, msg())
    batcher.add_message("hot", 5, msg("v_host", role="host"))  # staff is never sampled
    batcher.add_message("free", UNLIMITED, msg())
    assert batcher.demand() == {"hot": 3}
    assert batcher.demand() == {"hot": 0}  # counts restart
