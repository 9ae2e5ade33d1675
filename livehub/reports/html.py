"""The engagement report as one self-contained, printable HTML file.

No script, no external resource: styles are inline and every chart is SVG drawn
here. The file is meant to be downloaded and opened locally; when livehub serves
it, send it with :func:`html_headers` (a CSP of its own that allows the inline
styles and nothing else). Every string that came from a viewer or a host (names,
questions, poll options, prizes, offer titles and links) goes through
``html.escape``; offer links are shown as text, never as links.

Labels come from :data:`LABELS` (English and Simplified Chinese). Long lists are
bounded so a report of a 10,000-viewer stream stays a few hundred kilobytes: the
per-viewer table shows the most active :data:`MAX_VIEWER_ROWS` (the CSV export has
everyone) and each segment names its first
:data:`~livehub.reports.html_people.MAX_SEGMENT_NAMES` viewers.

This module is the page shell (headers, styles, the header and the order of the
sections). The rest is one module each: ``html_format`` (labels, numbers and
times, tiles and tables), ``html_charts`` (the SVG charts), and the sections in
``html_summary`` (summary, timeline, retention), ``html_people`` (viewers, staff,
segments) and ``html_interactions`` (polls, quizzes, Q&A, draws, offers,
moderation).
"""

from __future__ import annotations

from typing import Final

from livehub.reports.html_format import LABELS as LABELS  # re-exported: imported from here
from livehub.reports.html_format import Text, esc, fmt_int, fmt_utc
from livehub.reports.html_interactions import interactions_section
from livehub.reports.html_people import MAX_VIEWER_ROWS as MAX_VIEWER_ROWS  # re-exported
from livehub.reports.html_people import segments_section, viewers_section
from livehub.reports.html_summary import summary_section, timeline_section
from livehub.reports.model import Report

CSP: Final = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
# Delivered inside the file too, so a downloaded copy is as locked down
# (frame-ancestors is not allowed in a meta tag).
META_CSP: Final = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def html_headers() -> dict[str, str]:
    """The headers to serve a rendered report with (its own CSP: no script at all)."""
    return {
        "Content-Type": "text/html; charset=utf-8",
        "Content-Security-Policy": CSP,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }


STYLE: Final = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #f4f5f7; color: #1d2129; font: 14px/1.5 system-ui,
  -apple-system, "Segoe UI", "PingFang SC", "Hiragino Sans GB", "Microsoft YaHei",
  "Noto Sans CJK SC", "Noto Sans SC", sans-serif; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 20px 48px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 20px; margin: 32px 0 12px; padding-bottom: 4px; border-bottom: 2px solid #dfe3e8; }
