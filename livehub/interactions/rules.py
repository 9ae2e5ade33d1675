"""The moderation rule chain, applied alike to chat, questions and open answers.

Word rules match on normalised forms, so spacing, punctuation, zero-width
characters, case, full-width letters, look-alike letters from other scripts,
small capitals, regional indicator letters, common leetspeak and Traditional
versus Simplified Chinese do not evade them. Regex rules run case-insensitively
on the :func:`~livehub.interactions.normalise.skeleton` of the text, on it with
leetspeak folded, and on its plain casefolded form (so regexes written in
non-Latin scripts still match); Chinese in patterns is folded as in texts.

Every rule has a time bound:

* Regexes run in RE2 (``google-re2``), whose matching time is linear in the
  text; a pattern RE2 cannot compile (back-references, look-around, ``(?x)``,
  comments) or whose compiled program is over :data:`MAX_PROGRAM_SIZE`
  instructions is refused with ``bad_rule`` when it is set.
* Checking one message against all of a room's rules has a budget of thread CPU
  time. A message that runs past it stops being checked and is held for review,
  and the regex that cost it most is named in :attr:`Verdict.slow` for the
  caller to disable and report.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Final, Literal, Protocol, get_args

import msgspec
import re2

from livehub.errors import ProtocolError
from livehub.interactions.normalise import clean_text, compact, deleet, fold_chinese, skeleton
from livehub.rooms.models import Rule, RuleAction, RuleKind

VerdictAction = Literal["allow", "block", "hold", "mute", "ban"]

MAX_PATTERN_CHARS: Final = 200
MIN_MUTE_SECONDS: Final = 1
MAX_MUTE_SECONDS: Final = 86_400
# RE2 instructions of one compiled regex: bounds its memory and its cost per character.
MAX_PROGRAM_SIZE: Final = 10_000
# Thread CPU time all of a room's rules may take on one message.
DEFAULT_BUDGET_SECONDS: Final = 0.02

_KINDS: Final = frozenset(get_args(RuleKind))
_ACTIONS: Final = frozenset(get_args(RuleAction))
_SEVERITY: Final[Mapping[str, int]] = {"allow": 0, "hold": 1, "block": 2, "mute": 3, "ban": 4}

Clock = Callable[[], float]


class Regex(Protocol):
    """What is used of a compiled RE2 regex (``re2`` has no type hints)."""

    @property
    def programsize(self) -> int: ...

    def search(self, text: str) -> object | None: ...


class Verdict(msgspec.Struct, frozen=True):
    """What the chain says of a message: ``rule`` is the rule that matched (None for
    allow, and for a hold because the budget ran out); ``slow`` is the rule that ran
    past the budget, to disable."""

    action: VerdictAction
    rule: Rule | None = None
    slow: Rule | None = None


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
    """The form a word pattern is matched as (leetspeak folded); empty if it has no
    letters or digits of its own ("!!!" is not the word "iii")."""
    skel = skeleton(pattern)
    return compact(deleet(skel)) if compact(skel) else ""


def _check_regex(pattern: str) -> None:
    try:
        compiled = compile_regex(pattern)
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args else "invalid"
        raise _bad(
            f"The regex cannot be used ({reason}); back-references, look-around,"
            " comments and verbose mode are not supported."
        ) from exc
    if compiled.programsize > MAX_PROGRAM_SIZE:
        raise _bad("The regex is too large; use fewer or smaller repeats.")
    if compiled.search("") is not None:
        raise _bad("The regex matches empty text, so it would match every message.")


def compile_regex(pattern: str) -> Regex:
    """The RE2 form of a regex rule: case-insensitive, Chinese folded as in texts.

    Raises ``re2.error`` when RE2 cannot compile it.
    """
    options = re2.Options()
    options.case_sensitive = False
    options.log_errors = False
    compiled: Regex = re2.compile(fold_chinese(pattern), options)
    return compiled


def _compile_or_none(pattern: str) -> Regex | None:
    try:
        compiled = compile_regex(pattern)
    except re2.error:
        return None
    return compiled if compiled.programsize <= MAX_PROGRAM_SIZE else None


# -- the chain ---------------------------------------------------------------------


class _Tier(msgspec.Struct, frozen=True):
    """The usable rules of one action: word keys and compiled regexes."""

    words: tuple[tuple[str, Rule], ...]
    regexes: tuple[tuple[Regex, Rule], ...]


class RuleChain:
    """A room's rules compiled once; :meth:`check` gives the most severe verdict.

    Actions are tried most severe first, so the first hit is the answer; within
    an action, word rules come before regex rules, each in the given order.
    Disabled rules are left out. Stored rules passed :func:`validate_rule` when
    they were added; any that can no longer be used (no letters in a word, a regex
    that does not compile) are left out too and listed in :attr:`skipped` rather
    than failing every message.

    ``budget`` is the thread CPU time (as ``clock`` tells it) the rules may take on
    one message; see :meth:`check`.
    """

    __slots__ = ("_budget", "_clock", "_tiers", "skipped")

    def __init__(
        self,
        rules: Iterable[Rule],
        budget: float = DEFAULT_BUDGET_SECONDS,
        clock: Clock = time.thread_time,
    ) -> None:
        words: dict[str, list[tuple[str, Rule]]] = {action: [] for action in _ACTIONS}
        regexes: dict[str, list[tuple[Regex, Rule]]] = {a: [] for a in _ACTIONS}
        skipped: list[Rule] = []
        for rule in rules:
            if rule.disabled:
                continue
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
        self._budget = budget
        self._clock = clock

    def __len__(self) -> int:
        return sum(len(tier.words) + len(tier.regexes) for tier in self._tiers)

    def check(self, text: str) -> Verdict:
        """The most severe verdict of the rules on ``text``.

        Each regex search is timed. When the rules together have taken more than the
        budget, checking stops: the regex that took longest on this message is
        ``slow``, and the message, not fully checked, is held for review (unless
        the search that ran out matched: its rule's verdict stands).
        """
        if not self._tiers:
            return ALLOW
        meter = _Meter(self._clock, self._budget)
        forms = _TextForms(text)
        for tier in self._tiers:
            rule = forms.first_word(tier.words) or forms.first_regex(tier.regexes, meter)
            if rule is not None:
                return Verdict(rule.action, rule, meter.slowest)
            if meter.slowest is not None:
                return Verdict("hold", None, meter.slowest)
        return ALLOW


class _Meter:
    """The CPU time one message has taken, and the costliest regex so far."""

    __slots__ = ("_clock", "_costliest", "_left", "_most", "slowest")

    def __init__(self, clock: Clock, budget: float) -> None:
        self._clock = clock
        self._left = budget
        self._most = -1.0
        self._costliest: Rule | None = None
        self.slowest: Rule | None = None  # set once the budget has run out

    def search(self, regex: Regex, rule: Rule, text: str) -> bool:
        started = self._clock()
        found = regex.search(text) is not None
        cost = self._clock() - started
        if cost > self._most:
            self._most, self._costliest = cost, rule
        self._left -= cost
        if self._left < 0:
            self.slowest = self._costliest
        return found


class _TextForms:
    """The forms of one message that rules look at, each computed at most once."""

    __slots__ = ("_regex_forms", "_skeleton", "_text", "_words")

    def __init__(self, text: str) -> None:
        self._text = text
        self._skeleton = skeleton(text)
        self._regex_forms: tuple[str, ...] | None = None
        self._words: str | None = None

    def first_word(self, words: tuple[tuple[str, Rule], ...]) -> Rule | None:
        if not words:
            return None
        form = self.words
        return next((rule for key, rule in words if key in form), None)

    def first_regex(self, regexes: tuple[tuple[Regex, Rule], ...], meter: _Meter) -> Rule | None:
        if not regexes:
            return None
        for form in self.regex_forms:
            for regex, rule in regexes:
                if meter.search(regex, rule, form):
                    return rule
                if meter.slowest is not None:
                    return None
        return None

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
    def regex_forms(self) -> tuple[str, ...]:
        """The skeleton, then (where they differ from it) the skeleton with leetspeak
        folded, and the clean casefolded text with every letter kept (for non-Latin
        regexes), Chinese folded to Simplified as the patterns are."""
        if self._regex_forms is None:
            plain = fold_chinese(clean_text(self._text).casefold())
            forms = dict.fromkeys((self._skeleton, deleet(self._skeleton), plain))
            self._regex_forms = tuple(forms)
        return self._regex_forms
