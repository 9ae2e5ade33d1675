from __future__ import annotations

import random
from collections import Counter

import pytest
from fake_clock import Clock
from hypothesis import given
from hypothesis import strategies as st

from livehub.interactions.sampling import TokenBucket, sample_fair

# A message is (sender, serial, is_priority).
Message = tuple[str, int, bool]


def sender(message: Message) -> str:
    return message[0]


def priority(message: Message) -> bool:
    return message[2]


def make(*senders: str, staff: frozenset[str] = frozenset()) -> list[Message]:
    return [(who, serial, who in staff) for serial, who in enumerate(senders)]


def sample(messages: list[Message], budget: int | None, seed: int = 1) -> tuple[list[Message], int]:
    return sample_fair(messages, budget, sender, priority, random.Random(seed))


# -- sample_fair --------------------------------------------------------------------


def test_priority_messages_are_never_dropped() -> None:
    messages = make(*["host"] * 5, *["fan"] * 5, staff=frozenset({"host"}))
    kept, dropped = sample(messages, 2)
    assert [m for m in messages if m[2]] == kept
    assert dropped == 5


def test_priority_messages_count_against_the_budget() -> None:
    messages = make("host", "a", "b", "c", staff=frozenset({"host"}))
    kept, dropped = sample(messages, 2)
    assert len(kept) == 2
    assert messages[0] in kept
    assert dropped == 2


def test_zero_budget_keeps_only_priority() -> None:
    messages = make("a", "mod", "b", staff=frozenset({"mod"}))
    assert sample(messages, 0) == ([messages[1]], 2)


def test_one_spammer_cannot_crowd_out_the_others() -> None:
    singles = [f"viewer{i}" for i in range(9)]
    messages = make(*["spammer"] * 50, *singles, *["spammer"] * 50)
    for seed in range(20):
        kept, dropped = sample(messages, 10, seed)
        assert len(kept) == 10
        assert dropped == 99
        assert {m[0] for m in kept} == {"spammer", *singles}
        # The spammer's single slot goes to their oldest message.
        assert [m for m in kept if m[0] == "spammer"] == [messages[0]]


def test_budget_is_shared_round_robin_oldest_first() -> None:
    messages = make("a", "a", "a", "a", "b", "b", "c")
    kept, dropped = sample(messages, 5)
    assert Counter(m[0] for m in kept) == {"a": 2, "b": 2, "c": 1}
    assert [m[1] for m in kept if m[0] == "a"] == [0, 1]
    assert dropped == 2


def test_kept_messages_stay_in_their_original_order() -> None:
    messages = make(*[f"v{i % 7}" for i in range(60)], staff=frozenset({"v3"}))
    for seed in range(10):
        kept, _ = sample(messages, 15, seed)
        assert kept == sorted(kept, key=lambda m: m[1])


def test_dropped_count_is_exact() -> None:
    messages = make(*[f"v{i % 4}" for i in range(23)])
    kept, dropped = sample(messages, 6)
    assert (len(kept), dropped) == (6, 17)


def test_unlimited_budget_keeps_everything() -> None:
    messages = make(*[f"v{i % 3}" for i in range(500)])
    assert sample(messages, None) == (messages, 0)


def test_budget_at_least_the_message_count_keeps_everything() -> None:
    messages = make("a", "a", "b")
    assert sample(messages, 3) == (messages, 0)
    assert sample(messages, 100) == (messages, 0)
    assert sample([], 0) == ([], 0)


def test_negative_budget_is_an_error() -> None:
    with pytest.raises(ValueError):
        sample(make("a"), -1)


def test_same_seed_same_sample() -> None:
    messages = make(*[f"v{i % 13}" for i in range(100)])
    assert sample(messages, 7, seed=42) == sample(messages, 7, seed=42)


def test_sender_order_is_random_across_seeds() -> None:
    messages = make(*[f"v{i}" for i in range(20)])
    samples = {tuple(m[0] for m in sample(messages, 5, seed)[0]) for seed in range(20)}
    assert len(samples) > 1


@given(
    st.lists(st.tuples(st.sampled_from("abcdefg"), st.booleans()), max_size=60),
    st.one_of(st.none(), st.integers(min_value=0, max_value=70)),
    st.integers(),
)
def test_sample_properties(raw: list[tuple[str, bool]], budget: int | None, seed: int) -> None:
    messages = [(who, serial, staff) for serial, (who, staff) in enumerate(raw)]
    kept, dropped = sample(messages, budget, seed)
    assert len(kept) + dropped == len(messages)
    assert kept == [m for m in messages if m in kept]  # a subsequence, in order
    assert len(set(kept)) == len(kept)
    assert {m for m in messages if m[2]} <= set(kept)
    if budget is None:
        assert dropped == 0
    else:
        staff = sum(m[2] for m in messages)
        assert len(kept) <= max(budget, staff)
        assert len(kept) == min(len(messages), max(budget, staff))  # the budget is used


