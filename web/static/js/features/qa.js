// Q&A: a card over the video for viewers (ask, see close questions first,
// upvote, sort by votes or recent), the highlighted question shown prominently
// over the video, and a "Q&A" panel on the moderate page (approval queue,
// answer / highlight / dismiss, require-approval switch).
// Protocol: docs/protocol-questions.md. Server text goes in with textContent only.

import { addStrings, t, formatTime, onLangChange } from '../i18n.js';
import { newClientId } from '../live.js';
import { el, tel } from '../ui.js';

addStrings({
  en: {
    'qa.title': 'Q&A',
    'qa.open': 'Show questions',
    'qa.close': 'Hide questions',
    'qa.placeholder': 'Ask the host a question…',
    'qa.anonymous': 'Ask anonymously',
    'qa.ask': 'Ask',
    'qa.asked': 'Your question is in.',
    'qa.pending': 'Your question will appear once a moderator approves it.',
    'qa.duplicate': 'That question was already sent.',
    'qa.similar_title': 'Similar questions were already asked. Upvote one instead?',
    'qa.ask_anyway': 'Ask anyway',
    'qa.cancel': 'Cancel',
    'qa.sort': 'Sort',
    'qa.sort.votes': 'Top',
    'qa.sort.recent': 'Newest',
    'qa.empty': 'No questions yet. Be the first to ask!',
    'qa.votes': '{n}',
    'qa.upvote': 'Upvote',
    'qa.unvote': 'Take back your upvote',
    'qa.own': 'Your question',
    'qa.you': 'You',
    'qa.anonymous_author': 'Anonymous',
    'qa.answered': 'Answered',
    'qa.highlighted': 'On screen',
    'qa.highlight_label': 'Question',
    'qa.hide_banner': 'Hide',
    'qa.chars_left': '{n} left',
    'qa.upvoted_done': 'Upvoted.',
    'qa.err.own_question': 'You cannot upvote your own question.',
    'qa.err.already_upvoted': 'You already upvoted that question.',
    'qa.err.not_upvoted': 'You had not upvoted that question.',
    'qa.err.empty_question': 'Type a question first.',
    'qa.err.question_too_long': 'Questions are at most 300 characters.',
    'qa.err.too_many_questions': 'This room cannot take more questions.',
    'qa.err.ask_in_progress': 'Your question is still being sent.',
    'qa.err.blocked': 'Your question was blocked by the room rules.',
    'qa.err.not_found': 'That question is no longer on the board.',
    'qa.err.rate_limited': 'One question a minute: wait {s} s.',
    'qa.panel': 'Q&A',
    'qa.require_approval': 'Approve questions first',
    'qa.require_approval_on': 'Questions are approved before they show.',
    'qa.require_approval_off': 'Questions show right away.',
    'qa.queue': 'Waiting for approval',
    'qa.queue_empty': 'Nothing waiting.',
    'qa.board': 'Questions',
    'qa.board_empty': 'No questions yet.',
    'qa.approve': 'Approve',
    'qa.reject': 'Reject',
    'qa.do_answer': 'Answered',
    'qa.do_highlight': 'Show on screen',
    'qa.do_unhighlight': 'Take off screen',
    'qa.dismiss': 'Dismiss',
    'qa.held_rule': 'Held by a rule',
    'qa.anon_pill': 'Anonymous',
    'qa.done.approve': 'Question approved.',
    'qa.done.reject': 'Question rejected.',
    'qa.done.answer': 'Marked as answered.',
    'qa.done.highlight': 'Shown on every screen.',
    'qa.done.unhighlight': 'Taken off screen.',
    'qa.done.dismiss': 'Question dismissed.',
  },
  'zh-CN': {
    'qa.title': '问答',
    'qa.open': '查看提问',
    'qa.close': '收起提问',
    'qa.placeholder': '向主播提问…',
    'qa.anonymous': '匿名提问',
    'qa.ask': '提问',
    'qa.asked': '你的问题已提交。',
    'qa.pending': '你的问题将在房管审核通过后显示。',
    'qa.duplicate': '这个问题已经提交过了。',
    'qa.similar_title': '已经有人问过类似的问题，要不要给它点赞？',
    'qa.ask_anyway': '仍然提问',
    'qa.cancel': '取消',
    'qa.sort': '排序',
    'qa.sort.votes': '最热',
    'qa.sort.recent': '最新',
    'qa.empty': '还没有人提问，来问第一个问题吧！',
    'qa.votes': '{n}',
    'qa.upvote': '点赞',
    'qa.unvote': '取消点赞',
    'qa.own': '你的问题',
    'qa.you': '我',
    'qa.anonymous_author': '匿名',
    'qa.answered': '已回答',
    'qa.highlighted': '展示中',
    'qa.highlight_label': '提问',
    'qa.hide_banner': '隐藏',
    'qa.chars_left': '还可输入 {n} 字',
    'qa.upvoted_done': '已点赞。',
    'qa.err.own_question': '不能给自己的问题点赞。',
    'qa.err.already_upvoted': '你已经给这个问题点过赞了。',
    'qa.err.not_upvoted': '你还没有给这个问题点赞。',
    'qa.err.empty_question': '请先输入问题。',
    'qa.err.question_too_long': '问题最多 300 个字符。',
    'qa.err.too_many_questions': '这个房间的提问已满。',
    'qa.err.ask_in_progress': '你的问题正在发送中。',
    'qa.err.blocked': '你的问题违反了房间规则，未能提交。',
    'qa.err.not_found': '这个问题已不在列表中。',
    'qa.err.rate_limited': '每分钟只能提问一次：请等待 {s} 秒。',
    'qa.panel': '问答',
    'qa.require_approval': '提问需先审核',
    'qa.require_approval_on': '提问审核通过后才会显示。',
    'qa.require_approval_off': '提问会立即显示。',
    'qa.queue': '待审核',
    'qa.queue_empty': '没有待审核的提问。',
    'qa.board': '提问列表',
    'qa.board_empty': '还没有提问。',
    'qa.approve': '通过',
    'qa.reject': '拒绝',
    'qa.do_answer': '标为已答',
    'qa.do_highlight': '展示到画面',
    'qa.do_unhighlight': '取消展示',
    'qa.dismiss': '移除',
    'qa.held_rule': '被规则拦截',
    'qa.anon_pill': '匿名',
    'qa.done.approve': '提问已通过。',
    'qa.done.reject': '提问已拒绝。',
    'qa.done.answer': '已标为已回答。',
    'qa.done.highlight': '已在所有观众画面上展示。',
    'qa.done.unhighlight': '已取消展示。',
    'qa.done.dismiss': '提问已移除。',
  },
});

