// Watch-page playback: while the room is live, play it over WebRTC (WHEP, see
// media.js) into #video; fall back to HLS (/hls/<room>/index.m3u8: hls.js where
// the browser has Media Source Extensions, else its own HLS) when WebRTC does not connect
// within CONNECT_MS, keeps failing, or the room's settings say
// `playback: "hls"`. Stops when the room stops being live. While the stream is
// paused (its publisher lost, `media` state "paused") it stops and says so rather
// than freezing on the last frame; on "live" it subscribes again, no reload. A
// muted video autoplays everywhere: a "tap to unmute" button turns the sound on.
//
//   const player = mountPlayer({ room, client, video, stage });
//   player.mode  -> null | 'webrtc' | 'hls'   (also stage.dataset.playback)

import { addStrings, setText } from './i18n.js';
import { play, canPlayWebRTC } from './media.js';

addStrings({
  en: {
    'player.unmute': 'Tap to unmute',
    'player.play': 'Tap to play',
    'player.connecting': 'Connecting to the stream…',
    'player.paused': 'Paused, reconnecting…',
    'player.unsupported': 'This browser cannot play the stream.',
  },
  'zh-CN': {
    'player.unmute': '点击开启声音',
    'player.play': '点击播放',
    'player.connecting': '正在连接直播…',
    'player.paused': '已暂停，正在重连…',
    'player.unsupported': '此浏览器无法播放直播。',
  },
});

const CONNECT_MS = 5000;                   // WebRTC must connect within this, else HLS
const RETRY_MS = [1000, 2000, 4000, 8000, 15000];
const WEBRTC_TRIES = 3;                    // failed WebRTC sessions in a row before HLS
const HLS_SCRIPT = '/static/vendor/hls.min.js';
const HLS_TYPE = 'application/vnd.apple.mpegurl';

function hasMse() {
  const M = globalThis.ManagedMediaSource || globalThis.MediaSource;
  return !!(M && typeof M.isTypeSupported === 'function'
    && M.isTypeSupported('video/mp4; codecs="avc1.42E01E,mp4a.40.2"'));
}

export function hlsUrl(room) {
  return `/hls/${encodeURIComponent(room)}/index.m3u8`;
}

class Player {
  constructor({ room, client, video, stage }) {
    this.room = room;
    this.client = client;
    this.video = video;
    this.stage = stage;
    this.placeholder = stage.querySelector('.stage-placeholder');
    this.mode = null;          // 'webrtc' | 'hls' while a stream is wanted
    this.streamId = null;      // the live stream being played
    this.session = null;       // WHEP handle
    this.hls = null;           // hls.js instance
    this.native = false;       // native HLS in video.src
    this.gen = 0;              // bumps on every start/stop: stale callbacks check it
    this.failures = 0;         // WebRTC sessions that failed in a row
    this.retries = 0;
    this.timer = null;
    this.wantSound = false;
    this.hlsScript = null;
    this.private = false;

    this.button = document.createElement('button');
    this.button.type = 'button';
    this.button.className = 'btn player-unmute';
    this.button.hidden = true;
    setText(this.button, 'player.unmute');
    this.button.addEventListener('click', () => this.unmute());
    stage.appendChild(this.button);

    video.addEventListener('playing', () => this._showButton());
    video.addEventListener('volumechange', () => this._showButton());
    video.addEventListener('canplay', () => this._autoplay());
    video.addEventListener('error', () => {
      if (this.mode === 'hls' && this.native) this._retryHls(this.gen);
    });
    window.addEventListener('pagehide', () => {
      if (this.session) this.session.stop({ keepalive: true });
    });
  }

