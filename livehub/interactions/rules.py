"""The moderation rule chain, applied alike to chat, questions and open answers.

Word rules match on normalised forms, so spacing, punctuation, zero-width
characters, case, full-width letters, look-alike letters from other scripts and
common leetspeak do not evade them. Regex rules run case-insensitively on the
:func:`~livehub.interactions.normalise.skeleton` of the text (and on its plain
casefolded form, so regexes written in non-Latin scripts still match).

Python's ``re`` cannot be interrupted, so :func:`validate_rule` refuses regexes
that look prone to catastrophic backtracking (see :func:`_backtracking_hazard`).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Mapping
from typing import Final, Literal, get_args

import msgspec

from livehub.errors import ProtocolError
from livehub.interactions.normalise import clean_text, compact, deleet, skeleton
from livehub.rooms.models import Rule, RuleAction, RuleKind

VerdictAction = Literal["allow", "block", "hold", "mute", "ban"]

MAX_PATTERN_CHARS: Final = 200
MIN_MUTE_SECONDS: Final = 1
MAX_MUTE_SECONDS: Final = 86_400

_KINDS: Final = frozenset(get_args(RuleKind))
_ACTIONS: Final = frozenset(get_args(RuleAction))
_SEVERITY: Final[Mapping[str, int]] = {"allow": 0, "hold": 1, "block": 2, "mute": 3, "ban": 4}


class Verdict(msgspec.Struct, frozen=True):
    action: VerdictAction
    rule: Rule | None = None


ALLOW: Final = Verdict("allow")


def validate_rule(pattern: str, kind: str, action: str, mute_seconds: int) -> None:
    """Raise :class:`ProtocolError` ``bad_rule`` unless a rule could be built from these."""
    if kind not in _KINDS:
        raise _bad(f"Rule kind must be one of {sorted(_KINDS)}.")
    if action not in _ACTIONS:
        raise _bad(f"Rule action must be one of {sorted(_ACTIONS)}.")
    if not _is_int(mute_seconds) or not MIN_MUTE_SECONDS <= mute_seconds <= MAX_MUTE_SECONDS:
        raise _bad(f"Mute time must be {MIN_MUTE_SECONDS}-{MAX_MUTE_SECONDS} whole seconds.")
    if not isinstance(pattern, str) or not pattern.strip():
        raise _bad("The pattern is empty.")
    if len(pattern) > MAX_PATTERN_CHARS:
        raise _bad(f"Patterns are at most {MAX_PATTERN_CHARS} characters.")
    if kind == "word":
        if not word_key(pattern):
            raise _bad("A word pattern needs at least one letter or digit.")
    else:
        _check_regex(pattern)


def _bad(message: str) -> ProtocolError:
    return ProtocolError("bad_rule", message)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def word_key(pattern: str) -> str:
    """The form a word pattern is matched as; empty if it has no letters or digits."""
    return compact(deleet(skeleton(pattern)))


def _check_regex(pattern: str) -> None:
    try:
        compiled = _compile(pattern)
    except (re.error, OverflowError, RecursionError) as exc:
        raise _bad(f"Invalid regex: {exc}") from exc
    if compiled.flags & re.VERBOSE or "(?#" in pattern:
        raise _bad("Verbose mode and comments are not allowed in regex rules.")
    if compiled.search("") is not None:
        raise _bad("The regex matches empty text, so it would match every message.")
    hazard = _backtracking_hazard(pattern)
    if hazard is not None:
        raise _bad(f"The regex could be very slow: {hazard}.")


# -- catastrophic backtracking heuristic ----------------------------------------

_QUANTIFIER: Final = re.compile(r"(?:[*+?]|\{(\d*)(,?)(\d*)\})[?+]?")
_GROUP_OPEN: Final = re.compile(r"\((?:\?(?:[:=!>]|<[=!]|P<\w+>|[aiLmsux-]+:)?)?")
_NO_OP_GROUP: Final = re.compile(r"\(\?[aiLmsux-]+\)")  # inline flags: (?i)
_BACKREF_GROUP: Final = re.compile(r"\(\?P=\w+\)")
_WIDE_ESCAPES: Final = frozenset("wWsSdD")
# Pairs of wide atoms no character matches both of; all other pairs overlap.
_DISJOINT: Final = frozenset(frozenset(pair) for pair in ("wW", "sS", "dD", "ws", "ds", "dW"))


class _Scan:
    """State of :func:`_backtracking_hazard` while it walks a pattern."""

    __slots__ = ("atom", "groups", "prev_wide", "wide")

    def __init__(self) -> None:
        # One entry per open group: does its body hold a quantifier or an alternation?
        self.groups: list[bool] = [False]
        # What a quantifier here would repeat: a wide atom (".", "^" for [^...], or an
        # escape letter "w" "W" "s" "S" "d" "D"), "narrow", "group", "risky" or "".
        self.atom = ""
        self.wide = ""  # the current atom, if it is wide and repeated without bound
        self.prev_wide = ""  # the same for the atom before it

    def new_atom(self, atom: str) -> None:
        self.prev_wide = self.wide
        self.wide = ""
        self.atom = atom


def _backtracking_hazard(pattern: str) -> str | None:
    """Why ``pattern`` may backtrack catastrophically, or None. A heuristic:

    1. A group repeated more than once (``*``, ``+``, ``{2,}``, ``{0,9}``...) must not
       contain a quantifier or an alternation: ``(a+)+``, ``(a*)*``, ``(a|a)*`` and
       ``(a?){20}`` are refused. So are some harmless ones, such as ``(ab?)+`` or
       ``(cat|dog)+``; a character class (``[ab]+``) often says the same thing.
    2. Two overlapping wide atoms (``.``, ``\\w``, ``\\s``, ``\\d``, their negations,
       ``[^...]``) repeated without bound must not follow each other: ``.*.*``,
       ``\\w+\\d*`` and ``(.*)(.*)`` are refused; ``\\w+\\s*`` (disjoint) and
       ``.*x.*`` are fine.

    It does not catch everything (back-references, overlapping alternatives
    outside groups); the message length limit bounds the rest.
    """
    scan = _Scan()
    i = 0
    while i < len(pattern):
        end, hazard = _step(pattern, i, scan)
        if hazard is not None:
            return hazard
        i = end
    return None


def _step(pattern: str, i: int, scan: _Scan) -> tuple[int, str | None]:
    ch = pattern[i]
    if ch == "\\":
        escape = pattern[i + 1 : i + 2]
        scan.new_atom(escape if escape in _WIDE_ESCAPES else "narrow")
        return i + 2, None
    if ch == "[":
        scan.new_atom("^" if pattern.startswith("[^", i) else "narrow")
        return _class_end(pattern, i), None
    if ch == "(":
        return _open_group(pattern, i, scan), None
    if ch == ")":
        # Closing a group consumes nothing: what ran last inside still runs last.
        inner = scan.groups.pop() if len(scan.groups) > 1 else False
        scan.groups[-1] = scan.groups[-1] or inner
        scan.atom = "risky" if inner else "group"
        return i + 1, None
    if ch == "|":
        scan.groups[-1] = True
        scan.new_atom("")
        return i + 1, None
    match = _QUANTIFIER.match(pattern, i)
    if match is None:
        scan.new_atom("." if ch == "." else "narrow")
        return i + 1, None
    return match.end(), _quantified(match, scan)


def _open_group(pattern: str, i: int, scan: _Scan) -> int:
    for plain in (_NO_OP_GROUP, _BACKREF_GROUP):
        match = plain.match(pattern, i)
        if match is not None:
            scan.new_atom("narrow")
            return match.end()
    scan.groups.append(False)
    scan.atom = ""
    opening = _GROUP_OPEN.match(pattern, i)
    return opening.end() if opening is not None else i + 1


def _quantified(match: re.Match[str], scan: _Scan) -> str | None:
    text = match.group(0)
    if text[0] == "{":
        low, comma, high = match.group(1, 2, 3)
        if not (low or comma):  # "{}" is literal text to re
            scan.new_atom("narrow")
            return None
        unbounded = bool(comma) and not high
        repeats = unbounded or int(high or low) > 1
    else:
        unbounded = repeats = text[0] in "*+"
    scan.groups[-1] = True
    if repeats and scan.atom == "risky":
        return "a repeated group holds a quantifier or an alternation, as in (a+)+"
    if unbounded and len(scan.atom) == 1:
        if scan.prev_wide and frozenset((scan.prev_wide, scan.atom)) not in _DISJOINT:
            return "two unbounded repeats of overlapping atoms follow each other, as in .*.*"
        scan.wide = scan.atom
    return None


def _class_end(pattern: str, i: int) -> int:
    """Index just past the character class starting at ``pattern[i] == "["``."""
    j = i + 1
    if pattern.startswith("^", j):
        j += 1
    if pattern.startswith("]", j):  # a leading "]" is literal
        j += 1
    while j < len(pattern) and pattern[j] != "]":
        j += 2 if pattern[j] == "\\" else 1
    return j + 1


# -- the chain ---------------------------------------------------------------------


class _Tier(msgspec.Struct, frozen=True):
    """The usable rules of one action: word keys and compiled regexes."""

    words: tuple[tuple[str, Rule], ...]
    regexes: tuple[tuple[re.Pattern[str], Rule], ...]


class RuleChain:
    """A room's rules compiled once; :meth:`check` gives the most severe verdict.

    Actions are tried most severe first, so the first hit is the answer; within
    an action, word rules come before regex rules, each in the given order.
    Stored rules passed :func:`validate_rule` when they were added; any that can
    no longer be used (no letters in a word, a regex that does not compile) are
    left out and listed in :attr:`skipped` rather than failing every message.
    """

    __slots__ = ("_tiers", "skipped")

    def __init__(self, rules: Iterable[Rule]) -> None:
        words: dict[str, list[tuple[str, Rule]]] = {action: [] for action in _ACTIONS}
        regexes: dict[str, list[tuple[re.Pattern[str], Rule]]] = {a: [] for a in _ACTIONS}
        skipped: list[Rule] = []
        for rule in rules:
            if rule.kind == "word" and (key := word_key(rule.pattern)):
                words[rule.action].append((key, rule))
            elif rule.kind == "regex" and (compiled := _compile_or_none(rule.pattern)):
                regexes[rule.action].append((compiled, rule))
            else:
                skipped.append(rule)
        by_severity = sorted(_ACTIONS, key=_SEVERITY.__getitem__, reverse=True)
        self._tiers = tuple(
            _Tier(tuple(words[action]), tuple(regexes[action]))
            for action in by_severity
            if words[action] or regexes[action]
        )
        self.skipped: tuple[Rule, ...] = tuple(skipped)

    def __len__(self) -> int:
        return sum(len(tier.words) + len(tier.regexes) for tier in self._tiers)

    def check(self, text: str) -> Verdict:
        if not self._tiers:
            return ALLOW
        forms = _TextForms(text)
        for tier in self._tiers:
            rule = forms.first_word(tier.words) or forms.first_regex(tier.regexes)
            if rule is not None:
                return Verdict(rule.action, rule)
        return ALLOW


def _compile(pattern: str) -> re.Pattern[str]:
    with warnings.catch_warnings():
        # FutureWarnings such as "possible nested set" ("[[a]") concern future Pythons.
        warnings.simplefilter("ignore", FutureWarning)
        return re.compile(pattern, re.IGNORECASE)


def _compile_or_none(pattern: str) -> re.Pattern[str] | None:
    try:
        return _compile(pattern)
    except (re.error, OverflowError, RecursionError):
        return None


class _TextForms:
    """The forms of one message that rules look at, each computed at most once."""

    __slots__ = ("_plain", "_skeleton", "_text", "_words")

    def __init__(self, text: str) -> None:
        self._text = text
        self._skeleton = skeleton(text)
        self._plain: str | None = None
        self._words: str | None = None

    def first_word(self, words: tuple[tuple[str, Rule], ...]) -> Rule | None:
        if not words:
            return None
        form = self.words
        return next((rule for key, rule in words if key in form), None)

    def first_regex(self, regexes: tuple[tuple[re.Pattern[str], Rule], ...]) -> Rule | None:
        if not regexes:
            return None
        found = next((rule for regex, rule in regexes if regex.search(self._skeleton)), None)
        if found is not None or self.plain == self._skeleton:
            return found
        return next((rule for regex, rule in regexes if regex.search(self.plain)), None)

    @property
    def words(self) -> str:
        """The compact skeleton with leetspeak folded and without, joined by a NUL
        (in neither), so one substring test covers both. Symbols used as separators
        ("b$a$d") only vanish in the second."""
        if self._words is None:
            with_leet = compact(deleet(self._skeleton))
            self._words = f"{with_leet}\0{compact(self._skeleton)}"
        return self._words

    @property
    def plain(self) -> str:
        """Clean and casefolded but with every letter kept, for non-Latin regexes."""
        if self._plain is None:
            self._plain = clean_text(self._text).casefold()
        return self._plain
