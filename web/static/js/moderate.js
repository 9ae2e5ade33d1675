// Moderate page UI: live feed with per-message actions, review queue, rules,
// slow mode, pause, viewers and stats. The protocol lives in live.js.

import { initI18n, setText, formatTime } from './i18n.js';
import { LiveClient, roomFromPath, takeToken } from './live.js';
import { CONTROL_FEATURES } from './features/index.js';
import {
  ChatList, StatusLine, showConnState, showLive, errorText, el, tel, roleBadge,
} from './ui.js';
import {
  button, reporter, modDecorator, muteViewer as muteFor, banViewer as banFor, wireModActions, wireChatForm,
} from './modfeed.js';

const STATS_MS = 5000;
const $ = (id) => document.getElementById(id);

initI18n();

const room = roomFromPath();
const status = new StatusLine($('status'));
const chat = new ChatList($('chat-list'), { max: 300, decorate: modDecorator(isSelf) });
const input = $('chat-input');

let client = null;
let you = null;
let paused = false;
let slowSeconds = 0;
let statsTimer = null;

function showNotice(key, vars) {
  const n = $('notice');
  setText(n, key, vars);
  n.hidden = false;
  document.body.classList.add('is-blocked');
  stopStats();
}

function isSelf(viewerId) {
  return !!(you && viewerId && viewerId === you.viewer_id);
}

const report = reporter(status);
const getClient = () => client;

// ------------------------------------------------------------ feed

function muteViewer(viewerId, name) {
  return muteFor(getClient, report, $('mute-duration'), viewerId, name);
}

function banViewer(viewerId, name) {
  return banFor(getClient, report, viewerId, name);
}

wireModActions($('chat-list'), { chat, getClient, report, durationSelect: $('mute-duration') });
wireChatForm($('chat-form'), { input, send: $('chat-send'), chat, status, getClient });

// ------------------------------------------------------------ held for review

const held = new Map(); // id -> li

function addHeld(msg) {
  if (!msg || typeof msg.id !== 'number' || held.has(msg.id)) return;
  const li = el('li', 'held-item');
  li.dataset.id = String(msg.id);
  const badge = roleBadge(msg.role);
  if (badge) li.appendChild(badge);
  li.appendChild(el('span', 'chat-name', msg.name || '?'));
  li.appendChild(el('span', 'chat-text', msg.text));
  const box = el('span', 'mod-actions');
  box.append(button('btn-ok held-approve', 'mod.approve'), button('held-reject', 'mod.reject'));
  li.appendChild(box);
  $('held-list').appendChild(li);
  held.set(msg.id, li);
  updateHeldCount();
}

function removeHeld(id) {
  const li = held.get(id);
  if (li) li.remove();
  held.delete(id);
  updateHeldCount();
}

function updateHeldCount() {
  $('held-count').textContent = String(held.size);
}

async function loadHeld() {
  const ack = await client.modHeld();
  if (!ack.ok) {
    status.error(ack.error);
    return;
  }
  for (const id of [...held.keys()]) removeHeld(id);
  for (const m of ack.messages || []) addHeld(m);
}

$('held-list').addEventListener('click', async (e) => {
  const btn = e.target.closest('button');
  const li = e.target.closest('.held-item');
  if (!btn || !li || !client) return;
  const id = Number(li.dataset.id);
  btn.disabled = true;
  let ack;
  if (btn.classList.contains('held-approve')) {
    ack = await client.modApprove(id);
    report(ack, 'mod.done.approve');
  } else {
    ack = await client.modReject(id);
    report(ack, 'mod.done.reject');
  }
  if (ack.ok || (ack.error && ack.error.code === 'not_found')) removeHeld(id);
  else btn.disabled = false;
});

// ------------------------------------------------------------ rules

function addRule(rule) {
  if (!rule || !rule.id) return;
  const list = $('rules-list');
  const existing = list.querySelector(`[data-id="${CSS.escape(String(rule.id))}"]`);
  if (existing) existing.remove();
  const li = el('li', 'rule-item');
  li.dataset.id = String(rule.id);
  li.appendChild(el('code', 'rule-pattern', rule.pattern));
  li.appendChild(tel('span', 'pill', `mod.rule_kind.${rule.kind === 'regex' ? 'regex' : 'word'}`));
  const action = ['block', 'hold', 'mute', 'ban'].includes(rule.action) ? rule.action : 'block';
  li.appendChild(tel('span', `pill pill-${action}`, `mod.rule_action.${action}`));
  if (action === 'mute' && rule.mute_seconds) li.appendChild(el('span', 'muted-text', `${rule.mute_seconds} s`));
  const rm = button('rule-remove', 'mod.rule_remove');
  li.appendChild(rm);
  list.appendChild(li);
}

