"""The filter evasion table: each way of writing a blocked word past a naive filter
is its own case, against a real :class:`RuleChain` (word rules and regex rules),
and ordinary messages stay allowed."""

from __future__ import annotations

import hypothesis
import msgspec
import pytest
from hypothesis import strategies as st

from livehub.interactions.rules import ALLOW, RuleChain, Verdict, word_key
from livehub.rooms.models import Rule


def rule(pattern: str, kind: str = "word") -> Rule:
    return msgspec.convert(
        {"id": f"{kind}:{pattern}", "pattern": pattern, "kind": kind, "action": "block"}, Rule
    )


# (rule pattern, message, what the message does)
EVASIONS = [
    # capital I and its look-alikes for i
    ("kill", "kIll", "ASCII capital I"),
    ("kill", "kΙll", "Greek capital iota"),
    ("kill", "kІll", "Cyrillic capital I"),
    ("kill", "kӀll", "Cyrillic palochka"),
    ("kill", "kǀll", "dental click"),
    ("kill", "k∣ll", "divides sign"),
    ("kill", "kⅠll", "Roman numeral one"),
    ("kill", "k𝙸ll", "mathematical monospace capital I"),
    # small capitals
    ("kill", "ᴋɪʟʟ", "small capitals"),
    ("spam", "ꜱᴘᴀᴍ", "small capitals S P A M"),
    ("test", "ᴛᴇꜱᴛ", "small capitals T E S T"),
    ("hello", "ʜᴇʟʟᴏ", "small capitals H E L L O"),
    ("spam", "ѕрам", "Cyrillic small em as small capital M"),
    ("test", "τεѕτ", "Greek tau and epsilon"),
    ("bad", "вad", "Cyrillic small ve as small capital B"),
    # leetspeak digits and symbols
    ("kill", "k!ll", "! for i"),
    ("kill", "k|ll", "| for i"),
    ("kill", "k1ll", "1 for i"),
    ("kill", "k¡ll", "inverted ! for i"),
    ("loser", "l0ser", "0 for o"),
    ("test", "t3st", "3 for e"),
    ("spam", "sp4m", "4 for a"),
    ("spam", "sp@m", "@ for a"),
    ("spam", "5pam", "5 for s"),
    ("spam", "$pam", "$ for s"),
    ("test", "7es7", "7 for t"),
    ("test", "7357", "all digits"),
    # regional indicator letters
    ("kill", "🇰🇮🇱🇱", "regional indicators"),
    ("spam", "🇸 🇵 🇦 🇲", "spaced regional indicators"),
    # full width, zero width, other scripts, marks
    ("kill", "ｋｉｌｌ", "full width"),
    ("kill", "ＫＩＬＬ", "full width capitals"),
    ("kill", "k\u200bi\u200cl\u200dl", "zero-width space, non-joiner and joiner"),
    ("kill", "k\u2060ill\ufeff", "word joiner and BOM"),
    ("kill", "\u202ekill\u202c", "right-to-left override"),
    ("kill", "𝐤𝐢𝐥𝐥", "mathematical bold"),
    ("kill", "ⓚⓘⓛⓛ", "circled letters"),
    ("kill", "kíll", "accent"),
    ("kill", "k̶i̶l̶l̶", "strike-through marks"),
    ("spam", "ѕраm", "Cyrillic dze, er, a"),
    ("spam", "s p a m", "spaced"),
    ("spam", "s.p.a.m", "dotted"),
    # Chinese, both ways
    ("禁词", "这是禁詞", "Traditional text, Simplified rule"),
    ("禁詞", "这是禁词", "Simplified text, Traditional rule"),
    ("台湾", "臺灣", "Traditional text, Simplified rule (two characters)"),
    ("臺灣", "台湾独立", "Simplified text, Traditional rule (two characters)"),
    ("头发", "頭髮好看", "one-to-many Simplified character, Traditional text"),
    ("卫生", "衞生", "Hong Kong variant"),
    ("里面", "裡面", "Taiwan variant"),
    ("傻逼", "傻\u200b逼", "zero width inside Chinese"),
    ("傻逼", "傻 . 逼", "punctuation inside Chinese"),
]


@pytest.mark.parametrize("kind", ["word", "regex"])
@pytest.mark.parametrize(
    ("pattern", "text"),
    [pytest.param(p, t, id=why) for p, t, why in EVASIONS],
)
def test_an_evasion_is_caught(pattern: str, text: str, kind: str) -> None:
    if kind == "regex" and pattern.isascii() and any(ch in text for ch in " .\u200b"):
        pattern = r"[\W_]*".join(pattern)  # a regex sees separators; say so
    elif kind == "regex" and not pattern.isascii():
        pattern = r"\W*".join(pattern)
    matched = rule(pattern, kind)
    assert RuleChain([matched]).check(text) == Verdict("block", matched)


# Each with the rule that a careless folding would wrongly make it match.
INNOCENT = [
    ("kill", "kiln and kilt", "the same start, other words"),
    ("kill", "I like this stream!", "capital I and ! in plain English"),
    ("spam", "spa, am I?", "letters of the rule, not in its order"),
    ("test", "the best stuff", "other letters"),
    ("test", "7 days, 3 nights", "digits in plain English"),
    ("spam", "🇺🇸 🇩🇪 🇯🇵 flags", "flag emoji"),
    ("禁词", "今天天气很好", "other Chinese"),
    ("台湾", "台北很好玩", "a character in common, not the word"),
    ("bad", "привет, как дела?", "Cyrillic text"),
    ("hello", "Ηλιος", "Greek text"),
    ("loser", "l0l so 1337", "leetspeak that spells no rule"),
]


@pytest.mark.parametrize(
    ("pattern", "text"),
    [pytest.param(p, t, id=why) for p, t, why in INNOCENT],
)
def test_an_ordinary_message_is_not_blocked(pattern: str, text: str) -> None:
    assert RuleChain([rule(pattern)]).check(text) == ALLOW


# Letters, digits, leetspeak, look-alikes, small capitals, regional indicators, both
# Chinese scripts, separators and invisible characters.
ALPHABET = (
    "abcdeiklmnopstxyzABIKLST013457!|@$"
    "аеорсхІΙӀ∣ᴀɪʟᴋᴛꜱ𝐤ｋ🇰🇮"
    "禁词詞台臺湾灣头頭发髮"
    " .-_\u200b\u200d\u2060"
)


@hypothesis.given(data=st.data())
@hypothesis.settings(max_examples=300, deadline=None)
def test_a_word_taken_from_a_message_always_catches_that_message(data: st.DataObject) -> None:
    """Folding works character by character: whatever a message contains, a word rule
    made of any part of it that has a letter or digit blocks the message."""
    text = data.draw(st.text(alphabet=ALPHABET, min_size=1, max_size=40), label="text")
    start = data.draw(st.integers(0, len(text) - 1), label="start")
    end = data.draw(st.integers(start + 1, len(text)), label="end")
    pattern = text[start:end]
    if not word_key(pattern):
        return
    matched = rule(pattern)
    assert RuleChain([matched]).check(text) == Verdict("block", matched)
