// The chat feed with moderator actions, shared by the studio and moderate pages:
// per-message delete / mute / ban buttons, their results in the status line (with
// undo), and the chat form. Page state (the client, who "you" are) comes in as getters.

import { formatTime } from './i18n.js';
import { el, tel } from './ui.js';

const DEFAULT_MUTE_SECONDS = 600;

/** A small translated button. */
export function button(className, key) {
  const b = tel('button', `btn btn-small ${className}`, key);
  b.type = 'button';
  return b;
}

/** report(ack, key, vars, undo): an ok status (optionally with undo) or the ack error; returns ack.ok. */
export function reporter(status) {
  return (ack, key, vars, undo) => {
    if (ack.ok) status.show(key, vars, { kind: 'ok', action: undo || null, ms: undo ? 10000 : 5000 });
    else status.error(ack.error);
    return ack.ok;
  };
}

/** A ChatList `decorate` adding the moderator buttons (no mute / ban on your own messages). */
export function modDecorator(isSelf) {
  return (li, msg) => {
    const box = el('span', 'mod-actions');
    box.appendChild(button('mod-delete', 'mod.delete'));
    if (msg.viewer_id && !isSelf(msg.viewer_id)) {
      box.appendChild(button('mod-mute', 'mod.mute'));
      box.appendChild(button('btn-danger mod-ban', 'mod.ban'));
    }
    li.appendChild(box);
  };
}

/** Mute for the time picked in `durationSelect`, with unmute as the undo. */
export async function muteViewer(getClient, report, durationSelect, viewerId, name) {
  const seconds = Number(durationSelect.value) || DEFAULT_MUTE_SECONDS;
  const ack = await getClient().modMute(viewerId, seconds);
  report(ack, 'mod.done.mute', { name, time: formatTime(ack.until) }, {
    key: 'mod.unmute',
    run: async () => report(await getClient().modUnmute(viewerId), 'mod.done.unmute', { name }),
  });
}

/** Ban, with unban as the undo. */
export async function banViewer(getClient, report, viewerId, name) {
  const ack = await getClient().modBan(viewerId);
  report(ack, 'mod.done.ban', { name }, {
    key: 'status.undo',
    run: async () => report(await getClient().modUnban(viewerId), 'mod.done.unban', { name }),
  });
}

/** The delete / mute / ban buttons of the feed `list` (rendered by `chat`). */
export function wireModActions(list, { chat, getClient, report, durationSelect }) {
  list.addEventListener('click', async (e) => {
    const client = getClient();
    const btn = e.target.closest('button');
    const li = e.target.closest('.chat-item');
    if (!btn || !li || !client) return;
    const id = Number(li.dataset.id);
    const viewerId = li.dataset.viewer;
    const nameEl = li.querySelector('.chat-name');
    const name = nameEl ? nameEl.textContent : '?';
    btn.disabled = true;
    try {
      if (btn.classList.contains('mod-delete')) {
        if (report(await client.modDelete(id), 'mod.done.delete')) chat.remove(id);
      } else if (btn.classList.contains('mod-mute')) {
        await muteViewer(getClient, report, durationSelect, viewerId, name);
      } else if (btn.classList.contains('mod-ban')) {
        await banViewer(getClient, report, viewerId, name);
      }
    } finally {
      btn.disabled = false;
    }
  });
}

/** The chat form: send in scroll mode, show the message at once, say when it was held. */
export function wireChatForm(form, { input, send, chat, status, getClient }) {
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const client = getClient();
    const text = input.value.trim();
    if (!text || !client) return;
    send.disabled = true;
    const { ack, message } = await client.chat(text, { mode: 'scroll' });
    send.disabled = false;
    if (ack.ok) {
      input.value = '';
      if (ack.held) status.show('status.held', null, { kind: 'warn' });
      if (message) {
        chat.add(message);
        chat.scrollToEnd();
      }
    } else {
      status.error(ack.error);
    }
    input.focus();
  });
}