async function loadRules() {
  const ack = await client.modRules();
  if (!ack.ok) {
    status.error(ack.error);
    return;
  }
  $('rules-list').replaceChildren();
  for (const r of ack.rules || []) addRule(r);
}

$('rules-refresh').addEventListener('click', () => client && loadRules());

$('rules-list').addEventListener('click', async (e) => {
  const btn = e.target.closest('button.rule-remove');
  const li = e.target.closest('.rule-item');
  if (!btn || !li || !client) return;
  btn.disabled = true;
  const ack = await client.modRuleRemove(li.dataset.id);
  if (report(ack, 'mod.done.rule_remove')) li.remove();
  else btn.disabled = false;
});

$('rule-action').addEventListener('change', () => {
  $('rule-mute-field').hidden = $('rule-action').value !== 'mute';
});

$('rule-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  if (!client) return;
  const pattern = $('rule-pattern').value.trim();
  if (!pattern) return;
  const rule = { pattern, kind: $('rule-kind').value, action: $('rule-action').value };
  if (rule.action === 'mute') {
    const s = parseInt($('rule-mute-seconds').value, 10);
    if (s > 0) rule.mute_seconds = Math.min(s, 86400);
  }
  $('rule-add').disabled = true;
  const ack = await client.modRuleAdd(rule);
  $('rule-add').disabled = false;
  if (report(ack, 'mod.done.rule_add')) {
    addRule(ack.rule);
    $('rule-pattern').value = '';
  }
});

// ------------------------------------------------------------ room controls

function applyRoom(r) {
  if (!r) return;
  if (r.title) {
    $('room-title').textContent = r.title;
    document.title = `${r.title} · livehub`;
  }
  showLive($('live-badge'), r);
  const s = r.settings || {};
  paused = !!s.chat_paused;
  slowSeconds = Number(s.slow_mode_seconds) || 0;
  const pt = $('pause-toggle');
  pt.setAttribute('aria-pressed', paused ? 'true' : 'false');
  setText(pt, paused ? 'mod.resume' : 'mod.pause');
  showSlow(slowSeconds);
  const st = $('room-state');
  st.replaceChildren();
  if (paused) st.appendChild(tel('span', 'pill pill-warn', 'watch.paused'));
  if (slowSeconds > 0) st.appendChild(tel('span', 'pill', 'watch.slow_mode', { s: slowSeconds }));
  if (r.closed) {
    showNotice('status.room_closed');
    if (client) client.disconnect();
  }
}

function showSlow(seconds) {
  const sel = $('slow-select');
  const v = String(seconds);
  if (![...sel.options].some((o) => o.value === v)) {
    const o = tel('option', '', 'mod.slow.n', { s: seconds });
    o.value = v;
    sel.appendChild(o);
  }
  sel.value = v;
}

$('slow-select').addEventListener('change', async () => {
  if (!client) return;
  const seconds = Number($('slow-select').value);
  const ack = await client.modSlow(seconds);
  if (!report(ack, 'mod.done.slow')) showSlow(slowSeconds);
});

$('pause-toggle').addEventListener('click', async () => {
  if (!client) return;
  const next = !paused;
  const btn = $('pause-toggle');
  btn.disabled = true;
  const ack = await client.modPause(next);
  btn.disabled = false;
  if (report(ack, next ? 'mod.done.pause' : 'mod.done.resume')) {
    // the server's `room` event confirms; show the new state right away
    paused = next;
    btn.setAttribute('aria-pressed', next ? 'true' : 'false');
    setText(btn, next ? 'mod.resume' : 'mod.pause');
  }
});

// ------------------------------------------------------------ viewers

