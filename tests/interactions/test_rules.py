from __future__ import annotations

import asyncio

import msgspec
import pytest

from livehub import settings
from livehub.errors import ProtocolError
from livehub.interactions.moderation import Moderation
from livehub.interactions.rules import (
    ALLOW,
    DEFAULT_BUDGET_SECONDS,
    RuleChain,
    Verdict,
    validate_rule,
    word_key,
)
from livehub.rooms.models import Room, Rule

from .domain import ANN, BOB, Domain


def word(pattern: str, action: str = "block", rule_id: str = "") -> Rule:
    return msgspec.convert(
        {"id": rule_id or f"w:{pattern}", "pattern": pattern, "kind": "word", "action": action},
        Rule,
    )


def regex(pattern: str, action: str = "block", rule_id: str = "") -> Rule:
    return msgspec.convert(
        {"id": rule_id or f"r:{pattern}", "pattern": pattern, "kind": "regex", "action": action},
        Rule,
    )


# -- word rules -------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "this is bad",
        "BAD",
        "b a d",
        "b.a.d",
        "b-a_d!",
        "b$a$d",  # symbols as separators
        "bаd",  # Cyrillic а
        "ВАD",  # Cyrillic capitals
        "b\u200bad",  # zero width space
        "b\u200da\u2060d",  # zero width joiner, word joiner
        "\u202ebad",  # RTL override
        "ＢＡＤ",  # full width
        "𝐛𝐚𝐝",  # mathematical bold
        "b4d",  # leetspeak
        "B @ D",
        "bád",  # accent
        "sobad",  # substring
    ],
)
def test_word_rule_catches_evasions(text: str) -> None:
    rule = word("bad")
    assert RuleChain([rule]).check(text) == Verdict("block", rule)


def test_leet_in_the_pattern_is_folded_too() -> None:
    rule = word("h4x0r")
    chain = RuleChain([rule])
    assert chain.check("haxor").rule == rule
    assert chain.check("H 4 X 0 R").rule == rule
    assert chain.check("hax0r").rule == rule


@pytest.mark.parametrize("text", ["傻逼", "你这个傻 逼", "傻\u200b逼", "傻.逼!", "傻  逼"])
def test_chinese_word_matches_with_spaces_and_punctuation_inserted(text: str) -> None:
    rule = word("傻逼", "mute")
    assert RuleChain([rule]).check(text) == Verdict("mute", rule)


def test_chinese_word_does_not_match_other_chinese() -> None:
    assert RuleChain([word("傻逼")]).check("主播真厉害,加油!") == ALLOW


def test_innocent_message_is_allowed() -> None:
    chain = RuleChain([word("bad"), word("spam", "hold"), regex(r"free\s*v-?bucks", "ban")])
    assert chain.check("Great stream today, thanks for the tips!") == ALLOW
    assert chain.check("") == ALLOW


def test_no_rules_allows_everything() -> None:
    assert RuleChain([]).check("anything at all") == ALLOW


# -- regex rules ------------------------------------------------------------------


def test_regex_rule_is_case_insensitive_and_sees_the_skeleton() -> None:
    rule = regex(r"free\s*v-?bucks", "ban")
    chain = RuleChain([rule])
    assert chain.check("get FREE V-BUCKS now") == Verdict("ban", rule)
    assert chain.check("get frее vbuсks") == Verdict("ban", rule)  # Cyrillic е, с
    assert chain.check("get ｆｒｅｅ ｖｂｕｃｋｓ") == Verdict("ban", rule)
    assert chain.check("free bucks") == ALLOW


def test_regex_rule_in_a_non_latin_script_matches() -> None:
    rule = regex(r"бабушк[аи]")  # б folds to "6" in the skeleton
    assert RuleChain([rule]).check("Моя Бабушка") == Verdict("block", rule)


def test_regex_rule_catches_stretching() -> None:
    rule = regex(r"\bb+a+d+\b")
    chain = RuleChain([rule])
    assert chain.check("so baaaaddd") == Verdict("block", rule)
    assert chain.check("badminton") == ALLOW


