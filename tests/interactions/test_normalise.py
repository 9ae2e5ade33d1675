from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from livehub.errors import UserError
from livehub.interactions.normalise import (
    clean_name,
    clean_text,
    compact,
    deleet,
    fold_chinese,
    skeleton,
)

# -- clean_text -----------------------------------------------------------------


@pytest.mark.parametrize(
    "char",
    [
        "\u200b",  # zero width space
        "\u200c",  # zero width non-joiner
        "\u200d",  # zero width joiner (outside an emoji)
        "\u2060",  # word joiner
        "\u2063",  # invisible separator
        "\ufeff",  # byte order mark
        "\u180e",  # mongolian vowel separator
        "\u00ad",  # soft hyphen
        "\u034f",  # combining grapheme joiner
        "\u115f",  # hangul choseong filler
        "\u3164",  # hangul filler
        "\uffa0",  # halfwidth hangul filler
        "\ufe0f",  # variation selector 16 (outside an emoji)
        "\U000e0041",  # tag latin capital letter a
    ],
)
def test_invisible_characters_inside_words_are_removed(char: str) -> None:
    assert clean_text(f"b{char}a{char}d") == "bad"


@pytest.mark.parametrize("char", ["\u202e", "\u202a", "\u202d", "\u2066", "\u2069", "\u061c"])
def test_bidi_controls_are_removed(char: str) -> None:
    assert clean_text(f"{char}evil{char}.exe") == "evil.exe"


def test_rtl_override_cannot_reverse_the_display() -> None:
    assert clean_text("invoice\u202egpj.exe") == "invoicegpj.exe"


def test_nfkc_folds_full_width_and_ligatures() -> None:
    assert clean_text("ＢＡＤ　ｗｏｒｄ１２３") == "BAD word123"
    assert clean_text("ﬁne") == "fine"


def test_chinese_passes_through_unchanged() -> None:
    text = "主播好厉害,我们一起加油!今天的直播真精彩。"
    assert clean_text(text) == text


def test_full_width_chinese_punctuation_becomes_ascii() -> None:
    assert clean_text("你好,世界!") == "你好,世界!"


@pytest.mark.parametrize(
    "text",
    [
        "🎉🔥😂",
        "👍🏽",
        "❤️",  # with VS16
        "1️⃣",  # keycap
        "🇨🇳",  # flag
        "👨\u200d👩\u200d👧",  # family: ZWJ sequence
        "🏃\u200d♀️",
        "❤️\u200d🔥",
    ],
)
def test_emoji_are_preserved(text: str) -> None:
    assert clean_text(f"nice {text} stream") == f"nice {text} stream"


def test_control_characters_are_removed() -> None:
    assert clean_text("a\x00b\x07c\x1bd\x7fe\x9ff") == "abcdef"
    assert clean_text("a\u2061b\u0600c\U0001d173d") == "abcd"  # format (Cf) characters
    assert clean_text("line\x85next") == "line next"  # NEL is a line break


def test_line_breaks_and_tabs_become_single_spaces() -> None:
    assert clean_text("  one\ntwo\r\nthree\tfour  \u3000 five\u2028six ") == (
        "one two three four five six"
    )


def test_markup_is_kept_as_plain_text() -> None:
    assert clean_text("<script>") == "<script>"
    payload = "<img src=x onerror=alert(1)> & \"quotes\" 'too'"
    assert clean_text(payload) == payload


def test_lone_surrogates_are_removed() -> None:
    assert clean_text("a\ud800b") == "ab"


def test_only_invisible_characters_leave_nothing() -> None:
    assert clean_text("\u200b\u3164\u2800 \ufeff") == ""


@given(st.text())
def test_clean_text_is_idempotent(text: str) -> None:
    once = clean_text(text)
    assert clean_text(once) == once


@given(st.text())
def test_clean_text_has_no_control_or_edge_whitespace(text: str) -> None:
    cleaned = clean_text(text)
    assert cleaned == cleaned.strip()
    assert "  " not in cleaned
    assert not any(ch in cleaned for ch in "\n\r\t\x00\u200b\u202e")


# -- clean_name -----------------------------------------------------------------


def test_clean_name_cleans() -> None:
    assert clean_name("  小明\u200b  ") == "小明"


@pytest.mark.parametrize("name", ["", "   ", "\u200b\u3164", "\u2800\u2800"])
def test_clean_name_rejects_empty_names(name: str) -> None:
    with pytest.raises(UserError) as info:
        clean_name(name)
    assert info.value.code == "bad_name"


