// Shared page pieces for the watch and moderate pages: the chat list, role
// badges, the status line, the connection indicator and error texts.
// Every server-provided string is set with textContent.

import { setText, formatTime } from './i18n.js';

/** Make an element: el('span', 'cls other', 'text'). */
export function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

/** A translated element whose text follows language switches. */
export function tel(tag, className, key, vars) {
  const e = el(tag, className);
  setText(e, key, vars);
  return e;
}

/** Role badge for host/moderator (null for viewers); its text comes from i18n, never from the name. */
export function roleBadge(role) {
  if (role !== 'host' && role !== 'moderator') return null;
  return tel('span', `badge badge-${role}`, `role.${role}`);
}

function seconds(v) {
  const n = Number(v);
  return Number.isFinite(n) ? Math.max(1, Math.ceil(n)) : null;
}

/** i18n key and vars for an error body {code, message, details}. */
export function errorText(error) {
  const e = error || {};
  const d = e.details || {};
  switch (e.code) {
    case 'rate_limited': {
      const s = seconds(d.retry_after);
      return s ? ['err.rate_limited', { s }] : ['err.rate_limited_plain'];
    }
    case 'slow_mode': {
      const s = seconds(d.retry_after);
      return s ? ['err.slow_mode', { s }] : ['err.slow_mode_plain'];
    }
    case 'muted':
      return d.until ? ['err.muted', { time: formatTime(d.until) }] : ['err.muted_plain'];
    case 'blocked': case 'chat_paused': case 'empty_message': case 'message_too_long':
    case 'repeated_message': case 'banned': case 'forbidden': case 'not_found':
    case 'timeout': case 'offline': case 'network': case 'token_missing': case 'token_invalid':
    case 'token_expired': case 'token_wrong_room': case 'room_not_found': case 'room_closed':
    case 'room_private': case 'bad_payload':
      return [`err.${e.code}`];
    default:
      return ['err.unknown', { message: e.message || e.code || '?' }];
  }
}

/** The small status line (#status): one message at a time, optional action button. */
export class StatusLine {
  constructor(node) {
    this.node = node;
    this._timer = null;
  }

  /** show(key, vars, {kind: 'info'|'ok'|'warn'|'error', ms, action: {key, run}}) */
  show(key, vars, { kind = 'info', ms = 6000, action = null } = {}) {
    clearTimeout(this._timer);
    this.node.replaceChildren();
    this.node.dataset.kind = kind;
    this.node.appendChild(tel('span', 'status-text', key, vars));
    if (action) {
      const b = tel('button', 'status-action', action.key);
      b.type = 'button';
      b.addEventListener('click', () => { this.clear(); action.run(); });
      this.node.appendChild(b);
    }
    this.node.hidden = false;
    if (ms) this._timer = setTimeout(() => this.clear(), ms);
  }

  error(errorBody, opts = {}) {
    const [key, vars] = errorText(errorBody);
    this.show(key, vars, { kind: 'error', ...opts });
  }

  clear() {
    clearTimeout(this._timer);
    this.node.replaceChildren();
    delete this.node.dataset.kind;
  }
}

/** Update the #conn-state indicator from a LiveClient `state` event. */
export function showConnState(node, { state, attempt }) {
  node.dataset.state = state;
  if (state === 'reconnecting' && attempt) setText(node, 'conn.reconnecting_n', { n: attempt });
  else setText(node, `conn.${state}`);
  node.title = node.textContent;
}

/** Update a live badge from a Room. */
export function showLive(node, room) {
  if (!room) return;
  // paused: live, but the publisher is lost and may come back within the grace period
  const state = room.closed ? 'closed' : (room.live ? (room.paused ? 'paused' : 'on') : 'off');
  node.dataset.live = state;
  setText(node, `live.${state}`);
}

/**
 * The scrolling chat list (#chat-list). Items: li.chat-item[data-id] holding
 * [badge] name text. `decorate(li, msg)` may add controls (moderate page).
 */
export class ChatList {
  constructor(node, { max = 200, decorate = null } = {}) {
    this.node = node;
    this.max = max;
    this.decorate = decorate;
    this.byId = new Map();
  }

  has(id) { return this.byId.has(id); }

  add(msg) {
    if (!msg || typeof msg.id !== 'number' || this.byId.has(msg.id)) return null;
    const stick = this._nearBottom();
    const li = el('li', 'chat-item');
    li.dataset.id = String(msg.id);
    if (msg.viewer_id) li.dataset.viewer = String(msg.viewer_id);
    if (msg.role) li.dataset.role = String(msg.role);
    if (msg.own) li.classList.add('is-own');
    if (msg.ts) li.title = formatTime(msg.ts);
    const badge = roleBadge(msg.role);
    if (badge) li.appendChild(badge);
    li.appendChild(el('span', 'chat-name', msg.name || '?'));
    li.appendChild(el('span', 'chat-text', msg.text));
    if (this.decorate) this.decorate(li, msg);
    this.node.appendChild(li);
    this.byId.set(msg.id, li);
    while (this.byId.size > this.max) {
      const [oldId, oldLi] = this.byId.entries().next().value;
      this.byId.delete(oldId);
      oldLi.remove();
    }
    if (stick) this.scrollToEnd();
    return li;
  }

  remove(id) {
    const li = this.byId.get(id);
    if (!li) return;
    this.byId.delete(id);
    li.remove();
  }

  scrollToEnd() {
    this.node.scrollTop = this.node.scrollHeight;
  }

  _nearBottom() {
    const n = this.node;
    return n.scrollHeight - n.scrollTop - n.clientHeight < 60;
  }
}
