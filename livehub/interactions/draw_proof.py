"""The verifiable draw: commitment, ranking and transcript checks. Pure functions.

Anyone can redo every step with a SHA-256 and an HMAC-SHA256 (the public verify
page does it in the browser; ``livehub verify-draw`` does it here):

* ``entrants``      the sorted (by code point), unique entrant ids;
* ``entrants_hash`` sha256 of the ids joined by ``"\\n"`` (UTF-8), hex;
* ``seed``          32 random bytes as 64 lowercase hex digits;
* ``seed_hash``     sha256 of the seed's hex text (ASCII), hex;
* ``commitment``    sha256 of ``f"{entrants_hash}:{seed_hash}"`` (ASCII), hex —
  published before any winner is computed;
* ``score(e)``      HMAC-SHA256(key = the 32 seed bytes, msg = e as UTF-8), hex;
* ``winners``       the first ``winners_count`` entrants ordered by (score, id).

Ranking every entrant by a keyed hash and taking the lowest has no modulo bias:
every ordering of the entrants is equally likely for a uniformly random seed.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

TRANSCRIPT_VERSION = 1
SEED_HEX = re.compile(r"^[0-9a-f]{64}$")
HASH_HEX = re.compile(r"^[0-9a-f]{64}$")
MAX_WINNERS = 100

# Every field the proof covers; verify() refuses a transcript missing one.
PROOF_FIELDS = (
    "version",
    "room",
    "draw_id",
    "winners_count",
    "entrants",
    "entrants_hash",
    "seed_hash",
    "commitment",
    "seed",
    "winners",
)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def usable_id(viewer_id: str) -> bool:
    """Ids are joined by line breaks for hashing, so an id may not hold one."""
    return bool(viewer_id) and "\n" not in viewer_id


def normalise_entrants(ids: Iterable[str]) -> list[str]:
    """Sorted unique ids: Python's ``sorted`` on str is code point order."""
    return sorted({i for i in ids if usable_id(i)})


def entrants_hash(entrants: Sequence[str]) -> str:
    return sha256_hex("\n".join(entrants).encode("utf-8"))


def seed_hash(seed_hex: str) -> str:
    return sha256_hex(seed_hex.encode("ascii"))


def commitment(entrants_digest: str, seed_digest: str) -> str:
    return sha256_hex(f"{entrants_digest}:{seed_digest}".encode("ascii"))


def score(seed_hex: str, entrant: str) -> str:
    return hmac.new(bytes.fromhex(seed_hex), entrant.encode("utf-8"), hashlib.sha256).hexdigest()


def ranking(seed_hex: str, entrants: Sequence[str]) -> list[str]:
    """Every entrant, best first: ordered by (score, id)."""
    return sorted(entrants, key=lambda e: (score(seed_hex, e), e))


def pick(seed_hex: str, entrants: Sequence[str], count: int) -> list[str]:
    """The winners: the first ``count`` of the ranking (everyone when fewer entered)."""
    return ranking(seed_hex, entrants)[: max(0, count)]


def transcript(
    *,
    room: str,
    draw_id: str,
    prize: str,
    rule: Mapping[str, Any],
    winners_count: int,
    entrants: Sequence[str],
    seed_hex: str,
    committed_at: float,
    revealed_at: float,
) -> dict[str, Any]:
    """The public record of a finished draw (what verify() checks)."""
    e_hash = entrants_hash(entrants)
    s_hash = seed_hash(seed_hex)
    return {
        "version": TRANSCRIPT_VERSION,
        "room": room,
        "draw_id": draw_id,
        "prize": prize,
        "rule": dict(rule),
        "winners_count": winners_count,
        "entrants": list(entrants),
        "entrants_hash": e_hash,
        "seed_hash": s_hash,
        "commitment": commitment(e_hash, s_hash),
        "seed": seed_hex,
        "winners": pick(seed_hex, entrants, winners_count),
        "committed_at": committed_at,
        "revealed_at": revealed_at,
    }


class _Invalid(Exception):
    pass


def verify(record: Any) -> tuple[bool, str]:
    """Recompute every hash and the winners; (True, "ok") or (False, the first problem)."""
    try:
        _verify(record)
    except _Invalid as bad:
        return False, str(bad)
    return True, "ok"


def _verify(t: Any) -> None:
    if not isinstance(t, Mapping):
        raise _Invalid("the transcript is not a JSON object")
    missing = [name for name in PROOF_FIELDS if name not in t]
    if missing:
        raise _Invalid(f"missing field(s): {', '.join(missing)}")
    if t["version"] != TRANSCRIPT_VERSION or isinstance(t["version"], bool):
        raise _Invalid(f"unknown transcript version {t['version']!r}")
    entrants = _string_list(t["entrants"], "entrants")
    if not all(usable_id(e) for e in entrants):
        raise _Invalid("an entrant id is empty or contains a line break")
    for before, after in itertools.pairwise(entrants):
        if not before < after:
            raise _Invalid("entrants are not sorted and unique")
    count = t["winners_count"]
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_WINNERS:
        raise _Invalid(f"winners_count must be an integer 1-{MAX_WINNERS}")
    seed = t["seed"]
    if not isinstance(seed, str) or not SEED_HEX.match(seed):
        raise _Invalid("seed must be 64 lowercase hex digits")
    for name in ("entrants_hash", "seed_hash", "commitment"):
        if not isinstance(t[name], str) or not HASH_HEX.match(t[name]):
            raise _Invalid(f"{name} must be 64 lowercase hex digits")
    if entrants_hash(entrants) != t["entrants_hash"]:
        raise _Invalid("entrants_hash does not match the entrants")
    if seed_hash(seed) != t["seed_hash"]:
        raise _Invalid("seed_hash does not match the seed")
    if commitment(t["entrants_hash"], t["seed_hash"]) != t["commitment"]:
        raise _Invalid("commitment does not match entrants_hash and seed_hash")
    winners = _string_list(t["winners"], "winners")
    if len(set(winners)) != len(winners):
        raise _Invalid("a winner appears twice")
    expected = pick(seed, entrants, count)
    if winners != expected:
        if len(winners) != len(expected):
            raise _Invalid(f"expected {len(expected)} winner(s), the transcript has {len(winners)}")
        raise _Invalid("the winners are not the ones the seed picks")
    _check_times(t.get("committed_at"), t.get("revealed_at"))


def _string_list(value: Any, name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _Invalid(f"{name} must be a list of strings")
    return list(value)


def _check_times(committed: Any, revealed: Any) -> None:
    if committed is None and revealed is None:
        return
    for name, value in (("committed_at", committed), ("revealed_at", revealed)):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _Invalid(f"{name} must be a number")
        if not math.isfinite(value):
            raise _Invalid(f"{name} must be a finite number")
    if committed > revealed:
        raise _Invalid("the seed was revealed before the commitment")
