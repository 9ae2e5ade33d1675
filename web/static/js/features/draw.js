// Prize draws: a card over the video for viewers (prize, rule, countdown, Enter,
// then the commitment, then the winners with a link to verify the draw) and a
// "Draws" panel on the moderate page (create, close, pick, live entrant counts,
// results). Protocol: docs/protocol-draws.md.
// Every server-provided string goes in with textContent.

import { addStrings, setText, t } from '../i18n.js';
import { el, tel } from '../ui.js';

addStrings({
  en: {
    'draw.title': 'Prize draw',
    'draw.rule.present': 'Everyone watching can enter.',
    'draw.rule.watched': 'For viewers who have watched at least {m} min.',
    'draw.rule.keyword': 'Send “{keyword}” in the chat to enter.',
    'draw.rule.quiz_correct': 'Everyone with a correct quiz answer is entered automatically.',
    'draw.rule.quiz_correct_id': 'Everyone with a correct answer in quiz {quiz} is entered automatically.',
    'draw.enter': 'Enter',
    'draw.check_keyword': 'I sent it',
    'draw.entered': 'You are in. Good luck!',
    'draw.time_left': '{s} s left',
    'draw.closed': 'Entries closed',
    'draw.picking': 'Picking…',
    'draw.done': 'Winners',
    'draw.entrants': '{n} entered',
    'draw.winners_count': '{n} winner(s)',
    'draw.commitment': 'Commitment {hash}',
    'draw.commitment_title': 'Published before the winners were picked: {hash}',
    'draw.you_won': 'You won!',
    'draw.not_won': 'Not this time.',
    'draw.no_winners': 'Nobody entered.',
    'draw.verify': 'Verify this draw',
    'draw.dismiss': 'Hide',
    'draw.err.already_entered': 'You have already entered this draw.',
    'draw.err.draw_closed': 'This draw is closed.',
    'draw.err.staff_not_eligible': 'The host and moderators cannot enter draws.',
    'draw.err.not_eligible': 'This draw needs {m} min of watching; you have {w} min.',
    'draw.err.keyword_required': 'Send “{keyword}” in the chat first.',
    'draw.err.automatic_entry': 'You are entered automatically if you answered a quiz correctly.',
    'draw.err.pick_in_progress': 'The winners are being picked; try again in a moment.',
    'draw.err.bad_prize': 'Enter a prize (up to 80 characters).',
    'draw.err.bad_keyword': 'Enter a keyword (up to 40 characters).',
    'draw.err.too_many_draws': 'This room has too many draws.',
    'draw.panel': 'Draws',
    'draw.form.prize': 'Prize',
    'draw.form.rule': 'Who can enter',
    'draw.form.rule.present': 'Everyone present (Enter button)',
    'draw.form.rule.keyword': 'Chat keyword',
    'draw.form.rule.quiz_correct': 'Correct quiz answer',
    'draw.form.rule.watched': 'Watched for some minutes',
    'draw.form.keyword': 'Keyword',
    'draw.form.quiz_id': 'Quiz id (optional)',
    'draw.form.minutes': 'Minutes watched',
    'draw.form.window': 'Entry window (s)',
    'draw.form.winners': 'Winners',
    'draw.form.submit': 'Start draw',
    'draw.created': 'Draw started.',
    'draw.empty': 'No draws yet.',
    'draw.do_close': 'Close entries',
    'draw.do_pick': 'Pick winners',
    'draw.status.open': 'Open',
    'draw.status.closed': 'Closed',
    'draw.status.committed': 'Committed',
    'draw.status.revealed': 'Done',
  },
  'zh-CN': {
    'draw.title': '抽奖',
    'draw.rule.present': '在线观众都可以参加。',
    'draw.rule.watched': '观看满 {m} 分钟的观众可以参加。',
    'draw.rule.keyword': '在聊天中发送“{keyword}”即可参加。',
    'draw.rule.quiz_correct': '答对过测验题的观众自动参加。',
    'draw.rule.quiz_correct_id': '在测验 {quiz} 中答对的观众自动参加。',
    'draw.enter': '参加',
    'draw.check_keyword': '我已发送',
    'draw.entered': '你已参加，祝你好运！',
    'draw.time_left': '剩余 {s} 秒',
    'draw.closed': '报名已截止',
    'draw.picking': '正在抽取…',
    'draw.done': '中奖名单',
    'draw.entrants': '{n} 人参加',
    'draw.winners_count': '{n} 名中奖',
    'draw.commitment': '承诺值 {hash}',
    'draw.commitment_title': '在抽取之前公布：{hash}',
    'draw.you_won': '恭喜你中奖了！',
    'draw.not_won': '这次没有中奖。',
    'draw.no_winners': '没有人参加。',
    'draw.verify': '验证这次抽奖',
    'draw.dismiss': '隐藏',
    'draw.err.already_entered': '你已经参加过这次抽奖了。',
    'draw.err.draw_closed': '这次抽奖已截止。',
    'draw.err.staff_not_eligible': '主播和房管不能参加抽奖。',
    'draw.err.not_eligible': '需要观看 {m} 分钟，你已观看 {w} 分钟。',
    'draw.err.keyword_required': '请先在聊天中发送“{keyword}”。',
    'draw.err.automatic_entry': '答对测验题的观众会自动参加。',
    'draw.err.pick_in_progress': '正在抽取中，请稍后再试。',
    'draw.err.bad_prize': '请输入奖品（最多 80 个字符）。',
    'draw.err.bad_keyword': '请输入口令（最多 40 个字符）。',
    'draw.err.too_many_draws': '这个房间的抽奖太多了。',
    'draw.panel': '抽奖',
    'draw.form.prize': '奖品',
    'draw.form.rule': '参加方式',
    'draw.form.rule.present': '在线观众（点击参加）',
    'draw.form.rule.keyword': '聊天口令',
    'draw.form.rule.quiz_correct': '答对测验题',
    'draw.form.rule.watched': '观看满若干分钟',
    'draw.form.keyword': '口令',
    'draw.form.quiz_id': '测验编号（可选）',
    'draw.form.minutes': '观看分钟数',
    'draw.form.window': '报名时长（秒）',
    'draw.form.winners': '中奖人数',
    'draw.form.submit': '开始抽奖',
    'draw.created': '抽奖已开始。',
    'draw.empty': '还没有抽奖。',
    'draw.do_close': '截止报名',
    'draw.do_pick': '抽取中奖者',
    'draw.status.open': '报名中',
    'draw.status.closed': '已截止',
    'draw.status.committed': '已承诺',
    'draw.status.revealed': '已开奖',
  },
});

