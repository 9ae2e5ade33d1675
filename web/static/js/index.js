// Landing page: language switch and the "go to room" form.

import { initI18n, setText } from './i18n.js';

initI18n();

const form = document.getElementById('room-form');
const input = document.getElementById('room-input');

form.addEventListener('submit', (e) => {
  e.preventDefault();
  let room = input.value.trim();
  // accept a pasted watch link as well as a bare room id
  const m = room.match(/\/watch\/([^/?#]+)/);
  if (m) {
    try { room = decodeURIComponent(m[1]); } catch (_) { room = m[1]; }
  }
  if (!room) {
    setText(document.getElementById('room-error'), 'index.go.invalid');
    return;
  }
  location.assign(`/watch/${encodeURIComponent(room)}`);
});