h3 { font-size: 16px; margin: 20px 0 8px; }
p { margin: 6px 0; }
.muted { color: #5c6370; }
.small { font-size: 12px; }
.live { background: #fff4e5; border: 1px solid #f0b45b; padding: 8px 12px; border-radius: 6px; }
.meta { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 12px 0; }
.meta dt { color: #5c6370; }
.meta dd { margin: 0; overflow-wrap: anywhere; }
.tiles { display: grid; grid-template-columns: repeat(auto-fill, minmax(190px, 1fr)); gap: 10px; }
.tile { background: #fff; border: 1px solid #dfe3e8; border-radius: 8px; padding: 10px 12px;
  break-inside: avoid; }
.tile .k { color: #5c6370; font-size: 12px; }
.tile .v { font-size: 22px; font-weight: 600; font-variant-numeric: tabular-nums; }
.tile .h { color: #5c6370; font-size: 12px; }
.card { background: #fff; border: 1px solid #dfe3e8; border-radius: 8px; padding: 12px 14px;
  margin: 10px 0; break-inside: avoid; }
.chart { width: 100%; height: auto; display: block; }
.chart text { font-size: 11px; fill: #5c6370; }
.chart .lbl { fill: #1d2129; font-size: 12px; }
.chart .val { fill: #1d2129; font-size: 12px; font-weight: 600; }
.chart .mk-n { fill: #fff; font-size: 10px; font-weight: 700; }
ol.markers { margin: 6px 0 0; padding-left: 0; list-style: none; columns: 2 320px; }
ol.markers li { break-inside: avoid; margin: 2px 0; }
.badge { display: inline-block; min-width: 20px; padding: 0 5px; border-radius: 10px;
  color: #fff; font-size: 11px; font-weight: 700; text-align: center; margin-right: 4px; }
.k-poll { background: #7048e8; } .k-quiz { background: #0ca678; }
.k-draw { background: #e8590c; } .k-offer { background: #1c7ed6; }
table { width: 100%; border-collapse: collapse; background: #fff;
  font-variant-numeric: tabular-nums; }
th, td { padding: 4px 8px; border-bottom: 1px solid #e9ecef; text-align: left;
  vertical-align: top; }
th { background: #f1f3f5; font-weight: 600; font-size: 12px; }
td.n, th.n { text-align: right; white-space: nowrap; }
td.name { overflow-wrap: anywhere; min-width: 8em; max-width: 260px; }
td.pid { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace;
  font-size: 12px; white-space: nowrap; }
tbody tr:nth-child(even) { background: #fafbfc; }
.scroll { overflow-x: auto; }
ul.people { margin: 4px 0; padding-left: 18px; columns: 3 200px; }
.mono { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace;
  font-size: 12px; overflow-wrap: anywhere; }
dl.kv { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 6px 0; }
dl.kv dt { color: #5c6370; }
dl.kv dd { margin: 0; overflow-wrap: anywhere; }
.words { display: flex; flex-wrap: wrap; gap: 4px 10px; }
.words span { background: #f1f3f5; border-radius: 4px; padding: 0 6px; }
footer { margin-top: 32px; color: #5c6370; font-size: 12px; }
@media print {
  body { background: #fff; font-size: 11px; }
  main { max-width: none; padding: 0; }
  .tile, .card { border-color: #ccc; }
  h2 { break-after: avoid; }
  h3 { break-after: avoid; }
  section.page { break-before: page; }
  .scroll { overflow: visible; }
  tr, .chart, .card, .tile { break-inside: avoid; }
  thead { display: table-header-group; }
  details > summary { list-style: none; }
}
@page { margin: 14mm; }
"""


def render(report: Report, lang: str = "en") -> str:
    """The whole report as one HTML document (a str)."""
    t = Text(lang)
    meta = report.meta
    parts: list[str] = [
        "<!doctype html>",
        f'<html lang="{t.lang}"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{META_CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="referrer" content="no-referrer">',
        f"<title>{t('title')} · {esc(meta.room)} · {esc(meta.stream)}</title>",
        f"<style>{STYLE}</style></head><body><main>",
        f"<header><h1>{t('title')}</h1>",
        _meta(report, t),
        "</header>",
    ]
    parts += summary_section(report, t)
    parts += timeline_section(report, t)
    parts += viewers_section(report, t)
    parts += segments_section(report, t)
    parts += interactions_section(report, t)
    parts.append(f"<footer><p>{t('footer')}</p></footer></main></body></html>")
    return "".join(parts)


def _meta(report: Report, t: Text) -> str:
    m = report.meta
    rows = [
        (t("room"), esc(m.room)),
        (t("stream"), esc(m.stream)),
        (t("started"), fmt_utc(m.started_at)),
        (t("ended"), fmt_utc(m.ended_at)),
        (t("generated"), fmt_utc(m.generated_at)),
        (t("events"), fmt_int(m.event_count)),
        (t("events_hash"), f'<span class="mono">{esc(m.events_hash)}</span>'),
    ]
    body = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows)
    live = f'<p class="live">{t("live")}</p>' if m.live else ""
    return f'{live}<dl class="meta">{body}</dl><p class="muted small">{t("times_utc")}</p>'
