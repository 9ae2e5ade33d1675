// The report page (/rooms/<room>/report#token=<host or moderator token>): the
// room's streams, newest first, each with a few headline numbers from its JSON
// report, a link that opens the HTML report, and HTML/JSON/CSV downloads.
//
// Downloads are fetched with the bearer token and saved through a blob URL and
// a created <a download> (CSP-safe: no inline script, no navigation to data:).
// Every server-provided string is set with textContent.

import { addStrings, initI18n, lang, onLangChange, setText, t } from './i18n.js';
import { api, getRoom, roomFromPath, takeToken, tokenClaims } from './live.js';
import { StatusLine, el, errorText, tel } from './ui.js';

addStrings({
  en: {
    'report.title': 'Stream reports',
    'report.lead': 'Every stream of this room, newest first. Open a report, or download it as HTML, JSON or CSV (the CSV lists every viewer).',
    'report.loading': 'Loading…',
    'report.empty': 'This room has not streamed yet.',
    'report.need_token': 'This page needs a host or moderator link (…/rooms/<room>/report#token=…).',
    'report.not_staff': 'This link does not give access to the reports of this room.',
    'report.live': 'LIVE',
    'report.live_note': 'Still live: the report is a preview.',
    'report.duration': 'Duration {d}',
    'report.open': 'Open report',
    'report.open_title': 'The report as a web page, in a new tab',
    'report.html': 'HTML',
    'report.json': 'JSON',
    'report.csv': 'CSV',
    'report.download_title': 'Download the report as {format}',
    'report.replay': 'Replay',
    'report.numbers_loading': 'Loading numbers…',
    'report.numbers_failed': 'The numbers could not be loaded.',
    'report.n.viewers': 'Viewers',
    'report.n.peak': 'Peak',
    'report.n.watch': 'Avg watch',
    'report.n.messages': 'Messages',
    'report.n.likes': 'Likes',
    'report.n.engagement': 'Engagement',
    'report.downloading': 'Downloading {name}…',
    'report.downloaded': 'Saved {name}.',
    'report.dur.s': '{s} s',
    'report.dur.ms': '{m} min {s} s',
    'report.dur.hm': '{h} h {m} min',
  },
  'zh-CN': {
    'report.title': '直播数据报告',
    'report.lead': '本房间的每一场直播，最新的在前。可以打开报告，或下载 HTML、JSON、CSV 格式（CSV 包含全部观众）。',
    'report.loading': '加载中…',
    'report.empty': '本房间还没有直播过。',
    'report.need_token': '此页面需要主播或房管链接（…/rooms/<房间>/report#token=…）。',
    'report.not_staff': '该链接无权查看本房间的报告。',
    'report.live': '直播中',
    'report.live_note': '仍在直播：报告为预览。',
    'report.duration': '时长 {d}',
    'report.open': '打开报告',
    'report.open_title': '在新标签页中以网页形式查看报告',
    'report.html': 'HTML',
    'report.json': 'JSON',
    'report.csv': 'CSV',
    'report.download_title': '下载 {format} 格式的报告',
    'report.replay': '回放',
    'report.numbers_loading': '正在加载数据…',
    'report.numbers_failed': '无法加载数据。',
    'report.n.viewers': '观众',
    'report.n.peak': '峰值',
    'report.n.watch': '人均观看',
    'report.n.messages': '消息',
    'report.n.likes': '点赞',
    'report.n.engagement': '互动率',
    'report.downloading': '正在下载 {name}…',
    'report.downloaded': '已保存 {name}。',
    'report.dur.s': '{s}秒',
    'report.dur.ms': '{m}分{s}秒',
    'report.dur.hm': '{h}小时{m}分',
  },
});

const $ = (id) => document.getElementById(id);
const STAFF = ['host', 'moderator'];

initI18n();

const room = roomFromPath();
const status = new StatusLine($('status'));
const token = takeToken(room);
const list = $('report-streams');
// stream id -> {stream, summary|null|'failed'}
const shown = new Map();

function showNotice(key, vars) {
  const n = $('notice');
  setText(n, key, vars);
  n.hidden = false;
  $('report-loading').hidden = true;
}

function streamPath(streamId) {
  return `/api/rooms/${encodeURIComponent(room)}/streams/${encodeURIComponent(streamId)}/report`;
}