  /** Follow the room: play while live, stop when not. */
  update(room) {
    const live = !!(room && room.live && !room.closed);
    if (!live) {
      this.stop();
      this.streamId = null;
      this._paused(false);
      this._placeholder('stage.waiting');
      return;
    }
    if (room.paused) {
      this.pause();
      return;
    }
    this._paused(false);
    this.private = !!room.private;
    const sid = room.stream_id || 'live';
    if (sid === this.streamId && this.mode) return;  // already on it (a settings change, a reconnect)
    this.stop();
    this.streamId = sid;
    this.failures = 0;
    this.retries = 0;
    this._placeholder('player.connecting');
    const hlsWanted = !!(room.settings && room.settings.playback === 'hls');
    if (hlsWanted || !canPlayWebRTC()) this._startHls();
    else this._startWebRTC();
  }

  // ---------------------------------------------------------------- WebRTC

  async _startWebRTC() {
    const mine = this._begin('webrtc');
    let connected = false;
    this.timer = setTimeout(() => {
      if (mine === this.gen && !connected) this._fallback(mine);
    }, CONNECT_MS);
    const onState = (state) => {
      if (mine !== this.gen) return;
      if (state === 'connected') {
        connected = true;
        clearTimeout(this.timer);
        this.failures = 0;
        this.retries = 0;
      } else if (state === 'failed') {
        if (!connected) this._fallback(mine);
        else this._retryWebRTC(mine);
      }
    };
    this.video.muted = !this.wantSound;
    try {
      const session = await play(this.room, this.client.token, this.video, { onState });
      if (mine !== this.gen) {
        session.stop();
        return;
      }
      this.session = session;
    } catch (e) {
      if (mine !== this.gen) return;
      clearTimeout(this.timer);
      if (e && e.code === 'not_live') {
        this._retryWebRTC(mine);  // the `room` push saying so is on its way, or it goes live shortly
      } else {
        this._fallback(mine);     // no_media (published elsewhere), no_codec, network, ...
      }
    }
  }

  /** A session that worked has failed: try WebRTC again, then HLS. */
  _retryWebRTC(mine) {
    this._end();
    this.failures += 1;
    if (this.failures >= WEBRTC_TRIES) {
      this._startHls();
      return;
    }
    this._later(mine, () => this._startWebRTC());
  }

  _fallback(mine) {
    if (mine !== this.gen) return;
    this._end();
    this._startHls();
  }

  // ---------------------------------------------------------------- HLS

  async _startHls() {
    const mine = this._begin('hls');
    this.video.muted = !this.wantSound;
    // hls.js wherever Media Source Extensions exist (it can send the token, and
    // Chromium now also answers canPlayType 'maybe' for its own, plainer, HLS);
    // the browser's own HLS where there is no MSE (older iPhones).
    const Hls = hasMse() ? await this._loadHls() : null;
    if (mine !== this.gen) return;
    if (Hls && typeof Hls.isSupported === 'function' && Hls.isSupported()) {
      this._startHlsJs(Hls, mine);
    } else if (this.video.canPlayType(HLS_TYPE)) {
      // the browser's player cannot send a header: a private room's token goes in ?t=
      const t = this.private && this.client.token ? `?t=${encodeURIComponent(this.client.token)}` : '';
      this.native = true;
      this.video.src = hlsUrl(this.room) + t;
      this._autoplay();
    } else {
      this._placeholder('player.unsupported');
    }
  }

  _startHlsJs(Hls, mine) {
    const token = this.client.token;
    const hls = new Hls({
      enableWorker: false,       // a blob: worker is not allowed by the page's CSP
      lowLatencyMode: true,
      liveDurationInfinity: true,
      xhrSetup: (xhr) => { if (token) xhr.setRequestHeader('Authorization', `Bearer ${token}`); },
    });
    this.hls = hls;
    hls.on(Hls.Events.ERROR, (_event, data) => {
      if (data && data.fatal && mine === this.gen) this._retryHls(mine);
    });
    hls.on(Hls.Events.MANIFEST_PARSED, () => this._autoplay());
    hls.loadSource(hlsUrl(this.room));
    hls.attachMedia(this.video);
  }

