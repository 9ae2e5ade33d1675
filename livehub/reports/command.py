"""``livehub report``: a stream's report from the database file, without a server.

Reads the SQLite file directly (read only; the server may keep running) and
writes JSON, the per-viewer CSV or HTML (when ``livehub.reports.html`` is
installed). A report of more than 10,000 events shows a plain-text progress bar
on stderr, updated every 10,000 events.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from livehub.reports import export, source

FORMATS = ("json", "csv", "html")
BAR_WIDTH = 30


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("room", help="the room id")
    parser.add_argument("--stream", help="the stream id (default: the room's latest)")
    parser.add_argument("--format", choices=FORMATS, default="json")
    parser.add_argument("-o", "--output", required=True, help="the file to write ('-': stdout)")
    parser.add_argument("--data-dir", default=None, help="where livehub.db is (LIVEHUB_DATA_DIR)")
    parser.add_argument("--lang", default="en", help="HTML language: en or zh-CN")


def progress_bar(total: int, out: TextIO) -> Callable[[int], None]:
    def show(done: int) -> None:
        share = min(done / total, 1.0) if total else 1.0
        filled = round(share * BAR_WIDTH)
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        out.write(f"\r[{bar}] {share:4.0%} {done:,}/{total:,} events")
        if done >= total:
            out.write("\n")
        out.flush()

    return show


def run(args: argparse.Namespace, db_file: Path, err: TextIO | None = None) -> int:
    err = err or sys.stderr
    try:
        conn = source.connect_file(db_file)
    except FileNotFoundError as exc:
        print(f"livehub report: {exc}", file=err)
        return 2
    try:
        record = source.stream_record(conn, args.room, args.stream)
        stream = args.stream or (record.id if record else None)
        if stream is None:
            print(f"livehub report: no stream in room {args.room!r}", file=err)
            return 2
        count, _ = source.stream_state(conn, args.room, stream)
        if record is None and count == 0:
            print(f"livehub report: no stream {stream!r} in room {args.room!r}", file=err)
            return 2
        renderer = export.html_renderer() if args.format == "html" else None
        if args.format == "html" and renderer is None:
            print("livehub report: HTML reports are not installed here", file=err)
            return 2
        progress = progress_bar(count, err) if count > source.PROGRESS_EVERY else None
        report = source.build_from_file(
            conn, args.room, stream, now=time.time(), record=record, progress=progress
        )
    finally:
        conn.close()
    if progress is not None and report.meta.event_count < count:
        err.write("\n")  # fewer events than counted (some were purged meanwhile)
    if args.format == "json":
        body = export.to_json(report)
    elif args.format == "csv":
        body = export.viewers_csv(report)
    else:
        assert renderer is not None
        body = renderer[0](report, args.lang).encode("utf-8")
    if args.output == "-":
        sys.stdout.buffer.write(body)
        sys.stdout.flush()
    else:
        Path(args.output).write_bytes(body)
        print(
            f"wrote {args.output}: stream {stream}, {report.meta.event_count:,} events, "
            f"{report.summary.unique_viewers:,} viewers",
            file=err,
        )
    return 0
