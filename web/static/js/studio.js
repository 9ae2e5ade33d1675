// Studio page (/studio/<room>#token=<host token>): camera and microphone preview,
// device pickers, Go live / Stop over WHIP (media.js), live viewers and likes,
// the chat feed with moderator actions, and the interaction control panels.
// The protocol lives in live.js and media.js; this file only wires them to the page.

import { initI18n, addStrings, setText } from './i18n.js';
import { LiveClient, roomFromPath, takeToken, tokenClaims } from './live.js';
import { CONTROL_FEATURES } from './features/index.js';
import { ChatList, StatusLine, showConnState, showLive, errorText, el, tel } from './ui.js';
import { publish, canCapture } from './media.js';
import { reporter, modDecorator, wireModActions, wireChatForm } from './modfeed.js';

addStrings({
  en: {
    'studio.title': 'Studio',
    'studio.broadcast': 'Broadcast',
    'studio.camera': 'Camera',
    'studio.microphone': 'Microphone',
    'studio.no_camera': 'Camera off',
    'studio.camera_start': 'Start camera',
    'studio.camera_n': 'Camera {n}',
    'studio.mic_n': 'Microphone {n}',
    'studio.no_device': 'None',
    'studio.go_live': 'Go live',
    'studio.stop': 'Stop',
    'studio.state.idle': 'Not live',
    'studio.state.starting': 'Connecting…',
    'studio.state.live': 'Live',
    'studio.state.unstable': 'Connection unstable…',
    'studio.state.failed': 'Connection lost',
    'studio.state.reconnecting': 'Reconnecting…',
    'studio.state.stopping': 'Stopping…',
    'studio.obs': 'Publishing from OBS instead? WHIP URL:',
    'studio.obs_token': 'Bearer token: the host token of this link.',
    'studio.need_token': 'This page needs the host link (…/studio/<room>#token=…).',
    'studio.not_host': 'This link does not give host rights for this room: only the host can go live.',
    'studio.need_secure': 'The camera needs a secure page: open the studio over https (or on localhost).',
    'studio.camera_denied': 'Camera and microphone access was refused. Allow it in the browser, then press Start camera.',
    'studio.camera_missing': 'No camera or microphone was found.',
    'studio.camera_busy': 'The camera or microphone is in use by another program.',
    'studio.camera_error': 'Could not open the camera: {message}',
    'studio.done.live': 'You are live.',
    'studio.done.stopped': 'The stream has stopped.',
    'studio.lost': 'The connection to the server was lost. Press Go live to start again.',
    'studio.reconnecting': 'The connection was lost: viewers see "Paused" while the stream reconnects.',
    'studio.err.publisher_exists': 'Someone is already publishing to this room (another tab, or OBS).',
    'studio.err.no_codec': 'This browser cannot send H.264 or VP8 video with Opus audio.',
    'studio.err.webrtc_unsupported': 'This browser cannot stream (no WebRTC).',
    'studio.err.webrtc_failed': 'Could not start the stream: {message}',
  },
  'zh-CN': {
    'studio.title': '直播间',
    'studio.broadcast': '推流',
    'studio.camera': '摄像头',
    'studio.microphone': '麦克风',
    'studio.no_camera': '摄像头未开启',
    'studio.camera_start': '开启摄像头',
    'studio.camera_n': '摄像头 {n}',
    'studio.mic_n': '麦克风 {n}',
    'studio.no_device': '无',
    'studio.go_live': '开始直播',
    'studio.stop': '停止',
    'studio.state.idle': '未开播',
    'studio.state.starting': '连接中…',
    'studio.state.live': '直播中',
    'studio.state.unstable': '连接不稳定…',
    'studio.state.failed': '连接已断开',
    'studio.state.reconnecting': '正在重连…',
    'studio.state.stopping': '正在停止…',
    'studio.obs': '用 OBS 推流？WHIP 地址：',
    'studio.obs_token': 'Bearer 令牌：本链接中的主播令牌。',
    'studio.need_token': '此页面需要主播链接（…/studio/<房间>#token=…）。',
    'studio.not_host': '此链接没有该房间的主播权限：只有主播可以开播。',
    'studio.need_secure': '摄像头需要安全页面：请通过 https（或 localhost）打开直播间。',
    'studio.camera_denied': '摄像头和麦克风权限被拒绝。请在浏览器中允许后点击“开启摄像头”。',
    'studio.camera_missing': '没有找到摄像头或麦克风。',
    'studio.camera_busy': '摄像头或麦克风正被其他程序占用。',
    'studio.camera_error': '无法打开摄像头：{message}',
    'studio.done.live': '你已开播。',
    'studio.done.stopped': '直播已停止。',
    'studio.lost': '与服务器的连接已断开。点击“开始直播”重新开始。',
    'studio.reconnecting': '连接已断开：重连期间观众看到“已暂停”。',
    'studio.err.publisher_exists': '已有人在向这个房间推流（其他标签页或 OBS）。',
    'studio.err.no_codec': '此浏览器无法发送 H.264 或 VP8 视频和 Opus 音频。',
    'studio.err.webrtc_unsupported': '此浏览器无法推流（不支持 WebRTC）。',
    'studio.err.webrtc_failed': '无法开始直播：{message}',
  },
});

