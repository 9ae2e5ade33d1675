// Polls: a card over the video for viewers (vote, then see the tally when the
// staff show it) and a "Polls" panel on the moderate page (create, open, close,
// show or hide results, live tallies). Protocol: docs/protocol-polls.md.
// Every server-provided string goes in with textContent.

import { addStrings, t } from '../i18n.js';
import { el, tel } from '../ui.js';

addStrings({
  en: {
    'poll.title': 'Poll',
    'poll.vote': 'Vote',
    'poll.voted': 'Thanks, your vote is in.',
    'poll.closed': 'Poll closed',
    'poll.open': 'Open',
    'poll.draft': 'Draft',
    'poll.turnout': '{n} votes',
    'poll.turnout_one': '1 vote',
    'poll.time_left': '{s} s left',
    'poll.anonymous': 'Anonymous',
    'poll.pick_up_to': 'Pick up to {n}',
    'poll.word_placeholder': 'One word or a short phrase',
    'poll.average': 'Average {avg} / 5',
    'poll.stars': '{n} stars',
    'poll.stars_one': '1 star',
    'poll.dismiss': 'Hide',
    'poll.results_hidden': 'Results will be shown by the host.',
    'poll.err.already_voted': 'You already voted in this poll.',
    'poll.err.poll_closed': 'This poll is closed.',
    'poll.err.bad_choice': 'Choose a valid answer first.',
    'poll.err.bad_poll': 'That poll is not valid: {message}',
    'poll.err.blocked': 'That word is not allowed here.',
    'poll.panel': 'Polls',
    'poll.question': 'Question',
    'poll.kind': 'Kind',
    'poll.kind.single': 'Single choice',
    'poll.kind.multiple': 'Multiple choice',
    'poll.kind.rating': 'Rating 1-5',
    'poll.kind.word_cloud': 'Word cloud',
    'poll.options': 'Options, one per line',
    'poll.timer': 'Timer (s)',
    'poll.max_choices': 'Max picks',
    'poll.show_live': 'Show results to viewers',
    'poll.create': 'Create poll',
    'poll.created': 'Poll created.',
    'poll.empty': 'No polls yet.',
    'poll.do_open': 'Open',
    'poll.do_close': 'Close',
    'poll.show_results': 'Show results',
    'poll.hide_results': 'Hide results',
    'poll.held_words': 'Held for review: {words}',
  },
  'zh-CN': {
    'poll.title': '投票',
    'poll.vote': '投票',
    'poll.voted': '感谢，你已投票。',
    'poll.closed': '投票已结束',
    'poll.open': '进行中',
    'poll.draft': '草稿',
    'poll.turnout': '{n} 票',
    'poll.turnout_one': '1 票',
    'poll.time_left': '剩余 {s} 秒',
    'poll.anonymous': '匿名',
    'poll.pick_up_to': '最多选 {n} 项',
    'poll.word_placeholder': '一个词或一句短语',
    'poll.average': '平均 {avg} / 5',
    'poll.stars': '{n} 星',
    'poll.stars_one': '1 星',
    'poll.dismiss': '隐藏',
    'poll.results_hidden': '结果将由主播公布。',
    'poll.err.already_voted': '你已经投过票了。',
    'poll.err.poll_closed': '投票已结束。',
    'poll.err.bad_choice': '请先选择有效的选项。',
    'poll.err.bad_poll': '投票设置无效：{message}',
    'poll.err.blocked': '这个词不允许在这里使用。',
    'poll.panel': '投票',
    'poll.question': '问题',
    'poll.kind': '类型',
    'poll.kind.single': '单选',
    'poll.kind.multiple': '多选',
    'poll.kind.rating': '评分 1-5',
    'poll.kind.word_cloud': '词云',
    'poll.options': '选项，每行一个',
    'poll.timer': '倒计时（秒）',
    'poll.max_choices': '最多可选',
    'poll.show_live': '向观众显示结果',
    'poll.create': '创建投票',
    'poll.created': '投票已创建。',
    'poll.empty': '还没有投票。',
    'poll.do_open': '开始',
    'poll.do_close': '结束',
    'poll.show_results': '公布结果',
    'poll.hide_results': '隐藏结果',
    'poll.held_words': '待审核：{words}',
  },
});