const OWN_ERRORS = [
  'already_entered', 'draw_closed', 'staff_not_eligible', 'automatic_entry',
  'pick_in_progress', 'bad_prize', 'bad_keyword', 'too_many_draws',
];
const RESULT_SHOWN_SECONDS = 300;
const STATUSES = ['open', 'closed', 'committed', 'revealed'];

function reportError(status, error) {
  const e = error || {};
  const d = e.details || {};
  if (OWN_ERRORS.includes(e.code)) status.show(`draw.err.${e.code}`, null, { kind: 'error' });
  else if (e.code === 'not_eligible') {
    const m = Math.ceil((Number(d.needed_seconds) || 0) / 60);
    const w = Math.floor((Number(d.watched_seconds) || 0) / 60);
    status.show('draw.err.not_eligible', { m, w }, { kind: 'error' });
  } else if (e.code === 'keyword_required') {
    status.show('draw.err.keyword_required', { keyword: String(d.keyword || '') }, { kind: 'error' });
  } else status.error(e);
}

function button(className, key, vars) {
  const b = tel('button', `btn ${className}`, key, vars);
  b.type = 'button';
  return b;
}

function serverNow(client) {
  const offset = typeof client.clockOffset === 'number' ? client.clockOffset : 0;
  return Date.now() / 1000 + offset;
}