const STUDIO_ERRORS = ['publisher_exists', 'no_codec', 'webrtc_unsupported', 'webrtc_failed'];
const VIDEO = { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } };
const AUDIO = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
const $ = (id) => document.getElementById(id);

initI18n();

const room = roomFromPath();
const status = new StatusLine($('status'));
const chat = new ChatList($('chat-list'), {
  max: 300,
  decorate: modDecorator((viewerId) => !!(you && viewerId === you.viewer_id)),
});
const preview = $('preview');
const goLiveBtn = $('go-live');
const stopBtn = $('stop-live');
const input = $('chat-input');

let token = null;
let isHost = false;
let client = null;
let you = null;
let stream = null;      // the camera + microphone MediaStream (previewed and published)
let handle = null;      // the WHIP session while publishing
let generation = 0;     // ignores states of sessions that were replaced
let blocked = false;
let roomInfo = null;
let reconnectUntil = 0; // while Date.now() is before this, a lost session publishes again
const RECONNECT_EVERY_MS = 2000;

// ------------------------------------------------------------ page state

function showNotice(key, vars) {
  blocked = true;
  const n = $('notice');
  setText(n, key, vars);
  n.hidden = false;
  document.body.classList.add('is-blocked');
  updateButtons();
}

function setPublishState(state) {
  const node = $('publish-state');
  node.dataset.state = state;
  setText(node, `studio.state.${state}`);
  updateButtons();
}

function updateButtons() {
  const state = $('publish-state').dataset.state;
  const publishing = !!handle || state === 'starting' || state === 'reconnecting';
  goLiveBtn.hidden = publishing;
  stopBtn.hidden = !publishing;
  goLiveBtn.disabled = blocked || !isHost || !stream || publishing;
  stopBtn.disabled = state === 'stopping';
}

function showMediaError(error) {
  const code = error && error.code;
  if (STUDIO_ERRORS.includes(code)) {
    status.show(`studio.err.${code}`, { message: error.message || code }, { kind: 'error', ms: 0 });
    return;
  }
  status.error({ code, message: error && error.message }, { ms: 0 });
}

// ------------------------------------------------------------ camera and microphone

function constraints(kind, deviceId) {
  const base = kind === 'video' ? VIDEO : AUDIO;
  return deviceId ? { ...base, deviceId: { exact: deviceId } } : base;
}

function cameraError(e) {
  const name = e && e.name;
  if (name === 'NotAllowedError' || name === 'SecurityError') return ['studio.camera_denied'];
  if (name === 'NotFoundError' || name === 'OverconstrainedError') return ['studio.camera_missing'];
  if (name === 'NotReadableError' || name === 'AbortError') return ['studio.camera_busy'];
  return ['studio.camera_error', { message: (e && (e.message || e.name)) || '?' }];
}

/** Camera and microphone; either alone when the other is missing. */
async function openDevices() {
  const md = navigator.mediaDevices;
  const video = constraints('video', $('camera-select').value);
  const audio = constraints('audio', $('mic-select').value);
  try {
    return await md.getUserMedia({ video, audio });
  } catch (e) {
    if (e && (e.name === 'NotFoundError' || e.name === 'OverconstrainedError')) {
      for (const one of [{ video }, { audio }]) {
        try { return await md.getUserMedia(one); } catch (_) { /* try the other */ }
      }
    }
    throw e;
  }
}

async function startCamera() {
  if (!canCapture()) {
    status.show('studio.need_secure', null, { kind: 'error', ms: 0 });
    return;
  }
  $('camera-start').hidden = true;
  try {
    stream = await openDevices();
  } catch (e) {
    const [key, vars] = cameraError(e);
    status.show(key, vars, { kind: 'error', ms: 0 });
    $('camera-start').hidden = false;
    return;
  }
  preview.srcObject = stream;
  $('preview-box').classList.add('has-media');
  await refreshDevices();
  updateButtons();
}

function currentDevice(kind) {
  const track = stream && stream.getTracks().find((t) => t.kind === kind);
  return track && track.getSettings ? track.getSettings().deviceId : undefined;
}

