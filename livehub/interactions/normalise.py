"""Text normalisation for user content: one form to show, other forms to match.

* :func:`clean_text` is what is stored and displayed: NFKC, no invisible or
  control characters, whitespace collapsed. It is plain text; escaping for HTML
  is the renderer's job, so ``<script>`` passes through unchanged.
* :func:`skeleton` is the form blocked words are matched against: casefolded,
  with look-alike letters from other scripts folded onto ASCII using Unicode's
  confusables data (via ``confusable_homoglyphs``), small capitals (``ᴋɪʟʟ``),
  Cyrillic small letters shaped like small capitals (``т``, ``м``), regional
  indicator letters (🇰🇮🇱🇱) and accents on ASCII letters dropped, and
  Traditional Chinese folded onto Simplified (:func:`fold_chinese`).
* :func:`deleet` folds common leetspeak digits and symbols onto letters.
* :func:`compact` keeps only letters and digits, so spacing and punctuation
  tricks (``b.a d``) disappear.
"""

from __future__ import annotations

import functools
import re
import string
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Final

from livehub.errors import UserError

# Unicode Default_Ignorable_Code_Point (which covers zero-width characters,
# bidi controls, Hangul fillers, variation selectors and tag characters), plus
# U+2800 BRAILLE PATTERN BLANK, which is widely abused for blank names. ZWJ and
# VS16 are absent: they are removed separately unless they hold an emoji together.
_INVISIBLE_SPANS: Final = (
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200C),
    (0x200E, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x2800, 0x2800),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0E),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)
_ZWJ: Final = "\u200d"
_VS16: Final = "\ufe0f"
_KEYCAP: Final = "\u20e3"
_KEYCAP_BASES: Final = frozenset("0123456789#*")
_SKIN_TONES: Final = range(0x1F3FB, 0x1F400)


def _char_class(spans: Iterable[tuple[int, int]]) -> str:
    return "[" + "".join(f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in spans) + "]"


_CONTROLS: Final = (*range(0x00, 0x20), *range(0x7F, 0xA0))
# Line breaks and tabs separate words; every other control just goes.
_SPACE_CONTROLS: Final = re.compile(
    _char_class((code, code) for code in _CONTROLS if chr(code).isspace())
)
_INVISIBLE: Final = re.compile(
    _char_class(
        [*((code, code) for code in _CONTROLS if not chr(code).isspace()), *_INVISIBLE_SPANS]
    )
)
# Format (Cf), control (Cc) and lone surrogate (Cs) characters left after those;
# a ZWJ still present by then sits inside an emoji and stays.
_DROPPED_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs"})
# Generic combining diacritics (accents, strike-through, "Zalgo") on an ASCII character.
_MARKS_ON_ASCII: Final = re.compile(
    r"(?<=[\x00-\x7f])[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]+"
)

_LEET: Final[Mapping[int, str]] = str.maketrans(
    {
        **{"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t"},
        **{"!": "i", "¡": "i", "|": "i", "@": "a", "$": "s"},
    }
)
_NOT_ALNUM: Final = re.compile(r"[\W_]+")  # \w is str.isalnum() plus "_"
_ASCII_ALNUM: Final = frozenset(string.ascii_letters + string.digits)


def clean_text(text: str) -> str:
    """The stored and displayed form of user text."""
    if text.isascii() and text.isprintable():
        return " ".join(text.split())
    normalised = unicodedata.normalize("NFKC", _strip_invisible(text))
    return " ".join(_strip_invisible(normalised).split())


def _strip_invisible(text: str) -> str:
    if _ZWJ in text or _VS16 in text:
        text = _emoji_joiners_only(text)
    visible = _INVISIBLE.sub("", _SPACE_CONTROLS.sub(" ", text))
    if visible.isprintable():
        return visible
    return "".join(
        ch for ch in visible if ch == _ZWJ or unicodedata.category(ch) not in _DROPPED_CATEGORIES
    )


def _emoji_joiners_only(text: str) -> str:
    """Drop ZWJ and VS16 except inside emoji sequences such as 👩‍💻, ❤️ and 1️⃣."""
    kept: list[str] = []
    for i, ch in enumerate(text):
        if ch in (_ZWJ, _VS16):
            before = kept[-1] if kept else ""
            if not _joins_emoji(ch, before, text[i + 1 : i + 2]):
                continue
        kept.append(ch)
    return "".join(kept)


def _joins_emoji(joiner: str, before: str, after: str) -> bool:
    if joiner == _VS16:
        return _is_pictographic(before) or (before in _KEYCAP_BASES and after == _KEYCAP)
    return (_is_pictographic(before) or before == _VS16) and _is_pictographic(after)


def _is_pictographic(ch: str) -> bool:
    """Emoji-like: a symbol (So) or a skin-tone modifier; "" is not."""
    return len(ch) == 1 and (unicodedata.category(ch) == "So" or ord(ch) in _SKIN_TONES)


def clean_name(name: str, max_chars: int = 32) -> str:
    """A cleaned display name; :class:`UserError` ``bad_name`` if empty or too long."""
    cleaned = clean_text(name)
    if not cleaned:
        raise UserError("bad_name", "The name is empty.")
    if len(cleaned) > max_chars:
        raise UserError(
            "bad_name", f"Names are at most {max_chars} characters.", max_chars=max_chars
        )
    return cleaned


def skeleton(text: str) -> str:
    """The matching form: clean, casefolded, homoglyphs and accents folded onto ASCII,
    Traditional Chinese onto Simplified."""
    cleaned = clean_text(text)
    if cleaned.isascii():
        return cleaned.casefold()
    table = _homoglyphs()
    # Map before casefolding too: Cyrillic "В" looks like "B", its lowercase "в" like no
    # ASCII letter. Decompose so accented look-alikes ("ӓ") reach their base letter.
    folded = unicodedata.normalize("NFD", cleaned.translate(table).casefold())
    bare = _MARKS_ON_ASCII.sub("", folded.translate(table))
    return fold_chinese(unicodedata.normalize("NFC", bare))


