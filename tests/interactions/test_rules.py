from __future__ import annotations

import msgspec
import pytest

from livehub.errors import ProtocolError
from livehub.interactions.rules import (
    ALLOW,
    RuleChain,
    Verdict,
    validate_rule,
    word_key,
)
from livehub.rooms.models import Rule


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
        (r"[[a]", "regex"),  # valid, though Python warns about a possible nested set
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
        ("a{99999999999}", "regex"),
        ("a*", "regex"),  # matches empty text, so every message
        ("x|", "regex"),
        ("(?x)a", "regex"),
        ("(a+)(?#c)+", "regex"),
    ],
)
def test_bad_patterns_are_rejected(pattern: str, kind: str) -> None:
    with pytest.raises(ProtocolError) as info:
        validate_rule(pattern, kind, "block", 600)
    assert info.value.code == "bad_rule"


@pytest.mark.parametrize(
    "pattern",
    [
        "(a+)+b",
        "(a*)*b",
        "(a|a)*b",
        "(a|aa)+b",
        "(?:a+)+b",
        "((a+))+b",
        "(a?){20}b",
        "(a+){2,}b",
        r"(\w+\s?)+$",
        "(?P<x>a+)*b",
        ".*.*b",
        r"\w+\d*b",
        "(.*)(.*)b",
        r"[^x]+.+b",
    ],
)
def test_catastrophic_regexes_are_rejected(pattern: str) -> None:
    with pytest.raises(ProtocolError) as info:
        validate_rule(pattern, "regex", "block", 600)
    assert info.value.code == "bad_rule"
    assert "slow" in info.value.message


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