const MAX_CHARS = 300;
const OWN_ERRORS = [
  'own_question', 'already_upvoted', 'not_upvoted', 'empty_question', 'question_too_long',
  'too_many_questions', 'ask_in_progress', 'blocked', 'not_found',
];

function reportError(status, error) {
  const e = error || {};
  if (e.code === 'rate_limited' && e.details && Number.isFinite(Number(e.details.retry_after))) {
    const s = Math.max(1, Math.ceil(Number(e.details.retry_after)));
    status.show('qa.err.rate_limited', { s }, { kind: 'error' });
  } else if (OWN_ERRORS.includes(e.code)) {
    status.show(`qa.err.${e.code}`, null, { kind: 'error' });
  } else {
    status.error(e);
  }
}

function button(className, key, vars) {
  const b = tel('button', `btn ${className}`, key, vars);
  b.type = 'button';
  return b;
}

function isId(v) {
  return Number.isInteger(v) && v > 0;
}

/**
 * The questions one page knows about, keyed by id. Pushes carry the public view
 * (no `own`, `upvoted`, nor the author of an anonymous question): merging keeps
 * what the page learnt from its own list and acks.
 */
class Board {
  constructor() {
    this.byId = new Map();
    this.sort = 'votes';
  }

  reset(views) {
    this.byId.clear();
    for (const v of views || []) this.upsert(v);
  }

