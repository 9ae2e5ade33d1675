"""Question similarity: tokens, cosine, and the pairs the Q&A threshold is tuned on."""

from __future__ import annotations

import pytest

from livehub.interactions.similarity import (
    SIMILAR_AT,
    cosine,
    most_similar,
    similarity,
    tokens,
    vector,
)

SIMILAR = [
    ("How do I reset my password?", "how can i reset the password"),
    ("这个课程多少钱", "课程多少钱？"),
    ("Is there a REPLAY of this stream?", "will there be a replay of the stream"),
    ("直播有回放吗", "这个直播有没有回放"),
]
DIFFERENT = [
    ("What is the price?", "When does the course start?"),
    ("课程什么时候开始", "多少钱"),
    ("How do I reset my password?", "How do I change my avatar?"),
    ("Where can I download the slides?", "课程多少钱"),
]


@pytest.mark.parametrize(("a", "b"), SIMILAR)
def test_close_questions_are_similar(a: str, b: str) -> None:
    assert similarity(a, b) >= SIMILAR_AT


@pytest.mark.parametrize(("a", "b"), DIFFERENT)
def test_different_questions_are_not_similar(a: str, b: str) -> None:
    assert similarity(a, b) < SIMILAR_AT


@pytest.mark.parametrize(("a", "b"), SIMILAR + DIFFERENT)
def test_similarity_is_symmetric(a: str, b: str) -> None:
    assert similarity(a, b) == similarity(b, a)


@pytest.mark.parametrize(
    "text", ["How do I reset my password?", "这个课程多少钱", "a b reset reset x", "钱"]
)
def test_identical_text_is_one(text: str) -> None:
    assert similarity(text, text) == 1.0


@pytest.mark.parametrize(("a", "b"), [("", ""), ("", "reset password"), ("  ?!  ", "price")])
def test_empty_text_is_zero(a: str, b: str) -> None:
    assert similarity(a, b) == 0.0
    assert similarity(b, a) == 0.0


def test_only_stopwords_compare_as_nothing() -> None:
    assert tokens("How do I do it?") == []
    assert similarity("How do I do it?", "how do i do it") == 0.0


def test_latin_words_are_normalised_and_stopwords_dropped() -> None:
    assert tokens("How do I RESET my Pass-word, ok?") == ["reset", "my", "pass", "word", "ok"]
    # full-width letters and look-alike Cyrillic letters fold onto ASCII
    assert tokens("ＰＲＩＣＥ") == ["price"]
    assert tokens("prісe") == ["price"]  # Cyrillic і and с


def test_cjk_runs_become_bigrams_and_single_characters_unigrams() -> None:
    assert tokens("课程多少钱？") == ["课程", "程多", "多少", "少钱"]
    assert tokens("钱") == ["钱"]
    assert tokens("价 格") == ["价", "格"]
    # a Latin word next to Han characters is its own token
    assert tokens("python3教程") == ["python3", "教程"]
    # Hiragana, Katakana and Hangul are cut the same way
    assert tokens("ライブ") == ["ライ", "イブ"]
    assert tokens("질문") == ["질문"]


def test_cosine_weighs_repeated_terms() -> None:
    assert vector("reset reset password") == {"reset": 2, "password": 1}
    assert cosine({"a": 1}, {"b": 1}) == 0.0
    assert cosine({}, {"a": 1}) == 0.0
    assert cosine({"a": 2, "b": 1}, {"a": 1}) == pytest.approx(2 / 5**0.5)


def test_most_similar_keeps_the_closest_three_above_the_threshold() -> None:
    candidates = [
        (1, "how can i reset the password"),
        (2, "When does the course start?"),
        (3, "reset my password please"),
        (4, "How do I reset my password?"),
        (5, "password reset link"),
        (6, "I forgot my password, how do I reset it"),
    ]
    found = most_similar("How do I reset my password?", candidates)
    assert [key for key, _ in found] == [4, 3, 6]
    assert [score for _, score in found] == sorted((s for _, s in found), reverse=True)
    assert all(score >= SIMILAR_AT for _, score in found)
    assert most_similar("How do I reset my password?", candidates, limit=10)[-1][0] in (1, 5)
    assert most_similar("What is the price?", candidates) == []
    assert most_similar("", candidates) == []
