"""The HTML report's summary tiles and its timeline: viewers, messages and likes
per minute with the stream's markers, and retention."""

from __future__ import annotations

from collections.abc import Sequence

from livehub.reports.html_charts import (
    LIKES_COLOR,
    MARKER_CLASS,
    MESSAGES_COLOR,
    RETENTION_COLOR,
    VIEWERS_COLOR,
    bar_chart,
    line_chart,
    marker_family,
)
from livehub.reports.html_format import Text, esc, fmt_int, fmt_num, fmt_offset, fmt_pct, tile
from livehub.reports.model import Marker, Report


def summary_section(report: Report, t: Text) -> list[str]:
    s = report.summary
    start = report.meta.started_at
    peak_hint = t("t.peak_at", at=fmt_offset(s.peak_at - start)) if s.peak_at is not None else ""
    lift = s.lift
    tiles = [
        tile(t("t.duration"), esc(t.duration(s.duration_seconds))),
        tile(t("t.unique"), fmt_int(s.unique_viewers)),
        tile(t("t.peak"), fmt_int(s.peak_viewers), peak_hint),
        tile(t("t.average"), fmt_num(s.average_viewers)),
        tile(
            t("t.watch"),
            esc(t.duration(s.average_watch_seconds)),
            t("t.watch_total", total=t.duration(s.total_watch_seconds)),
        ),
        tile(t("t.messages"), fmt_int(s.chat_messages)),
        tile(t("t.likes"), fmt_int(s.likes)),
        tile(t("t.questions"), f"{fmt_int(s.questions_asked)} / {fmt_int(s.questions_answered)}"),
        tile(t("t.turnout"), fmt_pct(s.poll_turnout), t("t.polls", n=s.polls, votes=s.poll_votes)),
        tile(
            t("t.quiz"),
            f"{fmt_pct(s.quiz_participation)} / {fmt_pct(s.quiz_accuracy)}",
            t("t.quiz_answers", n=s.quiz_answers),
        ),
        tile(t("t.draws"), fmt_int(s.draw_entries), t("t.draws_n", n=s.draws)),
        tile(
            t("t.offers"),
            f"{fmt_int(s.offer_clicks)} / {fmt_pct(s.offer_conversion)}",
            t("t.offers_n", n=s.offers),
        ),
        tile(
            t("t.engagement"),
            fmt_num(s.engagement_rate, 2),
            t("t.engagement_hint", n=fmt_int(s.interactions), m=fmt_num(s.watch_minutes)),
        ),
        tile(
            t("t.lift"),
            "—" if lift.lift is None else f"{lift.lift:.2f}×",
            t(
                "t.lift_hint",
                a=fmt_pct(lift.engaged_conversion),
                b=fmt_pct(lift.other_conversion),
            ),
        ),
        tile(t("t.sampled"), fmt_int(s.sampled_away)),
        tile(t("t.moderation"), fmt_int(s.moderation_actions)),
    ]
    return [f'<section><h2>{t("summary")}</h2><div class="tiles">', *tiles, "</div></section>"]


def timeline_section(report: Report, t: Text) -> list[str]:
    minutes = report.timeline.minutes
    markers = report.timeline.markers
    unit = t("min")
    out = [f"<section><h2>{t('timeline')}</h2>"]
    if not minutes:
        out.append(f'<p class="muted">{t("no_data")}</p></section>')
        return out
    out.append(
        f'<div class="card"><h3>{t("c.viewers")}</h3>'
        + line_chart(
            [m.peak_viewers for m in minutes],
            label=t("c.viewers"),
            color=VIEWERS_COLOR,
            minute=unit,
            markers=markers,
        )
        + _marker_legend(markers, report.meta.started_at, t)
        + "</div>"
    )
    out.append(
        f'<div class="card"><h3>{t("c.messages")}</h3>'
        + bar_chart(
            [m.messages for m in minutes],
            label=t("c.messages"),
            color=MESSAGES_COLOR,
            minute=unit,
            markers=markers,
        )
        + f"<h3>{t('c.likes')}</h3>"
        + bar_chart(
            [m.likes for m in minutes],
            label=t("c.likes"),
            color=LIKES_COLOR,
            minute=unit,
            markers=markers,
        )
        + "</div>"
    )
    retention = report.retention
    out.append(
        f'<div class="card"><h3>{t("c.retention")}</h3>'
        f'<p class="muted small">{t("c.retention_hint")}</p>'
        + line_chart(
            retention.shares,
            label=t("c.retention"),
            color=RETENTION_COLOR,
            minute=unit,
            y_max=1.0,
            y_text=lambda v: f"{v * 100:.0f}%",
        )
        + "<p>"
        + t(
            "c.early",
            n=fmt_int(retention.early_viewers),
            d=t.duration(retention.early_average_watch_seconds),
        )
        + "</p></div></section>"
    )
    return out


def _marker_legend(markers: Sequence[Marker], start: float, t: Text) -> str:
    if not markers:
        return ""
    items = []
    for number, marker in enumerate(markers, 1):
        css = MARKER_CLASS.get(marker_family(marker.kind), ("", ""))[0]
        items.append(
            f'<li><span class="badge {css}">{number}</span>'
            f"{fmt_offset(marker.offset_seconds)} · {t('m.' + marker.kind)} · "
            f"{esc(marker.label)}</li>"
        )
    return f'<h3>{t("markers")}</h3><ol class="markers">{"".join(items)}</ol>'