  /** Add or update; a question that is no longer open leaves the board. */
  upsert(view) {
    if (!view || !isId(view.id)) return false;
    if (view.status && view.status !== 'open') return this.byId.delete(view.id);
    const old = this.byId.get(view.id) || {};
    this.byId.set(view.id, { ...old, ...view });
    return true;
  }

  patch(id, fields) {
    const q = this.byId.get(id);
    if (q) Object.assign(q, fields);
  }

  votes(map) {
    let changed = false;
    for (const [key, n] of Object.entries(map || {})) {
      const q = this.byId.get(Number(key));
      if (q && typeof n === 'number' && q.votes !== n) {
        q.votes = n;
        changed = true;
      }
    }
    return changed;
  }

  highlight(id) {
    for (const q of this.byId.values()) q.highlighted = q.id === id;
  }

  ordered() {
    const all = [...this.byId.values()];
    if (this.sort === 'recent') return all.sort((a, b) => b.id - a.id);
    return all.sort((a, b) => (b.votes || 0) - (a.votes || 0) || a.id - b.id);
  }
}

/** Keep `list`'s children in `items` order, reusing one <li> per id. */
function renderKeyed(list, nodes, items, build, update) {
  const keep = new Set();
  let prev = null;
  for (const item of items) {
    keep.add(item.id);
    let li = nodes.get(item.id);
    if (!li) {
      li = build(item);
      nodes.set(item.id, li);
    }
    update(li, item);
    const at = prev ? prev.nextSibling : list.firstChild;
    if (at !== li) list.insertBefore(li, at);
    prev = li;
  }
  for (const [id, li] of [...nodes]) {
    if (!keep.has(id)) {
      li.remove();
      nodes.delete(id);
    }
  }
}

function authorOf(q) {
  if (q.own) return q.anonymous ? t('qa.you') + ' · ' + t('qa.anonymous_author') : t('qa.you');
  if (q.anonymous && !q.name) return t('qa.anonymous_author');
  return q.name || '?';
}

function badges(q) {
  const box = el('span', 'qa-badges');
  if (q.highlighted) box.appendChild(tel('span', 'pill qa-pill-highlight', 'qa.highlighted'));
  if (q.answered) box.appendChild(tel('span', 'pill qa-pill-answered', 'qa.answered'));
  return box;
}

// ------------------------------------------------------------ viewer card