function reportUrl(streamId, format, extra = {}) {
  const q = new URLSearchParams({ format, ...extra });
  return `${streamPath(streamId)}?${q.toString()}`;
}

/** Open the served HTML report in a new tab through a short-lived signed link,
 *  so the staff token never appears in an address. */
async function openReport(streamId) {
  const tab = window.open('', '_blank');
  const r = await api('POST', `${streamPath(streamId)}/link?lang=${encodeURIComponent(lang())}`, undefined, token);
  if (!r.ok || !r.data || typeof r.data.url !== 'string') {
    if (tab) tab.close();
    status.error(r.data || { code: 'error' });
    return;
  }
  if (tab) {
    tab.opener = null;
    tab.location.href = r.data.url;
  } else {
    location.href = r.data.url;
  }
}

function number(n, digits = 0) {
  if (typeof n !== 'number' || !Number.isFinite(n)) return '—';
  return new Intl.NumberFormat(lang(), { maximumFractionDigits: digits, minimumFractionDigits: digits }).format(n);
}

function duration(seconds) {
  if (typeof seconds !== 'number' || !Number.isFinite(seconds)) return '—';
  const total = Math.max(0, Math.round(seconds));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  if (h) return t('report.dur.hm', { h, m: String(m).padStart(2, '0') });
  if (m) return t('report.dur.ms', { m, s: String(s).padStart(2, '0') });
  return t('report.dur.s', { s });
}

function when(epochSeconds) {
  const d = new Date(Number(epochSeconds) * 1000);
  if (Number.isNaN(d.getTime())) return '';
  return d.toLocaleString(lang(), { dateStyle: 'medium', timeStyle: 'short' });
}

/** A same-origin path or an http(s) URL from the stream's `recording`, else null. */
function recordingUrl(recording) {
  const raw = typeof recording === 'string' ? recording
    : (recording && typeof recording.replay === 'string' ? recording.replay
      : (recording && typeof recording.url === 'string' ? recording.url : null));
  if (!raw) return null;
  try {
    const url = new URL(raw, location.href);
    return (url.protocol === 'http:' || url.protocol === 'https:') ? url.href : null;
  } catch (_) {
    return null;
  }
}

function filenameOf(res, fallback) {
  const cd = res.headers.get('Content-Disposition') || '';
  const m = cd.match(/filename="([^"]+)"/);
  return m ? m[1] : fallback;
}

async function download(path, fallbackName, button) {
  button.disabled = true;
  status.show('report.downloading', { name: fallbackName }, { ms: 0 });
  try {
    let res;
    try {
      res = await fetch(path, {
        headers: { Authorization: `Bearer ${token}` },
        credentials: 'same-origin',
      });
    } catch (e) {
      status.error({ code: 'network', message: String(e && e.message || e) });
      return;
    }
    if (!res.ok) {
      let body = null;
      try { body = await res.json(); } catch (_) { body = null; }
      status.error(body && body.code ? body : { code: `http_${res.status}`, message: res.statusText });
      return;
    }
    const name = filenameOf(res, fallbackName);
    const blob = await res.blob();
    const url = URL.createObjectURL(blob);
    const a = document.createElement('a');
    a.href = url;
    a.download = name;
    a.hidden = true;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
    status.show('report.downloaded', { name }, { kind: 'ok' });
  } finally {
    button.disabled = false;
  }
}

function downloadButton(streamId, format) {
  const b = tel('button', `btn btn-small report-${format}`, `report.${format}`);
  b.type = 'button';
  b.title = t('report.download_title', { format: format.toUpperCase() });
  b.addEventListener('click', () => {
    const extra = format === 'html' ? { lang: lang() } : {};
    const ext = format === 'html' ? `report-${lang()}.html` : (format === 'csv' ? 'viewers.csv' : 'report.json');
    download(reportUrl(streamId, format, extra), `${room}-${streamId}-${ext}`, b);
  });
  return b;
}

