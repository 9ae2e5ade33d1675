// The public verify page: load a draw transcript (or take a pasted one) and redo
// every step of the draw in the browser, exactly as livehub/interactions/draw_proof.py
// does: entrants_hash, seed_hash, commitment, the HMAC ranking and the winners.
// Hashing uses WebCrypto (crypto.subtle); on plain-http pages, where browsers do
// not offer it, a small SHA-256 below gives the same results.

import { addStrings, formatTime, initI18n, setText } from './i18n.js';
import { el, tel } from './ui.js';

addStrings({
  en: {
    'verify.title': 'Verify a prize draw',
    'verify.lead': 'Every prize draw publishes a commitment before its winners are picked. This page recomputes the whole draw in your browser.',
    'verify.room': 'Room',
    'verify.draw': 'Draw',
    'verify.load': 'Load and verify',
    'verify.paste': 'Or paste a transcript (JSON)',
    'verify.paste_placeholder': '{"version": 1, …}',
    'verify.check': 'Verify',
    'verify.loading': 'Loading…',
    'verify.ok': '✓ Verified: this draw is consistent.',
    'verify.failed': '✗ FAILED: {reason}',
    'verify.unavailable': 'Cannot verify: {reason}',
    'verify.not_revealed': 'This draw has not been revealed yet. Come back when the winners are announced.',
    'verify.not_found': 'No such draw in this room.',
    'verify.room_not_found': 'No such room.',
    'verify.network': 'The server could not be reached.',
    'verify.bad_json': 'The pasted text is not valid JSON.',
    'verify.json_link': 'The transcript as JSON',
    'verify.entrants_list': 'All {n} entrants',
    'verify.how': 'How the draw works',
    'verify.how1': 'When entries close, the entrant ids are sorted and joined with line breaks; entrants_hash = SHA-256 of that text.',
    'verify.how2': 'The server picks 32 random bytes, the seed; seed_hash = SHA-256 of the seed written in hex.',
    'verify.how3': 'commitment = SHA-256 of "entrants_hash:seed_hash". It is shown to everyone before any winner is computed.',
    'verify.how4': 'Each entrant gets a score: HMAC-SHA256 of their id with the seed as key. The lowest scores win; nobody can win twice.',
    'verify.how5': 'Then the seed is revealed. With it anyone can redo every step: this page, or the command "livehub verify-draw transcript.json".',
    'verify.step.format': 'The transcript is complete and well formed',
    'verify.step.entrants': 'The entrants are sorted and unique',
    'verify.step.entrants_hash': 'entrants_hash matches the entrants',
    'verify.step.seed_hash': 'seed_hash matches the seed',
    'verify.step.commitment': 'The commitment matches both hashes',
    'verify.step.winners': 'The seed picks exactly these winners',
    'verify.d.prize': 'Prize',
    'verify.d.room': 'Room',
    'verify.d.draw': 'Draw',
    'verify.d.rule': 'Rule',
    'verify.d.entrants': 'Entrants',
    'verify.d.winners': 'Winners',
    'verify.d.commitment': 'Commitment',
    'verify.d.entrants_hash': 'entrants_hash',
    'verify.d.seed_hash': 'seed_hash',
    'verify.d.seed': 'Seed',
    'verify.d.committed_at': 'Committed at',
    'verify.d.revealed_at': 'Revealed at',
    'verify.rule.present': 'everyone present',
    'verify.rule.keyword': 'chat keyword “{keyword}”',
    'verify.rule.quiz_correct': 'a correct quiz answer',
    'verify.rule.watched': 'watched at least {m} min',
    'verify.none': '(none)',
    'verify.reason.not_object': 'the transcript is not a JSON object',
    'verify.reason.missing': 'missing field(s): {fields}',
    'verify.reason.version': 'unknown transcript version {version}',
    'verify.reason.list': '{name} must be a list of strings',
    'verify.reason.entrant_id': 'an entrant id is empty or contains a line break',
    'verify.reason.unsorted': 'entrants are not sorted and unique',
    'verify.reason.winners_count': 'winners_count must be an integer 1-100',
    'verify.reason.seed': 'seed must be 64 lowercase hex digits',
    'verify.reason.hash_format': '{name} must be 64 lowercase hex digits',
    'verify.reason.entrants_hash': 'entrants_hash does not match the entrants',
    'verify.reason.seed_hash': 'seed_hash does not match the seed',
    'verify.reason.commitment': 'commitment does not match entrants_hash and seed_hash',
    'verify.reason.winner_twice': 'a winner appears twice',
    'verify.reason.winner_count': 'expected {expected} winner(s), the transcript has {got}',
    'verify.reason.winners': 'the winners are not the ones the seed picks',
    'verify.reason.times': 'the times are not valid (the seed was revealed before the commitment?)',
  },
  'zh-CN': {
    'verify.title': '验证抽奖',
    'verify.lead': '每次抽奖在抽取中奖者之前都会公布一个承诺值。本页面在你的浏览器中重新计算整个抽奖过程。',
    'verify.room': '房间',
    'verify.draw': '抽奖',
    'verify.load': '加载并验证',
    'verify.paste': '或粘贴抽奖记录（JSON）',
    'verify.paste_placeholder': '{"version": 1, …}',
    'verify.check': '验证',
    'verify.loading': '加载中…',
    'verify.ok': '✓ 验证通过：这次抽奖前后一致。',
    'verify.failed': '✗ 验证失败：{reason}',
    'verify.unavailable': '无法验证：{reason}',
    'verify.not_revealed': '这次抽奖还没有开奖，请在公布中奖者之后再来。',
    'verify.not_found': '这个房间里没有这次抽奖。',
    'verify.room_not_found': '没有这个房间。',
    'verify.network': '无法连接服务器。',
    'verify.bad_json': '粘贴的内容不是有效的 JSON。',
    'verify.json_link': 'JSON 格式的抽奖记录',
    'verify.entrants_list': '全部 {n} 名参加者',
    'verify.how': '抽奖如何进行',
    'verify.how1': '报名截止时，参加者编号排序后用换行连接；entrants_hash = 这段文字的 SHA-256。',
    'verify.how2': '服务器随机生成 32 字节的种子；seed_hash = 种子十六进制文本的 SHA-256。',
    'verify.how3': 'commitment = "entrants_hash:seed_hash" 的 SHA-256，在计算任何中奖者之前向所有人公布。',
    'verify.how4': '每位参加者的分数 = 以种子为密钥、对其编号做的 HMAC-SHA256。分数最低者中奖，每人最多中奖一次。',
    'verify.how5': '随后公布种子。有了它任何人都能重做每一步：用本页面，或命令 "livehub verify-draw transcript.json"。',
    'verify.step.format': '记录完整且格式正确',
    'verify.step.entrants': '参加者已排序且不重复',
    'verify.step.entrants_hash': 'entrants_hash 与参加者一致',
    'verify.step.seed_hash': 'seed_hash 与种子一致',
    'verify.step.commitment': '承诺值与两个哈希一致',
    'verify.step.winners': '种子抽出的正是这些中奖者',
    'verify.d.prize': '奖品',
    'verify.d.room': '房间',
    'verify.d.draw': '抽奖',
    'verify.d.rule': '规则',
    'verify.d.entrants': '参加人数',
    'verify.d.winners': '中奖者',
    'verify.d.commitment': '承诺值',
    'verify.d.entrants_hash': 'entrants_hash',
    'verify.d.seed_hash': 'seed_hash',
    'verify.d.seed': '种子',
    'verify.d.committed_at': '承诺时间',
    'verify.d.revealed_at': '开奖时间',
    'verify.rule.present': '在线观众',
    'verify.rule.keyword': '聊天口令“{keyword}”',
    'verify.rule.quiz_correct': '答对测验题',
    'verify.rule.watched': '观看满 {m} 分钟',
    'verify.none': '（无）',
    'verify.reason.not_object': '记录不是一个 JSON 对象',
    'verify.reason.missing': '缺少字段：{fields}',
    'verify.reason.version': '未知的记录版本 {version}',
    'verify.reason.list': '{name} 必须是字符串列表',
    'verify.reason.entrant_id': '有参加者编号为空或含有换行',
    'verify.reason.unsorted': '参加者没有排序或有重复',
    'verify.reason.winners_count': 'winners_count 必须是 1-100 的整数',
    'verify.reason.seed': '种子必须是 64 位小写十六进制数字',
    'verify.reason.hash_format': '{name} 必须是 64 位小写十六进制数字',
    'verify.reason.entrants_hash': 'entrants_hash 与参加者不符',
    'verify.reason.seed_hash': 'seed_hash 与种子不符',
    'verify.reason.commitment': '承诺值与 entrants_hash 和 seed_hash 不符',
    'verify.reason.winner_twice': '有中奖者出现了两次',
    'verify.reason.winner_count': '应有 {expected} 名中奖者，记录中有 {got} 名',
    'verify.reason.winners': '中奖者不是种子抽出的那些人',
    'verify.reason.times': '时间无效（开奖早于承诺？）',
  },
});