# -- severity ------------------------------------------------------------------------


def test_most_severe_action_wins() -> None:
    hold, block = word("aa", "hold"), word("bb", "block")
    mute, ban = word("cc", "mute"), regex("dd", "ban")
    chain = RuleChain([hold, block, mute, ban])
    assert chain.check("aa bb cc dd") == Verdict("ban", ban)
    assert chain.check("aa bb cc") == Verdict("mute", mute)
    assert chain.check("cc bb aa") == Verdict("mute", mute)
    assert chain.check("aa bb") == Verdict("block", block)
    assert chain.check("aa") == Verdict("hold", hold)
    assert chain.check("zz") == ALLOW


def test_same_severity_first_rule_wins() -> None:
    first, second = word("foo", rule_id="1"), word("bar", rule_id="2")
    assert RuleChain([first, second]).check("bar foo").rule == first


def test_mute_seconds_travel_with_the_rule() -> None:
    rule = Rule("r1", "bad", "word", "mute", mute_seconds=60)
    verdict = RuleChain([rule]).check("bad")
    assert verdict.rule is not None
    assert verdict.rule.mute_seconds == 60


def test_unusable_stored_rules_are_skipped_not_fatal() -> None:
    empty, broken, good = word("!!!"), regex("(unclosed"), word("bad")
    chain = RuleChain([empty, broken, good])
    assert chain.skipped == (empty, broken)
    assert len(chain) == 1
    assert chain.check("bad").rule == good


def test_a_hundred_rules_leave_an_ordinary_message_alone() -> None:
    rules = [word(f"blocked{i}x") for i in range(90)]
    rules += [regex(rf"spam{i}\s+link", "hold") for i in range(10)]
    chain = RuleChain(rules)
    text = "a perfectly ordinary message about the game, 你好世界, nothing to see " * 3
    assert chain.check(text) == ALLOW
    assert chain.check(text + " blocked42x").rule == rules[42]


# -- validate_rule ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "kind"),
    [
        ("bad", "word"),
        ("傻逼", "word"),
        ("h4x0r", "word"),
        (r"free\s*v-?bucks", "regex"),
        (r"\bb+a+d+\b", "regex"),
        (r"(ha)+", "regex"),
        (r"(?:buy|sell) followers", "regex"),
        (r"\w+\s*=\s*\w+", "regex"),
        (r".*x.*", "regex"),
        (r"[ab]+c", "regex"),
        (r"(?i)spam{2,}", "regex"),
        (r"x{}", "regex"),
        (r"[[a]", "regex"),
        (r"b\z", "regex"),
        (r"(cat|dog)+s", "regex"),  # refused by the old backtracking heuristic
        ("a" * 200, "word"),
    ],
)
def test_valid_rules_pass(pattern: str, kind: str) -> None:
    validate_rule(pattern, kind, "block", 600)


@pytest.mark.parametrize(
    ("pattern", "kind"),
    [
        ("", "word"),
        ("   ", "word"),
        ("a" * 201, "word"),
        ("a" * 201, "regex"),
        ("!!! ...", "word"),  # nothing left to match on
        ("(unclosed", "regex"),
        ("a**", "regex"),
        ("a*", "regex"),  # matches empty text, so every message
        ("x|", "regex"),
        ("(?x)a", "regex"),
        ("(a+)(?#c)+", "regex"),
        (r"(a)\1", "regex"),  # back-references: RE2 has none
        ("(?=a)b", "regex"),  # nor look-around
        ("(?<!a)b", "regex"),
        (r"b\Z", "regex"),  # RE2 spells it \z
        (r"(\pL{1,30}\s*){1,9}!", "regex"),  # compiles to too large a program
    ],
)
def test_bad_patterns_are_rejected(pattern: str, kind: str) -> None:
    with pytest.raises(ProtocolError) as info:
        validate_rule(pattern, kind, "block", 600)
    assert info.value.code == "bad_rule"