async function loadViewers() {
  const ack = await client.modViewers();
  if (!ack.ok) {
    status.error(ack.error);
    return;
  }
  const list = $('viewer-list');
  list.replaceChildren();
  const viewers = (ack.viewers || []).slice().sort((a, b) => String(a.name).localeCompare(String(b.name)));
  for (const v of viewers) {
    const li = el('li', 'viewer-item');
    li.dataset.viewer = String(v.viewer_id);
    const badge = roleBadge(v.role);
    if (badge) li.appendChild(badge);
    li.appendChild(el('span', 'chat-name', v.name || '?'));
    if (isSelf(v.viewer_id)) li.appendChild(tel('span', 'muted-text', 'mod.you'));
    else li.appendChild(el('span', 'muted-text viewer-id', v.viewer_id));
    if (!isSelf(v.viewer_id) && v.role !== 'host') {
      const box = el('span', 'mod-actions');
      box.append(button('viewer-mute', 'mod.mute'), button('btn-danger viewer-ban', 'mod.ban'));
      li.appendChild(box);
    }
    list.appendChild(li);
  }
}

$('viewers-refresh').addEventListener('click', () => client && loadViewers());

$('viewer-list').addEventListener('click', async (e) => {
  const btn = e.target.closest('button');
  const li = e.target.closest('.viewer-item');
  if (!btn || !li || !client) return;
  const name = li.querySelector('.chat-name').textContent;
  btn.disabled = true;
  try {
    if (btn.classList.contains('viewer-mute')) await muteViewer(li.dataset.viewer, name);
    else if (btn.classList.contains('viewer-ban')) await banViewer(li.dataset.viewer, name);
  } finally {
    btn.disabled = false;
  }
});

// ------------------------------------------------------------ stats

function showStat(name, value) {
  if (typeof value === 'number') $(`stat-${name}`).textContent = String(value);
}

async function refreshStats() {
  if (!client || !client.connected) return;
  const ack = await client.modStats();
  if (!ack.ok) return;
  for (const k of ['viewers', 'peak', 'likes', 'messages', 'sampled_away']) showStat(k, ack[k]);
}

function startStats() {
  stopStats();
  refreshStats();
  statsTimer = setInterval(refreshStats, STATS_MS);
}

function stopStats() {
  if (statsTimer) clearInterval(statsTimer);
  statsTimer = null;
}

// ------------------------------------------------------------ connection

function start(token) {
  client = new LiveClient(room, token);
  window.livehub = { room, client, chat };
  const controls = $('controls');
  for (const mount of CONTROL_FEATURES) mount({ room, client, controls, status });

  client.on('state', (s) => {
    showConnState($('conn-state'), s);
    if (s.state !== 'connected') stopStats();
  });
  client.on('refused', (error) => {
    const [key, vars] = errorText(error);
    showNotice(key, vars);
  });
  client.on('welcome', (w) => {
    you = w.you || null;
    if (!you || (you.role !== 'host' && you.role !== 'moderator')) {
      showNotice('mod.not_moderator');
      client.disconnect();
      return;
    }
    applyRoom(w.room);
    for (const id of w.deleted) chat.remove(id);
    for (const m of w.messages) chat.add(m);
    chat.scrollToEnd();
    loadHeld();
    loadRules();
    loadViewers();
    startStats();
  });
  client.on('batch', (b) => {
    for (const id of b.deleted) chat.remove(id);
    for (const m of b.messages) chat.add(m);
    showStat('viewers', b.viewers);
    showStat('peak', b.peak);
    showStat('likes', b.likes);
  });
  client.on('deleted', (ids) => { for (const id of ids) chat.remove(id); });
  client.on('room', (r) => applyRoom(r));
  client.on('held', (m) => addHeld(m));
  client.on('held_resolved', (r) => { if (r) removeHeld(r.id); });
  client.on('muted', (m) => status.show('status.muted_now', { time: formatTime(m && m.until) }, { kind: 'warn', ms: 0 }));
  client.on('banned', (b) => showNotice(b && b.reason ? 'status.banned_reason' : 'status.banned_now', { reason: b && b.reason }));
  client.connect();
}

function boot() {
  if (!room) {
    showNotice('err.room_not_found');
    return;
  }
  $('room-title').textContent = room;
  const token = takeToken(room);
  if (!token) {
    showNotice('mod.need_token');
    return;
  }
  start(token);
}

boot();