initI18n();

// ------------------------------------------------------------ hashing

const HEX64 = /^[0-9a-f]{64}$/;
const FIELDS = [
  'version', 'room', 'draw_id', 'winners_count', 'entrants', 'entrants_hash', 'seed_hash',
  'commitment', 'seed', 'winners',
];
const utf8 = new TextEncoder();

function toHex(buffer) {
  return [...new Uint8Array(buffer)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

function fromHex(hex) {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i += 1) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

/** SHA-256 in plain JavaScript (for pages without crypto.subtle). */
export function sha256Bytes(data) {
  const h = new Uint32Array([
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
  ]);
  const bitLength = data.length * 8;
  const padded = new Uint8Array((((data.length + 9) >> 6) + 1) << 6);
  padded.set(data);
  padded[data.length] = 0x80;
  const view = new DataView(padded.buffer);
  view.setUint32(padded.length - 8, Math.floor(bitLength / 0x100000000));
  view.setUint32(padded.length - 4, bitLength >>> 0);
  const w = new Uint32Array(64);
  const rotr = (x, n) => (x >>> n) | (x << (32 - n));
  for (let off = 0; off < padded.length; off += 64) {
    for (let i = 0; i < 16; i += 1) w[i] = view.getUint32(off + 4 * i);
    for (let i = 16; i < 64; i += 1) {
      const s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >>> 3);
      const s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >>> 10);
      w[i] = (w[i - 16] + s0 + w[i - 7] + s1) >>> 0;
    }
    let [a, b, c, d, e, f, g, hh] = h;
    for (let i = 0; i < 64; i += 1) {
      const t1 = (hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i]) >>> 0;
      const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) >>> 0;
      hh = g; g = f; f = e; e = (d + t1) >>> 0;
      d = c; c = b; b = a; a = (t1 + t2) >>> 0;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
  }
  const out = new Uint8Array(32);
  const outView = new DataView(out.buffer);
  h.forEach((v, i) => outView.setUint32(4 * i, v));
  return out;
}