const OWN_ERRORS = ['already_voted', 'poll_closed', 'bad_choice', 'blocked'];
const MAX_WORD = 40;

function reportError(status, error) {
  const e = error || {};
  if (OWN_ERRORS.includes(e.code)) status.show(`poll.err.${e.code}`, null, { kind: 'error' });
  else if (e.code === 'bad_poll') status.show('poll.err.bad_poll', { message: e.message || '' }, { kind: 'error' });
  else status.error(e);
}

function button(className, key, vars) {
  const b = tel('button', `btn ${className}`, key, vars);
  b.type = 'button';
  return b;
}

function turnout(view) {
  const n = view.turnout || 0;
  return tel('span', 'poll-turnout', n === 1 ? 'poll.turnout_one' : 'poll.turnout', { n });
}

function secondsLeft(client, closesAt) {
  const offset = typeof client.clockOffset === 'number' ? client.clockOffset : 0;
  return Math.max(0, Math.ceil(closesAt - (Date.now() / 1000 + offset)));
}

/** The tally: bars for options and ratings, a list of words sized by count for a word cloud. */
export function renderTally(node, view) {
  node.replaceChildren();
  const tally = view.tally;
  if (!tally) return;
  if (view.kind === 'word_cloud') {
    const words = Array.isArray(tally.words) ? tally.words : [];
    const top = words.reduce((m, w) => Math.max(m, Number(w.count) || 0), 1);
    const list = el('ul', 'poll-cloud');
    for (const w of words) {
      const size = Math.max(1, Math.ceil((5 * (Number(w.count) || 0)) / top));
      const item = el('li', `poll-word poll-word-${size}`, w.word);
      item.title = String(w.count);
      list.appendChild(item);
    }
    node.appendChild(list);
    if (Array.isArray(tally.held_words) && tally.held_words.length) {
      const held = tally.held_words.map((w) => `${w.word} (${w.count})`).join(', ');
      node.appendChild(tel('p', 'muted-text poll-held', 'poll.held_words', { words: held }));
    }
    return;
  }
  const counts = Array.isArray(tally.counts) ? tally.counts : [];
  const total = counts.reduce((a, b) => a + (Number(b) || 0), 0);
  const list = el('ol', 'poll-bars');
  counts.forEach((count, i) => {
    const pct = total ? Math.round((100 * count) / total) : 0;
    const row = el('li', 'poll-bar');
    row.dataset.index = String(i);
    const label = view.kind === 'rating'
      ? tel('span', 'poll-bar-label', i === 0 ? 'poll.stars_one' : 'poll.stars', { n: i + 1 })
      : el('span', 'poll-bar-label', view.options[i]);
    row.append(label, el('span', 'poll-bar-count', `${count} · ${pct}%`));
    const track = el('span', 'poll-bar-track');
    const fill = el('span', 'poll-bar-fill');
    fill.style.width = `${pct}%`;
    track.appendChild(fill);
    row.appendChild(track);
    list.appendChild(row);
  });
  node.appendChild(list);
  if (view.kind === 'rating' && typeof tally.average === 'number') {
    node.appendChild(tel('p', 'poll-average', 'poll.average', { avg: tally.average }));
  }
}

// ------------------------------------------------------------ viewer card