# -- TokenBucket -----------------------------------------------------------------------

TICK = 0.1


def drain(bucket: TokenBucket, clock: Clock, demand: int) -> tuple[int, int]:
    """One tick: ``demand`` messages wait, as many as the bucket holds go out;
    (kept, dropped)."""
    clock.advance(TICK)
    budget = bucket.available(clock())
    kept = demand if budget is None else min(demand, budget)
    bucket.spend(kept)
    return kept, demand - kept


def run(bucket: TokenBucket, clock: Clock, seconds: float, per_tick: int) -> tuple[int, int]:
    kept = dropped = 0
    for _ in range(round(seconds / TICK)):
        k, d = drain(bucket, clock, per_tick)
        kept, dropped = kept + k, dropped + d
    return kept, dropped


@pytest.fixture
def clock() -> Clock:
    return Clock(50_000.0)


def test_a_new_bucket_holds_one_second_of_the_cap(clock: Clock) -> None:
    assert TokenBucket(30, clock()).available(clock()) == 30


@pytest.mark.parametrize("burst", [1, 5, 17, 30])
def test_a_burst_up_to_the_cap_goes_out_whole(clock: Clock, burst: int) -> None:
    bucket = TokenBucket(30, clock())
    assert drain(bucket, clock, burst) == (burst, 0)


def test_a_burst_over_one_second_of_the_cap_is_held_to_it(clock: Clock) -> None:
    bucket = TokenBucket(30, clock())
    clock.advance(3600)  # a quiet hour banks one second, no more
    assert drain(bucket, clock, 100) == (30, 70)


def test_the_bucket_refills_at_the_cap_rate(clock: Clock) -> None:
    bucket = TokenBucket(30, clock())
    assert drain(bucket, clock, 30) == (30, 0)
    assert drain(bucket, clock, 30) == (3, 27)  # a tenth of a second: 3
    clock.advance(0.5)
    assert drain(bucket, clock, 30) == (18, 12)  # another 0.6 s: 18


@pytest.mark.parametrize("cap", [1, 2, 3, 5, 7, 9, 10, 25, 30, 33])
def test_sustained_overload_is_held_to_the_cap(clock: Clock, cap: int) -> None:
    bucket = TokenBucket(cap, clock())
    run(bucket, clock, 2, 100)  # the burst is spent
    for _ in range(5):
        assert run(bucket, clock, 1, 100) == (cap, 100 * 10 - cap)  # exactly cap a second


@pytest.mark.parametrize("overload", [2, 5, 10])
def test_what_goes_out_under_overload_tends_to_the_cap(clock: Clock, overload: int) -> None:
    cap, seconds = 30, 60
    per_tick = round(cap * overload * TICK)
    bucket = TokenBucket(cap, clock())
    kept, dropped = run(bucket, clock, seconds, per_tick)
    # the cap a second, plus the one-second burst it started with
    assert cap * seconds <= kept <= cap * (seconds + 1)
    assert kept / (kept + dropped) == pytest.approx(1 / overload, rel=0.03)


def test_a_rate_at_the_cap_is_never_sampled(clock: Clock) -> None:
    bucket = TokenBucket(30, clock())
    assert run(bucket, clock, 60, 3) == (3 * 600, 0)


def test_sampling_starts_only_when_the_sustained_rate_exceeds_the_cap(clock: Clock) -> None:
    bucket = TokenBucket(30, clock())
    # 40 a second: the burst covers the excess for a while, then the cap holds
    assert run(bucket, clock, 1, 4) == (40, 0)
    kept, dropped = run(bucket, clock, 10, 4)
    assert dropped > 0
    assert kept == pytest.approx(30 * 10, abs=30)


def test_fractions_carry_over(clock: Clock) -> None:
    bucket = TokenBucket(5, clock())
    run(bucket, clock, 2, 10)
    takes = [drain(bucket, clock, 10)[0] for _ in range(10)]
    assert sum(takes) == 5
    assert set(takes) == {0, 1}