def test_clean_name_rejects_long_names() -> None:
    assert clean_name("a" * 32) == "a" * 32
    with pytest.raises(UserError) as info:
        clean_name("a" * 33)
    assert info.value.code == "bad_name"
    assert clean_name("abcd", max_chars=4) == "abcd"
    with pytest.raises(UserError):
        clean_name("abcde", max_chars=4)


def test_clean_name_counts_characters_after_cleaning() -> None:
    assert clean_name("a\u200b" * 32) == "a" * 32


# -- skeleton, deleet, compact ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("bаd", "bad"),  # Cyrillic а
        ("раураl", "paypal"),  # Cyrillic р а у
        ("сеxу", "cexy"),  # Cyrillic с е у
        ("хоѕт", "xost"),  # Cyrillic х о ѕ, and т shaped as a small capital T
        ("іјԁ", "ijd"),
        ("ΒΑD", "bad"),  # Greek capitals
        ("ВАD", "bad"),  # Cyrillic capitals
        ("gοοgle", "google"),  # Greek omicron
        ("ναlue", "value"),  # Greek nu and alpha
        ("ＢＡＤ", "bad"),  # full width
        ("𝐛𝐚𝐝", "bad"),  # mathematical bold
        ("bád", "bad"),  # accents on ASCII letters
        ("b̶a̶d̶", "bad"),  # combining strike-through
        ("B\u200bA\u200bD", "bad"),
        ("ΙІӀǀ∣Ɩ", "iiiiii"),  # capital I look-alikes read as the I they stand for
        ("ℓӏ𝐥", "lil"),  # small l look-alikes stay l; Cyrillic small palochka is an i
        ("ᴀʙᴄᴅᴇꜰɢʜɪᴊᴋʟᴍɴᴏᴘꞯʀꜱᴛᴜᴠᴡʏᴢ", "abcdefghijklmnopqrstuvwyz"),  # small capitals
        ("вкмнт", "bkmht"),  # Cyrillic small letters shaped as small capitals
        ("🇦🇧🇨 🇽🇾🇿", "abc xyz"),  # regional indicator letters
        ("禁詞", "禁词"),  # Traditional Chinese folded to Simplified
    ],
)
def test_skeleton_folds_look_alikes_onto_ascii(text: str, expected: str) -> None:
    assert skeleton(text) == expected


def test_skeleton_keeps_chinese() -> None:
    assert skeleton("傻 逼") == "傻 逼"
    assert skeleton("你好世界") == "你好世界"


@pytest.mark.parametrize(
    ("traditional", "simplified"),
    [
        ("禁詞", "禁词"),
        ("臺灣", "台湾"),
        ("頭髮", "头发"),
        ("衞生", "卫生"),  # Hong Kong variant
        ("裡面", "里面"),  # Taiwan variant
        ("國家", "国家"),
    ],
)
def test_fold_chinese_folds_traditional_onto_simplified(traditional: str, simplified: str) -> None:
    assert fold_chinese(traditional) == simplified
    assert fold_chinese(simplified) == simplified


def test_fold_chinese_keeps_substrings_and_other_text() -> None:
    text = "Hello 你好, 這是禁詞 и кириллица 🎉"
    folded = fold_chinese(text)
    assert folded == "Hello 你好, 这是禁词 и кириллица 🎉"
    assert fold_chinese(folded) == folded
    for i in range(len(text)):
        assert fold_chinese(text[i:]) == folded[i:]  # character by character


def test_skeleton_leaves_leetspeak_alone() -> None:
    assert skeleton("B4D w0rd") == "b4d w0rd"


def test_deleet() -> None:
    assert deleet("h4x0r 1337 $@5") == "haxor ieet sas"
    assert deleet("k!ll k|ll k¡ll") == "kill kill kill"
    assert deleet("傻逼") == "傻逼"


def test_compact_keeps_letters_and_digits_of_any_script() -> None:
    assert compact("b.a d") == "bad"
    assert compact("傻 逼") == "傻逼"
    assert compact("b_a-d!? 1 2") == "bad12"
    assert compact("привет, мир") == "приветмир"
    assert compact("🎉 hi 🎉") == "hi"


def test_matching_forms_compose() -> None:
    assert compact(deleet(skeleton("B.4\u200b d"))) == "bad"
    assert compact(deleet(skeleton("Ｆ Ｕ Ｃ Ｋ"))) == "fuck"
