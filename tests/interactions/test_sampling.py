from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from livehub.interactions.sampling import TickBudget, sample_fair

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


# -- TickBudget ------------------------------------------------------------------------


def test_fractional_budget_carries_over() -> None:
    budget = TickBudget(5, 0.1)
    takes = [budget.take() for _ in range(10)]
    assert sum(t or 0 for t in takes) == 5
    assert set(takes) == {0, 1}


@pytest.mark.parametrize("cap", [1, 2, 3, 5, 7, 9, 10, 25, 30, 33])
def test_ten_ticks_of_a_tenth_of_a_second_sum_to_the_cap(cap: int) -> None:
    budget = TickBudget(cap, 0.1)
    takes = [budget.take() for _ in range(10)]
    assert all(t is not None for t in takes)
    assert sum(t or 0 for t in takes) == cap


def test_long_runs_do_not_drift() -> None:
    budget = TickBudget(3, 0.05)
    assert sum(budget.take() or 0 for _ in range(20 * 60)) == 3 * 60


def test_whole_budgets_are_even() -> None:
    budget = TickBudget(30, 0.1)
    assert [budget.take() for _ in range(5)] == [3] * 5


def test_cap_zero_is_unlimited() -> None:
    budget = TickBudget(0, 0.1)
    assert budget.unlimited
    assert [budget.take() for _ in range(3)] == [None, None, None]
    messages = make(*["a"] * 50)
    assert sample(messages, budget.take()) == (messages, 0)


def test_a_zero_tick_does_not_mean_unlimited() -> None:
    budget = TickBudget(1, 0.1)
    messages = make("a", "b", "c")
    kept = [len(sample(messages, budget.take())[0]) for _ in range(10)]
    assert sorted(kept) == [0] * 9 + [1]


@pytest.mark.parametrize(("cap", "tick"), [(-1, 0.1), (5, 0), (5, -0.1)])
def test_bad_settings_are_rejected(cap: float, tick: float) -> None:
    with pytest.raises(ValueError):
        TickBudget(cap, tick)