class PollCard {
  constructor(client, status, view, onGone) {
    this.client = client;
    this.status = status;
    this.onGone = onGone;
    this.view = view;
    this.voted = null;       // the own ballot once voted
    this.selected = new Set();
    this.timer = null;
    this.node = el('section', 'card poll-card');
    this.node.dataset.poll = view.id;
    this.node.dataset.kind = view.kind;
    const head = el('div', 'poll-head');
    head.appendChild(tel('span', 'poll-label', 'poll.title'));
    this.meta = el('span', 'poll-meta');
    head.appendChild(this.meta);
    this.node.appendChild(head);
    this.node.appendChild(el('h3', 'poll-question', view.question));
    this.form = this._form(view);
    this.node.appendChild(this.form);
    this.votedNote = tel('p', 'poll-voted', 'poll.voted');
    this.votedNote.hidden = true;
    this.node.appendChild(this.votedNote);
    this.hiddenNote = tel('p', 'muted-text poll-hidden-note', 'poll.results_hidden');
    this.hiddenNote.hidden = true;
    this.node.appendChild(this.hiddenNote);
    this.results = el('div', 'poll-results');
    this.node.appendChild(this.results);
    const dismiss = button('btn-small btn-ghost poll-dismiss', 'poll.dismiss');
    dismiss.addEventListener('click', () => this.remove());
    this.dismiss = dismiss;
    this.node.appendChild(dismiss);
    this.update(view);
  }

  _form(view) {
    const form = el('form', 'poll-form');
    form.autocomplete = 'off';
    const box = el('div', `poll-choices poll-choices-${view.kind}`);
    if (view.kind === 'word_cloud') {
      const input = el('input', 'poll-word-input');
      input.type = 'text';
      input.maxLength = MAX_WORD;
      input.dataset.i18nPlaceholder = 'poll.word_placeholder';
      input.placeholder = t('poll.word_placeholder');
      this.input = input;
      box.appendChild(input);
    } else if (view.kind === 'multiple') {
      view.options.forEach((option, i) => {
        const label = el('label', 'poll-check');
        const check = el('input');
        check.type = 'checkbox';
        check.value = String(i);
        check.addEventListener('change', () => {
          if (check.checked) this.selected.add(i);
          else this.selected.delete(i);
        });
        label.append(check, el('span', '', option));
        box.appendChild(label);
      });
      if (view.max_choices) box.appendChild(tel('p', 'muted-text', 'poll.pick_up_to', { n: view.max_choices }));
    } else {
      const stars = view.kind === 'rating';
      view.options.forEach((option, i) => {
        const b = stars
          ? el('button', 'btn poll-star', '★')
          : el('button', 'btn poll-option', option);
        b.type = 'button';
        b.dataset.index = String(i);
        if (stars) {
          b.title = option;
          b.setAttribute('aria-label', option);
        }
        b.setAttribute('aria-pressed', 'false');
        b.addEventListener('click', () => {
          this.selected = new Set([i]);
          for (const other of box.querySelectorAll('button')) {
            const n = Number(other.dataset.index);
            const on = stars ? n <= i : n === i;
            other.setAttribute('aria-pressed', on ? 'true' : 'false');
          }
        });
        box.appendChild(b);
      });
    }
    form.appendChild(box);
    const submit = tel('button', 'btn btn-primary poll-submit', 'poll.vote');
    submit.type = 'submit';
    form.appendChild(submit);
    this.submit = submit;
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.vote();
    });
    return form;
  }

  async vote() {
    const payload = { poll_id: this.view.id };
    if (this.view.kind === 'word_cloud') payload.text = this.input.value.trim();
    else payload.choices = [...this.selected].sort((a, b) => a - b);
    if ((payload.text !== undefined && !payload.text) || (payload.choices && !payload.choices.length)) {
      this.status.show('poll.err.bad_choice', null, { kind: 'error' });
      return;
    }
    this.submit.disabled = true;
    const ack = await this.client.request('poll_vote', payload);
    this.submit.disabled = false;
    if (ack.ok) {
      this.markVoted({ choices: ack.choices || [], text: ack.text });
    } else {
      if (ack.error && ack.error.code === 'already_voted') this.markVoted({ choices: [], text: null });
      reportError(this.status, ack.error);
    }
  }

  markVoted(ballot) {
    this.voted = ballot || { choices: [] };
    this.node.dataset.voted = 'true';
    for (const b of this.form.querySelectorAll('button[data-index]')) {
      const n = Number(b.dataset.index);
      const mine = (this.voted.choices || []).includes(n);
      if (mine) b.classList.add('is-mine');
    }
    this.update(this.view);
  }

  update(view) {
    this.view = view;
    const open = view.status === 'open';
    this.node.dataset.status = view.status;
    this.form.hidden = !open || !!this.voted;
    this.votedNote.hidden = !this.voted;
    this.hiddenNote.hidden = !(this.voted && !view.tally);
    this.dismiss.hidden = open;
    renderTally(this.results, view);
    this._meta();
    clearInterval(this.timer);
    this.timer = null;
    if (open && typeof view.closes_at === 'number') {
      this.timer = setInterval(() => this._meta(), 1000);
    }
  }

  _meta() {
    const v = this.view;
    this.meta.replaceChildren();
    if (v.status !== 'open') this.meta.appendChild(tel('span', 'pill', 'poll.closed'));
    else if (typeof v.closes_at === 'number') {
      this.meta.appendChild(tel('span', 'pill poll-countdown', 'poll.time_left', { s: secondsLeft(this.client, v.closes_at) }));
    }
    if (v.anonymous) this.meta.appendChild(tel('span', 'pill', 'poll.anonymous'));
    this.meta.appendChild(turnout(v));
  }

  remove() {
    clearInterval(this.timer);
    this.node.remove();
    this.onGone(this.view.id);
  }
}

