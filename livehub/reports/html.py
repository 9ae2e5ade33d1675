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
everyone) and each segment names its first :data:`MAX_SEGMENT_NAMES` viewers.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from html import escape
from typing import Any, Final

from livehub.reports.model import (
    DrawReport,
    Marker,
    OfferReport,
    PollReport,
    QuestionReport,
    QuizReport,
    Report,
)

MAX_VIEWER_ROWS: Final = 500
MAX_SEGMENT_NAMES: Final = 40
MAX_QUESTIONS: Final = 500
MAX_LEADERBOARD: Final = 10
MAX_WORDS: Final = 30
LABEL_CHARS: Final = 38
LANGS: Final = ("en", "zh-CN")

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


LABELS: Final[dict[str, dict[str, str]]] = {
    "en": {
        "title": "Engagement report",
        "live": "Preview: this stream is still live; the numbers will change.",
        "room": "Room",
        "stream": "Stream",
        "started": "Started",
        "ended": "Ended",
        "generated": "Generated",
        "events": "Events",
        "events_hash": "Events hash (sha256)",
        "times_utc": "Times are UTC; offsets are from the start of the stream.",
        "summary": "Summary",
        "t.duration": "Duration",
        "t.unique": "Unique viewers",
        "t.peak": "Peak concurrent viewers",
        "t.peak_at": "at {at}",
        "t.average": "Average concurrent viewers",
        "t.watch": "Average watch time",
        "t.watch_total": "{total} in total",
        "t.messages": "Messages",
        "t.likes": "Likes",
        "t.questions": "Questions asked / answered",
        "t.turnout": "Poll turnout",
        "t.polls": "polls: {n} · votes: {votes}",
        "t.quiz": "Quiz participation / accuracy",
        "t.quiz_answers": "answers: {n}",
        "t.draws": "Draw entries",
        "t.draws_n": "draws: {n}",
        "t.offers": "Offer clicks / conversion",
        "t.offers_n": "offers: {n}",
        "t.engagement": "Engagement rate",
        "t.engagement_hint": "{n} interactions in {m} watch minutes",
        "t.lift": "Lift",
        "t.lift_hint": "offer conversion of engaged viewers {a} vs others {b}",
        "t.sampled": "Danmaku sampled away",
        "t.moderation": "Moderation actions",
        "timeline": "Timeline",
        "c.viewers": "Concurrent viewers per minute (the most within each minute)",
        "c.messages": "Messages per minute",
        "c.likes": "Likes per minute",
        "c.retention": "Retention",
        "c.retention_hint": "Share of all unique viewers watching during each minute.",
        "c.early": "Viewers who joined in the first 5 minutes: {n}, average watch time {d}.",
        "markers": "Markers",
        "m.poll.opened": "Poll opened",
        "m.poll.closed": "Poll closed",
        "m.quiz.question": "Quiz question",
        "m.draw.created": "Draw opened",
        "m.draw.closed": "Draw entries closed",
        "m.draw.revealed": "Draw winners",
        "m.offer.pushed": "Offer shown",
        "m.offer.withdrawn": "Offer withdrawn",
        "min": "min",
        "no_data": "No data.",
        "none": "None.",
        "viewers": "Viewers",
        "viewers_note": (
            "The {shown} most active of {total} viewers; the CSV export lists all of them."
        ),
        "v.rank": "#",
        "v.name": "Name",
        "v.pid": "Pseudonym",
        "v.joined": "Joined",
        "v.left": "Left",
        "v.watch": "Watch time",
        "v.messages": "Messages",
        "v.likes": "Likes",
        "v.votes": "Votes",
        "v.answers": "Quiz answers (correct)",
        "v.score": "Quiz score",
        "v.questions": "Questions",
        "v.upvotes": "Upvotes",
        "v.draws": "Draw entries / wins",
        "v.clicks": "Offer clicks",
        "v.activity": "Activity (0-10)",
        "v.role": "Role",
        "v.mod_actions": "Moderation actions",
        "v.stayed": "stayed",
        "staff": "Host and moderators",
        "role.host": "Host",
        "role.moderator": "Moderator",
        "segments": "Segments",
        "s.engaged_no_click": "Interacted but never clicked an offer",
        "s.clicked_offer": "Clicked an offer",
        "s.left_early": "Left within 5 minutes",
        "s.all_quiz": "Answered every quiz question",
        "s.unanswered": "Asked a question that was never answered",
        "s.more": "… and {n} more (see the JSON export)",
        "interactions": "Interactions",
        "polls": "Polls",
        "p.kind.single": "single choice",
        "p.kind.multi": "multiple choice",
        "p.kind.rating": "rating",
        "p.kind.words": "word cloud",
        "p.anonymous": "anonymous",
        "p.stats": "{voters} voters of {present} viewers present · turnout {turnout}",
        "p.rating": "Average rating: {avg}",
        "p.words": "Most given words",
        "p.held_words": "{n} answers held for review are left out.",
        "quizzes": "Quizzes",
        "q.stats": "{participants} participants · {answers} answers · accuracy {accuracy}",
        "q.accuracy": "Accuracy per question",
        "q.question": "Question",
        "q.answers": "Answers",
        "q.correct": "Correct",
        "q.response": "Average response",
        "q.accuracy_col": "Accuracy",
        "q.leaderboard": "Leaderboard",
        "q.score": "Score",
        "questions": "Questions from viewers",
        "qa.text": "Question",
        "qa.by": "Asked by",
        "qa.at": "Asked",
        "qa.status": "Status",
        "qa.answered": "Answered",
        "qa.votes": "Votes",
        "qa.anonymous": "anonymous",
        "qa.yes": "yes",
        "qa.no": "no",
        "qa.status.open": "shown",
        "qa.status.pending": "awaiting approval",
        "qa.status.rejected": "rejected",
        "qa.status.dismissed": "dismissed",
        "qa.highlighted": "highlighted",
        "qa.more": "The {shown} most voted of {total} questions; the JSON export has all.",
        "draws": "Prize draws",
        "d.prize": "Prize",
        "d.rule": "Rule",
        "d.rule.present": "everyone present",
        "d.rule.keyword": "chat keyword “{keyword}”",
        "d.rule.quiz_correct": "a correct quiz answer",
        "d.rule.watched": "watched at least {m} min",
        "d.status": "Status",
        "d.status.open": "open",
        "d.status.closed": "entries closed",
        "d.status.committed": "committed",
        "d.status.revealed": "revealed",
        "d.entrants": "Entrants",
        "d.winners": "Winners",
        "d.winners_count": "Winners drawn",
        "d.transcript": "Transcript",
        "d.commitment": "Commitment",
        "d.entrants_hash": "entrants_hash",
        "d.seed_hash": "seed_hash",
        "d.seed": "Seed",
        "d.committed_at": "Committed at",
        "d.revealed_at": "Revealed at",
        "d.winner_ids": "Winner ids",
        "d.entrant_ids": "All {n} entrant ids",
        "d.verify": (
            "Anyone can check this draw from its transcript: the /verify page, or"
            " “livehub verify-draw transcript.json”."
        ),
        "d.erased": (
            "{n} entrant id(s) were erased since the draw; verifying it needs the"
            " original transcript."
        ),
        "d.not_revealed": "Not revealed in this stream.",
        "offers": "Offers",
        "o.title": "Offer",
        "o.link": "Link",
        "o.shown": "Shown",
        "o.withdrawn": "Withdrawn",
        "o.clicks": "Clicks",
        "o.conversion": "Conversion",
        "moderation": "Moderation",
        "mod.kind": "Action",
        "mod.count": "Count",
        "mod.by": "By moderator",
        "mod.automod": "Automatic (room rules): {n}",
        "mod.people": "Viewers muted: {muted} · viewers banned: {banned}",
        "mk.mod.delete": "Messages deleted",
        "mk.mod.mute": "Mutes",
        "mk.mod.unmute": "Unmutes",
        "mk.mod.ban": "Bans",
        "mk.mod.unban": "Unbans",
        "mk.mod.approve": "Held messages approved",
        "mk.mod.reject": "Held messages rejected",
        "mk.mod.slow": "Slow mode changes",
        "mk.mod.pause": "Chat paused / resumed",
        "mk.mod.rule_add": "Rules added",
        "mk.mod.rule_remove": "Rules removed",
        "mk.automod.block": "Blocked by a rule",
        "mk.automod.mute": "Muted by a rule",
        "mk.automod.ban": "Banned by a rule",
        "footer": (
            "Built by livehub from the room's event log. Viewers appear under"
            " pseudonyms that differ in every stream; no IP address is recorded."
        ),
        "dur.s": "{s} s",
        "dur.ms": "{m} min {s} s",
        "dur.hm": "{h} h {m} min",
    },
    "zh-CN": {
        "title": "直播互动数据报告",
        "live": "预览：本场直播仍在进行，数据还会变化。",
        "room": "房间",
        "stream": "直播场次",
        "started": "开始时间",
        "ended": "结束时间",
        "generated": "生成时间",
        "events": "事件数",
        "events_hash": "事件哈希（sha256）",
        "times_utc": "时间均为 UTC；偏移量从直播开始算起。",
        "summary": "概览",
        "t.duration": "直播时长",
        "t.unique": "独立观众",
        "t.peak": "峰值同时在线",
        "t.peak_at": "出现在 {at}",
        "t.average": "平均同时在线",
        "t.watch": "人均观看时长",
        "t.watch_total": "合计 {total}",
        "t.messages": "消息",
        "t.likes": "点赞",
        "t.questions": "提问 / 已回答",
        "t.turnout": "投票参与率",
        "t.polls": "{n} 次投票，{votes} 票",
        "t.quiz": "答题参与率 / 正确率",
        "t.quiz_answers": "{n} 次作答",
        "t.draws": "抽奖参与",
        "t.draws_n": "{n} 次抽奖",
        "t.offers": "商品点击 / 转化率",
        "t.offers_n": "{n} 个商品",
        "t.engagement": "互动率",
        "t.engagement_hint": "{m} 观看分钟内 {n} 次互动",
        "t.lift": "提升倍数",
        "t.lift_hint": "互动观众转化率 {a}，其他观众 {b}",
        "t.sampled": "抽样略过的弹幕",
        "t.moderation": "管理操作",
        "timeline": "时间轴",
        "c.viewers": "每分钟同时在线观众（每分钟内的最高值）",
        "c.messages": "每分钟消息数",
        "c.likes": "每分钟点赞数",
        "c.retention": "留存曲线",
        "c.retention_hint": "每分钟内仍在观看的观众占全部独立观众的比例。",
        "c.early": "前 5 分钟加入的观众：{n} 人，平均观看 {d}。",
        "markers": "时间轴标记",
        "m.poll.opened": "投票开始",
        "m.poll.closed": "投票结束",
        "m.quiz.question": "答题题目",
        "m.draw.created": "抽奖开始",
        "m.draw.closed": "抽奖截止",
        "m.draw.revealed": "抽奖开奖",
        "m.offer.pushed": "商品推送",
        "m.offer.withdrawn": "商品撤下",
        "min": "分钟",
        "no_data": "暂无数据。",
        "none": "无。",
        "viewers": "观众明细",
        "viewers_note": "仅列出最活跃的 {shown} 位观众（共 {total} 位）；CSV 导出包含全部观众。",
        "v.rank": "#",
        "v.name": "昵称",
        "v.pid": "化名 ID",
        "v.joined": "加入",
        "v.left": "离开",
        "v.watch": "观看时长",
        "v.messages": "消息",
        "v.likes": "点赞",
        "v.votes": "投票",
        "v.answers": "答题（答对）",
        "v.score": "答题得分",
        "v.questions": "提问",
        "v.upvotes": "顶问题",
        "v.draws": "抽奖参与 / 中奖",
        "v.clicks": "商品点击",
        "v.activity": "活跃度（0-10）",
        "v.role": "身份",
        "v.mod_actions": "管理操作",
        "v.stayed": "看到结束",
        "staff": "主播与房管",
        "role.host": "主播",
        "role.moderator": "房管",
        "segments": "观众分群",
        "s.engaged_no_click": "有互动但未点击商品",
        "s.clicked_offer": "点击过商品",
        "s.left_early": "5 分钟内离开",
        "s.all_quiz": "答完所有题目",
        "s.unanswered": "提问未获回答",
        "s.more": "……另有 {n} 位（见 JSON 导出）",
        "interactions": "互动详情",
        "polls": "投票",
        "p.kind.single": "单选",
        "p.kind.multi": "多选",
        "p.kind.rating": "评分",
        "p.kind.words": "词云",
        "p.anonymous": "匿名",
        "p.stats": "在场 {present} 位观众中 {voters} 位投票 · 参与率 {turnout}",
        "p.rating": "平均评分：{avg}",
        "p.words": "高频词",
        "p.held_words": "有 {n} 条待审核的回答未计入。",
        "quizzes": "答题",
        "q.stats": "{participants} 人参与 · {answers} 次作答 · 正确率 {accuracy}",
        "q.accuracy": "每题正确率",
        "q.question": "题目",
        "q.answers": "作答",
        "q.correct": "答对",
        "q.response": "平均用时",
        "q.accuracy_col": "正确率",
        "q.leaderboard": "排行榜",
        "q.score": "得分",
        "questions": "观众提问",
        "qa.text": "问题",
        "qa.by": "提问者",
        "qa.at": "提问时间",
        "qa.status": "状态",
        "qa.answered": "已回答",
        "qa.votes": "票数",
        "qa.anonymous": "匿名",
        "qa.yes": "是",
        "qa.no": "否",
        "qa.status.open": "已公开",
        "qa.status.pending": "待审核",
        "qa.status.rejected": "已拒绝",
        "qa.status.dismissed": "已忽略",
        "qa.highlighted": "已置顶",
        "qa.more": "仅列出票数最多的 {shown} 个问题（共 {total} 个）；JSON 导出包含全部问题。",
        "draws": "抽奖",
        "d.prize": "奖品",
        "d.rule": "参与条件",
        "d.rule.present": "所有在场观众",
        "d.rule.keyword": "聊天关键词“{keyword}”",
        "d.rule.quiz_correct": "答对题目",
        "d.rule.watched": "至少观看 {m} 分钟",
        "d.status": "状态",
        "d.status.open": "进行中",
        "d.status.closed": "已截止",
        "d.status.committed": "已提交承诺",
        "d.status.revealed": "已开奖",
        "d.entrants": "参与人数",
        "d.winners": "中奖者",
        "d.winners_count": "中奖名额",
        "d.transcript": "抽奖记录",
        "d.commitment": "承诺值",
        "d.entrants_hash": "entrants_hash",
        "d.seed_hash": "seed_hash",
        "d.seed": "随机种子",
        "d.committed_at": "提交承诺时间",
        "d.revealed_at": "开奖时间",
        "d.winner_ids": "中奖者 ID",
        "d.entrant_ids": "全部 {n} 个参与者 ID",
        "d.verify": (
            "任何人都可以用抽奖记录验证本次抽奖：/verify 页面，"
            "或命令“livehub verify-draw transcript.json”。"
        ),
        "d.erased": "抽奖之后有 {n} 个参与者 ID 被删除；验证需要原始的抽奖记录。",
        "d.not_revealed": "本场直播中未开奖。",
        "offers": "商品推送",
        "o.title": "商品",
        "o.link": "链接",
        "o.shown": "推送时间",
        "o.withdrawn": "撤下时间",
        "o.clicks": "点击",
        "o.conversion": "转化率",
        "moderation": "房间管理",
        "mod.kind": "操作",
        "mod.count": "次数",
        "mod.by": "各房管操作数",
        "mod.automod": "自动规则处理：{n}",
        "mod.people": "被禁言观众：{muted} · 被封禁观众：{banned}",
        "mk.mod.delete": "删除消息",
        "mk.mod.mute": "禁言",
        "mk.mod.unmute": "解除禁言",
        "mk.mod.ban": "封禁",
        "mk.mod.unban": "解除封禁",
        "mk.mod.approve": "通过待审消息",
        "mk.mod.reject": "拒绝待审消息",
        "mk.mod.slow": "慢速模式调整",
        "mk.mod.pause": "暂停 / 恢复聊天",
        "mk.mod.rule_add": "添加规则",
        "mk.mod.rule_remove": "移除规则",
        "mk.automod.block": "规则拦截",
        "mk.automod.mute": "规则禁言",
        "mk.automod.ban": "规则封禁",
        "footer": "由 livehub 根据房间事件日志生成。观众以每场不同的化名 ID 出现；不记录 IP 地址。",
        "dur.s": "{s}秒",
        "dur.ms": "{m}分{s}秒",
        "dur.hm": "{h}小时{m}分",
    },
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

MARKER_CLASS: Final = {
    "poll": ("k-poll", "#7048e8"),
    "quiz": ("k-quiz", "#0ca678"),
    "draw": ("k-draw", "#e8590c"),
    "offer": ("k-offer", "#1c7ed6"),
}
VIEWERS_COLOR: Final = "#1c7ed6"
MESSAGES_COLOR: Final = "#7048e8"
LIKES_COLOR: Final = "#e64980"
RETENTION_COLOR: Final = "#0ca678"
BAR_COLOR: Final = "#4c6ef5"
CORRECT_COLOR: Final = "#0ca678"


def normalise_lang(lang: str | None) -> str:
    """ "en" or "zh-CN" (any zh tag means Chinese; anything else English)."""
    return "zh-CN" if lang and lang.lower().startswith("zh") else "en"


class _Text:
    """Label lookup and number formatting in one language."""

    def __init__(self, lang: str) -> None:
        self.lang = normalise_lang(lang)
        self._table = LABELS[self.lang]
        self._en = LABELS["en"]

    def __call__(self, key: str, **values: object) -> str:
        """The label, with ``{name}`` replaced by ``values``, HTML-escaped as a whole."""
        raw = self._table.get(key, self._en.get(key, key))
        if values:
            raw = raw.format(**{name: str(value) for name, value in values.items()})
        return escape(raw)

    def duration(self, seconds: float | None) -> str:
        if seconds is None:
            return "—"
        total = max(0, round(seconds))
        h, rest = divmod(total, 3600)
        m, s = divmod(rest, 60)
        if h:
            return self._plain("dur.hm", h=h, m=f"{m:02d}")
        if m:
            return self._plain("dur.ms", m=m, s=f"{s:02d}")
        return self._plain("dur.s", s=s)

    def _plain(self, key: str, **values: object) -> str:
        return self._table[key].format(**values)


def _e(value: object) -> str:
    return escape(str(value))


def _int(n: int | float) -> str:
    return f"{round(n):,}"


def _num(x: float | None, digits: int = 1) -> str:
    return "—" if x is None else f"{x:,.{digits}f}"


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x * 100:.1f}%"


