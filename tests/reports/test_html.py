"""The HTML report: one self-contained file with SVG charts, English and Chinese,
every viewer- or host-supplied string escaped, no script and no external URL.

The report is built by the real builder from a small scripted event log.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import pytest

from livehub.interactions import draw_proof as proof
from livehub.reports.builder import ReportBuilder
from livehub.reports.html import LABELS, MAX_VIEWER_ROWS, html_headers, render
from livehub.reports.model import Report

START = 1_750_000_000.0
XSS_NAME = '<img src=x onerror="alert(1)">'
XSS_NAME_2 = '"><script>alert(2)</script>'
XSS_QUESTION = "<script>alert('q')</script> why?"
XSS_OPTION = "</text><script>alert(3)</script>"
XSS_PRIZE = "<svg onload=alert(4)>"
XSS_ID = "<i>v-9</i>"
OFFER_URL = "https://shop.example/item?a=1&b=<2>"
HOSTILE = (XSS_NAME, XSS_NAME_2, XSS_QUESTION, XSS_OPTION, XSS_PRIZE, XSS_ID, OFFER_URL)


class Script:
    """Feeds events to a ReportBuilder with increasing ids."""

    def __init__(self, builder: ReportBuilder) -> None:
        self.builder = builder
        self.next_id = 0

    def __call__(self, minute: float, kind: str, actor: str, **data: Any) -> None:
        self.next_id += 1
        self.builder.add(self.next_id, START + minute * 60, kind, actor, data)


def scripted_report(extra_viewers: int = 0) -> Report:
    b = ReportBuilder("room-1", "s_abc", START)
    ev = Script(b)
    ev(0, "stream.started", "host", stream_id="s_abc")
    ev(0, "presence.join", "host", name="Host", role="host")
    viewers = {"v-1": XSS_NAME, "v-2": XSS_NAME_2, "v-3": "A & B", XSS_ID: "Ivy"}
    for i, (vid, name) in enumerate(viewers.items()):
        ev(0.2 + i / 10, "presence.join", vid, name=name, role="viewer")
    for i in range(extra_viewers):
        ev(1 + i / 1000, "presence.join", f"x{i}", name=f"Extra {i}", role="viewer")
    ev(1, "chat.message", "v-1", name=XSS_NAME, role="viewer", text="hi", offset_ms=60000)
    ev(1.5, "chat.message", "v-2", name=XSS_NAME_2, role="viewer", text="yo", offset_ms=90000)
    ev(2, "like", "v-3", count=5)
    poll = {
        "id": "p1",
        "question": "Best <b>fruit</b>?",
        "kind": "single",
        "options": ["Apple", XSS_OPTION],
        "anonymous": False,
    }
    ev(2, "poll.created", "host", poll=poll)
    ev(2.1, "poll.opened", "host", poll_id="p1", closes_at=None)
    ev(2.5, "poll.vote", "v-1", poll_id="p1", choices=[1])
    ev(2.6, "poll.vote", "v-2", poll_id="p1", choices=[0])
    ev(3, "poll.closed", "host", poll_id="p1", by="staff")
    quiz = {
        "id": "q1",
        "title": "Trivia <i>",
        "questions": [
            {"text": "2+2?", "options": ["3", "4"], "correct": [1]},
            {"text": "Capital of <France>?", "options": ["Paris", "Rome"], "correct": [0]},
        ],
    }
    ev(3, "quiz.created", "host", quiz=quiz)
    ev(3.1, "quiz.question_opened", "host", quiz_id="q1", index=0)
    ev(3.2, "quiz.answer", "v-1", quiz_id="q1", index=0, choices=[1], correct=True, points=10)
    ev(3.3, "quiz.answer", "v-2", quiz_id="q1", index=0, choices=[0], correct=False, points=0)
    ev(4, "quiz.question_opened", "host", quiz_id="q1", index=1)
    ev(4.2, "quiz.answer", "v-1", quiz_id="q1", index=1, choices=[0], correct=True, points=8)
    ev(5, "qa.asked", "v-2", text=XSS_QUESTION, name=XSS_NAME_2, anonymous=False)
    ev(5.1, "qa.asked", "v-3", text="secret?", name="A & B", anonymous=True)
    ev(5.2, "qa.upvote", "v-1", question_id=ev.next_id - 1)
    ev(5.5, "qa.answered", "host", question_id=ev.next_id - 2)
    ev(6, "draw.created", "host", draw_id="d1", prize=XSS_PRIZE, rule={"kind": "present"})
    ev(6.1, "draw.entered", "v-1", draw_id="d1", name=XSS_NAME)
    ev(6.2, "draw.entered", XSS_ID, draw_id="d1", name="Ivy")
    entrants = proof.normalise_entrants(["v-1", XSS_ID])
    names = {"v-1": XSS_NAME, XSS_ID: "Ivy"}
    ev(7, "draw.closed", "host", draw_id="d1", entrants=entrants, names=names)
    transcript = proof.transcript(
        room="room-1",
        draw_id="d1",
        prize=XSS_PRIZE,
        rule={"kind": "present"},
        winners_count=1,
        entrants=entrants,
        seed_hex="ab" * 32,
        committed_at=START + 7.5 * 60,
        revealed_at=START + 8 * 60,
    )
    ev(8, "draw.revealed", "host", draw_id="d1", transcript=transcript)
    offer = {"offer_id": "o1", "title": "Mug <deal>", "url": OFFER_URL, "created_at": START}
    ev(9, "offer.pushed", "host", **offer)
    ev(9.5, "offer.click", "v-3", offer_id="o1")
    ev(10, "mod.mute", "host", viewer_id="v-2", seconds=60, until=START + 660)
    ev(10.5, "automod.block", "automod", viewer_id="v-1", rule_id="r1", text="bad")
    for vid in viewers:
        ev(11, "presence.leave", vid)
    ev(12, "stream.stopped", "host", stream_id="s_abc")
    return b.finish(generated_at=START + 12 * 60 + 5)


class Tags(HTMLParser):
    """Every start tag with its attributes, as a browser's tokenizer sees them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(page: str) -> Tags:
    parser = Tags()
    parser.feed(page)
    parser.close()
    return parser