def test_long_runs_do_not_drift(clock: Clock) -> None:
    bucket = TokenBucket(3, clock())
    kept = bucket.available(clock()) or 0
    bucket.spend(kept)
    for _ in range(20 * 60):
        clock.advance(0.05)
        budget = bucket.available(clock()) or 0
        bucket.spend(budget)
        kept += budget
    assert kept == 3 + 3 * 60  # the first second's burst, then 3 a second


def test_a_slow_rate_still_holds_one_message(clock: Clock) -> None:
    bucket = TokenBucket(0.1, clock())
    assert drain(bucket, clock, 5) == (1, 4)
    assert run(bucket, clock, 9.8, 5)[0] == 0
    assert run(bucket, clock, 0.2, 5)[0] == 1  # one every ten seconds


def test_priority_beyond_the_budget_leaves_no_debt(clock: Clock) -> None:
    bucket = TokenBucket(10, clock())
    bucket.available(clock())
    bucket.spend(25)  # staff messages go out whatever the budget
    clock.advance(0.5)
    assert bucket.available(clock()) == 5


def test_a_lower_rate_keeps_how_full_the_bucket_is(clock: Clock) -> None:
    bucket = TokenBucket(30, clock())
    bucket.set_rate(15, clock())
    assert bucket.available(clock()) == 15  # full stays full, at the new size
    bucket.spend(15)
    bucket.set_rate(30, clock())
    assert bucket.available(clock()) == 0  # empty stays empty: no burst from a share change
    clock.advance(0.5)
    assert bucket.available(clock()) == 15


def test_the_time_before_a_rate_change_refills_at_the_old_rate(clock: Clock) -> None:
    bucket = TokenBucket(10, clock())
    bucket.spend(10)
    clock.advance(0.5)  # 5 of 10 at the old rate: half full
    bucket.set_rate(20, clock())
    assert bucket.available(clock()) == 10  # half of the new second


def test_a_full_bucket_at_a_small_share_is_full_at_a_large_one(clock: Clock) -> None:
    bucket = TokenBucket(3, clock())
    bucket.set_rate(30, clock())
    assert bucket.available(clock()) == 30


def test_rate_zero_is_unlimited(clock: Clock) -> None:
    bucket = TokenBucket(0, clock())
    assert bucket.unlimited
    assert [drain(bucket, clock, 50) for _ in range(3)] == [(50, 0)] * 3
    messages = make(*["a"] * 50)
    assert sample(messages, bucket.available(clock())) == (messages, 0)
    bucket.set_rate(10, clock())  # a cap set on an unlimited room starts full
    assert not bucket.unlimited
    assert bucket.available(clock()) == 10
    bucket.set_rate(0, clock())
    assert bucket.available(clock()) is None


def test_an_empty_bucket_does_not_mean_unlimited(clock: Clock) -> None:
    bucket = TokenBucket(1, clock())
    messages = make("a", "b", "c")
    kept = []
    for _ in range(11):
        budget = bucket.available(clock())
        got = sample(messages, budget)[0]
        bucket.spend(len(got))
        kept.append(len(got))
        clock.advance(TICK)
    assert kept == [1] + [0] * 9 + [1]


def test_a_clock_going_back_does_not_add_tokens(clock: Clock) -> None:
    bucket = TokenBucket(10, clock())
    bucket.spend(10)
    clock.advance(-5)
    assert bucket.available(clock()) == 0
    clock.advance(5.1)
    assert bucket.available(clock()) == 1


@given(
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=30), st.integers(min_value=0, max_value=40)),
        max_size=80,
    ),
    st.integers(min_value=1, max_value=50),
)
def test_bucket_properties(steps: list[tuple[int, int]], cap: int) -> None:
    """Over any run: never more than the burst plus the cap for the time passed, and a
    message is dropped only when the bucket has run dry."""
    clock = Clock(1_000.0)
    bucket = TokenBucket(cap, clock())
    kept = 0
    for tenths, demand in steps:
        clock.advance(tenths / 10)
        budget = bucket.available(clock())
        assert budget is not None and budget >= 0
        out = min(demand, budget)
        bucket.spend(out)
        kept += out
        elapsed = clock() - 1_000.0
        assert kept <= cap + cap * elapsed + 1e-9
        if out < demand:
            assert bucket.available(clock()) == 0


@pytest.mark.parametrize("rate", [-1, -0.1])
def test_bad_rates_are_rejected(clock: Clock, rate: float) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate, clock())
    with pytest.raises(ValueError):
        TokenBucket(5, clock()).set_rate(rate, clock())