def _utc(ts: float | None) -> str:
    if ts is None:
        return "—"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


def _offset(seconds: float | None) -> str:
    """+m:ss or +h:mm:ss from the start of the stream."""
    if seconds is None:
        return "—"
    total = max(0, int(seconds))
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _since(ts: float | None, start: float) -> str:
    return "—" if ts is None else _offset(ts - start)


def _clip(text: str, limit: int = LABEL_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ----------------------------------------------------------------------------- charts

W: Final = 720
PAD_L: Final = 46
PAD_R: Final = 14
PAD_T: Final = 40  # room for two rows of marker numbers
MARKER_GAP: Final = 18
PAD_B: Final = 26


def _scale(value: float) -> tuple[float, float]:
    """A round axis maximum at or above ``value`` and a whole-number grid step for it
    (1, 2 or 5 times a power of ten, two to five steps)."""
    raw = max(value, 1.0) / 5
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    step = max(1.0, float(step))
    return math.ceil(max(value, 1.0) / step) * step, step


def _svg_open(height: int, label: str) -> str:
    return (
        f'<svg class="chart" viewBox="0 0 {W} {height}" role="img" aria-label="{label}"'
        ' preserveAspectRatio="xMidYMid meet">'
    )


def _axes(
    height: int,
    n: int,
    y_max: float,
    y_text: Callable[[float], str],
    minute: str,
    step: float | None = None,
) -> list[str]:
    """Grid lines with y labels (every ``step``, else quarters), minute labels below."""
    plot_h = height - PAD_T - PAD_B
    out: list[str] = []
    lines = round(y_max / step) if step else 4
    for i in range(lines + 1):
        frac = i / lines
        y = PAD_T + plot_h * (1 - frac)
        out.append(
            f'<line x1="{PAD_L}" x2="{W - PAD_R}" y1="{y:.1f}" y2="{y:.1f}"'
            f' stroke="#e9ecef" stroke-width="1"/>'
        )
        out.append(
            f'<text x="{PAD_L - 6}" y="{y + 4:.1f}" text-anchor="end">{y_text(y_max * frac)}</text>'
        )
    ticks = 6 if n >= 6 else max(1, n)
    plot_w = W - PAD_L - PAD_R
    for i in range(ticks + 1):
        m = round(n * i / ticks)
        x = PAD_L + plot_w * (m / max(1, n))
        anchor = "start" if i == 0 else ("end" if i == ticks else "middle")
        out.append(f'<text x="{x:.1f}" y="{height - 8}" text-anchor="{anchor}">{m} {minute}</text>')
    return out


def _marker_family(kind: str) -> str:
    return kind.split(".", 1)[0]


def _markers_svg(markers: Sequence[Marker], n: int, height: int) -> list[str]:
    """Numbered dashed lines; a number too close to the one before it goes a row up."""
    plot_w = W - PAD_L - PAD_R
    out: list[str] = []
    last = [-1e9, -1e9]  # the x of the last circle in each row
    for number, marker in enumerate(markers, 1):
        minutes = marker.offset_seconds / 60
        x = PAD_L + plot_w * min(1.0, max(0.0, minutes / max(1, n)))
        row = 0 if x - last[0] >= MARKER_GAP or x - last[1] < MARKER_GAP else 1
        last[row] = x
        cy = PAD_T - 10 - row * 18
        color = MARKER_CLASS.get(_marker_family(marker.kind), ("", "#868e96"))[1]
        out.append(
            f"<g><title>{number}. {_e(marker.kind)} {_e(marker.label)}</title>"
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{cy + 8}" y2="{height - PAD_B}"'
            f' stroke="{color}" stroke-width="1" stroke-dasharray="3 3"/>'
            f'<circle cx="{x:.1f}" cy="{cy}" r="8" fill="{color}"/>'
            f'<text class="mk-n" x="{x:.1f}" y="{cy + 3.5}" text-anchor="middle">{number}</text>'
            "</g>"
        )
    return out


def line_chart(
    values: Sequence[float],
    *,
    label: str,
    color: str,
    minute: str,
    markers: Sequence[Marker] = (),
    y_max: float | None = None,
    y_text: Callable[[float], str] = lambda v: _int(v),
    height: int = 240,
) -> str:
    """An area chart of one value per minute (plotted at the minute's middle)."""
    n = len(values)
    top, step = (y_max, None) if y_max is not None else _scale(max(values, default=0))
    plot_w = W - PAD_L - PAD_R
    plot_h = height - PAD_T - PAD_B
    base = PAD_T + plot_h
    out = [_svg_open(height, label), *_axes(height, n, top, y_text, minute, step)]
    if n:
        points = [
            (PAD_L + plot_w * (i + 0.5) / n, base - plot_h * min(1.0, v / top))
            for i, v in enumerate(values)
        ]
        if n == 1:  # one minute: a level line across it
            points = [(PAD_L, points[0][1]), (W - PAD_R, points[0][1])]
        line = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        out.append(
            f'<path d="M{points[0][0]:.1f},{base:.1f} L{line.replace(" ", " L")}'
            f' L{points[-1][0]:.1f},{base:.1f} Z" fill="{color}" fill-opacity="0.15"/>'
        )
        out.append(
            f'<polyline points="{line}" fill="none" stroke="{color}" stroke-width="2"'
            ' stroke-linejoin="round"/>'
        )
    out += _markers_svg(markers, n, height)
    out.append("</svg>")
    return "".join(out)


def bar_chart(
    values: Sequence[float],
    *,
    label: str,
    color: str,
    minute: str,
    markers: Sequence[Marker] = (),
    height: int = 200,
) -> str:
    """One bar per minute."""
    n = len(values)
    top, step = _scale(max(values, default=0))
    plot_w = W - PAD_L - PAD_R
    plot_h = height - PAD_T - PAD_B
    base = PAD_T + plot_h
    out = [_svg_open(height, label), *_axes(height, n, top, _int, minute, step)]
    if n:
        slot = plot_w / n
        width = max(0.5, slot * 0.8)
        out.append(f'<g fill="{color}">')
        for i, v in enumerate(values):
            if v <= 0:
                continue
            h = plot_h * min(1.0, v / top)
            x = PAD_L + slot * i + (slot - width) / 2
            out.append(
                f'<rect x="{x:.1f}" y="{base - h:.1f}" width="{width:.1f}" height="{h:.1f}"/>'
            )
        out.append("</g>")
    out += _markers_svg(markers, n, height)
    out.append("</svg>")
    return "".join(out)


def hbar_chart(
    rows: Sequence[tuple[str, float, str]],
    *,
    label: str,
    top: float | None = None,
    color: str = BAR_COLOR,
) -> str:
    """Horizontal bars: (label, value, value text) per row; labels are escaped here."""
    row_h = 26
    height = 12 + row_h * max(1, len(rows)) + 6
    label_w = 250
    text_w = 90
    bar_w = W - label_w - text_w - 10
    top = top if top is not None else max((v for _, v, _ in rows), default=0)
    top = top or 1.0
    out = [_svg_open(height, label)]
    for i, (name, value, shown) in enumerate(rows):
        y = 12 + i * row_h
        w = bar_w * min(1.0, max(0.0, value / top))
        out.append(
            f"<g><title>{_e(name)}: {_e(shown)}</title>"
            f'<text class="lbl" x="{label_w - 8}" y="{y + 17}" text-anchor="end">'
            f"{_e(_clip(name))}</text>"
            f'<rect x="{label_w}" y="{y + 4}" width="{bar_w}" height="{row_h - 8}"'
            ' fill="#f1f3f5"/>'
            f'<rect x="{label_w}" y="{y + 4}" width="{w:.1f}" height="{row_h - 8}"'
            f' fill="{color}"/>'
            f'<text class="val" x="{label_w + bar_w + 8}" y="{y + 17}">{_e(shown)}</text></g>'
        )
    out.append("</svg>")
    return "".join(out)


# ----------------------------------------------------------------------------- sections


def render(report: Report, lang: str = "en") -> str:
    """The whole report as one HTML document (a str)."""
    t = _Text(lang)
    meta = report.meta
    parts: list[str] = [
        "<!doctype html>",
        f'<html lang="{t.lang}"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{META_CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="referrer" content="no-referrer">',
        f"<title>{t('title')} · {_e(meta.room)} · {_e(meta.stream)}</title>",
        f"<style>{STYLE}</style></head><body><main>",
        f"<header><h1>{t('title')}</h1>",
        _meta(report, t),
        "</header>",
    ]
    parts += _summary(report, t)
    parts += _timeline(report, t)
    parts += _viewers(report, t)
    parts += _segments(report, t)
    parts += _interactions(report, t)
    parts.append(f"<footer><p>{t('footer')}</p></footer></main></body></html>")
    return "".join(parts)


def _meta(report: Report, t: _Text) -> str:
    m = report.meta
    rows = [
        (t("room"), _e(m.room)),
        (t("stream"), _e(m.stream)),
        (t("started"), _utc(m.started_at)),
        (t("ended"), _utc(m.ended_at)),
        (t("generated"), _utc(m.generated_at)),
        (t("events"), _int(m.event_count)),
        (t("events_hash"), f'<span class="mono">{_e(m.events_hash)}</span>'),
    ]
    body = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows)
    live = f'<p class="live">{t("live")}</p>' if m.live else ""
    return f'{live}<dl class="meta">{body}</dl><p class="muted small">{t("times_utc")}</p>'