@pytest.fixture(scope="module")
def report() -> Report:
    return scripted_report()


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_charts_and_sections_are_there(report: Report, lang: str) -> None:
    page = render(report, lang)
    tags = parse(page)
    names = [tag for tag, _ in tags.tags]
    # viewers, messages, likes, retention, poll results, quiz accuracy, offers
    assert names.count("svg") >= 7
    assert names.count("polyline") == 2  # viewers and retention lines
    assert "rect" in names and "path" in names
    assert re.search(r'<html lang="' + re.escape(lang) + '">', page)
    labels = LABELS[lang]
    for key in ("summary", "c.viewers", "c.retention", "viewers", "segments", "polls", "draws"):
        assert labels[key] in page, key
    # the timeline markers: poll open/close, two quiz questions, draw open/close/reveal, offer
    assert len(report.timeline.markers) == 8
    assert page.count('class="badge k-') == 8
    assert "@media print" in page and "break-before: page" in page


def test_english_and_chinese_labels_differ(report: Report) -> None:
    assert set(LABELS["en"]) == set(LABELS["zh-CN"])
    en, zh = render(report, "en"), render(report, "zh-CN")
    assert "Engagement rate" in en and "Engagement rate" not in zh
    assert "互动率" in zh and "观众明细" in zh and "互动率" not in en
    assert render(report, "zh") == zh  # any zh tag is Chinese
    assert render(report, "fr") == en  # anything else English


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_hostile_strings_are_escaped(report: Report, lang: str) -> None:
    page = render(report, lang)
    for raw in HOSTILE:
        assert raw not in page, raw
    tags = parse(page)
    assert all(tag not in ("script", "img", "iframe", "object", "embed") for tag, _ in tags.tags)
    for tag, attrs in tags.tags:
        for name, _ in attrs:
            assert not name.startswith("on"), (tag, attrs)
    # ... and shown as text, exactly as typed
    text = "".join(tags.text)
    for shown in (XSS_NAME, XSS_NAME_2, XSS_QUESTION, XSS_PRIZE, XSS_ID, OFFER_URL, "A & B"):
        assert shown in text, shown
    assert "&amp; B" in page
    # the anonymous question is listed without its author
    assert "secret?" in text


def test_no_script_and_nothing_external(report: Report) -> None:
    page = render(report, "en")
    assert "<script" not in page.lower()
    tags = parse(page)
    for tag, attrs in tags.tags:
        for name, value in attrs:
            assert name not in ("src", "href", "xlink:href", "srcset", "action", "poster"), tag
            assert "http" not in (value or "") or name == "content", (tag, name, value)
    assert "@import" not in page and "url(" not in page
    meta_csp = [dict(a) for t, a in tags.tags if t == "meta" and dict(a).get("http-equiv")]
    assert meta_csp and "default-src 'none'" in str(meta_csp[0]["content"])
    headers = html_headers()
    csp = headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "style-src 'unsafe-inline'" in csp
    assert "script-src" not in csp and "img-src data:" in csp
    assert headers["Content-Type"].startswith("text/html")


def test_summary_numbers_and_draw_transcript(report: Report) -> None:
    page = render(report, "en")
    text = "".join(parse(page).text)
    s = report.summary
    assert s.unique_viewers == 4
    assert "Unique viewers4" in text.replace("\n", "")
    transcript = report.interactions.draws[0].transcript
    assert transcript is not None
    assert transcript["commitment"] in page and transcript["seed"] in page
    assert proof.verify(transcript) == (True, "ok")
    assert "Mug <deal>" in text and "Trivia <i>" in text


def test_big_viewer_tables_are_capped() -> None:
    report = scripted_report(extra_viewers=MAX_VIEWER_ROWS + 100)
    page = render(report, "en")
    total = len(report.viewers)
    assert total > MAX_VIEWER_ROWS
    assert f"The {MAX_VIEWER_ROWS} most active of {total:,} viewers" in page
    table = page[page.index('<table class="viewers">') :]
    table = table[: table.index("</table>")]
    assert table.count("<tr>") == MAX_VIEWER_ROWS + 1  # and the head row
    zh = render(report, "zh-CN")
    assert f"仅列出最活跃的 {MAX_VIEWER_ROWS} 位观众" in zh