async function refreshDevices() {
  let devices = [];
  try { devices = await navigator.mediaDevices.enumerateDevices(); } catch (_) { devices = []; }
  for (const [kind, id, trackKind] of [['videoinput', 'camera-select', 'video'], ['audioinput', 'mic-select', 'audio']]) {
    const select = $(id);
    const list = devices.filter((d) => d.kind === kind && d.deviceId);
    select.replaceChildren();
    list.forEach((d, i) => {
      const key = kind === 'videoinput' ? 'studio.camera_n' : 'studio.mic_n';
      const o = d.label ? el('option', '', d.label) : tel('option', '', key, { n: i + 1 });
      o.value = d.deviceId;
      select.appendChild(o);
    });
    if (!list.length) {
      const o = tel('option', '', 'studio.no_device');
      o.value = '';
      select.appendChild(o);
    }
    const active = currentDevice(trackKind);
    if (active && list.some((d) => d.deviceId === active)) select.value = active;
    select.disabled = !stream || list.length < 2;
  }
}

/** Open the chosen device and put its track in place of the old one (live too). */
async function switchDevice(kind, deviceId) {
  if (!stream || !deviceId) return;
  const old = stream.getTracks().find((t) => t.kind === kind);
  if (old && old.getSettings && old.getSettings().deviceId === deviceId) return;
  const want = kind === 'video' ? { video: constraints('video', deviceId) } : { audio: constraints('audio', deviceId) };
  let fresh;
  try {
    fresh = await navigator.mediaDevices.getUserMedia(want);
  } catch (e) {
    if (!old || !e || e.name !== 'NotReadableError') {
      const [key, vars] = cameraError(e);
      status.show(key, vars, { kind: 'error' });
      await refreshDevices();
      return;
    }
    old.stop(); // some phones open one camera at a time
    try {
      fresh = await navigator.mediaDevices.getUserMedia(want);
    } catch (e2) {
      const [key, vars] = cameraError(e2);
      status.show(key, vars, { kind: 'error' });
      return;
    }
  }
  const track = fresh.getTracks().find((t) => t.kind === kind);
  if (!track) return;
  if (old) {
    stream.removeTrack(old);
    old.stop();
  }
  stream.addTrack(track);
  preview.srcObject = stream;
  if (handle && typeof handle.replaceTrack === 'function') {
    try { await handle.replaceTrack(track); } catch (e) { showMediaError({ code: 'webrtc_failed', message: String(e) }); }
  }
  await refreshDevices();
}

$('camera-select').addEventListener('change', () => switchDevice('video', $('camera-select').value));
$('mic-select').addEventListener('change', () => switchDevice('audio', $('mic-select').value));
$('camera-start').addEventListener('click', () => startCamera());
if (navigator.mediaDevices && typeof navigator.mediaDevices.addEventListener === 'function') {
  navigator.mediaDevices.addEventListener('devicechange', () => { if (stream) refreshDevices(); });
}

// ------------------------------------------------------------ going live

async function goLive() {
  if (!stream || handle || blocked || !isHost) return;
  const mine = ++generation;
  status.clear();
  setPublishState('starting');
  let h;
  try {
    h = await publish(room, token, stream, { onState: (s) => onPublishState(mine, s) });
  } catch (e) {
    if (mine !== generation) return;
    if (reconnectLater()) return;
    setPublishState('idle');
    showMediaError(e);
    return;
  }
  if (mine !== generation) {
    await h.stop();
    return;
  }
  handle = h;
  window.livehub.studio.handle = h;
  onPublishState(mine, h.state);
}

function onPublishState(mine, state) {
  if (mine !== generation) return;
  if (state === 'connected') {
    reconnectUntil = 0;
    if ($('publish-state').dataset.state !== 'live') status.show('studio.done.live', null, { kind: 'ok' });
    setPublishState('live');
  } else if (state === 'disconnected') {
    setPublishState('unstable');
  } else if (state === 'failed') {
    const h = handle;
    handle = null;
    generation += 1;
    // No DELETE: the server pauses the stream, and publishing again within the room's
    // grace period continues the same stream.
    if (h) h.stop({ keepStream: true });
    const grace = (roomInfo && roomInfo.settings && roomInfo.settings.publisher_grace_seconds) || 0;
    if (grace > 0 && !reconnectUntil) reconnectUntil = Date.now() + grace * 1000;
    if (!reconnectLater()) {
      setPublishState('failed');
      status.show('studio.lost', null, { kind: 'error', ms: 0 });
    }
  } else if (state === 'new' || state === 'connecting') {
    if (!handle) setPublishState('starting');
  }
}

