"""The HTML report's people: the per-viewer table (the most active
:data:`MAX_VIEWER_ROWS`; the CSV export has everyone), the host and moderators,
and the segments (each naming its first :data:`MAX_SEGMENT_NAMES` viewers)."""

from __future__ import annotations

from typing import Final

from livehub.reports.html_format import Text, esc, fmt_int, fmt_since, table, tile
from livehub.reports.model import Report

MAX_VIEWER_ROWS: Final = 500
MAX_SEGMENT_NAMES: Final = 40


def viewers_section(report: Report, t: Text) -> list[str]:
    rows = report.viewers
    start = report.meta.started_at
    shown = rows[:MAX_VIEWER_ROWS]
    out = [f'<section class="page"><h2>{t("viewers")}</h2>']
    if not rows:
        out.append(f'<p class="muted">{t("no_data")}</p>')
    else:
        if len(rows) > len(shown):
            out.append(
                f"<p>{t('viewers_note', shown=fmt_int(len(shown)), total=fmt_int(len(rows)))}</p>"
            )
        stayed = t("v.stayed")
        body = [
            "<tr>"
            f'<td class="n">{i}</td>'
            f'<td class="name">{esc(v.name)}</td>'
            f'<td class="pid">{esc(v.pid)}</td>'
            f'<td class="n">{fmt_since(v.first_join, start)}</td>'
            '<td class="n">'
            f"{stayed if v.last_leave is None else fmt_since(v.last_leave, start)}</td>"
            f'<td class="n">{esc(t.duration(v.watch_seconds))}</td>'
            f'<td class="n">{v.messages:,}</td>'
            f'<td class="n">{v.likes:,}</td>'
            f'<td class="n">{v.votes:,}</td>'
            f'<td class="n">{v.answers:,} ({v.correct_answers:,})</td>'
            f'<td class="n">{v.quiz_score:,}</td>'
            f'<td class="n">{v.questions:,}</td>'
            f'<td class="n">{v.upvotes:,}</td>'
            f'<td class="n">{v.draw_entries:,} / {v.draw_wins:,}</td>'
            f'<td class="n">{v.offer_clicks:,}</td>'
            f'<td class="n">{v.activity_score:.1f}</td>'
            "</tr>"
            for i, v in enumerate(shown, 1)
        ]
        head = [
            (t("v.rank"), True),
            (t("v.name"), False),
            (t("v.pid"), False),
            (t("v.joined"), True),
            (t("v.left"), True),
            (t("v.watch"), True),
            (t("v.messages"), True),
            (t("v.likes"), True),
            (t("v.votes"), True),
            (t("v.answers"), True),
            (t("v.score"), True),
            (t("v.questions"), True),
            (t("v.upvotes"), True),
            (t("v.draws"), True),
            (t("v.clicks"), True),
            (t("v.activity"), True),
        ]
        out.append(table(head, body, "viewers"))
    if report.staff:
        out.append(f"<h3>{t('staff')}</h3>")
        staff_rows = [
            "<tr>"
            f'<td class="name">{esc(s.name)}</td>'
            f"<td>{t('role.' + s.role) if s.role in ('host', 'moderator') else esc(s.role)}</td>"
            f'<td class="pid">{esc(s.pid)}</td>'
            f'<td class="n">{esc(t.duration(s.watch_seconds))}</td>'
            f'<td class="n">{s.messages:,}</td>'
            f'<td class="n">{s.moderation_actions:,}</td>'
            "</tr>"
            for s in report.staff
        ]
        head = [
            (t("v.name"), False),
            (t("v.role"), False),
            (t("v.pid"), False),
            (t("v.watch"), True),
            (t("v.messages"), True),
            (t("v.mod_actions"), True),
        ]
        out.append(table(head, staff_rows))
    out.append("</section>")
    return out


def segments_section(report: Report, t: Text) -> list[str]:
    out = [f'<section><h2>{t("segments")}</h2><div class="tiles">']
    for segment in report.segments:
        out.append(tile(t("s." + segment.key), fmt_int(len(segment.viewers))))
    out.append("</div>")
    for segment in report.segments:
        if not segment.viewers:
            continue
        names = "".join(
            f"<li>{esc(p.name)} <span class='muted mono'>{esc(p.pid)}</span></li>"
            for p in segment.viewers[:MAX_SEGMENT_NAMES]
        )
        more = len(segment.viewers) - MAX_SEGMENT_NAMES
        extra = f'<p class="muted">{t("s.more", n=fmt_int(more))}</p>' if more > 0 else ""
        out.append(
            f'<div class="card"><h3>{t("s." + segment.key)} ({fmt_int(len(segment.viewers))})</h3>'
            f'<ul class="people">{names}</ul>{extra}</div>'
        )
    out.append("</section>")
    return out
