"""Report benchmark: a 3-hour stream, 10,000 viewers, 1,000,000 events.

    .venv/bin/python scripts/bench_report.py              # full run
    .venv/bin/python scripts/bench_report.py --events 100000 --viewers 2000   # smaller
    .venv/bin/python scripts/bench_report.py --keep DIR   # keep the database in DIR

The stream is written straight into a temporary SQLite file (the event log's own
schema, ``executemany`` in a tight loop, not through the async log). Every phase
then runs in its own fresh process, so its peak memory (``ru_maxrss``) is its own:

* baseline ``read``: read every event row of the stream, build nothing;
* baseline ``group by``: one SQL ``GROUP BY actor, kind`` count over the stream;
* ``json``: build the report from the file (``livehub report``'s path) + encode JSON;
* ``csv``: the same + the per-viewer CSV;
* ``html``: the same + ``livehub.reports.html.render`` (only when that module exists);
* ``server``: build through ``EventLog.scan`` as the server does, + JSON.

Targets (reported, never asserted): each build under 10 s and under 1 GB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from livehub.reports import export, source  # noqa: E402
from livehub.rooms.eventlog import SCHEMA as EVENTS_SCHEMA  # noqa: E402
from livehub.rooms.eventlog import EventLog, connect  # noqa: E402
from livehub.rooms.repository import SCHEMA as ROOMS_SCHEMA  # noqa: E402

ROOM = "bench"
STREAM = "s_bench00001"
HOURS = 3.0
PHASES = ("read", "group by", "json", "csv", "html", "server")


# -- the synthetic stream ---------------------------------------------------------------------


def generate(path: Path, events: int, viewers: int, seed: int = 7) -> int:
    """Write the stream; returns the number of events written."""
    rng = random.Random(seed)
    start = time.time() - HOURS * 3600 - 600
    end = start + HOURS * 3600
    enc = msgspec.json.encode
    rows: list[tuple[float, str, str, bytes]] = []
    add = rows.append
    add((start, "stream.started", "host", enc({"stream_id": STREAM})))
    add((start, "presence.join", "host", enc({"name": "Host", "role": "host"})))
    add((start, "presence.join", "mod", enc({"name": "Mod", "role": "moderator"})))
    ids = [f"viewer-{i:05d}" for i in range(viewers)]
    names = {v: f"观众{i}" if i % 3 == 0 else f"Viewer {i}" for i, v in enumerate(ids)}
    sessions: dict[str, list[tuple[float, float]]] = {}
    for v in ids:
        t = start + min(rng.expovariate(1 / 1800), HOURS * 3600 - 60)
        spans = []
        for _ in range(rng.choice((1, 1, 1, 2, 3))):
            length = rng.expovariate(1 / 2400) + 30
            spans.append((t, min(t + length, end + 1)))
            t += length + rng.expovariate(1 / 600)
            if t >= end:
                break
        sessions[v] = spans
        for a, b in spans:
            add((a, "presence.join", v, enc({"name": names[v], "role": "viewer"})))
            if b <= end:
                add((b, "presence.leave", v, b"{}"))
    polls = [f"p_{i:02d}" for i in range(12)]
    for i, p in enumerate(polls):
        t = start + 600 + i * 800
        poll = {"id": p, "question": f"Poll {i}?", "kind": "single", "options": ["a", "b", "c"]}
        add((t, "poll.created", "host", enc({"poll": poll | {"anonymous": i % 4 == 0}})))
        add((t, "poll.opened", "host", enc({"poll_id": p, "closes_at": t + 120})))
        add((t + 120, "poll.closed", "timer", enc({"poll_id": p, "by": "timer"})))
    questions = [{"text": f"Q{i}", "options": ["x", "y"], "correct": [i % 2]} for i in range(20)]
    add(
        (
            start + 300,
            "quiz.created",
            "host",
            enc({"quiz": {"id": "q_1", "title": "Quiz", "questions": questions}}),
        )
    )
    for i in range(20):
        t = start + 1200 + i * 400
        add((t, "quiz.question_opened", "host", enc({"quiz_id": "q_1", "index": i})))
    offers = [f"o_{i}" for i in range(5)]
    for i, o in enumerate(offers):
        add(
            (
                start + 900 + i * 1800,
                "offer.pushed",
                "host",
                enc({"offer_id": o, "title": f"Offer {i}", "url": "https://shop.example/"}),
            )
        )
    add(
        (
            start + 5000,
            "draw.created",
            "host",
            enc(
                {
                    "draw_id": "d_1",
                    "prize": "Mug",
                    "rule": {"kind": "present"},
                    "winners_count": 3,
                    "window_seconds": 300,
                }
            ),
        )
    )
    # The rest: interactions by viewers while they watch.
    mix = (
        ["chat.message"] * 60
        + ["like"] * 25
        + ["poll.vote"] * 4
        + ["quiz.answer"] * 5
        + ["qa.upvote"] * 2
        + ["qa.asked"] * 1
        + ["offer.click"] * 1
        + ["draw.entered"] * 1
        + ["chat.sampled"] * 1
    )
    remaining = events - len(rows) - 1
    voted: set[tuple[str, str]] = set()
    for _ in range(remaining):
        v = rng.choice(ids)
        a, b = rng.choice(sessions[v])
        t = rng.uniform(a, min(b, end))
        kind = rng.choice(mix)
        if kind == "chat.message":
            data: dict[str, Any] = {
                "name": names[v],
                "role": "viewer",
                "text": "好 nice stream",
                "mode": "scroll",
                "color": "#ffffff",
                "offset_ms": 0,
            }
        elif kind == "like":
            data = {"count": rng.randint(1, 20)}
        elif kind == "poll.vote":
            p = polls[int((t - start - 600) // 800) % len(polls)]
            if (v, p) in voted:
                kind, data = "like", {"count": 1}
            else:
                voted.add((v, p))
                data = {
                    "poll_id": p,
                    "kind": "single",
                    "anonymous": False,
                    "choices": [rng.randrange(3)],
                }
        elif kind == "quiz.answer":
            i = rng.randrange(20)
            ok = rng.random() < 0.6
            data = {
                "quiz_id": "q_1",
                "index": i,
                "choices": [i % 2 if ok else 1 - i % 2],
                "correct": ok,
                "points": 700 if ok else 0,
                "response_ms": 4000,
            }
        elif kind == "qa.asked":
            data = {"text": "When?", "name": names[v], "anonymous": False}
        elif kind == "qa.upvote":
            data = {"question_id": rng.randrange(1, 1000)}
        elif kind == "offer.click":
            data = {"offer_id": rng.choice(offers)}
        elif kind == "draw.entered":
            data = {"draw_id": "d_1", "name": names[v]}
        else:
            kind, v, data = "chat.sampled", "system", {"dropped": rng.randint(1, 40)}
        add((t, kind, v, enc(data)))
    add((end, "stream.stopped", "host", enc({"stream_id": STREAM})))
    rows.sort(key=lambda r: r[0])

    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    conn.executescript(EVENTS_SCHEMA)
    conn.executescript(ROOMS_SCHEMA)
    conn.execute(
        "INSERT INTO streams (id, room, started_at, ended_at) VALUES (?, ?, ?, ?)",
        (STREAM, ROOM, start, end),
    )
    conn.execute("BEGIN")
    batch = 50_000
    for lo in range(0, len(rows), batch):
        conn.executemany(
            "INSERT INTO events (uid, nonce, ts, room, stream, kind, actor, data) "
            "VALUES (?, '', ?, ?, ?, ?, ?, ?)",
            (
                (f"b{lo + i}", ts, ROOM, STREAM, kind, actor, data)
                for i, (ts, kind, actor, data) in enumerate(rows[lo : lo + batch])
            ),
        )
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return len(rows)


# -- one phase, in its own process --------------------------------------------------------------


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_phase(phase: str, path: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    c0 = cpu_seconds()
    extra: dict[str, Any] = {}
    if phase == "read":
        conn = source.connect_file(path)
        n = sum(1 for _ in source.iter_rows(conn, ROOM, STREAM))
        extra["rows"] = n
    elif phase == "group by":
        conn = source.connect_file(path)
        groups = conn.execute(
            "SELECT actor, kind, COUNT(*) FROM events WHERE room = ? AND stream = ? "
            "GROUP BY actor, kind",
            (ROOM, STREAM),
        ).fetchall()
        extra["groups"] = len(groups)
    elif phase == "server":
        report = asyncio.run(_server_build(path))
        out = export.to_json(report)
        extra["bytes"] = len(out)
    else:
        conn = source.connect_file(path)
        record = source.stream_record(conn, ROOM, STREAM)
        report = source.build_from_file(conn, ROOM, STREAM, now=time.time(), record=record)
        built = time.perf_counter() - t0
        if phase == "json":
            out = export.to_json(report)
        elif phase == "csv":
            out = export.viewers_csv(report)
        else:
            renderer = export.html_renderer()
            assert renderer is not None
            out = renderer[0](report, "en").encode()
        extra |= {"build_s": round(built, 2), "bytes": len(out)}
        extra["viewers"] = report.summary.unique_viewers
    seconds = time.perf_counter() - t0
    return {
        "phase": phase,
        "seconds": round(seconds, 2),
        "cpu": round(cpu_seconds() - c0, 2),
        "peak_mb": round(peak_kb() / 1024),
        **extra,
    }


def peak_kb() -> int:
    """This process's peak resident memory: VmHWM (ru_maxrss would include the
    parent's at fork time, as Linux keeps it across exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