export function mountQaCard({ client, cards, status }) {
  const board = new Board();
  const nodes = new Map();
  let expanded = false;
  let pendingAsk = null;  // {text, client_id}: re-sent as is by "ask anyway" or a retry
  let bannerHiddenFor = null;
  const ownIds = new Set();  // this viewer's questions, anonymous ones included

  // -- highlighted question, over the video
  const stage = cards.parentElement || cards;
  const banner = el('aside', 'qa-highlight');
  banner.hidden = true;
  banner.setAttribute('role', 'status');
  const bannerLabel = tel('span', 'qa-highlight-label', 'qa.highlight_label');
  const bannerText = el('p', 'qa-highlight-text');
  const bannerMeta = el('span', 'qa-highlight-meta');
  const bannerHide = button('btn-small btn-ghost qa-highlight-hide', 'qa.hide_banner');
  const bannerHead = el('div', 'qa-highlight-head');
  bannerHead.append(bannerLabel, bannerMeta, bannerHide);
  banner.append(bannerHead, bannerText);
  stage.appendChild(banner);
  let highlighted = null;

  bannerHide.addEventListener('click', () => {
    bannerHiddenFor = highlighted ? highlighted.id : null;
    banner.hidden = true;
  });

  function showHighlight(view) {
    highlighted = view && isId(view.id) ? view : null;
    board.highlight(highlighted ? highlighted.id : null);
    if (!highlighted) {
      banner.hidden = true;
      bannerHiddenFor = null;
    } else {
      bannerText.textContent = highlighted.text;
      bannerMeta.textContent = authorOf(board.byId.get(highlighted.id) || highlighted);
      banner.hidden = bannerHiddenFor === highlighted.id;
    }
    render();
  }

  // -- the card
  const card = el('section', 'card qa-card');
  card.dataset.expanded = 'false';
  const head = el('div', 'qa-head');
  const toggle = el('button', 'btn btn-small qa-toggle');
  toggle.type = 'button';
  toggle.setAttribute('aria-expanded', 'false');
  const toggleLabel = tel('span', 'qa-label', 'qa.title');
  const count = el('span', 'pill qa-count', '0');
  toggle.append(toggleLabel, count);
  const sortBox = el('div', 'qa-sort');
  sortBox.setAttribute('role', 'group');
  sortBox.dataset.i18nTitle = 'qa.sort';
  sortBox.title = t('qa.sort');
  const sortButtons = {};
  for (const key of ['votes', 'recent']) {
    const b = button('btn-small btn-ghost qa-sort-btn', `qa.sort.${key}`);
    b.dataset.sort = key;
    b.setAttribute('aria-pressed', key === board.sort ? 'true' : 'false');
    b.addEventListener('click', () => setSort(key));
    sortButtons[key] = b;
    sortBox.appendChild(b);
  }
  head.append(toggle, sortBox);

  const body = el('div', 'qa-body');
  body.hidden = true;

  const form = el('form', 'qa-form');
  form.autocomplete = 'off';
  const input = el('textarea', 'qa-input');
  input.rows = 2;
  input.maxLength = MAX_CHARS;
  input.dataset.i18nPlaceholder = 'qa.placeholder';
  input.placeholder = t('qa.placeholder');
  input.dataset.i18nAttr = 'aria-label:qa.placeholder';
  input.setAttribute('aria-label', t('qa.placeholder'));
  const row = el('div', 'qa-form-row');
  const anonLabel = el('label', 'qa-check');
  const anon = el('input', 'qa-anonymous');
  anon.type = 'checkbox';
  anonLabel.append(anon, tel('span', '', 'qa.anonymous'));
  const left = el('span', 'muted-text qa-left');
  const submit = tel('button', 'btn btn-primary qa-submit', 'qa.ask');
  submit.type = 'submit';
  row.append(anonLabel, left, submit);
  form.append(input, row);

  const similarBox = el('div', 'qa-similar');
  similarBox.hidden = true;

  const list = el('ol', 'qa-list');
  list.dataset.i18nAttr = 'data-empty:qa.empty';
  list.dataset.empty = t('qa.empty');

  body.append(form, similarBox, list);
  card.append(head, body);
  cards.appendChild(card);

  function setExpanded(on) {
    expanded = on;
    body.hidden = !on;
    card.dataset.expanded = on ? 'true' : 'false';
    toggle.setAttribute('aria-expanded', on ? 'true' : 'false');
    toggle.title = t(on ? 'qa.close' : 'qa.open');
  }
  toggle.addEventListener('click', () => setExpanded(!expanded));
  setExpanded(false);

  function showLeft() {
    left.textContent = t('qa.chars_left', { n: MAX_CHARS - input.value.length });
  }
  input.addEventListener('input', showLeft);
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      form.requestSubmit();
    }
  });
  showLeft();

  function setSort(key) {
    if (board.sort === key) return;
    board.sort = key;
    for (const [k, b] of Object.entries(sortButtons)) b.setAttribute('aria-pressed', k === key ? 'true' : 'false');
    render();
  }

  // -- the list
  function build(q) {
    const li = el('li', 'qa-item');
    li.dataset.id = String(q.id);
    const vote = el('button', 'btn qa-vote');
    vote.type = 'button';
    vote.append(el('span', 'qa-vote-icon', '▲'), el('span', 'qa-vote-count', '0'));
    vote.addEventListener('click', () => toggleVote(q.id, vote));
    const main = el('div', 'qa-main');
    main.append(el('p', 'qa-text'), el('div', 'qa-meta'));
    li.append(vote, main);
    return li;
  }

  function update(li, q) {
    const vote = li.querySelector('.qa-vote');
    vote.querySelector('.qa-vote-count').textContent = String(q.votes || 0);
    vote.setAttribute('aria-pressed', q.upvoted ? 'true' : 'false');
    vote.disabled = !!q.own;
    const label = q.own ? t('qa.own') : t(q.upvoted ? 'qa.unvote' : 'qa.upvote');
    vote.title = label;
    vote.setAttribute('aria-label', `${label} (${q.votes || 0})`);
    li.classList.toggle('is-own', !!q.own);
    li.classList.toggle('is-answered', !!q.answered);
    li.classList.toggle('is-highlighted', !!q.highlighted);
    li.querySelector('.qa-text').textContent = q.text;
    const meta = li.querySelector('.qa-meta');
    const who = el('span', 'qa-author', authorOf(q));
    if (q.asked_at) who.title = formatTime(q.asked_at);
    meta.replaceChildren(who, badges(q));
  }

  function render() {
    const items = board.ordered();
    count.textContent = String(items.length);
    renderKeyed(list, nodes, items, build, update);
  }

  async function toggleVote(id, vote) {
    const q = board.byId.get(id);
    if (!q || q.own) return;
    vote.disabled = true;
    const ack = await client.request(q.upvoted ? 'qa_unvote' : 'qa_upvote', { question_id: id });
    vote.disabled = false;
    if (ack.ok) {
      board.patch(id, { votes: ack.votes, upvoted: !!ack.upvoted });
    } else {
      const code = ack.error && ack.error.code;
      if (code === 'already_upvoted') board.patch(id, { upvoted: true });
      else if (code === 'not_upvoted') board.patch(id, { upvoted: false });
      else if (code === 'own_question') board.patch(id, { own: true });
      else if (code === 'not_found') board.byId.delete(id);
      if (code !== 'already_upvoted' && code !== 'not_upvoted') reportError(status, ack.error);
    }
    render();
  }

  // -- asking
  function hideSimilar() {
    similarBox.hidden = true;
    similarBox.replaceChildren();
  }

  function showSimilar(similar) {
    similarBox.replaceChildren();
    similarBox.appendChild(tel('p', 'qa-similar-title', 'qa.similar_title'));
    const ul = el('ul', 'qa-similar-list');
    for (const s of similar) {
      if (!s || !isId(s.id)) continue;
      const li = el('li', 'qa-similar-item');
      li.appendChild(el('span', 'qa-text', s.text));
      const known = board.byId.get(s.id);
      if (s.own || (known && known.own)) {
        li.appendChild(tel('span', 'pill', 'qa.own'));
      } else {
        const up = el('button', 'btn btn-small qa-similar-up');
        up.type = 'button';
        up.append(el('span', 'qa-vote-icon', '▲'), el('span', 'qa-vote-count', String(s.votes || 0)));
        up.title = t('qa.upvote');
        up.setAttribute('aria-label', `${t('qa.upvote')} (${s.votes || 0})`);
        if (known && known.upvoted) {
          up.disabled = true;
          up.setAttribute('aria-pressed', 'true');
        }
        up.addEventListener('click', async () => {
          up.disabled = true;
          const ack = await client.request('qa_upvote', { question_id: s.id });
          if (ack.ok || (ack.error && ack.error.code === 'already_upvoted')) {
            board.patch(s.id, { upvoted: true, ...(ack.ok ? { votes: ack.votes } : {}) });
            status.show('qa.upvoted_done', null, { kind: 'ok' });
            input.value = '';
            pendingAsk = null;
            showLeft();
            hideSimilar();
            render();
          } else {
            up.disabled = false;
            reportError(status, ack.error);
          }
        });
        li.appendChild(up);
      }
      ul.appendChild(li);
    }
    const actions = el('div', 'qa-similar-actions');
    const anyway = button('btn-small qa-ask-anyway', 'qa.ask_anyway');
    anyway.addEventListener('click', () => ask(true));
    const cancel = button('btn-small btn-ghost qa-similar-cancel', 'qa.cancel');
    cancel.addEventListener('click', () => hideSimilar());
    actions.append(anyway, cancel);
    similarBox.append(ul, actions);
    similarBox.hidden = false;
  }

  let sending = false;

  async function ask(force) {
    const text = input.value.trim();
    if (!text || sending) return;
    if (!pendingAsk || pendingAsk.text !== text) pendingAsk = { text, client_id: newClientId() };
    const payload = { text, client_id: pendingAsk.client_id, anonymous: anon.checked };
    if (force) payload.force = true;
    sending = true;
    submit.disabled = true;
    let ack = await client.request('qa_ask', payload);
    if (!ack.ok && ack.error && ack.error.code === 'timeout' && client.connected) {
      ack = await client.request('qa_ask', payload);  // same client_id: asked at most once
    }
    sending = false;
    submit.disabled = false;
    if (!ack.ok) {
      reportError(status, ack.error);
      return;
    }
    if (Array.isArray(ack.similar)) {
      showSimilar(ack.similar);
      return;
    }
    hideSimilar();
    input.value = '';
    pendingAsk = null;
    showLeft();
    const q = ack.question || {};
    if (isId(q.id)) ownIds.add(q.id);
    if (q.status === 'pending') {
      status.show('qa.pending', null, { kind: 'warn', ms: 8000 });
    } else {
      board.upsert({ ...q, own: true });
      render();
      status.show(ack.duplicate ? 'qa.duplicate' : 'qa.asked', null, { kind: 'ok' });
    }
  }

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    ask(false);
  });

  // -- server events
  async function refresh() {
    const ack = await client.request('qa_list', { sort: 'votes' });
    if (!ack.ok) return;
    board.reset(ack.questions);
    for (const q of board.byId.values()) if (q.own) ownIds.add(q.id);
    showHighlight(ack.highlight || null);
  }

  onLangChange(() => {
    toggle.title = t(expanded ? 'qa.close' : 'qa.open');
    showLeft();
    render();
    if (highlighted) bannerMeta.textContent = authorOf(board.byId.get(highlighted.id) || highlighted);
  });
  client.on('welcome', () => { refresh(); });
  client.on('question', (view) => {
    if (view && highlighted && view.id === highlighted.id && view.status !== 'open') showHighlight(null);
    if (view && ownIds.has(view.id)) view = { ...view, own: true };
    board.upsert(view);
    render();
  });
  client.on('qa_votes', (votes) => { if (board.votes(votes)) render(); });
  client.on('question_highlight', (h) => showHighlight(h ? h.question : null));
}