function secondsLeft(client, closesAt) {
  return Math.max(0, Math.ceil(closesAt - serverNow(client)));
}

function shortHash(hash) {
  return typeof hash === 'string' ? `${hash.slice(0, 12)}…` : '';
}

/** The rule in words, as a translated element. */
function ruleText(rule) {
  const r = rule || {};
  if (r.kind === 'watched') return tel('p', 'draw-rule', 'draw.rule.watched', { m: Number(r.minutes) || 0 });
  if (r.kind === 'keyword') return tel('p', 'draw-rule', 'draw.rule.keyword', { keyword: String(r.keyword || '') });
  if (r.kind === 'quiz_correct') {
    return r.quiz_id
      ? tel('p', 'draw-rule', 'draw.rule.quiz_correct_id', { quiz: String(r.quiz_id) })
      : tel('p', 'draw-rule', 'draw.rule.quiz_correct');
  }
  return tel('p', 'draw-rule', 'draw.rule.present');
}

/** A link to the public verify page, built here from the room and draw ids. */
function verifyLink(room, drawId) {
  const a = el('a', 'draw-verify');
  setText(a, 'draw.verify');
  a.href = `/verify?room=${encodeURIComponent(room)}&draw=${encodeURIComponent(drawId)}`;
  a.target = '_blank';
  a.rel = 'noopener';
  return a;
}

function commitmentLine(hash) {
  const p = tel('p', 'draw-commitment', 'draw.commitment', { hash: shortHash(hash) });
  p.title = t('draw.commitment_title', { hash });
  return p;
}

/** Merge a push (draw, draw_commit or draw_result) into the view kept for a draw. */
function merge(old, update) {
  const view = { ...(old || {}), ...update };
  if (old && STATUSES.indexOf(old.status) > STATUSES.indexOf(view.status)) view.status = old.status;
  return view;
}

// ------------------------------------------------------------ viewer card

class DrawCard {
  constructor(ctx, view, onGone) {
    this.ctx = ctx;
    this.onGone = onGone;
    this.view = view;
    this.entered = false;
    this.timer = null;
    this.node = el('section', 'card draw-card');
    this.node.dataset.draw = view.draw_id;
    this.update(view);
  }

  get you() {
    return (this.ctx.client.you && this.ctx.client.you.viewer_id) || null;
  }

  update(view) {
    this.view = view;
    const v = view;
    const n = this.node;
    n.dataset.status = v.status;
    n.replaceChildren();
    const head = el('div', 'draw-head');
    head.appendChild(tel('span', 'draw-label', 'draw.title'));
    this.meta = el('span', 'draw-meta');
    head.appendChild(this.meta);
    n.appendChild(head);
    n.appendChild(el('h3', 'draw-prize', v.prize));
    if (v.status !== 'revealed') n.appendChild(ruleText(v.rule));

    const open = v.status === 'open';
    const kind = (v.rule && v.rule.kind) || 'present';
    if (open && this.entered) {
      n.appendChild(tel('p', 'draw-entered', 'draw.entered'));
    } else if (open && kind !== 'quiz_correct') {
      const key = kind === 'keyword' ? 'draw.check_keyword' : 'draw.enter';
      const cls = kind === 'keyword' ? 'btn-small draw-enter' : 'btn-primary draw-enter';
      const b = button(cls, key);
      b.addEventListener('click', () => this.enter(b));
      n.appendChild(b);
    } else if (this.entered && v.status !== 'revealed') {
      n.appendChild(tel('p', 'draw-entered', 'draw.entered'));
    }

    if (v.commitment) n.appendChild(commitmentLine(v.commitment));
    if (v.status === 'revealed') this._result(v);

    clearInterval(this.timer);
    this.timer = null;
    this._meta();
    if (open) this.timer = setInterval(() => this._meta(), 1000);
  }