export function mountPollCard({ client, cards, status }) {
  const open = new Map();
  const dismissed = new Set();

  function show(view, ballot) {
    if (!view || !view.id) return;
    let card = open.get(view.id);
    const visible = view.status === 'open' || (view.status === 'closed' && view.results_visible);
    if (!visible) {
      if (card) card.remove();
      return;
    }
    if (!card) {
      if (dismissed.has(view.id)) return;
      card = new PollCard(client, status, view, (id) => {
        open.delete(id);
        dismissed.add(id);
      });
      open.set(view.id, card);
      cards.appendChild(card.node);
    } else {
      card.update(view);
    }
    if (ballot && !card.voted) card.markVoted(ballot);
  }

  async function refresh() {
    const ack = await client.request('poll_state', {});
    if (!ack.ok) return;
    const votes = ack.votes || {};
    const ids = new Set();
    for (const view of ack.polls || []) {
      ids.add(view.id);
      show(view, votes[view.id]);
    }
    for (const [id, card] of [...open]) {
      if (!ids.has(id)) {
        card.remove();
        dismissed.delete(id);
      }
    }
  }

  client.on('welcome', () => { refresh(); });
  client.on('poll', (view) => show(view));
}

// ------------------------------------------------------------ moderator panel

function field(labelKey, control) {
  const label = el('label', 'poll-field');
  label.appendChild(tel('span', 'poll-field-label', labelKey));
  label.appendChild(control);
  return label;
}

function numberInput(className, min, max) {
  const input = el('input', className);
  input.type = 'number';
  input.min = String(min);
  input.max = String(max);
  return input;
}

