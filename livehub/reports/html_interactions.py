"""The HTML report's interactions: polls, quizzes, questions from viewers, prize
draws (with the transcript that lets anyone verify them), offers and moderation.
Offer links are shown as text, never as links."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from livehub.reports.html_charts import CORRECT_COLOR, hbar_chart
from livehub.reports.html_format import (
    LABELS,
    Text,
    esc,
    fmt_int,
    fmt_ms,
    fmt_num,
    fmt_offset,
    fmt_pct,
    fmt_since,
    fmt_utc,
    table,
)
from livehub.reports.model import (
    DrawReport,
    OfferReport,
    PollReport,
    QuestionReport,
    QuizReport,
    Report,
)

MAX_QUESTIONS: Final = 500
MAX_LEADERBOARD: Final = 10
MAX_WORDS: Final = 30


def interactions_section(report: Report, t: Text) -> list[str]:
    i = report.interactions
    out = [f'<section class="page"><h2>{t("interactions")}</h2>']
    out.append(f"<h3>{t('polls')}</h3>")
    out += [_poll(p, t) for p in i.polls] or [f'<p class="muted">{t("none")}</p>']
    out.append(f"<h3>{t('quizzes')}</h3>")
    out += [_quiz(q, t) for q in i.quizzes] or [f'<p class="muted">{t("none")}</p>']
    out.append(f"<h3>{t('questions')}</h3>")
    out.append(_questions(i.questions, report.meta.started_at, t))
    out.append(f"<h3>{t('draws')}</h3>")
    out += [_draw(d, t) for d in i.draws] or [f'<p class="muted">{t("none")}</p>']
    out.append(f"<h3>{t('offers')}</h3>")
    out.append(_offers(i.offers, report.meta.started_at, t))
    out.append(f"<h3>{t('moderation')}</h3>")
    out.append(_moderation(report, t))
    out.append("</section>")
    return out


def _poll(p: PollReport, t: Text) -> str:
    kind = t("p.kind." + p.kind) if ("p.kind." + p.kind) in LABELS["en"] else esc(p.kind)
    flags = f"{kind} · {t('p.anonymous')}" if p.anonymous else kind
    total = sum(o.count for o in p.options)
    parts = [
        f'<div class="card"><p><strong>{esc(p.question)}</strong>'
        f' <span class="muted small">{flags}</span></p>',
        '<p class="muted">'
        + t(
            "p.stats",
            voters=fmt_int(p.voters),
            present=fmt_int(p.present),
            turnout=fmt_pct(p.turnout),
        )
        + "</p>",
    ]
    if p.options:
        rows = [
            (
                o.label,
                float(o.count),
                f"{o.count:,} ({fmt_pct(o.count / total if total else None)})",
            )
            for o in p.options
        ]
        parts.append(hbar_chart(rows, label=esc(p.question)))
    if p.rating_average is not None:
        parts.append(f"<p>{t('p.rating', avg=fmt_num(p.rating_average, 2))}</p>")
    if p.words:
        words = "".join(
            f"<span>{esc(w.word)} <b>{w.count:,}</b></span>" for w in p.words[:MAX_WORDS]
        )
        parts.append(f'<p class="small muted">{t("p.words")}</p><div class="words">{words}</div>')
    if p.held_words:
        parts.append(f'<p class="muted small">{t("p.held_words", n=fmt_int(p.held_words))}</p>')
    parts.append("</div>")
    return "".join(parts)


def _quiz(q: QuizReport, t: Text) -> str:
    parts = [
        f'<div class="card"><p><strong>{esc(q.title)}</strong></p>',
        '<p class="muted">'
        + t(
            "q.stats",
            participants=fmt_int(q.participants),
            answers=fmt_int(q.answers),
            accuracy=fmt_pct(q.accuracy),
        )
        + "</p>",
    ]
    if q.questions:
        rows = [
            (
                f"{qq.index + 1}. {qq.text}",
                qq.accuracy or 0.0,
                f"{fmt_pct(qq.accuracy)} ({qq.correct_answers:,}/{qq.answers:,})",
            )
            for qq in q.questions
        ]
        parts.append(f'<p class="small muted">{t("q.accuracy")}</p>')
        parts.append(hbar_chart(rows, label=t("q.accuracy"), top=1.0, color=CORRECT_COLOR))
        body = [
            "<tr>"
            f'<td class="n">{qq.index + 1}</td>'
            f'<td class="name">{esc(qq.text)}</td>'
            f'<td class="n">{qq.answers:,}</td>'
            f'<td class="n">{qq.correct_answers:,}</td>'
            f'<td class="n">{fmt_pct(qq.accuracy)}</td>'
            f'<td class="n">{fmt_ms(qq.average_response_ms)}</td>'
            "</tr>"
            for qq in q.questions
        ]
        head = [
            (t("v.rank"), True),
            (t("q.question"), False),
            (t("q.answers"), True),
            (t("q.correct"), True),
            (t("q.accuracy_col"), True),
            (t("q.response"), True),
        ]
        parts.append(table(head, body))
    if q.leaderboard:
        body = [
            "<tr>"
            f'<td class="n">{e.rank}</td>'
            f'<td class="name">{esc(e.name)}</td>'
            f'<td class="pid">{esc(e.pid)}</td>'
            f'<td class="n">{e.score:,}</td>'
            f'<td class="n">{e.correct_answers:,}/{e.answers:,}</td>'
            "</tr>"
            for e in q.leaderboard[:MAX_LEADERBOARD]
        ]
        head = [
            (t("v.rank"), True),
            (t("v.name"), False),
            (t("v.pid"), False),
            (t("q.score"), True),
            (t("q.correct"), True),
        ]
        parts.append(f'<p class="small muted">{t("q.leaderboard")}</p>{table(head, body)}')
    parts.append("</div>")
    return "".join(parts)


def _questions(questions: Sequence[QuestionReport], start: float, t: Text) -> str:
    if not questions:
        return f'<p class="muted">{t("none")}</p>'
    shown = sorted(questions, key=lambda q: (-q.votes, q.asked_at))[:MAX_QUESTIONS]
    note = (
        f"<p>{t('qa.more', shown=fmt_int(len(shown)), total=fmt_int(len(questions)))}</p>"
        if len(shown) < len(questions)
        else ""
    )
    yes, no = t("qa.yes"), t("qa.no")
    body = []
    for q in shown:
        who = f"<i>{t('qa.anonymous')}</i>" if q.anonymous or q.name is None else esc(q.name)
        status = t("qa.status." + q.status)
        if q.highlighted:
            status += f" · {t('qa.highlighted')}"
        body.append(
            "<tr>"
            f'<td class="name">{esc(q.text)}</td>'
            f'<td class="name">{who}</td>'
            f'<td class="n">{fmt_offset(q.asked_at - start)}</td>'
            f"<td>{status}</td>"
            f"<td>{yes if q.answered else no}</td>"
            f'<td class="n">{q.votes:,}</td>'
            "</tr>"
        )
    head = [
        (t("qa.text"), False),
        (t("qa.by"), False),
        (t("qa.at"), True),
        (t("qa.status"), False),
        (t("qa.answered"), False),
        (t("qa.votes"), True),
    ]
    return note + table(head, body)


def _rule(rule: dict[str, Any], t: Text) -> str:
    kind = rule.get("kind")
    if kind == "keyword":
        return t("d.rule.keyword", keyword=str(rule.get("keyword", "")))
    if kind == "watched":
        return t("d.rule.watched", m=str(rule.get("minutes", "?")))
    if kind in ("present", "quiz_correct"):
        return t(f"d.rule.{kind}")
    return esc(kind)


def _draw(d: DrawReport, t: Text) -> str:
    winners = ", ".join(
        f"{esc(w.name)} <span class='muted mono'>{esc(w.pid)}</span>" for w in d.winners
    )
    status = (
        t("d.status." + d.status)
        if d.status in ("open", "closed", "committed", "revealed")
        else esc(d.status)
    )
    rows = [
        (t("d.prize"), f"<strong>{esc(d.prize)}</strong>"),
        (t("d.rule"), _rule(d.rule, t)),
        (t("d.status"), status),
        (t("d.entrants"), fmt_int(d.entrants)),
        (t("d.winners_count"), fmt_int(d.winners_count)),
        (t("d.winners"), winners or "—"),
    ]
    parts = [
        '<div class="card"><dl class="kv">',
        "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows),
        "</dl>",
    ]
    tr = d.transcript
    if tr is None:
        parts.append(f'<p class="muted small">{t("d.not_revealed")}</p></div>')
        return "".join(parts)
    proof = [
        (t("d.commitment"), tr.get("commitment")),
        (t("d.entrants_hash"), tr.get("entrants_hash")),
        (t("d.seed_hash"), tr.get("seed_hash")),
        (t("d.seed"), tr.get("seed")),
    ]
    times = [
        (t("d.committed_at"), fmt_utc(_float(tr.get("committed_at")))),
        (t("d.revealed_at"), fmt_utc(_float(tr.get("revealed_at")))),
    ]
    winner_ids = _strings(tr.get("winners"))
    entrants = _strings(tr.get("entrants"))
    parts.append(f'<p><strong>{t("d.transcript")}</strong></p><dl class="kv">')
    parts += [
        f'<dt>{k}</dt><dd class="mono">{esc(v if v is not None else "—")}</dd>' for k, v in proof
    ]
    parts += [f"<dt>{k}</dt><dd>{v}</dd>" for k, v in times]
    parts.append(
        f"<dt>{t('d.winner_ids')}</dt>"
        f'<dd class="mono">{", ".join(esc(w) for w in winner_ids) or "—"}</dd></dl>'
    )
    erased = tr.get("erased_entrants")
    if isinstance(erased, int) and erased > 0:
        parts.append(f'<p class="live small">{t("d.erased", n=fmt_int(erased))}</p>')
    parts.append(f'<p class="muted small">{t("d.verify")}</p>')
    if entrants:
        ids = "\n".join(esc(e) for e in entrants)
        parts.append(
            f"<details><summary>{t('d.entrant_ids', n=fmt_int(len(entrants)))}</summary>"
            f'<pre class="mono">{ids}</pre></details>'
        )
    parts.append("</div>")
    return "".join(parts)


def _strings(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _offers(offers: Sequence[OfferReport], start: float, t: Text) -> str:
    if not offers:
        return f'<p class="muted">{t("none")}</p>'
    body = [
        "<tr>"
        f'<td class="name">{esc(o.title)}</td>'
        f'<td class="mono">{esc(o.url)}</td>'
        f'<td class="n">{fmt_offset(o.pushed_at - start)}</td>'
        f'<td class="n">{fmt_since(o.withdrawn_at, start)}</td>'
        f'<td class="n">{o.clicks:,}</td>'
        f'<td class="n">{fmt_pct(o.conversion)}</td>'
        "</tr>"
        for o in offers
    ]
    head = [
        (t("o.title"), False),
        (t("o.link"), False),
        (t("o.shown"), True),
        (t("o.withdrawn"), True),
        (t("o.clicks"), True),
        (t("o.conversion"), True),
    ]
    rows = [(o.title, float(o.clicks), f"{o.clicks:,} · {fmt_pct(o.conversion)}") for o in offers]
    return f'<div class="card">{hbar_chart(rows, label=t("offers"))}{table(head, body)}</div>'


def _moderation(report: Report, t: Text) -> str:
    m = report.interactions.moderation
    parts = ['<div class="card">']
    if m.by_kind:
        body = [
            f'<tr><td>{_mod_kind(kind, t)}</td><td class="n">{count:,}</td></tr>'
            for kind, count in sorted(m.by_kind.items(), key=lambda kv: (-kv[1], kv[0]))
        ]
        parts.append(table([(t("mod.kind"), False), (t("mod.count"), True)], body))
    else:
        parts.append(f'<p class="muted">{t("none")}</p>')
    parts.append(f"<p>{t('mod.automod', n=fmt_int(m.automod))}</p>")
    people = t("mod.people", muted=fmt_int(m.viewers_muted), banned=fmt_int(m.viewers_banned))
    parts.append(f"<p>{people}</p>")
    if m.by_moderator:
        body = [
            f'<tr><td class="name">{esc(c.name)}</td><td class="pid">{esc(c.pid)}</td>'
            f'<td class="n">{c.actions:,}</td></tr>'
            for c in m.by_moderator
        ]
        parts.append(f'<p class="small muted">{t("mod.by")}</p>')
        parts.append(
            table([(t("v.name"), False), (t("v.pid"), False), (t("mod.count"), True)], body)
        )
    parts.append("</div>")
    return "".join(parts)


def _mod_kind(kind: str, t: Text) -> str:
    key = "mk." + kind
    return t(key) if key in LABELS["en"] else esc(kind)