/** Within the grace period, try to go live again shortly; false when it is over. */
function reconnectLater() {
  if (!reconnectUntil || Date.now() + RECONNECT_EVERY_MS > reconnectUntil) {
    reconnectUntil = 0;
    return false;
  }
  const mine = generation;
  setPublishState('reconnecting');
  status.show('studio.reconnecting', null, { kind: 'warn', ms: 0 });
  setTimeout(() => {
    if (mine !== generation || handle) return;
    setPublishState('idle');
    goLive();
  }, RECONNECT_EVERY_MS);
  return true;
}

async function stopLive() {
  reconnectUntil = 0;
  generation += 1;
  const h = handle;
  handle = null;
  if (window.livehub && window.livehub.studio) window.livehub.studio.handle = null;
  setPublishState('stopping');
  if (h) await h.stop();
  else if (roomInfo && roomInfo.paused) await stopPausedStream();
  setPublishState('idle');
  status.show('studio.done.stopped', null, { kind: 'ok' });
}

/** Stop pressed while reconnecting: there is no session to DELETE, so stop over REST. */
async function stopPausedStream() {
  try {
    await fetch(`/api/rooms/${encodeURIComponent(room)}/streams/current`, {
      method: 'DELETE',
      headers: { Authorization: `Bearer ${token}` },
      credentials: 'omit',
    });
  } catch (_) { /* the grace period ends it anyway */ }
}

goLiveBtn.addEventListener('click', () => goLive());
stopBtn.addEventListener('click', () => stopLive());
window.addEventListener('pagehide', () => {
  if (handle) handle.stop({ keepalive: true });
});

// ------------------------------------------------------------ chat feed with moderator actions

const report = reporter(status);
const getClient = () => client;

wireModActions($('chat-list'), { chat, getClient, report, durationSelect: $('mute-duration') });
wireChatForm($('chat-form'), { input, send: $('chat-send'), chat, status, getClient });

// ------------------------------------------------------------ live socket

function applyRoom(r) {
  if (!r) return;
  roomInfo = r;
  if (r.title) {
    $('room-title').textContent = r.title;
    document.title = `${r.title} · livehub studio`;
  }
  showLive($('live-badge'), r);
  const s = r.settings || {};
  const st = $('room-state');
  st.replaceChildren();
  if (s.chat_paused) st.appendChild(tel('span', 'pill pill-warn', 'watch.paused'));
  if (s.slow_mode_seconds > 0) st.appendChild(tel('span', 'pill', 'watch.slow_mode', { s: s.slow_mode_seconds }));
  if (r.closed) {
    if (handle) stopLive();
    showNotice('status.room_closed');
    if (client) client.disconnect();
  }
}

function connect() {
  client = new LiveClient(room, token);
  window.livehub.client = client;
  const controls = $('controls');
  for (const mount of CONTROL_FEATURES) mount({ room, client, controls, status });

  client.on('state', (s) => showConnState($('conn-state'), s));
  client.on('refused', (error) => {
    const [key, vars] = errorText(error);
    showNotice(key, vars);
  });
  client.on('welcome', (w) => {
    you = w.you || null;
    if (!you || you.role !== 'host') {
      isHost = false;
      showNotice('studio.not_host');
      client.disconnect();
      return;
    }
    applyRoom(w.room);
    for (const id of w.deleted) chat.remove(id);
    for (const m of w.messages) chat.add(m);
    chat.scrollToEnd();
  });
  client.on('batch', (b) => {
    for (const id of b.deleted) chat.remove(id);
    for (const m of b.messages) chat.add(m);
  });
  client.on('deleted', (ids) => { for (const id of ids) chat.remove(id); });
  client.on('stats', (s) => {
    if (s && typeof s.viewers === 'number') $('viewer-count').textContent = String(s.viewers);
  });
  client.on('likes', (n) => { if (typeof n === 'number') $('like-count').textContent = String(n); });
  client.on('room', (r) => applyRoom(r));
  client.connect();
}

// ------------------------------------------------------------ boot

function boot() {
  window.livehub = { room, client: null, chat, studio: { handle: null, get stream() { return stream; } } };
  if (!room) {
    showNotice('err.room_not_found');
    return;
  }
  $('room-title').textContent = room;
  $('whip-url').textContent = new URL(`/whip/${encodeURIComponent(room)}`, location.href).toString();
  token = takeToken(room);
  if (!token) {
    showNotice('studio.need_token');
    return;
  }
  const claims = tokenClaims(token);
  isHost = !!(claims && claims.role === 'host');
  if (!isHost) {
    showNotice('studio.not_host');
    return;
  }
  setPublishState('idle');
  connect();
  startCamera();
}

boot();