function concat(a, b) {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** HMAC-SHA256 in plain JavaScript, for a key of at most 64 bytes. */
function hmacBytes(key, message) {
  const block = new Uint8Array(64);
  block.set(key);
  const inner = block.map((b) => b ^ 0x36);
  const outer = block.map((b) => b ^ 0x5c);
  return sha256Bytes(concat(outer, sha256Bytes(concat(inner, message))));
}

function subtle() {
  return globalThis.crypto && globalThis.crypto.subtle ? globalThis.crypto.subtle : null;
}

async function sha256Hex(text) {
  const bytes = utf8.encode(text);
  const s = subtle();
  return toHex(s ? await s.digest('SHA-256', bytes) : sha256Bytes(bytes));
}

/** A scorer for one seed: id -> HMAC-SHA256(seed bytes, id as UTF-8) in hex. */
async function scorer(seedHex) {
  const key = fromHex(seedHex);
  const s = subtle();
  if (!s) return async (id) => toHex(hmacBytes(key, utf8.encode(id)));
  const k = await s.importKey('raw', key, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  return async (id) => toHex(await s.sign('HMAC', k, utf8.encode(id)));
}

/** Compare by Unicode code points (Python's str order), not UTF-16 units. */
function compareIds(a, b) {
  const x = Array.from(a, (c) => c.codePointAt(0));
  const y = Array.from(b, (c) => c.codePointAt(0));
  for (let i = 0; i < Math.min(x.length, y.length); i += 1) {
    if (x[i] !== y[i]) return x[i] < y[i] ? -1 : 1;
  }
  return x.length - y.length;
}

async function pick(seedHex, entrants, count) {
  const score = await scorer(seedHex);
  const scored = await Promise.all(entrants.map(async (id) => [await score(id), id]));
  scored.sort((p, q) => (p[0] < q[0] ? -1 : p[0] > q[0] ? 1 : compareIds(p[1], q[1])));
  return scored.slice(0, Math.max(0, count)).map((p) => p[1]);
}

// ------------------------------------------------------------ verification

class Invalid extends Error {
  constructor(key, vars) {
    super(key);
    this.key = key;
    this.vars = vars || null;
  }
}

const isStringList = (v) => Array.isArray(v) && v.every((s) => typeof s === 'string');

/**
 * Redo the draw. Resolves {ok, reason: [key, vars] | null, passed: [step keys]}.
 * The checks and their order are those of draw_proof.verify().
 */
export async function verifyTranscript(t) {
  const passed = [];
  try {
    if (!t || typeof t !== 'object' || Array.isArray(t)) throw new Invalid('not_object');
    const missing = FIELDS.filter((f) => !(f in t));
    if (missing.length) throw new Invalid('missing', { fields: missing.join(', ') });
    if (t.version !== 1) throw new Invalid('version', { version: JSON.stringify(t.version) });
    if (!isStringList(t.entrants)) throw new Invalid('list', { name: 'entrants' });
    const entrants = t.entrants;
    if (!entrants.every((e) => e && !e.includes('\n'))) throw new Invalid('entrant_id');
    for (let i = 1; i < entrants.length; i += 1) {
      if (compareIds(entrants[i - 1], entrants[i]) >= 0) throw new Invalid('unsorted');
    }
    const count = t.winners_count;
    if (!Number.isInteger(count) || count < 1 || count > 100) throw new Invalid('winners_count');
    if (typeof t.seed !== 'string' || !HEX64.test(t.seed)) throw new Invalid('seed');
    for (const name of ['entrants_hash', 'seed_hash', 'commitment']) {
      if (typeof t[name] !== 'string' || !HEX64.test(t[name])) throw new Invalid('hash_format', { name });
    }
    passed.push('format', 'entrants');
    if ((await sha256Hex(entrants.join('\n'))) !== t.entrants_hash) throw new Invalid('entrants_hash');
    passed.push('entrants_hash');
    if ((await sha256Hex(t.seed)) !== t.seed_hash) throw new Invalid('seed_hash');
    passed.push('seed_hash');
    if ((await sha256Hex(`${t.entrants_hash}:${t.seed_hash}`)) !== t.commitment) throw new Invalid('commitment');
    passed.push('commitment');
    if (!isStringList(t.winners)) throw new Invalid('list', { name: 'winners' });
    if (new Set(t.winners).size !== t.winners.length) throw new Invalid('winner_twice');
    const expected = await pick(t.seed, entrants, count);
    if (expected.length !== t.winners.length) {
      throw new Invalid('winner_count', { expected: expected.length, got: t.winners.length });
    }
    if (expected.some((id, i) => id !== t.winners[i])) throw new Invalid('winners');
    const times = [t.committed_at, t.revealed_at];
    if (times.some((v) => v !== undefined && v !== null)
        && (!times.every((v) => typeof v === 'number' && Number.isFinite(v)) || times[0] > times[1])) {
      throw new Invalid('times');
    }
    passed.push('winners');
    return { ok: true, reason: null, passed };
  } catch (err) {
    if (err instanceof Invalid) return { ok: false, reason: [`verify.reason.${err.key}`, err.vars], passed };
    throw err;
  }
}

// ------------------------------------------------------------ page

const $ = (id) => document.getElementById(id);
const STEPS = ['format', 'entrants', 'entrants_hash', 'seed_hash', 'commitment', 'winners'];
const MAX_LISTED = 2000;

function ruleLine(rule) {
  const r = rule || {};
  if (r.kind === 'keyword') return ['verify.rule.keyword', { keyword: String(r.keyword || '') }];
  if (r.kind === 'watched') return ['verify.rule.watched', { m: Number(r.minutes) || 0 }];
  if (r.kind === 'quiz_correct') return ['verify.rule.quiz_correct'];
  return ['verify.rule.present'];
}

function when(ts) {
  if (typeof ts !== 'number') return '';
  const d = new Date(ts * 1000);
  return Number.isNaN(d.getTime()) ? '' : `${d.toLocaleDateString()} ${formatTime(ts)}`;
}

function detail(list, key, value, mono) {
  const row = el('div', 'verify-detail');
  row.appendChild(tel('dt', '', key));
  const dd = typeof value === 'string' || typeof value === 'number'
    ? el('dd', mono ? 'verify-mono' : '', value)
    : value;
  row.appendChild(dd);
  list.appendChild(row);
}

function showBusy() {
  const box = $('verify-result');
  box.hidden = false;
  box.dataset.verdict = 'busy';
  setText($('verify-verdict'), 'verify.loading');
  for (const id of ['verify-reason', 'verify-steps', 'verify-details', 'verify-entrants']) $(id).replaceChildren();
  $('verify-entrants-box').hidden = true;
  $('verify-json-link').hidden = true;
}

function showUnavailable(key) {
  const box = $('verify-result');
  box.hidden = false;
  box.dataset.verdict = 'unavailable';
  setText($('verify-verdict'), key);
}

async function show(t, jsonUrl) {
  showBusy();
  const result = await verifyTranscript(t);
  const box = $('verify-result');
  box.dataset.verdict = result.ok ? 'ok' : 'failed';
  if (result.ok) {
    setText($('verify-verdict'), 'verify.ok');
  } else {
    const [key, vars] = result.reason;
    const probe = el('span');
    setText(probe, key, vars);
    setText($('verify-verdict'), 'verify.failed', { reason: probe.textContent });
  }

  const steps = $('verify-steps');
  const failedAt = result.ok ? -1 : STEPS.findIndex((s) => !result.passed.includes(s));
  STEPS.forEach((step, i) => {
    const li = tel('li', 'verify-step', `verify.step.${step}`);
    li.dataset.state = result.passed.includes(step) ? 'pass' : (i === failedAt ? 'fail' : 'skip');
    steps.appendChild(li);
  });

  if (t && typeof t === 'object' && !Array.isArray(t)) renderDetails(t);
  const link = $('verify-json-link');
  link.hidden = !jsonUrl;
  if (jsonUrl) link.href = jsonUrl;
}

function renderDetails(t) {
  const list = $('verify-details');
  const text = (v) => (typeof v === 'string' || typeof v === 'number' ? String(v) : '');
  detail(list, 'verify.d.prize', text(t.prize));
  detail(list, 'verify.d.room', text(t.room), true);
  detail(list, 'verify.d.draw', text(t.draw_id), true);
  const [ruleKey, ruleVars] = ruleLine(t.rule);
  detail(list, 'verify.d.rule', tel('dd', '', ruleKey, ruleVars));
  const entrants = isStringList(t.entrants) ? t.entrants : [];
  detail(list, 'verify.d.entrants', String(entrants.length));
  const names = t.winner_names && typeof t.winner_names === 'object' ? t.winner_names : {};
  const winners = el('dd', 'verify-winners');
  if (isStringList(t.winners) && t.winners.length) {
    const ol = el('ol');
    for (const id of t.winners) {
      const name = typeof names[id] === 'string' ? names[id] : '';
      const li = el('li');
      if (name) li.appendChild(el('span', 'verify-winner-name', name));
      li.appendChild(el('code', 'verify-mono', id));
      ol.appendChild(li);
    }
    winners.appendChild(ol);
  } else {
    setText(winners, 'verify.none');
  }
  detail(list, 'verify.d.winners', winners);
  for (const name of ['commitment', 'entrants_hash', 'seed_hash', 'seed']) {
    detail(list, `verify.d.${name}`, text(t[name]), true);
  }
  detail(list, 'verify.d.committed_at', when(t.committed_at));
  detail(list, 'verify.d.revealed_at', when(t.revealed_at));

  const box = $('verify-entrants-box');
  box.hidden = !entrants.length;
  setText($('verify-entrants-summary'), 'verify.entrants_list', { n: entrants.length });
  const ol = $('verify-entrants');
  for (const id of entrants.slice(0, MAX_LISTED)) ol.appendChild(el('li', 'verify-mono', id));
  if (entrants.length > MAX_LISTED) ol.appendChild(el('li', 'muted-text', '…'));
}

async function load(room, draw) {
  showBusy();
  const url = `/api/rooms/${encodeURIComponent(room)}/draws/${encodeURIComponent(draw)}/transcript`;
  let res;
  try {
    res = await fetch(url, { headers: { Accept: 'application/json' }, credentials: 'omit' });
  } catch (_) {
    showUnavailable('verify.network');
    return;
  }
  let body = null;
  try { body = await res.json(); } catch (_) { body = null; }
  if (!res.ok) {
    const code = body && body.code;
    if (code === 'not_revealed') showUnavailable('verify.not_revealed');
    else if (code === 'room_not_found') showUnavailable('verify.room_not_found');
    else showUnavailable(res.status === 404 ? 'verify.not_found' : 'verify.network');
    return;
  }
  await show(body, url);
}

$('verify-fetch').addEventListener('submit', (e) => {
  e.preventDefault();
  const room = $('verify-room').value.trim();
  const draw = $('verify-draw').value.trim();
  if (!room || !draw) return;
  history.replaceState(null, '', `/verify?room=${encodeURIComponent(room)}&draw=${encodeURIComponent(draw)}`);
  load(room, draw);
});

$('verify-paste').addEventListener('submit', (e) => {
  e.preventDefault();
  let parsed;
  try {
    parsed = JSON.parse($('verify-json').value);
  } catch (_) {
    showUnavailable('verify.bad_json');
    return;
  }
  show(parsed, null);
});

const params = new URLSearchParams(location.search);
const roomParam = params.get('room') || '';
const drawParam = params.get('draw') || '';
$('verify-room').value = roomParam;
$('verify-draw').value = drawParam;
if (roomParam && drawParam) load(roomParam, drawParam);