function headline(summary) {
  const dl = el('dl', 'report-headline');
  const items = [
    ['report.n.viewers', number(summary.unique_viewers)],
    ['report.n.peak', number(summary.peak_viewers)],
    ['report.n.watch', duration(summary.average_watch_seconds)],
    ['report.n.messages', number(summary.chat_messages)],
    ['report.n.likes', number(summary.likes)],
    ['report.n.engagement', number(summary.engagement_rate, 2)],
  ];
  for (const [key, value] of items) {
    const box = el('div', 'report-number');
    box.dataset.key = key.slice('report.n.'.length);
    box.appendChild(tel('dt', '', key));
    box.appendChild(el('dd', '', value));
    dl.appendChild(box);
  }
  return dl;
}

function renderStream(entry) {
  const { stream, summary } = entry;
  const li = el('li', 'report-stream panel');
  li.dataset.stream = stream.id;
  const head = el('div', 'report-stream-head');
  head.appendChild(el('h2', 'report-when', when(stream.started_at)));
  const live = stream.ended_at === null || stream.ended_at === undefined;
  if (live) {
    const badge = tel('span', 'live-badge', 'report.live');
    badge.dataset.live = 'on';
    head.appendChild(badge);
  } else {
    head.appendChild(tel('span', 'report-duration muted-text', 'report.duration', {
      d: duration(stream.ended_at - stream.started_at),
    }));
  }
  head.appendChild(el('span', 'report-id muted-text', stream.id));
  li.appendChild(head);
  if (live) li.appendChild(tel('p', 'report-live-note muted-text', 'report.live_note'));

  if (summary && typeof summary === 'object') li.appendChild(headline(summary));
  else if (summary === 'failed') li.appendChild(tel('p', 'report-numbers muted-text', 'report.numbers_failed'));
  else li.appendChild(tel('p', 'report-numbers muted-text', 'report.numbers_loading'));

  const actions = el('div', 'report-actions');
  const open = tel('a', 'btn btn-primary btn-small report-open', 'report.open');
  open.href = '#';
  open.addEventListener('click', (ev) => { ev.preventDefault(); openReport(stream.id); });
  open.title = t('report.open_title');
  actions.appendChild(open);
  for (const format of ['html', 'json', 'csv']) actions.appendChild(downloadButton(stream.id, format));
  const replay = recordingUrl(stream.recording);
  if (replay) {
    const a = tel('a', 'btn btn-small report-replay', 'report.replay');
    a.href = replay;
    a.target = '_blank';
    a.rel = 'noopener noreferrer';
    actions.appendChild(a);
  }
  li.appendChild(actions);
  return li;
}

function renderAll() {
  list.replaceChildren(...[...shown.values()].map(renderStream));
}

function replaceEntry(streamId) {
  const entry = shown.get(streamId);
  const old = list.querySelector(`li[data-stream="${CSS.escape(streamId)}"]`);
  if (entry && old) old.replaceWith(renderStream(entry));
}

async function loadNumbers(streamId) {
  const r = await api('GET', reportUrl(streamId, 'json'), undefined, token);
  const entry = shown.get(streamId);
  if (!entry) return;
  entry.summary = r.ok && r.data && r.data.summary ? r.data.summary : 'failed';
  replaceEntry(streamId);
}

async function main() {
  if (!room) { showNotice('err.room_not_found'); return; }
  if (!token) { showNotice('report.need_token'); return; }
  const claims = tokenClaims(token);
  if (claims && !STAFF.includes(claims.role)) { showNotice('report.not_staff'); return; }

  const info = await getRoom(room);
  if (info.ok && info.data) $('room-title').textContent = info.data.title || room;
  else $('room-title').textContent = room;

  const r = await api('GET', `/api/rooms/${encodeURIComponent(room)}/streams`, undefined, token);
  $('report-loading').hidden = true;
  if (!r.ok) {
    if (r.status === 401 || r.status === 403) showNotice('report.not_staff');
    else {
      const [key, vars] = errorText(r.data);
      showNotice(key, vars);
    }
    return;
  }
  const streams = (r.data && Array.isArray(r.data.streams) ? r.data.streams : [])
    .filter((s) => s && typeof s.id === 'string')
    .sort((a, b) => b.started_at - a.started_at);
  $('report-empty').hidden = streams.length > 0;
  for (const stream of streams) shown.set(stream.id, { stream, summary: null });
  renderAll();
  // one report at a time: building an old stream's report may take a moment
  for (const stream of streams) await loadNumbers(stream.id);
}

onLangChange(() => renderAll());
main();