  /** The playlist is not there yet (404) or broke: try again a little later. */
  _retryHls(mine) {
    if (mine !== this.gen) return;
    this._end();
    this._later(mine, () => this._startHls());
  }

  _loadHls() {
    if (globalThis.Hls) return Promise.resolve(globalThis.Hls);
    if (!this.hlsScript) {
      this.hlsScript = new Promise((resolve) => {
        const s = document.createElement('script');
        s.src = HLS_SCRIPT;
        s.async = true;
        s.addEventListener('load', () => resolve(globalThis.Hls || null));
        s.addEventListener('error', () => {
          this.hlsScript = null;
          resolve(null);
        });
        document.head.appendChild(s);
      });
    }
    return this.hlsScript;
  }

  // ---------------------------------------------------------------- common

  _begin(mode) {
    this.gen += 1;
    this.mode = mode;
    this.stage.dataset.playback = mode;
    return this.gen;
  }

  _later(mine, fn) {
    const ms = RETRY_MS[Math.min(this.retries, RETRY_MS.length - 1)];
    this.retries += 1;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => { if (mine === this.gen) fn(); }, ms);
  }

  /** Tear down the current attempt (the mode stays: a retry follows). */
  _end() {
    clearTimeout(this.timer);
    this.timer = null;
    if (this.session) {
      this.session.stop();
      this.session = null;
    }
    if (this.hls) {
      this.hls.destroy();
      this.hls = null;
    }
    const v = this.video;
    if (this.native) {
      this.native = false;
      v.removeAttribute('src');
      v.load();
    }
    if (v.srcObject) v.srcObject = null;
    this.stage.classList.remove('has-media');
    this.button.hidden = true;
  }

  /** The publisher is lost (it may come back): stop, and say so instead of a frozen frame. */
  pause() {
    this.stop();
    this.streamId = null;  // so that "live" subscribes again
    this._paused(true);
    this._placeholder('player.paused');
  }

  /** A `media` event: "live" subscribes again (same stream, a new session). */
  media(event, room) {
    if (!event || !room) return;
    if (event.state === 'paused') this.pause();
    else if (event.state === 'ended') this.update({ ...room, live: false });
    else if (event.state === 'live') {
      if (this.stage.classList.contains('is-paused')) this.streamId = null;
      this.update({ ...room, live: true, paused: false, stream_id: event.stream });
    }
  }

  _paused(on) {
    this.stage.classList.toggle('is-paused', on);
  }

  /** Stop playing (the room is not live any more). */
  stop() {
    this.gen += 1;
    this._end();
    this.mode = null;
    delete this.stage.dataset.playback;
  }

  _autoplay() {
    const v = this.video;
    if (!this.mode || !v.paused) return;
    v.muted = !this.wantSound;
    const p = v.play();
    if (!p || typeof p.catch !== 'function') return;
    p.catch(() => {
      if (v.muted) {
        this._showButton(true);
        return;
      }
      // sound needs a gesture on this page: play muted and offer the button
      v.muted = true;
      v.play().catch(() => this._showButton(true));
    });
  }

  _showButton(paused = false) {
    const v = this.video;
    const show = !!this.mode && (paused || v.muted);
    this.button.hidden = !show;
    if (show) setText(this.button, paused && v.paused ? 'player.play' : 'player.unmute');
  }

  unmute() {
    const v = this.video;
    this.wantSound = true;
    v.muted = false;
    const p = v.play();
    if (p && typeof p.catch === 'function') p.catch(() => this._showButton(true));
    this._showButton();
  }

  _placeholder(key) {
    if (this.placeholder) setText(this.placeholder, key);
  }
}

/** Start following the room's live state on the watch page; returns the player. */
export function mountPlayer({ room, client, video, stage }) {
  const player = new Player({ room, client, video, stage });
  client.on('room', (r) => player.update(r));
  client.on('media', (m) => player.media(m, client.roomInfo));
  if (client.roomInfo) player.update(client.roomInfo);
  return player;
}