def prepare() -> None:
    """Build the matching tables now (a few tenths of a second), not on the first
    message that needs them."""
    _homoglyphs()
    _traditional_to_simplified()


def fold_chinese(text: str) -> str:
    """Traditional (and Hong Kong and Taiwan variant) Chinese characters folded onto
    Simplified ones, character by character: "禁詞" → "禁词"; Simplified text and
    every other script pass through unchanged.

    Character by character, not phrase by phrase as OpenCC converts, so that folding
    keeps substrings: a word found in a text is found in their folded forms too.
    """
    if text.isascii():
        return text
    return text.translate(_traditional_to_simplified())


_HAN_BLOCKS: Final = (
    (0x3400, 0x4DBF),  # CJK Unified Ideographs Extension A
    (0x4E00, 0x9FFF),  # CJK Unified Ideographs
    (0xF900, 0xFAFF),  # CJK Compatibility Ideographs
    (0x20000, 0x2A6DF),  # Extension B
)
# OpenCC's conversions, most general first; each fills in what the earlier left alone.
_OPENCC_CONFIGS: Final = ("t2s", "hk2s", "tw2s")


@functools.lru_cache(maxsize=1)
def _traditional_to_simplified() -> Mapping[int, str]:
    """Each Han character that OpenCC converts to one other character, and to what.

    Built on first use from OpenCC's maintained dictionaries (about 0.1 s): one
    conversion of every character of the blocks, one per line, so no phrase spans two.
    """
    import opencc

    chars = [chr(code) for low, high in _HAN_BLOCKS for code in range(low, high + 1)]
    table: dict[int, str] = {}
    for config in _OPENCC_CONFIGS:
        converted = opencc.OpenCC(config).convert("\n".join(chars)).split("\n")
        if len(converted) != len(chars):  # a dictionary joined lines: skip it whole
            continue
        for char, out in zip(chars, converted, strict=True):
            if out != char and len(out) == 1:
                table.setdefault(ord(char), out)
    # Follow chains (A → B → C) so that folding twice changes nothing.
    for code, out in table.items():
        while (further := table.get(ord(out))) is not None and further != out:
            out = further
        table[code] = out
    return {code: out for code, out in table.items() if out != chr(code)}


@functools.lru_cache(maxsize=1)
def _homoglyphs() -> Mapping[int, str]:
    """Non-ASCII characters that look like one ASCII letter or digit, and which.

    From Unicode's confusables data: each character whose confusable is one ASCII
    letter or digit. There, capital I and its look-alikes (Greek capital iota,
    Cyrillic U+0406 and palochka, U+2223 DIVIDES) are confusable with small l; all
    but small letters are read here as the I they stand for, as ASCII "I" is. Added
    to that: the small capitals (U+1D00... by their Unicode names), Cyrillic small
    letters that are small capitals in shape (``в к м н т``: their capitals map),
    Greek ``τ`` and ``ε``, and the regional indicator letters 🇦...🇿.

    Built on first use: loading the data takes tens of milliseconds.
    """
    from confusable_homoglyphs import confusables

    data: dict[str, list[dict[str, str]]] = confusables.confusables_data
    table: dict[int, str] = {}
    for char, glyphs in data.items():
        if len(char) != 1 or char.isascii():
            continue
        target = next((g["c"] for g in glyphs if g["c"] in _ASCII_ALNUM), None)
        if target is None:
            continue
        target = target.lower()
        if target == "l" and unicodedata.category(char) != "Ll":
            target = "i"
        table[ord(char)] = target
    for low, high in _SMALL_CAPITAL_BLOCKS:
        for code in range(low, high + 1):
            small_capital = _SMALL_CAPITAL.match(unicodedata.name(chr(code), ""))
            if small_capital is not None:
                table.setdefault(code, small_capital.group(1).lower())
    for code in range(0x0400, 0x0530):  # Cyrillic and its supplement
        char = chr(code)
        capital = char.upper()
        if unicodedata.category(char) == "Ll" and len(capital) == 1:
            mapped = table.get(ord(capital), "")
            if mapped.isalpha():
                table.setdefault(code, mapped)
    for char, target in _GREEK_SMALL_CAPITALS.items():
        table.setdefault(ord(char), target)
    for offset in range(26):
        table[_REGIONAL_A + offset] = chr(ord("a") + offset)
    return table


_SMALL_CAPITAL: Final = re.compile(r"LATIN LETTER SMALL CAPITAL ([A-Z])\Z")
# Where Unicode has small capitals: IPA Extensions, Phonetic Extensions, Latin
# Extended-D, Latin Extended-F.
_SMALL_CAPITAL_BLOCKS: Final = (
    (0x0250, 0x02AF),
    (0x1D00, 0x1D7F),
    (0xA720, 0xA7FF),
    (0x10780, 0x107BF),
)
_GREEK_SMALL_CAPITALS: Final = {"τ": "t", "ε": "e"}
_REGIONAL_A: Final = 0x1F1E6  # REGIONAL INDICATOR SYMBOL LETTER A


def deleet(text: str) -> str:
    """Fold leetspeak onto letters: 0→o 1→i 3→e 4→a 5→s 7→t ! ¡ |→i @→a $→s."""
    return text.translate(_LEET)


def compact(skel: str) -> str:
    """Only the letters and digits (of any script): "b.a d" → "bad", "傻 逼" → "傻逼"."""
    return _NOT_ALNUM.sub("", skel)