def _tile(key: str, value: str, hint: str = "") -> str:
    hint_html = f'<div class="h">{hint}</div>' if hint else ""
    return (
        f'<div class="tile"><div class="k">{key}</div><div class="v">{value}</div>{hint_html}</div>'
    )


def _summary(report: Report, t: _Text) -> list[str]:
    s = report.summary
    start = report.meta.started_at
    peak_hint = t("t.peak_at", at=_offset(s.peak_at - start)) if s.peak_at is not None else ""
    lift = s.lift
    tiles = [
        _tile(t("t.duration"), _e(t.duration(s.duration_seconds))),
        _tile(t("t.unique"), _int(s.unique_viewers)),
        _tile(t("t.peak"), _int(s.peak_viewers), peak_hint),
        _tile(t("t.average"), _num(s.average_viewers)),
        _tile(
            t("t.watch"),
            _e(t.duration(s.average_watch_seconds)),
            t("t.watch_total", total=t.duration(s.total_watch_seconds)),
        ),
        _tile(t("t.messages"), _int(s.chat_messages)),
        _tile(t("t.likes"), _int(s.likes)),
        _tile(t("t.questions"), f"{_int(s.questions_asked)} / {_int(s.questions_answered)}"),
        _tile(t("t.turnout"), _pct(s.poll_turnout), t("t.polls", n=s.polls, votes=s.poll_votes)),
        _tile(
            t("t.quiz"),
            f"{_pct(s.quiz_participation)} / {_pct(s.quiz_accuracy)}",
            t("t.quiz_answers", n=s.quiz_answers),
        ),
        _tile(t("t.draws"), _int(s.draw_entries), t("t.draws_n", n=s.draws)),
        _tile(
            t("t.offers"),
            f"{_int(s.offer_clicks)} / {_pct(s.offer_conversion)}",
            t("t.offers_n", n=s.offers),
        ),
        _tile(
            t("t.engagement"),
            _num(s.engagement_rate, 2),
            t("t.engagement_hint", n=_int(s.interactions), m=_num(s.watch_minutes)),
        ),
        _tile(
            t("t.lift"),
            "—" if lift.lift is None else f"{lift.lift:.2f}×",
            t(
                "t.lift_hint",
                a=_pct(lift.engaged_conversion),
                b=_pct(lift.other_conversion),
            ),
        ),
        _tile(t("t.sampled"), _int(s.sampled_away)),
        _tile(t("t.moderation"), _int(s.moderation_actions)),
    ]
    return [f'<section><h2>{t("summary")}</h2><div class="tiles">', *tiles, "</div></section>"]


