"""A report as JSON, and its tables as CSV (UTF-8 with a BOM, so spreadsheet
programs read names in any script correctly; a header row; Python's csv module).

Times in CSV are UTC, ISO 8601 (``2025-01-31T20:15:00Z``); empty when unknown
(``last_leave`` is empty for a viewer still there at the end).

Names are the viewers' own text: one starting with ``=``, ``+``, ``-``, ``@``, a
tab or a carriage return is written with a leading ``'`` so no spreadsheet runs
it as a formula (CSV injection).
"""

from __future__ import annotations

import csv
import importlib
import io
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final

import msgspec

from livehub.reports.model import Report, Segment

BOM: Final = "\ufeff"
HTML_MODULE: Final = "livehub.reports.html"
VIEWER_COLUMNS: Final = (
    "pid",
    "name",
    "first_join",
    "last_leave",
    "watch_seconds",
    "messages",
    "likes",
    "votes",
    "answers",
    "correct_answers",
    "quiz_score",
    "questions",
    "upvotes",
    "draw_entries",
    "draw_wins",
    "offer_clicks",
    "activity_score",
)
SEGMENT_COLUMNS: Final = ("pid", "name")

_encoder = msgspec.json.Encoder()


def to_json(report: Report) -> bytes:
    return _encoder.encode(report)


def from_json(data: bytes | str) -> Report:
    return msgspec.json.decode(data, type=Report)


def iso(ts: float | None) -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


_FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")


def cell(text: str) -> str:
    """A text cell a spreadsheet will not evaluate."""
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _csv(header: tuple[str, ...], rows: list[list[object]]) -> bytes:
    out = io.StringIO()
    out.write(BOM)
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def viewers_csv(report: Report) -> bytes:
    """One row per viewer (staff are not in it), in the report's order."""
    rows: list[list[object]] = [
        [
            v.pid,
            cell(v.name),
            iso(v.first_join),
            iso(v.last_leave),
            f"{v.watch_seconds:.1f}",
            v.messages,
            v.likes,
            v.votes,
            v.answers,
            v.correct_answers,
            v.quiz_score,
            v.questions,
            v.upvotes,
            v.draw_entries,
            v.draw_wins,
            v.offer_clicks,
            f"{v.activity_score:.1f}",
        ]
        for v in report.viewers
    ]
    return _csv(VIEWER_COLUMNS, rows)


def segment_csv(segment: Segment) -> bytes:
    return _csv(SEGMENT_COLUMNS, [[p.pid, cell(p.name)] for p in segment.viewers])


def filename(report: Report, ext: str, part: str = "report") -> str:
    """A download name: ``<room>-<stream>-<part>.<ext>`` (ids are [a-z0-9_-])."""
    return f"{report.meta.room}-{report.meta.stream}-{part}.{ext}"


def html_renderer() -> tuple[Callable[[Report, str], str], dict[str, str]] | None:
    """``livehub.reports.html.render(report, lang)`` and the headers to serve its
    output with, if that module is installed (None otherwise)."""
    try:
        module = importlib.import_module(HTML_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != HTML_MODULE:
            raise
        return None
    render: Callable[[Report, str], str] = module.render
    headers_of = getattr(module, "html_headers", None)
    headers: dict[str, str] = dict(headers_of()) if callable(headers_of) else {}
    return render, headers