@pytest.mark.parametrize(
    ("kind", "action", "mute_seconds"),
    [
        ("phrase", "block", 600),
        ("word", "delete", 600),
        ("word", "allow", 600),
        ("word", "mute", 0),
        ("word", "mute", 86_401),
        ("word", "mute", -5),
        ("word", "mute", 1.5),
        ("word", "mute", True),
    ],
)
def test_bad_kind_action_or_mute_time_is_rejected(
    kind: str, action: str, mute_seconds: float
) -> None:
    with pytest.raises(ProtocolError) as info:
        validate_rule("bad", kind, action, mute_seconds)  # type: ignore[arg-type]
    assert info.value.code == "bad_rule"


@pytest.mark.parametrize("mute_seconds", [1, 600, 86_400])
def test_mute_time_bounds_are_inclusive(mute_seconds: int) -> None:
    validate_rule("bad", "word", "mute", mute_seconds)


def test_word_key() -> None:
    assert word_key("B.4 d") == "bad"
    assert word_key("傻 逼") == "傻逼"
    assert word_key("...") == ""


# -- the time budget ----------------------------------------------------------------------


class Costs:
    """A CPU clock for :class:`RuleChain`: the n-th timed search takes ``costs[n]``
    seconds (read as start, end pairs); ``searches`` counts those started."""

    def __init__(self, *costs: float) -> None:
        self._costs = costs
        self._now = 0.0
        self._reads = 0

    @property
    def searches(self) -> int:
        return (self._reads + 1) // 2

    def __call__(self) -> float:
        if self._reads % 2:
            self._now += self._costs[self._reads // 2]
        self._reads += 1
        return self._now


def test_disabled_rules_are_left_out() -> None:
    off = msgspec.structs.replace(regex("bad"), disabled=True)
    chain = RuleChain([off, msgspec.structs.replace(word("bad"), disabled=True)])
    assert len(chain) == 0
    assert chain.check("bad") == ALLOW


def test_a_regex_past_the_budget_is_slow_and_the_message_held_unchecked() -> None:
    first, costly, third, fourth = (regex(f"nope{i}") for i in range(4))
    costs = Costs(0.001, 0.05, 0.001, 0.001)
    chain = RuleChain([first, costly, third, fourth], budget=0.02, clock=costs)
    assert chain.check("an ordinary message") == Verdict("hold", None, slow=costly)
    assert costs.searches == 2  # checking stopped there


def test_many_cheap_searches_add_up_to_the_budget() -> None:
    rules = [regex(f"nope{i}") for i in range(6)]
    costs = Costs(0.005, 0.007, 0.006, 0.005, 0.001, 0.001)
    chain = RuleChain(rules, budget=0.02, clock=costs)
    assert chain.check("an ordinary message") == Verdict("hold", None, slow=rules[1])
    assert costs.searches == 4


def test_the_budget_counts_across_tiers_and_forms() -> None:
    ban, hold = regex("nope1", "ban"), regex("nope2", "hold")
    # Cyrillic text: each regex runs on the skeleton and on the plain form.
    costs = Costs(0.004, 0.004, 0.004, 0.009)
    chain = RuleChain([hold, ban], budget=0.02, clock=costs)
    assert chain.check("привет") == Verdict("hold", None, slow=hold)
    assert costs.searches == 4


def test_a_match_on_the_search_that_ran_out_keeps_its_verdict() -> None:
    rule = regex("bad", "ban")
    chain = RuleChain([rule], budget=0.02, clock=Costs(0.05))
    assert chain.check("so bad") == Verdict("ban", rule, slow=rule)


def test_a_match_within_the_budget_is_not_slow() -> None:
    hold, block = regex("nope", "hold"), regex("bad", "block")
    chain = RuleChain([hold, block], budget=0.02, clock=Costs(0.019, 0.019))
    assert chain.check("so bad") == Verdict("block", block)


def test_real_rules_on_a_long_message_stay_within_the_default_budget() -> None:
    rules = [regex(rf"spam{i}\s+link\w*", "hold") for i in range(100)]
    rules += [word(f"blocked{i}x") for i in range(100)]
    text = "a perfectly ordinary message about the game, 你好世界, ничего " * 8
    verdict = RuleChain(rules).check(text[:500])
    assert verdict == ALLOW and verdict.slow is None


# -- disabling a slow rule (Moderation) --------------------------------------------------


async def test_moderation_disables_a_slow_rule_once_and_tells_listeners(domain: Domain) -> None:
    room = await domain.rooms.create("Rules", room_id="r1")
    cheap = regex("nope", rule_id="cheap")
    slow = regex("nope2", rule_id="slow")
    room = await domain.rooms.set_rules(room, (cheap, slow), "v_mod")
    costs = Costs(*[0.001, 0.05] * 3, *[0.001] * 10)
    moderation = Moderation(
        domain.store,
        domain.log,
        domain.rooms,
        domain.repo,
        domain.counters,
        domain.clock,
        rule_budget=0.02,
        rule_clock=costs,
    )
    told: list[tuple[str, Rule]] = []

    async def listener(room: Room, rule: Rule) -> None:
        told.append((room.id, rule))

    moderation.on_rule_disabled(listener)
    # Held: the rules ran out of time on it. A second message on the stale room
    # (another node's view, say) finds the rule disabled already: no second report.
    assert await moderation.apply_rules(room, ANN, "hello") is True
    assert await moderation.apply_rules(room, ANN, "hello") is True

    current = await domain.rooms.get("r1")
    assert [(r.id, r.disabled) for r in current.rules] == [("cheap", False), ("slow", True)]
    assert told == [("r1", msgspec.structs.replace(slow, disabled=True))]
    events = await domain.log.by_kinds("r1", ("mod.rule_disabled",))
    assert [(e.actor, e.data["id"], e.data["reason"]) for e in events] == [
        ("automod", "slow", "slow")
    ]
    assert events[0].data["budget_ms"] == 20.0
    # The current room's chain runs without it, within the budget.
    assert await moderation.apply_rules(current, ANN, "hello") is False


def test_the_budget_setting() -> None:
    assert settings.load(env={}).rule_budget_ms == DEFAULT_BUDGET_SECONDS * 1000
    assert settings.load(env={"LIVEHUB_RULE_BUDGET_MS": "5.5"}).rule_budget_ms == 5.5
    for bad in ("0", "-1", "10001", "fast"):
        with pytest.raises(ValueError, match="RULE_BUDGET_MS"):
            settings.load(env={"LIVEHUB_RULE_BUDGET_MS": bad})


async def test_two_nodes_that_find_a_rule_slow_at_once_report_it_once(domain: Domain) -> None:
    room = await domain.rooms.create("Rules", room_id="r1")
    slow = regex("nope", rule_id="slow")
    room = await domain.rooms.set_rules(room, (slow,), "v_mod")
    told: list[str] = []

    async def listener(room: Room, rule: Rule) -> None:
        told.append(rule.id)

    nodes = []
    for _ in range(2):  # two nodes on one store and one log
        node = Moderation(
            domain.store,
            domain.log,
            domain.rooms,
            domain.repo,
            domain.counters,
            domain.clock,
            rule_budget=0.02,
            rule_clock=Costs(*[0.05] * 4),
        )
        node.on_rule_disabled(listener)
        nodes.append(node)
    checks = [node.apply_rules(room, who, "hi") for node in nodes for who in (ANN, BOB)]
    held = await asyncio.gather(*checks)
    assert held == [True] * 4
    assert told == ["slow"]
    assert len(await domain.log.by_kinds("r1", ("mod.rule_disabled",))) == 1
    assert [r.disabled for r in (await domain.rooms.get("r1")).rules] == [True]