def _timeline(report: Report, t: _Text) -> list[str]:
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
            n=_int(retention.early_viewers),
            d=t.duration(retention.early_average_watch_seconds),
        )
        + "</p></div></section>"
    )
    return out


def _marker_legend(markers: Sequence[Marker], start: float, t: _Text) -> str:
    if not markers:
        return ""
    items = []
    for number, marker in enumerate(markers, 1):
        css = MARKER_CLASS.get(_marker_family(marker.kind), ("", ""))[0]
        items.append(
            f'<li><span class="badge {css}">{number}</span>'
            f"{_offset(marker.offset_seconds)} · {t('m.' + marker.kind)} · {_e(marker.label)}</li>"
        )
    return f'<h3>{t("markers")}</h3><ol class="markers">{"".join(items)}</ol>'


def _table(head: Iterable[tuple[str, bool]], rows: Iterable[str], css: str = "") -> str:
    th = "".join(f'<th class="n">{h}</th>' if numeric else f"<th>{h}</th>" for h, numeric in head)
    table = f'<table class="{css}">' if css else "<table>"
    return (
        f'<div class="scroll">{table}<thead><tr>{th}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _viewers(report: Report, t: _Text) -> list[str]:
    rows = report.viewers
    start = report.meta.started_at
    shown = rows[:MAX_VIEWER_ROWS]
    out = [f'<section class="page"><h2>{t("viewers")}</h2>']
    if not rows:
        out.append(f'<p class="muted">{t("no_data")}</p>')
    else:
        if len(rows) > len(shown):
            out.append(f"<p>{t('viewers_note', shown=_int(len(shown)), total=_int(len(rows)))}</p>")
        stayed = t("v.stayed")
        body = [
            "<tr>"
            f'<td class="n">{i}</td>'
            f'<td class="name">{_e(v.name)}</td>'
            f'<td class="pid">{_e(v.pid)}</td>'
            f'<td class="n">{_since(v.first_join, start)}</td>'
            f'<td class="n">{stayed if v.last_leave is None else _since(v.last_leave, start)}</td>'
            f'<td class="n">{_e(t.duration(v.watch_seconds))}</td>'
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
        out.append(_table(head, body, "viewers"))
    if report.staff:
        out.append(f"<h3>{t('staff')}</h3>")
        staff_rows = [
            "<tr>"
            f'<td class="name">{_e(s.name)}</td>'
            f"<td>{t('role.' + s.role) if s.role in ('host', 'moderator') else _e(s.role)}</td>"
            f'<td class="pid">{_e(s.pid)}</td>'
            f'<td class="n">{_e(t.duration(s.watch_seconds))}</td>'
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
        out.append(_table(head, staff_rows))
    out.append("</section>")
    return out


def _segments(report: Report, t: _Text) -> list[str]:
    out = [f'<section><h2>{t("segments")}</h2><div class="tiles">']
    for segment in report.segments:
        out.append(_tile(t("s." + segment.key), _int(len(segment.viewers))))
    out.append("</div>")
    for segment in report.segments:
        if not segment.viewers:
            continue
        names = "".join(
            f"<li>{_e(p.name)} <span class='muted mono'>{_e(p.pid)}</span></li>"
            for p in segment.viewers[:MAX_SEGMENT_NAMES]
        )
        more = len(segment.viewers) - MAX_SEGMENT_NAMES
        extra = f'<p class="muted">{t("s.more", n=_int(more))}</p>' if more > 0 else ""
        out.append(
            f'<div class="card"><h3>{t("s." + segment.key)} ({_int(len(segment.viewers))})</h3>'
            f'<ul class="people">{names}</ul>{extra}</div>'
        )
    out.append("</section>")
    return out


def _interactions(report: Report, t: _Text) -> list[str]:
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


def _poll(p: PollReport, t: _Text) -> str:
    kind = t("p.kind." + p.kind) if ("p.kind." + p.kind) in LABELS["en"] else _e(p.kind)
    flags = f"{kind} · {t('p.anonymous')}" if p.anonymous else kind
    total = sum(o.count for o in p.options)
    parts = [
        f'<div class="card"><p><strong>{_e(p.question)}</strong>'
        f' <span class="muted small">{flags}</span></p>',
        '<p class="muted">'
        + t("p.stats", voters=_int(p.voters), present=_int(p.present), turnout=_pct(p.turnout))
        + "</p>",
    ]
    if p.options:
        rows = [
            (o.label, float(o.count), f"{o.count:,} ({_pct(o.count / total if total else None)})")
            for o in p.options
        ]
        parts.append(hbar_chart(rows, label=_e(p.question)))
    if p.rating_average is not None:
        parts.append(f"<p>{t('p.rating', avg=_num(p.rating_average, 2))}</p>")
    if p.words:
        words = "".join(
            f"<span>{_e(w.word)} <b>{w.count:,}</b></span>" for w in p.words[:MAX_WORDS]
        )
        parts.append(f'<p class="small muted">{t("p.words")}</p><div class="words">{words}</div>')
    if p.held_words:
        parts.append(f'<p class="muted small">{t("p.held_words", n=_int(p.held_words))}</p>')
    parts.append("</div>")
    return "".join(parts)


def _quiz(q: QuizReport, t: _Text) -> str:
    parts = [
        f'<div class="card"><p><strong>{_e(q.title)}</strong></p>',
        '<p class="muted">'
        + t(
            "q.stats",
            participants=_int(q.participants),
            answers=_int(q.answers),
            accuracy=_pct(q.accuracy),
        )
        + "</p>",
    ]
    if q.questions:
        rows = [
            (
                f"{qq.index + 1}. {qq.text}",
                qq.accuracy or 0.0,
                f"{_pct(qq.accuracy)} ({qq.correct_answers:,}/{qq.answers:,})",
            )
            for qq in q.questions
        ]
        parts.append(f'<p class="small muted">{t("q.accuracy")}</p>')
        parts.append(hbar_chart(rows, label=t("q.accuracy"), top=1.0, color=CORRECT_COLOR))
        body = [
            "<tr>"
            f'<td class="n">{qq.index + 1}</td>'
            f'<td class="name">{_e(qq.text)}</td>'
            f'<td class="n">{qq.answers:,}</td>'
            f'<td class="n">{qq.correct_answers:,}</td>'
            f'<td class="n">{_pct(qq.accuracy)}</td>'
            f'<td class="n">{_ms(qq.average_response_ms)}</td>'
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
        parts.append(_table(head, body))
    if q.leaderboard:
        body = [
            "<tr>"
            f'<td class="n">{e.rank}</td>'
            f'<td class="name">{_e(e.name)}</td>'
            f'<td class="pid">{_e(e.pid)}</td>'
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
        parts.append(f'<p class="small muted">{t("q.leaderboard")}</p>{_table(head, body)}')
    parts.append("</div>")
    return "".join(parts)


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value / 1000:.1f} s"


def _questions(questions: Sequence[QuestionReport], start: float, t: _Text) -> str:
    if not questions:
        return f'<p class="muted">{t("none")}</p>'
    shown = sorted(questions, key=lambda q: (-q.votes, q.asked_at))[:MAX_QUESTIONS]
    note = (
        f"<p>{t('qa.more', shown=_int(len(shown)), total=_int(len(questions)))}</p>"
        if len(shown) < len(questions)
        else ""
    )
    yes, no = t("qa.yes"), t("qa.no")
    body = []
    for q in shown:
        who = f"<i>{t('qa.anonymous')}</i>" if q.anonymous or q.name is None else _e(q.name)
        status = t("qa.status." + q.status)
        if q.highlighted:
            status += f" · {t('qa.highlighted')}"
        body.append(
            "<tr>"
            f'<td class="name">{_e(q.text)}</td>'
            f'<td class="name">{who}</td>'
            f'<td class="n">{_offset(q.asked_at - start)}</td>'
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
    return note + _table(head, body)


def _rule(rule: dict[str, Any], t: _Text) -> str:
    kind = rule.get("kind")
    if kind == "keyword":
        return t("d.rule.keyword", keyword=str(rule.get("keyword", "")))
    if kind == "watched":
        return t("d.rule.watched", m=str(rule.get("minutes", "?")))
    if kind in ("present", "quiz_correct"):
        return t(f"d.rule.{kind}")
    return _e(kind)


def _draw(d: DrawReport, t: _Text) -> str:
    winners = ", ".join(
        f"{_e(w.name)} <span class='muted mono'>{_e(w.pid)}</span>" for w in d.winners
    )
    status = (
        t("d.status." + d.status)
        if d.status in ("open", "closed", "committed", "revealed")
        else _e(d.status)
    )
    rows = [
        (t("d.prize"), f"<strong>{_e(d.prize)}</strong>"),
        (t("d.rule"), _rule(d.rule, t)),
        (t("d.status"), status),
        (t("d.entrants"), _int(d.entrants)),
        (t("d.winners_count"), _int(d.winners_count)),
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
        (t("d.committed_at"), _utc(_float(tr.get("committed_at")))),
        (t("d.revealed_at"), _utc(_float(tr.get("revealed_at")))),
    ]
    winner_ids = _strings(tr.get("winners"))
    entrants = _strings(tr.get("entrants"))
    parts.append(f'<p><strong>{t("d.transcript")}</strong></p><dl class="kv">')
    parts += [
        f'<dt>{k}</dt><dd class="mono">{_e(v if v is not None else "—")}</dd>' for k, v in proof
    ]
    parts += [f"<dt>{k}</dt><dd>{v}</dd>" for k, v in times]
    parts.append(
        f"<dt>{t('d.winner_ids')}</dt>"
        f'<dd class="mono">{", ".join(_e(w) for w in winner_ids) or "—"}</dd></dl>'
    )
    erased = tr.get("erased_entrants")
    if isinstance(erased, int) and erased > 0:
        parts.append(f'<p class="live small">{t("d.erased", n=_int(erased))}</p>')
    parts.append(f'<p class="muted small">{t("d.verify")}</p>')
    if entrants:
        ids = "\n".join(_e(e) for e in entrants)
        parts.append(
            f"<details><summary>{t('d.entrant_ids', n=_int(len(entrants)))}</summary>"
            f'<pre class="mono">{ids}</pre></details>'
        )
    parts.append("</div>")
    return "".join(parts)


def _strings(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _offers(offers: Sequence[OfferReport], start: float, t: _Text) -> str:
    if not offers:
        return f'<p class="muted">{t("none")}</p>'
    body = [
        "<tr>"
        f'<td class="name">{_e(o.title)}</td>'
        f'<td class="mono">{_e(o.url)}</td>'
        f'<td class="n">{_offset(o.pushed_at - start)}</td>'
        f'<td class="n">{"—" if o.withdrawn_at is None else _offset(o.withdrawn_at - start)}</td>'
        f'<td class="n">{o.clicks:,}</td>'
        f'<td class="n">{_pct(o.conversion)}</td>'
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
    rows = [(o.title, float(o.clicks), f"{o.clicks:,} · {_pct(o.conversion)}") for o in offers]
    return f'<div class="card">{hbar_chart(rows, label=t("offers"))}{_table(head, body)}</div>'


def _moderation(report: Report, t: _Text) -> str:
    m = report.interactions.moderation
    parts = ['<div class="card">']
    if m.by_kind:
        body = [
            f'<tr><td>{_mod_kind(kind, t)}</td><td class="n">{count:,}</td></tr>'
            for kind, count in sorted(m.by_kind.items(), key=lambda kv: (-kv[1], kv[0]))
        ]
        parts.append(_table([(t("mod.kind"), False), (t("mod.count"), True)], body))
    else:
        parts.append(f'<p class="muted">{t("none")}</p>')
    parts.append(f"<p>{t('mod.automod', n=_int(m.automod))}</p>")
    parts.append(
        f"<p>{t('mod.people', muted=_int(m.viewers_muted), banned=_int(m.viewers_banned))}</p>"
    )
    if m.by_moderator:
        body = [
            f'<tr><td class="name">{_e(c.name)}</td><td class="pid">{_e(c.pid)}</td>'
            f'<td class="n">{c.actions:,}</td></tr>'
            for c in m.by_moderator
        ]
        parts.append(f'<p class="small muted">{t("mod.by")}</p>')
        parts.append(
            _table([(t("v.name"), False), (t("v.pid"), False), (t("mod.count"), True)], body)
        )
    parts.append("</div>")
    return "".join(parts)


def _mod_kind(kind: str, t: _Text) -> str:
    key = "mk." + kind
    return t(key) if key in LABELS["en"] else _e(kind)