async def _server_build(path: Path) -> Any:
    log = await EventLog.open(path, "NORMAL")
    conn = await connect(path, "NORMAL")
    try:
        repo_conn = source.connect_file(path)
        record = source.stream_record(repo_conn, ROOM, STREAM)
        repo_conn.close()
        return await source.build_from_log(log, conn, ROOM, STREAM, now=time.time(), record=record)
    finally:
        await conn.close()
        await log.close()


def machine() -> str:
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{model}, {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
        f"SQLite {sqlite3.sqlite_version}, {platform.system()} {platform.release()}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--viewers", type=int, default=10_000)
    parser.add_argument("--keep", type=Path, help="write the database here and keep it")
    parser.add_argument("--repeat", type=int, default=3, help="runs per phase (best is shown)")
    parser.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(run_phase(args.phase, args.db)))
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "livehub.db"
        path.unlink(missing_ok=True)
        t0 = time.perf_counter()
        written = generate(path, args.events, args.viewers)
        size_mb = path.stat().st_size / 1e6
        print(
            f"generated {written:,} events, {args.viewers:,} viewers, {HOURS:g} h "
            f"in {time.perf_counter() - t0:.1f} s ({size_mb:.0f} MB)",
            file=sys.stderr,
        )
        phases = [p for p in PHASES if p != "html" or export.html_renderer() is not None]
        results = []
        for phase in phases:
            runs = []
            for _ in range(max(1, args.repeat)):
                out = subprocess.run(
                    [sys.executable, __file__, "--phase", phase, "--db", str(path)],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                runs.append(json.loads(out.stdout))
                print(f"  {phase}: {runs[-1]}", file=sys.stderr)
            best = min(runs, key=lambda r: r["seconds"])
            best["cpu"] = min(r["cpu"] for r in runs)
            best["peak_mb"] = max(r["peak_mb"] for r in runs)
            results.append(best)
    print(f"\nmachine: {machine()}")
    print(f"stream: {written:,} events, {args.viewers:,} viewers, {HOURS:g} hours\n")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"best of {args.repeat} runs per phase; load average at the end {load:.1f}\n")
    print(f"{'phase':<10} {'wall s':>7} {'cpu s':>6} {'peak MB':>8}  notes")
    for r in results:
        skip = ("phase", "seconds", "cpu", "peak_mb")
        notes = ", ".join(f"{k}={v}" for k, v in r.items() if k not in skip)
        line = f"{r['phase']:<10} {r['seconds']:>7.2f} {r['cpu']:>6.2f} {r['peak_mb']:>8}"
        print(f"{line}  {notes}")
    print("\ntargets: build < 10 s and < 1024 MB (json/csv/html/server include the build)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
