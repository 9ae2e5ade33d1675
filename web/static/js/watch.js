// Watch page UI: video stage with danmaku, chat panel, likes. The protocol
// lives in live.js; this file only wires it to the page.

import { initI18n, t, setText, formatTime } from './i18n.js';
import {
  LiveClient, roomFromPath, takeToken, clearToken, tokenExpired, getRoom, joinRoom, isColor,
} from './live.js';
import { DanmakuOverlay } from './danmaku.js';
import { WATCH_FEATURES } from './features/index.js';
import { mountPlayer } from './player.js';
import { ChatList, StatusLine, showConnState, showLive, errorText, el, tel } from './ui.js';

const COLORS = [
  ['white', '#ffffff'], ['red', '#fe0302'], ['orange', '#ff7204'], ['yellow', '#ffd302'],
  ['green', '#00cd00'], ['cyan', '#00dfdf'], ['blue', '#3ba3ff'], ['pink', '#ff6eb4'],
];
const PREFS_KEY = 'livehub.danmaku';
const NAME_KEY = 'livehub.name';
const TOKEN_CODES = ['token_missing', 'token_invalid', 'token_expired', 'token_wrong_room'];

const $ = (id) => document.getElementById(id);

initI18n();

const room = roomFromPath();
const video = $('video');
const stage = $('stage');
const overlay = new DanmakuOverlay($('danmaku'));
const chat = new ChatList($('chat-list'));
const status = new StatusLine($('status'));
const input = $('chat-input');
const sendBtn = $('chat-send');
const modeSel = $('chat-mode');

let client = null;
let roomInfo = null;
let you = null;
let dropped = 0;
let fatal = false;

// ------------------------------------------------------------ preferences

function loadPrefs() {
  try { return JSON.parse(localStorage.getItem(PREFS_KEY)) || {}; } catch (_) { return {}; }
}
function savePrefs(p) {
  try { localStorage.setItem(PREFS_KEY, JSON.stringify({ ...loadPrefs(), ...p })); } catch (_) { /* ignore */ }
}
const prefs = loadPrefs();

function buildPalette() {
  const box = $('chat-colors');
  const chosen = isColor(prefs.color) ? prefs.color : COLORS[0][1];
  for (const [name, color] of COLORS) {
    const label = el('label', 'swatch');
    label.dataset.i18nTitle = `color.${name}`;
    const radio = el('input');
    radio.type = 'radio';
    radio.name = 'color';
    radio.value = color;
    radio.checked = color === chosen;
    radio.addEventListener('change', () => savePrefs({ color }));
    const dot = el('span', 'swatch-dot');
    dot.style.setProperty('--swatch', color);
    label.append(radio, dot);
    box.appendChild(label);
  }
  if (['scroll', 'top', 'bottom'].includes(prefs.mode)) modeSel.value = prefs.mode;
  modeSel.addEventListener('change', () => savePrefs({ mode: modeSel.value }));
}

function chosenColor() {
  const r = document.querySelector('#chat-colors input:checked');
  return r && isColor(r.value) ? r.value : '#ffffff';
}

// ------------------------------------------------------------ page state

function showNotice(key, vars) {
  fatal = true;
  const n = $('notice');
  setText(n, key, vars);
  n.hidden = false;
  $('chat-form').classList.add('is-disabled');
  input.disabled = true;
  sendBtn.disabled = true;
  $('name-dialog').hidden = true;
}

function noticeFor(error) {
  const [key, vars] = errorText(error);
  showNotice(key, vars);
}

function applyRoom(r) {
  if (!r) return;
  roomInfo = r;
  if (r.title) {
    $('room-title').textContent = r.title;
    document.title = `${r.title} · livehub`;
  }
  showLive($('live-badge'), r);
  const s = r.settings || {};
  if (Number.isInteger(s.max_message_chars) && s.max_message_chars > 0) input.maxLength = s.max_message_chars;
  const parts = $('room-state');
  parts.replaceChildren();
  if (s.chat_paused) parts.appendChild(tel('span', 'pill pill-warn', 'watch.paused'));
  if (s.slow_mode_seconds > 0) {
    parts.appendChild(tel('span', 'pill', 'watch.slow_mode', { s: s.slow_mode_seconds }));
  }
  const staff = you && (you.role === 'host' || you.role === 'moderator');
  const paused = !!s.chat_paused && !staff;
  if (!fatal) {
    input.disabled = paused;
    sendBtn.disabled = paused;
    input.dataset.i18nPlaceholder = paused ? 'chat.placeholder_paused' : 'chat.placeholder';
    input.placeholder = t(input.dataset.i18nPlaceholder);
  }
  if (r.closed) {
    showNotice('status.room_closed');
    if (client) client.disconnect();
  }
}

// ------------------------------------------------------------ name prompt

function promptName(noteKey) {
  const dlg = $('name-dialog');
  const note = $('name-note');
  if (noteKey) {
    setText(note, noteKey);
    note.hidden = false;
  } else {
    note.hidden = true;
  }
  $('name-error').textContent = '';
  const ni = $('name-input');
  try { ni.value = ni.value || localStorage.getItem(NAME_KEY) || ''; } catch (_) { /* ignore */ }
  dlg.hidden = false;
  ni.focus();
}

