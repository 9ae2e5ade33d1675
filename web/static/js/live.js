// livehub client protocol, in one place: tokens, the REST calls a page needs,
// and the Socket.IO `/live` connection (see docs/protocol.md).
//
// The socket.io-client global `io` comes from /static/vendor/socket.io.min.js,
// loaded by a classic <script> before the page modules.
//
// LiveClient events (subscribe with client.on(name, fn)):
//   state     {state, attempt?}   idle|connecting|connected|reconnecting|disconnected|refused
//   refused   error body          connect refused by the server ({code, message, details?})
//   welcome   welcome payload     `messages` holds only ids not seen before
//   messages  [Message]           new messages (from welcome and batches), deduplicated
//   deleted   [id]                message ids to remove everywhere
//   batch     batch payload       `messages` deduplicated
//   stats     {viewers, peak, likes}
//   likes     number              likes total to display (server total + own unsent taps)
//   dropped   number              `dropped` of one batch (sampled away)
//   room      Room
//   held, held_resolved, muted, banned   as sent by the server

const TOKEN_PREFIX = 'livehub.token.';
const ACK_TIMEOUT_MS = 8000;
const LIKE_FLUSH_MS = 300;
const LIKE_MAX = 50;
const HEARTBEAT_MS = 30000;
const SEEN_LIMIT = 5000;

export const REFUSAL_CODES = [
  'token_missing', 'token_invalid', 'token_expired', 'token_wrong_room',
  'room_not_found', 'room_closed', 'banned', 'bad_payload', 'room_private', 'forbidden',
];

export class Emitter {
  constructor() { this._handlers = new Map(); }
  on(name, fn) {
    if (!this._handlers.has(name)) this._handlers.set(name, new Set());
    this._handlers.get(name).add(fn);
    return () => this.off(name, fn);
  }
  off(name, fn) {
    const set = this._handlers.get(name);
    if (set) set.delete(fn);
  }
  emit(name, ...args) {
    const set = this._handlers.get(name);
    if (!set) return;
    for (const fn of [...set]) {
      try { fn(...args); } catch (e) { console.error('livehub handler', name, e); }
    }
  }
}

// ---------------------------------------------------------------- room & token

/** The room id from /watch/<room> or /moderate/<room>. */
export function roomFromPath(pathname = location.pathname) {
  const parts = pathname.split('/').filter(Boolean);
  if (parts.length < 2) return '';
  try { return decodeURIComponent(parts[1]); } catch (_) { return ''; }
}

function storageGet(key) {
  try { return localStorage.getItem(key); } catch (_) { return null; }
}
function storageSet(key, value) {
  try { localStorage.setItem(key, value); } catch (_) { /* private mode: keep in memory only */ }
}
function storageRemove(key) {
  try { localStorage.removeItem(key); } catch (_) { /* ignore */ }
}

export function loadToken(room) { return storageGet(TOKEN_PREFIX + room); }
export function storeToken(room, token) { storageSet(TOKEN_PREFIX + room, token); }
export function clearToken(room) { storageRemove(TOKEN_PREFIX + room); }

/**
 * If the address has `#token=<jwt>`, store it for the room and remove it from
 * the address bar. Returns the token to use (from the hash, else stored), or null.
 */
export function takeToken(room) {
  const hash = location.hash.replace(/^#/, '');
  if (hash) {
    const params = new URLSearchParams(hash);
    const token = params.get('token');
    if (token) {
      storeToken(room, token);
      params.delete('token');
      const rest = params.toString();
      history.replaceState(history.state, '', location.pathname + location.search + (rest ? '#' + rest : ''));
      return token;
    }
  }
  return loadToken(room);
}

/** The JWT claims, decoded without verifying (the server verifies). */
export function tokenClaims(token) {
  try {
    const part = String(token).split('.')[1];
    const b64 = part.replace(/-/g, '+').replace(/_/g, '/');
    const padded = b64 + '='.repeat((4 - (b64.length % 4)) % 4);
    const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch (_) {
    return null;
  }
}

export function tokenExpired(token, skewSeconds = 5) {
  const c = tokenClaims(token);
  return !!(c && typeof c.exp === 'number' && c.exp < Date.now() / 1000 + skewSeconds);
}

export function newClientId() {
  if (globalThis.crypto && typeof crypto.randomUUID === 'function') {
    return crypto.randomUUID();
  }
  // crypto.randomUUID needs a secure context; plain-http LAN installs fall back here.
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export function isColor(c) {
  return typeof c === 'string' && /^#[0-9a-fA-F]{6}$/.test(c);
}

function errorBody(code, message, details) {
  const e = { code, message };
  if (details !== undefined) e.details = details;
  return e;
}

// ---------------------------------------------------------------- REST

/** fetch a JSON API; resolves {ok, status, data} where data is the body or an error body. */
export async function api(method, path, body, token) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (token) headers.Authorization = `Bearer ${token}`;
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
    });
  } catch (e) {
    return { ok: false, status: 0, data: errorBody('network', String(e && e.message || e)) };
  }
  let data = null;
  try { data = await res.json(); } catch (_) { data = null; }
  if (!res.ok && !(data && data.code)) {
    data = errorBody(res.status === 404 ? 'room_not_found' : 'http_' + res.status, res.statusText || 'HTTP error');
  }
  return { ok: res.ok, status: res.status, data };
}

