// Offer cards: a card over the video for viewers (title, text, a link button that
// goes through the server's counted redirect) and an "Offers" panel on the
// moderate page (push, withdraw, live click counts). Protocol: docs/protocol-offers.md.
// Every server-provided string goes in with textContent; links are built with
// createElement('a') from ids, never from markup.

import { addStrings, setText, t } from '../i18n.js';
import { loadToken } from '../live.js';
import { el, tel } from '../ui.js';

addStrings({
  en: {
    'offer.label': 'Offer',
    'offer.open': 'Open',
    'offer.close': 'Hide offer',
    'offer.goes_to': 'Opens {host}',
    'offer.err.bad_url': 'The link must be a full http:// or https:// address.',
    'offer.err.bad_title': 'Enter a title (up to 80 characters).',
    'offer.err.bad_text': 'The text is at most 200 characters.',
    'offer.err.bad_cta': 'The button label is at most 24 characters.',
    'offer.err.too_many_offers': 'Too many offers are shown; withdraw one first.',
    'offer.err.already_withdrawn': 'That offer was already withdrawn.',
    'offer.err.offer_withdrawn': 'That offer has ended.',
    'offer.panel': 'Offers',
    'offer.form.title': 'Title',
    'offer.form.text': 'Text',
    'offer.form.url': 'Link (https://…)',
    'offer.form.cta': 'Button label (optional)',
    'offer.form.submit': 'Show offer',
    'offer.pushed': 'Offer shown to viewers.',
    'offer.withdrawn': 'Offer withdrawn.',
    'offer.empty': 'No offers yet.',
    'offer.clicks': '{n} clicks',
    'offer.do_withdraw': 'Withdraw',
    'offer.status.active': 'Live',
    'offer.status.withdrawn': 'Withdrawn',
  },
  'zh-CN': {
    'offer.label': '推荐',
    'offer.open': '查看',
    'offer.close': '隐藏推荐',
    'offer.goes_to': '将打开 {host}',
    'offer.err.bad_url': '链接必须是完整的 http:// 或 https:// 地址。',
    'offer.err.bad_title': '请输入标题（最多 80 个字符）。',
    'offer.err.bad_text': '文字最多 200 个字符。',
    'offer.err.bad_cta': '按钮文字最多 24 个字符。',
    'offer.err.too_many_offers': '同时展示的推荐太多了，请先撤下一个。',
    'offer.err.already_withdrawn': '这个推荐已经撤下了。',
    'offer.err.offer_withdrawn': '这个推荐已结束。',
    'offer.panel': '商品推荐',
    'offer.form.title': '标题',
    'offer.form.text': '文字',
    'offer.form.url': '链接（https://…）',
    'offer.form.cta': '按钮文字（可选）',
    'offer.form.submit': '展示推荐',
    'offer.pushed': '推荐已展示给观众。',
    'offer.withdrawn': '推荐已撤下。',
    'offer.empty': '还没有推荐。',
    'offer.clicks': '{n} 次点击',
    'offer.do_withdraw': '撤下',
    'offer.status.active': '展示中',
    'offer.status.withdrawn': '已撤下',
  },
});

const OWN_ERRORS = [
  'bad_url', 'bad_title', 'bad_text', 'bad_cta', 'too_many_offers', 'already_withdrawn',
  'offer_withdrawn',
];

function reportError(status, error) {
  const e = error || {};
  if (OWN_ERRORS.includes(e.code)) status.show(`offer.err.${e.code}`, null, { kind: 'error' });
  else status.error(e);
}

function hostOf(url) {
  try {
    return new URL(url).host;
  } catch (_) {
    return '';
  }
}

/** The counted redirect for this viewer: /o/<room>/<offer>?t=<token>. */
function clickHref(room, offerId, client) {
  const token = loadToken(room) || client.token || '';
  return `/o/${encodeURIComponent(room)}/${encodeURIComponent(offerId)}?t=${encodeURIComponent(token)}`;
}

// ------------------------------------------------------------ viewer card

function offerCard(ctx, offer, onClose) {
  const { room, client } = ctx;
  const card = el('section', 'card offer-card');
  card.dataset.offer = offer.offer_id;
  const head = el('div', 'offer-head');
  head.appendChild(tel('span', 'offer-label', 'offer.label'));
  const close = el('button', 'btn btn-small btn-ghost offer-close', '×');
  close.type = 'button';
  close.dataset.i18nTitle = 'offer.close'; // re-translated on language switches
  close.title = t('offer.close');
  close.setAttribute('aria-label', t('offer.close'));
  close.addEventListener('click', onClose);
  head.appendChild(close);
  card.appendChild(head);
  card.appendChild(el('h3', 'offer-title', offer.title));
  if (offer.text) card.appendChild(el('p', 'offer-text', offer.text));

  const link = document.createElement('a');
  link.className = 'btn btn-primary offer-link';
  link.target = '_blank';
  link.rel = 'noopener noreferrer';
  if (offer.cta) link.textContent = offer.cta;
  else setText(link, 'offer.open');
  link.href = clickHref(room, offer.offer_id, client);
  // The token may have been renewed since the card was drawn.
  link.addEventListener('click', () => { link.href = clickHref(room, offer.offer_id, client); });
  card.appendChild(link);
  const host = hostOf(offer.url);
  if (host) card.appendChild(tel('p', 'muted-text offer-host', 'offer.goes_to', { host }));
  return card;
}