$('name-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const ni = $('name-input');
  const name = ni.value.trim();
  if (!name) return;
  const btn = $('name-submit');
  btn.disabled = true;
  setText($('name-error'), 'name.joining');
  const r = await joinRoom(room, name);
  btn.disabled = false;
  if (r.ok && r.data && r.data.token) {
    try { localStorage.setItem(NAME_KEY, name); } catch (_) { /* ignore */ }
    $('name-error').textContent = '';
    $('name-dialog').hidden = true;
    start(r.data.token);
    return;
  }
  const error = r.data || { code: 'network' };
  if (['room_private', 'room_not_found', 'room_closed'].includes(error.code)) {
    noticeFor(error);
    return;
  }
  const [key, vars] = errorText(error);
  setText($('name-error'), key, vars);
});

// ------------------------------------------------------------ live connection

function isPublic() {
  return !roomInfo || !roomInfo.private;
}

function start(token) {
  if (client) {
    client.setToken(token);
    client.connect();
    return;
  }
  client = new LiveClient(room, token);
  window.livehub = { room, client, overlay, chat, video };
  const cards = $('cards');
  for (const mount of WATCH_FEATURES) mount({ room, client, cards, status });
  window.livehub.player = mountPlayer({ room, client, video, stage });

  client.on('state', (s) => showConnState($('conn-state'), s));

  client.on('refused', (error) => {
    if (TOKEN_CODES.includes(error.code) && isPublic()) {
      clearToken(room);
      promptName('name.again');
      return;
    }
    noticeFor(error);
  });

  client.on('welcome', (w) => {
    you = w.you || null;
    applyRoom(w.room);
    for (const id of w.deleted) removeMessage(id);
    // history goes to the chat list only; the overlay shows what arrives live
    for (const m of w.messages) chat.add(m);
    chat.scrollToEnd();
  });

  client.on('batch', (b) => {
    for (const id of b.deleted) removeMessage(id);
    for (const m of b.messages) {
      chat.add(m);
      overlay.add(m);
    }
  });

  client.on('deleted', (ids) => { for (const id of ids) removeMessage(id); });

  client.on('stats', (s) => {
    if (typeof s.viewers === 'number') $('viewer-count').textContent = String(s.viewers);
  });

  client.on('likes', (n) => { $('like-count').textContent = String(n); });

  client.on('dropped', (n) => {
    dropped += n;
    const d = $('dropped-indicator');
    setText(d, 'watch.not_shown', { n: dropped });
    d.hidden = false;
  });

  client.on('room', (r) => applyRoom(r));

  client.on('muted', (m) => {
    status.show('status.muted_now', { time: formatTime(m && m.until) }, { kind: 'warn', ms: 0 });
  });

  client.on('banned', (b) => {
    if (b && b.reason) showNotice('status.banned_reason', { reason: b.reason });
    else showNotice('status.banned_now');
  });

  client.on('like_error', (error) => status.error(error));

  client.connect();
}

function removeMessage(id) {
  chat.remove(id);
  overlay.remove(id);
}

// ------------------------------------------------------------ chat form, likes

let sending = false;

$('chat-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  if (!client || sending || fatal) return;
  const text = input.value.trim();
  if (!text) return;
  sending = true;
  sendBtn.disabled = true;
  const offset = window.livehub && typeof window.livehub.offsetMs === 'function'
    ? window.livehub.offsetMs() : undefined;
  const { ack, message } = await client.chat(text, {
    mode: modeSel.value, color: chosenColor(), offset_ms: offset,
  });
  sending = false;
  if (!fatal) sendBtn.disabled = input.disabled;
  if (ack.ok) {
    input.value = '';
    if (ack.held) status.show('status.held', null, { kind: 'warn' });
    else if (ack.duplicate && !message) status.show('status.sent_duplicate');
    else status.clear();
    if (message) {
      chat.add(message);
      chat.scrollToEnd();
      overlay.add(message);
    }
  } else {
    status.error(ack.error);
    if (ack.error && ack.error.code === 'banned') showNotice('status.banned_now');
  }
  input.focus();
});

$('like-button').addEventListener('click', () => {
  if (!client) return;
  client.tapLike();
  const b = $('like-button');
  b.classList.remove('is-pop');
  void b.offsetWidth; // restart the CSS pop animation
  b.classList.add('is-pop');
});

const dmToggle = $('danmaku-toggle');
function setDanmaku(on) {
  overlay.setEnabled(on);
  dmToggle.setAttribute('aria-pressed', on ? 'true' : 'false');
}
dmToggle.addEventListener('click', () => {
  const on = dmToggle.getAttribute('aria-pressed') !== 'true';
  setDanmaku(on);
  savePrefs({ danmaku: on });
});
if (prefs.danmaku === false) setDanmaku(false);

// the media code attaches a stream to #video; hide the placeholder once it plays
video.addEventListener('playing', () => stage.classList.add('has-media'));
video.addEventListener('emptied', () => stage.classList.remove('has-media'));

// ------------------------------------------------------------ boot

async function boot() {
  buildPalette();
  if (!room) {
    showNotice('err.room_not_found');
    return;
  }
  $('room-title').textContent = room;
  let token = takeToken(room);
  const info = await getRoom(room);
  if (info.ok && info.data) {
    applyRoom(info.data);
    if (info.data.closed) return;
  } else if (info.status === 404 || (info.data && info.data.code === 'room_not_found')) {
    showNotice('err.room_not_found');
    return;
  }
  if (token && tokenExpired(token) && isPublic()) {
    clearToken(room);
    token = null;
    promptName('name.again');
    return;
  }
  if (!token) {
    if (!isPublic()) showNotice('err.room_private');
    else promptName();
    return;
  }
  start(token);
}

boot();