export function getRoom(room) {
  return api('GET', `/api/rooms/${encodeURIComponent(room)}`);
}

/** POST /api/rooms/<room>/join; on success the token is stored for the room. */
export async function joinRoom(room, name) {
  const r = await api('POST', `/api/rooms/${encodeURIComponent(room)}/join`, { name });
  if (r.ok && r.data && r.data.token) storeToken(room, r.data.token);
  return r;
}

// ---------------------------------------------------------------- socket

/** The error body of a refused connect (python-socketio ConnectionRefusedError). */
function refusalBody(err) {
  const data = err && err.data;
  if (data && typeof data === 'object' && data.code) return data;
  if (typeof data === 'string' && REFUSAL_CODES.includes(data)) return errorBody(data, err.message || data);
  const msg = String((err && err.message) || '');
  // A refusal raised with a single dict argument arrives as its repr in `message`.
  const m = msg.match(/['"]code['"]\s*:\s*['"]([a-z_]+)['"]/) || msg.match(new RegExp(`\\b(${REFUSAL_CODES.join('|')})\\b`));
  if (m) {
    const mm = msg.match(/['"]message['"]\s*:\s*['"]([^'"]*)['"]/);
    return errorBody(m[1], mm ? mm[1] : msg);
  }
  return errorBody('refused', msg || 'Connection refused.');
}

export class LiveClient extends Emitter {
  constructor(room, token, { ackTimeoutMs = ACK_TIMEOUT_MS } = {}) {
    super();
    this.room = room;
    this.token = token;
    this.ackTimeoutMs = ackTimeoutMs;
    this.socket = null;
    this.state = 'idle';
    this.lastEventId = null;   // highest message id received from welcome/batch
    this.seen = new Set();     // message ids already handed to the UI
    this.you = null;           // {viewer_id, name, role}
    this.roomInfo = null;      // Room
    this.serverLikes = 0;
    this._likePending = 0;     // taps not yet sent
    this._likeInFlight = 0;    // taps sent, not yet acked
    this._likeTimer = null;
    this._heartbeat = null;
    this.clockOffset = 0;      // server_time - local time, seconds
  }

  setToken(token) { this.token = token; }

  _setState(state, extra) {
    this.state = state;
    this.emit('state', { state, ...(extra || {}) });
  }

  _auth() {
    const a = { room: this.room, token: this.token };
    if (this.lastEventId !== null) a.last_event_id = this.lastEventId;
    return a;
  }

  connect() {
    if (this.socket) {
      if (!this.socket.connected) {
        this._setState('connecting');
        this.socket.connect();
      }
      return;
    }
    if (typeof globalThis.io !== 'function') {
      throw new Error('socket.io client not loaded (/static/vendor/socket.io.min.js)');
    }
    this._setState('connecting');
    const s = globalThis.io('/live', {
      path: '/socket.io/',
      // WebSocket first (no long-poll upgrade dance); fall back to polling where it is blocked.
      transports: ['websocket', 'polling'],
      tryAllTransports: true,
      auth: (cb) => cb(this._auth()),   // called on every (re)connect: carries last_event_id
      reconnectionDelay: 1000,
      reconnectionDelayMax: 10000,
      timeout: 15000,
    });
    this.socket = s;

    s.on('connect', () => {
      this._setState('connected');
      this._startHeartbeat();
    });
    s.on('connect_error', (err) => {
      if (s.active) {
        // transport problem: socket.io keeps retrying by itself
        this._setState('reconnecting');
        return;
      }
      const body = refusalBody(err);
      this._setState('refused', { code: body.code });
      this.emit('refused', body);
    });
    s.on('disconnect', (reason) => {
      this._stopHeartbeat();
      if (reason === 'io client disconnect') this._setState('idle');
      else if (reason === 'io server disconnect') this._setState('disconnected', { reason });
      else this._setState('reconnecting', { reason });
    });
    s.io.on('reconnect_attempt', (n) => this._setState('reconnecting', { attempt: n }));

    s.on('welcome', (w) => this._onWelcome(w));
    s.on('batch', (b) => this._onBatch(b));
    s.on('room', (r) => { this.roomInfo = r; this.emit('room', r); });
    for (const name of ['held', 'held_resolved', 'muted', 'banned']) {
      s.on(name, (payload) => this.emit(name, payload));
    }
    // Feature events (polls, quizzes, Q&A, draws, offers) pass straight through.
    const handled = new Set(['welcome', 'batch', 'room', 'held', 'held_resolved', 'muted', 'banned']);
    s.onAny((name, payload) => { if (!handled.has(name)) this.emit(name, payload); });
  }

  disconnect() {
    this._stopHeartbeat();
    if (this.socket) this.socket.disconnect();
  }

  get connected() { return !!(this.socket && this.socket.connected); }

  /** Remember `id` as shown; false when it was shown already. */
  markSeen(id) {
    if (typeof id !== 'number' || this.seen.has(id)) return false;
    this.seen.add(id);
    if (this.seen.size > SEEN_LIMIT) {
      // forget the oldest half (Set keeps insertion order)
      let n = this.seen.size - SEEN_LIMIT / 2;
      for (const old of this.seen) {
        if (n-- <= 0) break;
        this.seen.delete(old);
      }
    }
    return true;
  }

  _fresh(messages) {
    const out = [];
    for (const m of Array.isArray(messages) ? messages : []) {
      if (!m || typeof m.id !== 'number') continue;
      if (this.lastEventId === null || m.id > this.lastEventId) this.lastEventId = m.id;
      if (this.markSeen(m.id)) out.push(m);
    }
    return out;
  }

  _onWelcome(w) {
    w = w || {};
    this.you = w.you || null;
    if (w.room) this.roomInfo = w.room;
    const messages = this._fresh(w.messages);
    const deleted = Array.isArray(w.deleted) ? w.deleted : [];
    const stats = w.stats || {};
    if (typeof stats.likes === 'number') this.serverLikes = stats.likes;
    this.emit('welcome', { ...w, messages, deleted });
    if (w.room) this.emit('room', w.room);
    this.emit('stats', stats);
    this.emit('likes', this.likes());
    if (deleted.length) this.emit('deleted', deleted);
    if (messages.length) this.emit('messages', messages);
  }

  _onBatch(b) {
    b = b || {};
    const messages = this._fresh(b.messages);
    const deleted = Array.isArray(b.deleted) ? b.deleted : [];
    this.emit('batch', { ...b, messages, deleted });
    if (deleted.length) this.emit('deleted', deleted);
    if (messages.length) this.emit('messages', messages);
    if (typeof b.likes === 'number') {
      // `likes` is the room total; totals never go down within a session
      this.serverLikes = Math.max(this.serverLikes, b.likes);
      this.emit('likes', this.likes());
    }
    if (typeof b.viewers === 'number' || typeof b.peak === 'number') {
      this.emit('stats', { viewers: b.viewers, peak: b.peak, likes: b.likes });
    }
    if (typeof b.dropped === 'number' && b.dropped > 0) this.emit('dropped', b.dropped);
  }

  /**
   * Emit `event` with `payload` and resolve with the ack: `{ok: true, ...}` or
   * `{ok: false, error: {code, message, details?}}`. Never rejects; a missing
   * connection gives code `offline`, no answer in time gives `timeout`.
   */
  request(event, payload = {}, timeoutMs = this.ackTimeoutMs) {
    return new Promise((resolve) => {
      const s = this.socket;
      if (!s || !s.connected) {
        resolve({ ok: false, error: errorBody('offline', 'Not connected.') });
        return;
      }
      s.timeout(timeoutMs).emit(event, payload, (err, ack) => {
        if (err) resolve({ ok: false, error: errorBody('timeout', 'No answer from the server.') });
        else if (!ack || typeof ack !== 'object') resolve({ ok: false, error: errorBody('bad_ack', 'Malformed answer.') });
        else resolve(ack);
      });
    });
  }

  /**
   * Send a chat message. Resolves {ack, message}: `message` is the own message
   * built from the ack (render it now; its id is marked seen so the batch copy
   * is skipped), or null when held, failed or already shown.
   * A timeout is retried once with the same client_id (the server deduplicates).
   */
  async chat(text, { mode = 'scroll', color = '#ffffff', offset_ms } = {}) {
    const payload = { text, client_id: newClientId(), mode };
    if (isColor(color)) payload.color = color.toLowerCase();
    if (Number.isInteger(offset_ms) && offset_ms >= 0) payload.offset_ms = offset_ms;
    let ack = await this.request('chat', payload);
    if (!ack.ok && ack.error && ack.error.code === 'timeout' && this.connected) {
      ack = await this.request('chat', payload);
    }
    let message = null;
    if (ack.ok && !ack.held && typeof ack.id === 'number' && this.markSeen(ack.id)) {
      const you = this.you || {};
      message = {
        id: ack.id,
        viewer_id: you.viewer_id,
        name: you.name,
        role: you.role,
        text,
        mode,
        color: payload.color || '#ffffff',
        offset_ms: payload.offset_ms,
        ts: Date.now() / 1000 + this.clockOffset,
        own: true,
      };
    }
    return { ack, message };
  }

  /** Likes total for display: server total plus own taps not yet acknowledged. */
  likes() {
    return this.serverLikes + this._likePending + this._likeInFlight;
  }

  /** Count a tap; taps are sent together as one `like` every ~300 ms (at most 50 each). */
  tapLike(n = 1) {
    this._likePending += n;
    this.emit('likes', this.likes());
    if (!this._likeTimer) this._likeTimer = setTimeout(() => this._flushLikes(), LIKE_FLUSH_MS);
  }

  async _flushLikes() {
    this._likeTimer = null;
    const count = Math.min(this._likePending, LIKE_MAX);
    if (count <= 0) return;
    this._likePending -= count;
    this._likeInFlight += count;
    if (this._likePending > 0) this._likeTimer = setTimeout(() => this._flushLikes(), LIKE_FLUSH_MS);
    const ack = await this.request('like', { count });
    this._likeInFlight -= count;
    if (ack.ok && typeof ack.likes === 'number') this.serverLikes = Math.max(this.serverLikes, ack.likes);
    this.emit('likes', this.likes());
    if (!ack.ok) this.emit('like_error', ack.error);
  }

  _startHeartbeat() {
    this._stopHeartbeat();
    const beat = async () => {
      const sent = Date.now() / 1000;
      const ack = await this.request('heartbeat', {});
      if (ack.ok && typeof ack.server_time === 'number') {
        const now = Date.now() / 1000;
        this.clockOffset = ack.server_time - (sent + now) / 2;
      }
    };
    beat();
    this._heartbeat = setInterval(beat, HEARTBEAT_MS);
  }

  _stopHeartbeat() {
    if (this._heartbeat) clearInterval(this._heartbeat);
    this._heartbeat = null;
  }

  // moderator helpers (host, moderator)
  modDelete(messageId) { return this.request('mod_delete', { message_id: messageId }); }
  modMute(viewerId, seconds) { return this.request('mod_mute', { viewer_id: viewerId, seconds }); }
  modUnmute(viewerId) { return this.request('mod_unmute', { viewer_id: viewerId }); }
  modBan(viewerId, reason) {
    const p = { viewer_id: viewerId };
    if (reason) p.reason = reason;
    return this.request('mod_ban', p);
  }
  modUnban(viewerId) { return this.request('mod_unban', { viewer_id: viewerId }); }
  modRuleAdd(rule) { return this.request('mod_rule_add', rule); }
  modRuleRemove(ruleId) { return this.request('mod_rule_remove', { rule_id: ruleId }); }
  modRules() { return this.request('mod_rules', {}); }
  modHeld() { return this.request('mod_held', {}); }
  modApprove(messageId) { return this.request('mod_approve', { message_id: messageId }); }
  modReject(messageId) { return this.request('mod_reject', { message_id: messageId }); }
  modSlow(seconds) { return this.request('mod_slow', { seconds }); }
  modPause(paused) { return this.request('mod_pause', { paused: !!paused }); }
  modViewers() { return this.request('mod_viewers', {}); }
  modStats() { return this.request('mod_stats', {}); }
}