  _result(v) {
    const winners = Array.isArray(v.winners) ? v.winners : [];
    const mine = winners.some((w) => w && w.viewer_id === this.you);
    this.node.dataset.won = mine ? 'true' : 'false';
    if (mine) this.node.appendChild(tel('p', 'draw-you-won', 'draw.you_won'));
    else if (this.entered) this.node.appendChild(tel('p', 'muted-text draw-not-won', 'draw.not_won'));
    if (!winners.length) {
      this.node.appendChild(tel('p', 'muted-text', 'draw.no_winners'));
    } else {
      this.node.appendChild(tel('p', 'draw-winners-label', 'draw.done'));
      const list = el('ol', 'draw-winners');
      for (const w of winners) {
        const li = el('li', 'draw-winner', (w && w.name) || '?');
        if (w && w.viewer_id === this.you) li.classList.add('is-you');
        list.appendChild(li);
      }
      this.node.appendChild(list);
    }
    const foot = el('div', 'draw-foot');
    foot.appendChild(verifyLink(this.ctx.room, v.draw_id));
    const dismiss = button('btn-small btn-ghost draw-dismiss', 'draw.dismiss');
    dismiss.addEventListener('click', () => this.remove());
    foot.appendChild(dismiss);
    this.node.appendChild(foot);
  }

  _meta() {
    const v = this.view;
    this.meta.replaceChildren();
    if (v.status === 'open' && typeof v.closes_at === 'number') {
      const left = secondsLeft(this.ctx.client, v.closes_at);
      this.meta.appendChild(tel('span', 'pill draw-countdown', left > 0 ? 'draw.time_left' : 'draw.closed', { s: left }));
    } else if (v.status === 'closed') {
      this.meta.appendChild(tel('span', 'pill', 'draw.closed'));
    } else if (v.status === 'committed') {
      this.meta.appendChild(tel('span', 'pill', 'draw.picking'));
    }
    if (typeof v.entrant_count === 'number' && v.status !== 'open') {
      this.meta.appendChild(tel('span', 'draw-count', 'draw.entrants', { n: v.entrant_count }));
    }
  }

  async enter(btn) {
    btn.disabled = true;
    const ack = await this.ctx.client.request('draw_enter', { draw_id: this.view.draw_id });
    btn.disabled = false;
    if (ack.ok || (ack.error && ack.error.code === 'already_entered')) {
      this.entered = true;
      this.update(this.view);
      if (!ack.ok) reportError(this.ctx.status, ack.error);
      return;
    }
    reportError(this.ctx.status, ack.error);
  }

  remove() {
    clearInterval(this.timer);
    this.node.remove();
    this.onGone(this.view.draw_id);
  }
}

export function mountDrawCard(ctx) {
  const { client, cards } = ctx;
  const shown = new Map();
  const dismissed = new Set();

  function show(view, entered) {
    if (!view || !view.draw_id || dismissed.has(view.draw_id)) return;
    let card = shown.get(view.draw_id);
    const merged = merge(card && card.view, view);
    if (!merged.prize) return; // a partial push for a draw this page never saw
    if (!card) {
      card = new DrawCard(ctx, merged, (id) => {
        shown.delete(id);
        dismissed.add(id);
      });
      shown.set(view.draw_id, card);
      cards.prepend(card.node); // newest first: the layer scrolls on small screens
    }
    if (entered) card.entered = true;
    card.update(merged);
  }

  async function refresh() {
    const ack = await client.request('draw_state', {});
    if (!ack.ok) return;
    const entered = new Set(Array.isArray(ack.entered) ? ack.entered : []);
    const now = typeof ack.server_time === 'number' ? ack.server_time : serverNow(client);
    for (const view of ack.draws || []) {
      const recent = view.status !== 'revealed' || (now - (view.revealed_at || 0)) < RESULT_SHOWN_SECONDS;
      if (recent || shown.has(view.draw_id)) show(view, entered.has(view.draw_id));
    }
  }

  client.on('welcome', () => { refresh(); });
  client.on('draw', (view) => show(view));
  client.on('draw_commit', (c) => show({ ...c, status: 'committed' }));
  client.on('draw_result', (r) => show({ ...r, status: 'revealed' }));
}

