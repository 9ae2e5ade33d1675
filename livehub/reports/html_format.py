"""How the HTML report writes things: its labels in English and Simplified
Chinese (:data:`LABELS`, looked up through :class:`Text`), numbers, times and
durations, and the two blocks every section is made of (tiles and tables).
Labels and formatted values come back HTML-escaped (:func:`clip` only shortens);
:func:`tile` and :func:`table` take markup that is escaped already."""

from __future__ import annotations

import time
from collections.abc import Iterable
from html import escape
from typing import Final

LABEL_CHARS: Final = 38
LANGS: Final = ("en", "zh-CN")

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


def normalise_lang(lang: str | None) -> str:
    """ "en" or "zh-CN" (any zh tag means Chinese; anything else English)."""
    return "zh-CN" if lang and lang.lower().startswith("zh") else "en"


class Text:
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


def esc(value: object) -> str:
    return escape(str(value))


def fmt_int(n: int | float) -> str:
    return f"{round(n):,}"


def fmt_num(x: float | None, digits: int = 1) -> str:
    return "—" if x is None else f"{x:,.{digits}f}"


def fmt_pct(x: float | None) -> str:
    return "—" if x is None else f"{x * 100:.1f}%"


def fmt_ms(value: float | None) -> str:
    return "—" if value is None else f"{value / 1000:.1f} s"


def fmt_utc(ts: float | None) -> str:
    if ts is None:
        return "—"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


def fmt_offset(seconds: float | None) -> str:
    """+m:ss or +h:mm:ss from the start of the stream."""
    if seconds is None:
        return "—"
    total = max(0, int(seconds))
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def fmt_since(ts: float | None, start: float) -> str:
    return "—" if ts is None else fmt_offset(ts - start)


def clip(text: str, limit: int = LABEL_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def tile(key: str, value: str, hint: str = "") -> str:
    hint_html = f'<div class="h">{hint}</div>' if hint else ""
    return (
        f'<div class="tile"><div class="k">{key}</div><div class="v">{value}</div>{hint_html}</div>'
    )


def table(head: Iterable[tuple[str, bool]], rows: Iterable[str], css: str = "") -> str:
    th = "".join(f'<th class="n">{h}</th>' if numeric else f"<th>{h}</th>" for h, numeric in head)
    opening = f'<table class="{css}">' if css else "<table>"
    return (
        f'<div class="scroll">{opening}<thead><tr>{th}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )
