// The replay page (/replay/<room>/<stream>[#token=<token>]): a stream's
// recording in a <video>, with its chat flying over it as danmaku at the
// moment each message appeared live.
//
// GET /api/rooms/<room>/streams/<stream>/danmaku gives the recording and the
// visible messages, each with `offset_ms` into the recording. The overlay is
// driven by video.currentTime: while playing, every animation frame shows the
// messages whose offset has been reached; a seek clears the overlay and starts
// again from the new position; pausing freezes the flying messages. Private
// rooms need a token of the room (from #token=, or the one the watch page
// stored); it goes to the API as a bearer and to the video as ?t=.
// Every server-provided string is set with textContent (CSP: no inline code).

import { addStrings, initI18n, setText, t } from './i18n.js';
import { api, getRoom, roomFromPath, takeToken } from './live.js';
import { DanmakuOverlay } from './danmaku.js';
import { ChatList, StatusLine, el, errorText } from './ui.js';

addStrings({
  en: {
    'replay.title': 'Replay',
    'replay.loading': 'Loading…',
    'replay.messages': 'Messages',
    'replay.chat': 'Chat replay',
    'replay.empty': 'No chat in this stream.',
    'replay.no_recording': 'This stream was not recorded.',
    'replay.no_stream': 'This page needs a stream (…/replay/<room>/<stream>).',
    'replay.recording_live': 'Still recording: reload for the rest.',
    'replay.incomplete': 'The recording ended early.',
    'replay.video_failed': 'This browser cannot play the recording.',
    'replay.seek_title': 'Play from here',
  },
  'zh-CN': {
    'replay.title': '回放',
    'replay.loading': '加载中…',
    'replay.messages': '弹幕',
    'replay.chat': '聊天回放',
    'replay.empty': '这场直播没有聊天消息。',
    'replay.no_recording': '这场直播没有录像。',
    'replay.no_stream': '此页面需要指定直播（…/replay/<房间>/<直播>）。',
    'replay.recording_live': '仍在录制：刷新可看到后续内容。',
    'replay.incomplete': '录像提前结束了。',
    'replay.video_failed': '此浏览器无法播放该录像。',
    'replay.seek_title': '从这里播放',
  },
});

const $ = (id) => document.getElementById(id);
const CATCH_UP_MS = 1500; // messages this late (after a stall) still fly; older ones are skipped

initI18n();

const room = roomFromPath();
const streamId = streamFromPath();
const token = room ? takeToken(room) : null;
const video = $('video');
const stage = $('stage');
const danmakuLayer = $('danmaku');
const overlay = new DanmakuOverlay(danmakuLayer);
const status = new StatusLine($('status'));

let messages = [];   // sorted by offset_ms
let next = 0;        // index of the next message to show
let ticking = false;

function streamFromPath(pathname = location.pathname) {
  const parts = pathname.split('/').filter(Boolean);
  if (parts.length < 3) return '';
  try { return decodeURIComponent(parts[2]); } catch (_) { return ''; }
}

function showNotice(key, vars) {
  const n = $('notice');
  setText(n, key, vars);
  n.hidden = false;
  setText($('stage-placeholder'), key, vars);
}

