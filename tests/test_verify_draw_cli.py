"""``livehub verify-draw TRANSCRIPT.json`` as an operator runs it (a real process)."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

from processes import REPO_ROOT, clean_env, livehub_command, run_livehub_async

from livehub.interactions import draw_proof as proof

SEED = "5f" * 32


def transcript() -> dict[str, Any]:
    entrants = proof.normalise_entrants(["v_ann", "v_bob", "v_cat", "v_dan", "v_eve"])
    record = proof.transcript(
        room="demo",
        draw_id="d_0123456789",
        prize="A mug",
        rule={"kind": "present"},
        winners_count=2,
        entrants=entrants,
        seed_hex=SEED,
        committed_at=1000.0,
        revealed_at=1001.5,
    )
    record["winner_names"] = {w: w[2:].title() for w in record["winners"]}
    return record


def write(path: Path, record: Any) -> str:
    path.write_text(json.dumps(record), encoding="utf-8")
    return str(path)


async def test_good_and_tampered_transcripts(tmp_path: Path) -> None:
    good = transcript()
    loser = next(e for e in good["entrants"] if e not in good["winners"])
    tampered = {
        "winner": {**good, "winners": [loser, good["winners"][1]]},
        "entrant": {**good, "entrants": [*good["entrants"][:-1], "v_zed"]},
        "seed": {**good, "seed": "6f" * 32},
        "count": {**good, "winners_count": 3},
    }
    ok, *bad = await asyncio.gather(
        run_livehub_async("verify-draw", write(tmp_path / "good.json", good)),
        *(
            run_livehub_async("verify-draw", write(tmp_path / f"{name}.json", record))
            for name, record in tampered.items()
        ),
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    lines = ok.stdout.splitlines()
    assert lines[0] == "OK: draw d_0123456789 in room demo: 2 winner(s) of 5 entrant(s)"
    assert lines[1:] == [f"  {w} ({w[2:].title()})" for w in good["winners"]]
    reasons = {
        "winner": "the winners are not the ones the seed picks",
        "entrant": "entrants_hash does not match the entrants",
        "seed": "seed_hash does not match the seed",
        "count": "expected 3 winner(s), the transcript has 2",
    }
    for (name, reason), done in zip(reasons.items(), bad, strict=True):
        assert done.returncode == 1, name
        assert done.stdout.strip() == f"FAILED: {reason}", name


async def test_unreadable_input_fails(tmp_path: Path) -> None:
    not_json = tmp_path / "x.json"
    not_json.write_text("{not json", encoding="utf-8")
    missing, broken, array = await asyncio.gather(
        run_livehub_async("verify-draw", str(tmp_path / "nope.json")),
        run_livehub_async("verify-draw", str(not_json)),
        run_livehub_async("verify-draw", write(tmp_path / "a.json", [1, 2])),
    )
    assert (missing.returncode, broken.returncode, array.returncode) == (1, 1, 1)
    assert missing.stdout.startswith("FAILED: cannot read")
    assert broken.stdout.startswith("FAILED: not valid JSON")
    assert array.stdout.strip() == "FAILED: the transcript is not a JSON object"


def test_reads_stdin() -> None:
    done = subprocess.run(
        livehub_command("verify-draw", "-"),
        input=json.dumps(transcript()),
        env=clean_env(),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("OK: draw d_0123456789")
