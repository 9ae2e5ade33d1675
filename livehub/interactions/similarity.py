"""Text similarity for spotting repeated questions, without any external model.

Text is first brought to its matching form (:func:`livehub.interactions.normalise.skeleton`:
casefolded, homoglyphs folded). Then it is cut into tokens:

* Latin and other alphabetic scripts: words of letters and digits, minus a
  small list of English stopwords ("how do I" carries no topic);
* Chinese, Japanese and Korean (Han, Hiragana, Katakana, Hangul), which are
  written without spaces: overlapping character bigrams of each run ("课程多少钱"
  → 课程 程多 多少 少钱), or the character itself for a run of one.

Two texts are compared as term-frequency vectors by cosine similarity: 1.0 for
the same tokens in the same proportions, 0.0 for nothing in common (or nothing
to compare). Everything here is pure.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Final, TypeVar

from livehub.interactions.normalise import skeleton

K = TypeVar("K")

SIMILAR_AT: Final = 0.6

STOPWORDS: Final = frozenset(
    {
        "the", "a", "an", "is", "are", "to", "of", "in", "on", "for", "and", "or", "how",
        "what", "do", "does", "can", "i", "you", "it", "this", "that", "with", "be",
    }
)  # fmt: skip

# Han (with its extensions, compatibility ideographs and the iteration mark),
# Hiragana, Katakana (with the prolonged sound mark and phonetic extensions),
# Hangul syllables and jamo.
_CJK_CHARS: Final = (
    "\u3005\u3007"
    "\u3040-\u309f"
    "\u30a0-\u30ff"
    "\u31f0-\u31ff"
    "\u1100-\u11ff"
    "\u3130-\u318f"
    "\u3400-\u4dbf"
    "\u4e00-\u9fff"
    "\uac00-\ud7af"
    "\uf900-\ufaff"
    "\U00020000-\U0003134f"
)
_TOKEN_RUNS: Final = re.compile(
    rf"(?P<cjk>[{_CJK_CHARS}]+)|(?P<word>(?:(?![{_CJK_CHARS}])[^\W_])+)"
)


def tokens(text: str) -> list[str]:
    """The tokens of ``text`` in order: words (stopwords dropped) and CJK bigrams."""
    found: list[str] = []
    for match in _TOKEN_RUNS.finditer(skeleton(text)):
        run = match.group("cjk")
        if run is None:
            word = match.group("word")
            if word not in STOPWORDS:
                found.append(word)
        elif len(run) == 1:
            found.append(run)
        else:
            found.extend(run[i : i + 2] for i in range(len(run) - 1))
    return found


def vector(text: str) -> Counter[str]:
    """Term frequencies of the tokens of ``text``."""
    return Counter(tokens(text))


def cosine(a: Mapping[str, int], b: Mapping[str, int]) -> float:
    """Cosine similarity of two term-frequency vectors; 0.0 when either is empty."""
    if not a or not b:
        return 0.0
    small, large = (a, b) if len(a) <= len(b) else (b, a)
    dot = sum(count * large.get(term, 0) for term, count in small.items())
    if not dot:
        return 0.0
    norms = sum(c * c for c in a.values()) * sum(c * c for c in b.values())
    return min(1.0, dot / math.sqrt(norms))


def similarity(a: str, b: str) -> float:
    """How alike two texts are, from 0.0 (nothing in common) to 1.0."""
    return cosine(vector(a), vector(b))


def most_similar(
    text: str,
    candidates: Iterable[tuple[K, str]],
    *,
    threshold: float = SIMILAR_AT,
    limit: int = 3,
) -> list[tuple[K, float]]:
    """The ``limit`` candidates at least ``threshold`` alike to ``text``, most alike first.

    Ties keep the candidates' order. One pass over the candidates.
    """
    query = vector(text)
    if not query:
        return []
    scored = [(key, cosine(query, vector(other))) for key, other in candidates]
    close = [(key, score) for key, score in scored if score >= threshold]
    close.sort(key=lambda pair: -pair[1])
    return close[:limit]