export function mountPollControls({ client, controls, status }) {
  const panel = el('section', 'panel poll-panel');
  const head = el('div', 'panel-head');
  head.appendChild(tel('h2', '', 'poll.panel'));
  panel.appendChild(head);

  const form = el('form', 'poll-create');
  form.autocomplete = 'off';
  const question = el('input', 'poll-question-input');
  question.type = 'text';
  question.maxLength = 200;
  question.required = true;
  const kind = el('select', 'poll-kind');
  for (const k of ['single', 'multiple', 'rating', 'word_cloud']) {
    const o = tel('option', '', `poll.kind.${k}`);
    o.value = k;
    kind.appendChild(o);
  }
  const options = el('textarea', 'poll-options-input');
  options.rows = 4;
  const anonymous = el('input', 'poll-anonymous');
  anonymous.type = 'checkbox';
  const showLive = el('input', 'poll-show-live');
  showLive.type = 'checkbox';
  const timer = numberInput('poll-timer', 5, 3600);
  const maxChoices = numberInput('poll-max', 1, 10);
  const optionsField = field('poll.options', options);
  const maxField = field('poll.max_choices', maxChoices);
  const anonLabel = el('label', 'poll-check');
  anonLabel.append(anonymous, tel('span', '', 'poll.anonymous'));
  const liveLabel = el('label', 'poll-check');
  liveLabel.append(showLive, tel('span', '', 'poll.show_live'));
  const submit = tel('button', 'btn btn-primary poll-create-submit', 'poll.create');
  submit.type = 'submit';
  form.append(
    field('poll.question', question), field('poll.kind', kind), optionsField,
    maxField, field('poll.timer', timer), anonLabel, liveLabel, submit,
  );
  panel.appendChild(form);

  const list = el('ol', 'item-list poll-admin-list');
  list.dataset.i18nAttr = 'data-empty:poll.empty';
  list.dataset.empty = t('poll.empty');
  panel.appendChild(list);
  controls.appendChild(panel);

  function syncKind() {
    const k = kind.value;
    optionsField.hidden = k === 'rating' || k === 'word_cloud';
    maxField.hidden = k !== 'multiple';
  }
  kind.addEventListener('change', syncKind);
  syncKind();

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const k = kind.value;
    const payload = { question: question.value.trim(), kind: k, anonymous: anonymous.checked, results_visible: showLive.checked };
    if (k === 'single' || k === 'multiple') {
      payload.options = options.value.split('\n').map((s) => s.trim()).filter(Boolean);
    }
    if (k === 'multiple' && maxChoices.value) payload.max_choices = Number(maxChoices.value);
    if (timer.value) payload.timer_seconds = Number(timer.value);
    submit.disabled = true;
    const ack = await client.request('poll_create', payload);
    submit.disabled = false;
    if (!ack.ok) {
      reportError(status, ack.error);
      return;
    }
    status.show('poll.created', null, { kind: 'ok' });
    question.value = '';
    options.value = '';
    upsert(ack.poll);
  });

  const rows = new Map();

  function upsert(view) {
    if (!view || !view.id) return;
    let row = rows.get(view.id);
    if (!row) {
      row = el('li', 'poll-admin');
      row.dataset.poll = view.id;
      rows.set(view.id, row);
      list.appendChild(row);
    }
    row.dataset.status = view.status;
    row.replaceChildren();
    const top = el('div', 'poll-admin-top');
    top.appendChild(el('span', 'poll-admin-question', view.question));
    top.appendChild(tel('span', 'pill', `poll.${view.status === 'open' ? 'open' : view.status === 'draft' ? 'draft' : 'closed'}`));
    top.appendChild(turnout(view));
    row.appendChild(top);
    const tally = el('div', 'poll-results');
    renderTally(tally, view);
    row.appendChild(tally);
    const actions = el('div', 'poll-admin-actions');
    if (view.status === 'draft') actions.appendChild(action('poll_open', 'poll.do_open', view.id));
    if (view.status === 'open') actions.appendChild(action('poll_close', 'poll.do_close', view.id));
    const visible = !!view.results_visible;
    actions.appendChild(action('poll_results', visible ? 'poll.hide_results' : 'poll.show_results', view.id, { visible: !visible }));
    row.appendChild(actions);
  }

  function action(event, key, pollId, extra) {
    const b = button('btn-small poll-action', key);
    b.dataset.event = event;
    b.addEventListener('click', async () => {
      b.disabled = true;
      const ack = await client.request(event, { poll_id: pollId, ...(extra || {}) });
      b.disabled = false;
      if (!ack.ok) reportError(status, ack.error);
      else upsert(ack.poll);
    });
    return b;
  }

  async function refresh() {
    const ack = await client.request('poll_list', {});
    if (!ack.ok) return;
    for (const view of ack.polls || []) upsert(view);
  }

  client.on('welcome', () => { refresh(); });
  client.on('poll_staff', (view) => upsert(view));
}