// ------------------------------------------------------------ moderator panel

function field(labelKey, control) {
  const label = el('label', 'draw-field');
  label.appendChild(tel('span', 'draw-field-label', labelKey));
  label.appendChild(control);
  return label;
}

function input(className, type, attrs) {
  const i = el('input', className);
  i.type = type;
  for (const [k, v] of Object.entries(attrs || {})) i.setAttribute(k, String(v));
  return i;
}

export function mountDrawControls(ctx) {
  const { room, client, controls, status } = ctx;
  const panel = el('section', 'panel draw-panel');
  const head = el('div', 'panel-head');
  head.appendChild(tel('h2', '', 'draw.panel'));
  panel.appendChild(head);

  const form = el('form', 'draw-create');
  form.autocomplete = 'off';
  const prize = input('draw-prize-input', 'text', { maxlength: 80, required: '' });
  const kind = el('select', 'draw-kind');
  for (const k of ['present', 'keyword', 'quiz_correct', 'watched']) {
    const o = tel('option', '', `draw.form.rule.${k}`);
    o.value = k;
    kind.appendChild(o);
  }
  const keyword = input('draw-keyword-input', 'text', { maxlength: 40 });
  const quizId = input('draw-quiz-input', 'text', { maxlength: 64 });
  const minutes = input('draw-minutes-input', 'number', { min: 1, max: 1440, value: 5 });
  const windowSeconds = input('draw-window-input', 'number', { min: 10, max: 3600, value: 60 });
  const winners = input('draw-winners-input', 'number', { min: 1, max: 100, value: 1 });
  const keywordField = field('draw.form.keyword', keyword);
  const quizField = field('draw.form.quiz_id', quizId);
  const minutesField = field('draw.form.minutes', minutes);
  const submit = tel('button', 'btn btn-primary draw-create-submit', 'draw.form.submit');
  submit.type = 'submit';
  form.append(
    field('draw.form.prize', prize), field('draw.form.rule', kind), keywordField, quizField,
    minutesField, field('draw.form.window', windowSeconds), field('draw.form.winners', winners), submit,
  );
  panel.appendChild(form);

  const list = el('ol', 'item-list draw-admin-list');
  list.dataset.i18nAttr = 'data-empty:draw.empty';
  list.setAttribute('data-empty', t('draw.empty'));
  panel.appendChild(list);
  controls.appendChild(panel);

  function syncKind() {
    keywordField.hidden = kind.value !== 'keyword';
    keyword.required = kind.value === 'keyword';
    quizField.hidden = kind.value !== 'quiz_correct';
    minutesField.hidden = kind.value !== 'watched';
  }
  kind.addEventListener('change', syncKind);
  syncKind();

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const rule = { kind: kind.value };
    if (kind.value === 'keyword') rule.keyword = keyword.value.trim();
    if (kind.value === 'quiz_correct' && quizId.value.trim()) rule.quiz_id = quizId.value.trim();
    if (kind.value === 'watched') rule.minutes = Number(minutes.value) || 1;
    const payload = {
      prize: prize.value.trim(),
      rule,
      winners: Number(winners.value) || 1,
      window_seconds: Number(windowSeconds.value) || 60,
    };
    submit.disabled = true;
    const ack = await client.request('draw_create', payload);
    submit.disabled = false;
    if (!ack.ok) {
      reportError(status, ack.error);
      return;
    }
    status.show('draw.created', null, { kind: 'ok' });
    prize.value = '';
    upsert(ack.draw, true);
  });

  const rows = new Map(); // draw_id -> {row, view, timer}

  function upsert(update, atTop) {
    if (!update || !update.draw_id) return;
    let entry = rows.get(update.draw_id);
    const view = merge(entry && entry.view, update);
    if (!view.prize) return;
    if (!entry) {
      const row = el('li', 'draw-admin');
      row.dataset.draw = view.draw_id;
      entry = { row, view, timer: null };
      rows.set(view.draw_id, entry);
      if (atTop) list.prepend(row);
      else list.appendChild(row);
    }
    entry.view = view;
    render(entry);
  }

  function render(entry) {
    const v = entry.view;
    const row = entry.row;
    row.dataset.status = v.status;
    row.replaceChildren();
    const top = el('div', 'draw-admin-top');
    top.appendChild(el('span', 'draw-admin-prize', v.prize));
    top.appendChild(tel('span', 'pill', `draw.status.${STATUSES.includes(v.status) ? v.status : 'open'}`));
    const count = tel('span', 'draw-count', 'draw.entrants', { n: v.entrant_count || 0 });
    top.appendChild(count);
    top.appendChild(tel('span', 'muted-text', 'draw.winners_count', { n: v.winners_count || 1 }));
    const countdown = el('span', 'draw-countdown');
    top.appendChild(countdown);
    row.appendChild(top);
    row.appendChild(ruleText(v.rule));
    if (v.commitment) row.appendChild(commitmentLine(v.commitment));
    if (v.status === 'revealed') {
      const winners = Array.isArray(v.winners) ? v.winners : [];
      if (winners.length) {
        const ol = el('ol', 'draw-winners');
        for (const w of winners) ol.appendChild(el('li', 'draw-winner', `${w.name || '?'} · ${w.viewer_id || ''}`));
        row.appendChild(ol);
      } else {
        row.appendChild(tel('p', 'muted-text', 'draw.no_winners'));
      }
      row.appendChild(verifyLink(room, v.draw_id));
    }
    const actions = el('div', 'draw-admin-actions');
    if (v.status === 'open') actions.appendChild(action('draw_close', 'draw.do_close', v.draw_id));
    if (v.status !== 'revealed') actions.appendChild(action('draw_pick', 'draw.do_pick', v.draw_id));
    row.appendChild(actions);

    clearInterval(entry.timer);
    entry.timer = null;
    const tick = () => {
      const left = secondsLeft(client, v.closes_at);
      if (entry.view.status === 'open' && left > 0) setText(countdown, 'draw.time_left', { s: left });
      else countdown.replaceChildren();
    };
    if (v.status === 'open' && typeof v.closes_at === 'number') {
      tick();
      entry.timer = setInterval(tick, 1000);
    }
  }

  function action(event, key, drawId) {
    const b = button(`btn-small draw-action draw-${event}`, key);
    b.addEventListener('click', async () => {
      b.disabled = true;
      const ack = await client.request(event, { draw_id: drawId });
      b.disabled = false;
      if (!ack.ok) reportError(status, ack.error);
      else upsert(ack.draw);
    });
    return b;
  }

  async function refresh() {
    const ack = await client.request('draw_list', {});
    if (!ack.ok) return;
    for (const draw of ack.draws || []) upsert(draw);
  }

  client.on('welcome', () => { refresh(); });
  client.on('draw', (view) => upsert(view, true));
  client.on('draw_commit', (c) => upsert({ ...c, status: 'committed' }));
  client.on('draw_result', (r) => upsert({ ...r, status: 'revealed' }));
  client.on('draw_entries', (d) => {
    const entry = d && rows.get(d.draw_id);
    if (entry && typeof d.entrant_count === 'number') {
      entry.view = { ...entry.view, entrant_count: d.entrant_count };
      render(entry);
    }
  });
}