// ------------------------------------------------------------ moderator panel

export function mountQaControls({ client, controls, status }) {
  const board = new Board();
  const queue = new Map();
  const boardNodes = new Map();
  const queueNodes = new Map();
  let requireApproval = false;

  const panel = el('section', 'panel qa-panel');
  const head = el('div', 'panel-head');
  head.appendChild(tel('h2', '', 'qa.panel'));
  const approvalToggle = button('btn-small qa-approval-toggle', 'qa.require_approval');
  approvalToggle.setAttribute('aria-pressed', 'false');
  head.appendChild(approvalToggle);
  panel.appendChild(head);
  const approvalNote = tel('p', 'muted-text qa-approval-note', 'qa.require_approval_off');
  panel.appendChild(approvalNote);

  const queueHead = el('div', 'qa-subhead');
  const queueCount = el('span', 'pill qa-queue-count', '0');
  queueHead.append(tel('h3', '', 'qa.queue'), queueCount);
  const queueList = el('ol', 'item-list qa-queue');
  queueList.dataset.i18nAttr = 'data-empty:qa.queue_empty';
  queueList.dataset.empty = t('qa.queue_empty');

  const boardHead = el('div', 'qa-subhead');
  const boardCount = el('span', 'pill qa-board-count', '0');
  const sortSel = el('select', 'qa-sort-select');
  sortSel.dataset.i18nTitle = 'qa.sort';
  sortSel.title = t('qa.sort');
  for (const key of ['votes', 'recent']) {
    const o = tel('option', '', `qa.sort.${key}`);
    o.value = key;
    sortSel.appendChild(o);
  }
  boardHead.append(tel('h3', '', 'qa.board'), boardCount, sortSel);
  const boardList = el('ol', 'item-list qa-board');
  boardList.dataset.i18nAttr = 'data-empty:qa.board_empty';
  boardList.dataset.empty = t('qa.board_empty');

  panel.append(queueHead, queueList, boardHead, boardList);
  controls.appendChild(panel);

  function showApproval(on) {
    requireApproval = !!on;
    approvalToggle.setAttribute('aria-pressed', requireApproval ? 'true' : 'false');
    const key = requireApproval ? 'qa.require_approval_on' : 'qa.require_approval_off';
    approvalNote.dataset.i18n = key;
    approvalNote.textContent = t(key);
  }

  approvalToggle.addEventListener('click', async () => {
    approvalToggle.disabled = true;
    const ack = await client.request('qa_settings', { require_approval: !requireApproval });
    approvalToggle.disabled = false;
    if (ack.ok) showApproval(ack.require_approval);
    else reportError(status, ack.error);
  });

  sortSel.addEventListener('change', () => {
    board.sort = sortSel.value === 'recent' ? 'recent' : 'votes';
    renderBoard();
  });

  function author(q) {
    const box = el('span', 'qa-author');
    box.appendChild(el('span', 'chat-name', q.name || t('qa.anonymous_author')));
    if (q.anonymous) box.appendChild(tel('span', 'pill qa-anon', 'qa.anon_pill'));
    if (q.held_by === 'rule') box.appendChild(tel('span', 'pill pill-hold', 'qa.held_rule'));
    if (q.asked_at) box.title = formatTime(q.asked_at);
    return box;
  }

  async function act(event, payload, doneKey, btn) {
    btn.disabled = true;
    const ack = await client.request(event, payload);
    btn.disabled = false;
    if (!ack.ok) {
      reportError(status, ack.error);
      if (ack.error && ack.error.code === 'not_found' && isId(payload.question_id)) {
        queue.delete(payload.question_id);
        board.byId.delete(payload.question_id);
        renderAll();
      }
      return null;
    }
    status.show(doneKey, null, { kind: 'ok' });
    return ack;
  }

  // -- approval queue
  function buildQueued(q) {
    const li = el('li', 'qa-admin-item qa-queued');
    li.dataset.id = String(q.id);
    const text = el('p', 'qa-text');
    const who = el('div', 'qa-meta');
    const actions = el('div', 'qa-actions');
    const approve = button('btn-small btn-ok qa-approve', 'qa.approve');
    const reject = button('btn-small btn-danger qa-reject', 'qa.reject');
    approve.addEventListener('click', async () => {
      const ack = await act('qa_approve', { question_id: q.id }, 'qa.done.approve', approve);
      if (ack) {
        queue.delete(q.id);
        board.upsert(ack.question);
        renderAll();
      }
    });
    reject.addEventListener('click', async () => {
      const ack = await act('qa_reject', { question_id: q.id }, 'qa.done.reject', reject);
      if (ack) {
        queue.delete(q.id);
        renderAll();
      }
    });
    actions.append(approve, reject);
    li.append(text, who, actions);
    return li;
  }

  function updateQueued(li, q) {
    li.querySelector('.qa-text').textContent = q.text;
    li.querySelector('.qa-meta').replaceChildren(author(q));
  }

  // -- the board
  function buildRow(q) {
    const li = el('li', 'qa-admin-item');
    li.dataset.id = String(q.id);
    const votes = el('span', 'qa-admin-votes');
    const text = el('p', 'qa-text');
    const meta = el('div', 'qa-meta');
    const actions = el('div', 'qa-actions');
    const answer = button('btn-small qa-answer', 'qa.do_answer');
    const highlight = button('btn-small qa-highlight-btn', 'qa.do_highlight');
    const dismiss = button('btn-small btn-danger qa-dismiss', 'qa.dismiss');
    answer.addEventListener('click', async () => {
      const ack = await act('qa_answer', { question_id: q.id }, 'qa.done.answer', answer);
      if (ack) {
        board.upsert(ack.question);
        renderBoard();
      }
    });
    highlight.addEventListener('click', async () => {
      const current = board.byId.get(q.id);
      const off = !!(current && current.highlighted);
      const ack = await act('qa_highlight', { question_id: off ? null : q.id },
        off ? 'qa.done.unhighlight' : 'qa.done.highlight', highlight);
      if (ack) {
        board.highlight(ack.question ? ack.question.id : null);
        renderBoard();
      }
    });
    dismiss.addEventListener('click', async () => {
      const ack = await act('qa_dismiss', { question_id: q.id }, 'qa.done.dismiss', dismiss);
      if (ack) {
        board.upsert(ack.question);
        renderBoard();
      }
    });
    actions.append(answer, highlight, dismiss);
    li.append(votes, text, meta, actions);
    return li;
  }

  function updateRow(li, q) {
    li.querySelector('.qa-admin-votes').textContent = `▲ ${q.votes || 0}`;
    li.querySelector('.qa-text').textContent = q.text;
    li.querySelector('.qa-meta').replaceChildren(author(q), badges(q));
    li.classList.toggle('is-answered', !!q.answered);
    li.classList.toggle('is-highlighted', !!q.highlighted);
    li.querySelector('.qa-answer').hidden = !!q.answered;
    const hl = li.querySelector('.qa-highlight-btn');
    const key = q.highlighted ? 'qa.do_unhighlight' : 'qa.do_highlight';
    hl.dataset.i18n = key;
    hl.textContent = t(key);
    hl.setAttribute('aria-pressed', q.highlighted ? 'true' : 'false');
  }

  function renderBoard() {
    const items = board.ordered();
    boardCount.textContent = String(items.length);
    renderKeyed(boardList, boardNodes, items, buildRow, updateRow);
  }

  function renderQueue() {
    const items = [...queue.values()].sort((a, b) => a.id - b.id);
    queueCount.textContent = String(items.length);
    renderKeyed(queueList, queueNodes, items, buildQueued, updateQueued);
  }

  function renderAll() {
    renderQueue();
    renderBoard();
  }

  async function refresh() {
    const [listed, queued] = await Promise.all([
      client.request('qa_list', { sort: 'votes' }),
      client.request('qa_queue', {}),
    ]);
    if (listed.ok) {
      board.reset(listed.questions);
      showApproval(listed.require_approval);
    }
    if (queued.ok) {
      queue.clear();
      for (const q of queued.questions || []) if (q && isId(q.id)) queue.set(q.id, q);
    }
    renderAll();
  }

  client.on('welcome', (w) => {
    const you = (w && w.you) || {};
    if (you.role === 'host' || you.role === 'moderator') refresh();
  });
  // Pushes to the room leave out the author of anonymous questions; the staff
  // list has it, so fetch the list again when one arrives that this page lacks.
  let refetch = null;
  function refetchSoon() {
    if (refetch) return;
    refetch = setTimeout(async () => {
      refetch = null;
      const ack = await client.request('qa_list', { sort: 'votes' });
      if (!ack.ok) return;
      for (const q of ack.questions || []) board.upsert(q);
      renderBoard();
    }, 300);
  }

  onLangChange(() => renderAll());
  client.on('question', (view) => {
    if (!view || !isId(view.id)) return;
    const known = board.byId.get(view.id);
    board.upsert(view);
    if (view.status === 'open' && view.anonymous && !view.name && !(known && known.name)) refetchSoon();
    renderBoard();
  });
  client.on('question_pending', (view) => {
    if (!view || !isId(view.id)) return;
    if (view.status === 'pending') queue.set(view.id, view);
    else queue.delete(view.id);
    if (view.status === 'open') board.upsert(view);
    renderAll();
  });
  client.on('qa_votes', (votes) => { if (board.votes(votes)) renderBoard(); });
  client.on('question_highlight', (h) => {
    const q = h && h.question;
    board.highlight(q && isId(q.id) ? q.id : null);
    renderBoard();
  });
  client.on('qa_settings', (s) => showApproval(s && s.require_approval));
}