export function mountOfferCard(ctx) {
  const { client, cards } = ctx;
  const shown = new Map(); // offer_id -> card node
  const closed = new Set();

  function show(offer) {
    if (!offer || !offer.offer_id || offer.status === 'withdrawn') return;
    if (closed.has(offer.offer_id)) return;
    const old = shown.get(offer.offer_id);
    const card = offerCard(ctx, offer, () => {
      card.remove();
      shown.delete(offer.offer_id);
      closed.add(offer.offer_id);
    });
    if (old) old.replaceWith(card);
    else cards.prepend(card); // newest first: the layer scrolls on small screens
    shown.set(offer.offer_id, card);
  }

  function remove(offerId) {
    const card = shown.get(offerId);
    if (card) card.remove();
    shown.delete(offerId);
  }

  async function refresh() {
    const ack = await client.request('offer_state', {});
    if (!ack.ok) return;
    const live = new Set();
    for (const offer of ack.offers || []) {
      live.add(offer.offer_id);
      show(offer);
    }
    for (const id of [...shown.keys()]) if (!live.has(id)) remove(id);
  }

  client.on('welcome', () => { refresh(); });
  client.on('offer', (offer) => show(offer));
  client.on('offer_withdrawn', (w) => { if (w && w.offer_id) remove(w.offer_id); });
}

// ------------------------------------------------------------ moderator panel

function field(labelKey, control) {
  const label = el('label', 'offer-field');
  label.appendChild(tel('span', 'offer-field-label', labelKey));
  label.appendChild(control);
  return label;
}

function input(className, type, maxLength) {
  const i = el('input', className);
  i.type = type;
  i.maxLength = maxLength;
  return i;
}

export function mountOfferControls({ client, controls, status }) {
  const panel = el('section', 'panel offer-panel');
  const head = el('div', 'panel-head');
  head.appendChild(tel('h2', '', 'offer.panel'));
  panel.appendChild(head);

  const form = el('form', 'offer-create');
  form.autocomplete = 'off';
  const title = input('offer-title-input', 'text', 80);
  title.required = true;
  const text = el('textarea', 'offer-text-input');
  text.maxLength = 200;
  text.rows = 2;
  const url = input('offer-url-input', 'url', 500);
  url.required = true;
  url.placeholder = 'https://';
  const cta = input('offer-cta-input', 'text', 24);
  const submit = tel('button', 'btn btn-primary offer-create-submit', 'offer.form.submit');
  submit.type = 'submit';
  form.append(
    field('offer.form.title', title), field('offer.form.text', text),
    field('offer.form.url', url), field('offer.form.cta', cta), submit,
  );
  panel.appendChild(form);

  const list = el('ol', 'item-list offer-admin-list');
  list.dataset.i18nAttr = 'data-empty:offer.empty';
  list.setAttribute('data-empty', t('offer.empty'));
  panel.appendChild(list);
  controls.appendChild(panel);

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const payload = { title: title.value.trim(), text: text.value.trim(), url: url.value.trim() };
    if (cta.value.trim()) payload.cta = cta.value.trim();
    submit.disabled = true;
    const ack = await client.request('offer_push', payload);
    submit.disabled = false;
    if (!ack.ok) {
      reportError(status, ack.error);
      return;
    }
    status.show('offer.pushed', null, { kind: 'ok' });
    title.value = '';
    text.value = '';
    url.value = '';
    cta.value = '';
    upsert(ack.offer, true);
  });

  const rows = new Map(); // offer_id -> {row, offer}

  function upsert(update, atTop) {
    if (!update || !update.offer_id) return;
    let entry = rows.get(update.offer_id);
    if (!entry) {
      if (!update.title) return;
      const row = el('li', 'offer-admin');
      row.dataset.offer = update.offer_id;
      entry = { row, offer: { clicks: 0 } };
      rows.set(update.offer_id, entry);
      if (atTop) list.prepend(row);
      else list.appendChild(row);
    }
    entry.offer = { ...entry.offer, ...update };
    render(entry);
  }

  function render(entry) {
    const o = entry.offer;
    const row = entry.row;
    row.dataset.status = o.status || 'active';
    row.replaceChildren();
    const top = el('div', 'offer-admin-top');
    top.appendChild(el('span', 'offer-admin-title', o.title));
    top.appendChild(tel('span', 'pill', `offer.status.${o.status === 'withdrawn' ? 'withdrawn' : 'active'}`));
    top.appendChild(tel('span', 'offer-clicks', 'offer.clicks', { n: Number(o.clicks) || 0 }));
    row.appendChild(top);
    row.appendChild(el('p', 'muted-text offer-admin-url', o.url));
    if (o.status !== 'withdrawn') {
      const b = tel('button', 'btn btn-small btn-danger offer-withdraw', 'offer.do_withdraw');
      b.type = 'button';
      b.addEventListener('click', async () => {
        b.disabled = true;
        const ack = await client.request('offer_withdraw', { offer_id: o.offer_id });
        b.disabled = false;
        if (!ack.ok) reportError(status, ack.error);
        else {
          status.show('offer.withdrawn', null, { kind: 'ok' });
          upsert(ack.offer);
        }
      });
      row.appendChild(b);
    }
  }

  async function refresh() {
    const ack = await client.request('offer_list', {});
    if (!ack.ok) return;
    for (const offer of ack.offers || []) upsert(offer);
  }

  client.on('welcome', () => { refresh(); });
  client.on('offer', (offer) => upsert(offer, true));
  client.on('offer_withdrawn', (w) => upsert({ ...w, status: 'withdrawn' }));
  client.on('offer_clicks', (c) => { if (c && rows.has(c.offer_id)) upsert(c); });
}