function clock(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`;
}

/** A same-origin /recordings/ path from the server, with the token for private rooms. */
function recordingSrc(recording) {
  if (!recording || typeof recording.url !== 'string') return null;
  let url;
  try { url = new URL(recording.url, location.href); } catch (_) { return null; }
  if (url.origin !== location.origin || !url.pathname.startsWith('/recordings/')) return null;
  if (token) url.searchParams.set('t', token);
  return url.pathname + url.search;
}

// ------------------------------------------------------------ danmaku by the video's clock

/** The first message at or after `ms`. */
function indexAt(ms) {
  let lo = 0;
  let hi = messages.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (messages[mid].offset_ms < ms) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** A seek (or the end): nothing on screen belongs to the new position. */
function restart() {
  overlay.clear();
  next = indexAt(video.currentTime * 1000);
}

function showDue() {
  const now = video.currentTime * 1000;
  while (next < messages.length && messages[next].offset_ms <= now) {
    const msg = messages[next];
    if (now - msg.offset_ms <= CATCH_UP_MS) overlay.add(msg);
    next += 1;
  }
}

function tick() {
  if (video.paused || video.ended || video.seeking) {
    ticking = false;
    return;
  }
  showDue();
  requestAnimationFrame(tick);
}

function startTicking() {
  if (ticking) return;
  ticking = true;
  requestAnimationFrame(tick);
}

/** Freeze or resume the flying messages with the picture. */
function animations(play) {
  if (typeof danmakuLayer.getAnimations !== 'function') return;
  for (const a of danmakuLayer.getAnimations({ subtree: true })) {
    try {
      if (play) a.play(); else a.pause();
    } catch (_) { /* finished meanwhile */ }
  }
}

video.addEventListener('seeking', restart);
video.addEventListener('seeked', () => {
  restart();
  if (!video.paused) startTicking();
});
video.addEventListener('playing', () => {
  animations(true);
  startTicking();
});
video.addEventListener('pause', () => animations(false));
video.addEventListener('ended', () => overlay.clear());
video.addEventListener('loadeddata', () => stage.classList.add('has-media'));
video.addEventListener('error', () => {
  stage.classList.remove('has-media');
  showNotice('replay.video_failed');
});

const toggle = $('danmaku-toggle');
toggle.addEventListener('click', () => {
  const on = toggle.getAttribute('aria-pressed') !== 'true';
  toggle.setAttribute('aria-pressed', String(on));
  overlay.setEnabled(on);
  if (on) next = indexAt(video.currentTime * 1000);
});

// ------------------------------------------------------------ the chat list beside the video

function listMessages() {
  const list = new ChatList($('chat-list'), {
    max: messages.length + 1,
    decorate(li, msg) {
      const at = el('button', 'replay-time', clock(msg.offset_ms));
      at.type = 'button';
      at.title = t('replay.seek_title');
      at.addEventListener('click', () => {
        video.currentTime = msg.offset_ms / 1000;
        if (video.paused) video.play().catch(() => { /* autoplay refused: stay paused */ });
      });
      li.prepend(at);
    },
  });
  for (const msg of messages) list.add(msg);
  list.node.scrollTop = 0;
  $('message-count').textContent = String(messages.length);
}

// ------------------------------------------------------------ load

function valid(msg) {
  return msg && typeof msg.id === 'number' && typeof msg.text === 'string'
    && typeof msg.offset_ms === 'number' && Number.isFinite(msg.offset_ms);
}

async function load() {
  if (!room || !streamId) {
    showNotice('replay.no_stream');
    return;
  }
  getRoom(room).then((res) => {
    if (res.ok && res.data && typeof res.data.title === 'string') {
      $('room-title').textContent = res.data.title;
      document.title = `livehub · ${res.data.title}`;
    }
  });
  const path = `/api/rooms/${encodeURIComponent(room)}/streams/${encodeURIComponent(streamId)}/danmaku`;
  const res = await api('GET', path, undefined, token);
  if (!res.ok) {
    const [key, vars] = errorText(res.data);
    showNotice(key, vars);
    return;
  }
  const data = res.data || {};
  messages = (Array.isArray(data.messages) ? data.messages : []).filter(valid)
    .sort((a, b) => a.offset_ms - b.offset_ms || a.id - b.id);
  listMessages();
  const src = recordingSrc(data.recording);
  if (!src) {
    showNotice('replay.no_recording');
    return;
  }
  if (!data.recording.complete) {
    const note = $('replay-note');
    setText(note, data.stream && data.stream.ended_at ? 'replay.incomplete' : 'replay.recording_live');
    note.hidden = false;
  }
  video.src = src;
  restart();
}

load().catch((e) => status.error({ code: 'unknown', message: String(e && e.message || e) }));
