// livehub WebRTC media, in one place: publish a MediaStream over WHIP and play a
// room over WHEP (docs/protocol-media.md). No page code here: the studio and the
// watch page call publish() and play() and render what onState reports.
//
//   const handle = await publish(room, hostToken, stream, { onState });
//   await handle.replaceTrack(newVideoTrack);   // device switch, no renegotiation
//   await handle.stop();                        // DELETE the session, close the pc
//
//   const handle = await play(room, anyRoomToken, videoElement, { onState });
//   await handle.stop();
//
// Both reject with a MediaError {code, message, status} when the server refuses
// the offer (e.g. publisher_exists, not_live, no_media, no_codec) or cannot be
// reached (code 'network'). onState gets the RTCPeerConnection's
// connectionState: new, connecting, connected, disconnected, failed, closed.

const SDP = 'application/sdp';
const SDPFRAG = 'application/trickle-ice-sdpfrag';
const GATHER_MS = 1500;          // then POST what we have and trickle the rest
const ICE_CACHE_KEY = 'livehub.ice_servers';
// H.264 first (HLS can carry it, VP8 it cannot); only packetization-mode 1, which is
// what the server forwards. Constrained baseline, then baseline, then VP8.
const VIDEO_PREFERENCE = [
  (c) => c.mimeType === 'video/H264' && /packetization-mode=1/.test(c.sdpFmtpLine || '')
    && /profile-level-id=42e0/i.test(c.sdpFmtpLine || ''),
  (c) => c.mimeType === 'video/H264' && /packetization-mode=1/.test(c.sdpFmtpLine || '')
    && /profile-level-id=4200/i.test(c.sdpFmtpLine || ''),
  (c) => c.mimeType === 'video/VP8',
  (c) => c.mimeType === 'video/rtx',
];

export class MediaError extends Error {
  constructor(code, message, status = 0, details = undefined) {
    super(message || code);
    this.name = 'MediaError';
    this.code = code;
    this.status = status;
    if (details !== undefined) this.details = details;
  }
}

/** True when this browser can publish at all (getUserMedia needs https or localhost). */
export function canCapture() {
  return !!(globalThis.isSecureContext && navigator.mediaDevices
    && typeof navigator.mediaDevices.getUserMedia === 'function');
}

export function canPlayWebRTC() {
  return typeof globalThis.RTCPeerConnection === 'function';
}

// ---------------------------------------------------------------- ICE servers

/**
 * ICE servers from `Link: <url>; rel="ice-server"` headers (RFC 9725 §4.6), with
 * optional username / credential attributes (quoted strings may hold \-escapes).
 * fetch() joins repeated headers with ", ".
 */
export function iceServersFromLinks(header) {
  const servers = [];
  if (!header) return servers;
  const re = /<([^>]*)>((?:\s*;\s*[\w-]+(?:\s*=\s*(?:"(?:[^"\\]|\\.)*"|[^;,]*))?)*)/g;
  let m;
  while ((m = re.exec(header)) !== null) {
    const params = {};
    const pre = /;\s*([\w-]+)(?:\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;,]*)))?/g;
    let p;
    while ((p = pre.exec(m[2])) !== null) {
      const value = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : (p[3] || '').trim();
      params[p[1].toLowerCase()] = value;
    }
    if (params.rel !== 'ice-server' || !/^(stuns?|turns?):/.test(m[1])) continue;
    const server = { urls: m[1] };
    if (params.username) server.username = params.username;
    if (params.credential) server.credential = params.credential;
    servers.push(server);
  }
  return servers;
}

// TURN credentials from the server are time-limited ("<unix expiry>:<user>" usernames,
// docs/deploy.md). A cached one that is about to expire is dropped rather than offered
// to the TURN server: the next answer brings fresh ones.
const CREDENTIAL_MARGIN_S = 60;

function credentialExpired(server, nowS) {
  const m = /^(\d+):/.exec(server.username || '');
  return !!m && Number(m[1]) <= nowS + CREDENTIAL_MARGIN_S;
}

/** The servers of the last answer in this tab, without expired TURN credentials. */
export function cachedIceServers(nowS = Date.now() / 1000) {
  let v;
  try {
    v = JSON.parse(sessionStorage.getItem(ICE_CACHE_KEY));
  } catch (_) {
    return [];
  }
  if (!Array.isArray(v)) return [];
  const fresh = v.filter((s) => s && typeof s.urls === 'string' && !credentialExpired(s, nowS));
  if (fresh.length !== v.length) {
    try {
      if (fresh.length) sessionStorage.setItem(ICE_CACHE_KEY, JSON.stringify(fresh));
      else sessionStorage.removeItem(ICE_CACHE_KEY);
    } catch (_) { /* storage unavailable */ }
  }
  return fresh;
}

/** Use the answer's ICE servers from now on (and for the next session of this tab). */
function adoptIceServers(pc, res) {
  const servers = iceServersFromLinks(res.headers.get('Link'));
  try {
    if (servers.length) sessionStorage.setItem(ICE_CACHE_KEY, JSON.stringify(servers));
    else sessionStorage.removeItem(ICE_CACHE_KEY);
  } catch (_) { /* storage unavailable */ }
  if (!servers.length) return;
  try {
    pc.setConfiguration({ ...pc.getConfiguration(), iceServers: servers });
  } catch (_) { /* an unusable server list: keep the host candidates */ }
}

// ---------------------------------------------------------------- HTTP

async function errorFrom(res) {
  let body = null;
  try { body = await res.json(); } catch (_) { body = null; }
  if (body && typeof body.code === 'string') {
    return new MediaError(body.code, body.message, res.status, body.details);
  }
  return new MediaError(`http_${res.status}`, res.statusText || 'HTTP error', res.status);
}

async function sendOffer(url, token, sdp) {
  try {
    return await fetch(url, {
      method: 'POST',
      headers: { 'Content-Type': SDP, Authorization: `Bearer ${token}` },
      body: sdp,
      credentials: 'omit',
      cache: 'no-store',
    });
  } catch (e) {
    throw new MediaError('network', String((e && e.message) || e));
  }
}

async function postOffer(url, token, sdp) {
  let res = await sendOffer(url, token, sdp);
  if (res.redirected && res.status === 401) {
    // A node without the room's media redirects (307) to the node that has it;
    // the browser drops the Authorization header when that is another origin,
    // so send the offer there again, with the token.
    res = await sendOffer(res.url, token, sdp);
  }
  if (res.status !== 201) throw await errorFrom(res);
  const location = res.headers.get('Location');
  if (!location) throw new MediaError('bad_answer', 'The answer has no Location.', res.status);
  const answer = await res.text();
  return {
    res,
    answer,
    sessionUrl: new URL(location, res.url || url).toString(),
    etag: res.headers.get('ETag'),
  };
}

function waitForGathering(pc, ms) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener('icegatheringstatechange', check);
      resolve();
    };
    const check = () => { if (pc.iceGatheringState === 'complete') done(); };
    const timer = setTimeout(done, ms);
    pc.addEventListener('icegatheringstatechange', check);
  });
}

function iceCredentials(sdp) {
  const ufrag = /^a=ice-ufrag:(.+)$/m.exec(sdp);
  const pwd = /^a=ice-pwd:(.+)$/m.exec(sdp);
  return { ufrag: ufrag && ufrag[1].trim(), pwd: pwd && pwd[1].trim() };
}

/**
 * Candidates found after the offer went out are PATCHed to the session
 * (RFC 8840 fragments), in order, each with the session's ETag.
 */
class Trickle {
  constructor(pc, session, token) {
    this.pc = pc;
    this.session = session;
    this.token = token;
    this.pending = [];
    this.queue = Promise.resolve();
    this.closed = false;
    this.creds = iceCredentials(pc.localDescription ? pc.localDescription.sdp : '');
  }

  /** Lines already in the offer are skipped; the rest is sent. */
  add(candidate, offerSdp) {
    if (this.closed) return;
    if (candidate && candidate.candidate && offerSdp.includes(candidate.candidate)) return;
    this.pending.push(candidate);
    this.queue = this.queue.then(() => this._flush());
  }

  async _flush() {
    if (this.closed || !this.pending.length) return;
    const batch = this.pending.splice(0);
    const lines = [];
    if (this.creds.ufrag) lines.push(`a=ice-ufrag:${this.creds.ufrag}`);
    if (this.creds.pwd) lines.push(`a=ice-pwd:${this.creds.pwd}`);
    let mid = null;
    for (const c of batch) {
      if (!c || !c.candidate) {
        lines.push('a=end-of-candidates');
        continue;
      }
      if (c.sdpMid !== null && c.sdpMid !== undefined && c.sdpMid !== mid) {
        mid = c.sdpMid;
        lines.push('m=audio 9 UDP/TLS/RTP/SAVPF 0', `a=mid:${mid}`);
      }
      lines.push(`a=${c.candidate}`);
    }
    const headers = { 'Content-Type': SDPFRAG, Authorization: `Bearer ${this.token}` };
    if (this.session.etag) headers['If-Match'] = this.session.etag;
    try {
      await fetch(this.session.sessionUrl, {
        method: 'PATCH', headers, body: lines.join('\r\n') + '\r\n', credentials: 'omit',
      });
    } catch (_) { /* the candidates in the offer may well be enough */ }
  }

  close() {
    this.closed = true;
    this.pending = [];
  }
}

// ---------------------------------------------------------------- sessions

class MediaSession {
  constructor(pc, token, onState) {
    this.pc = pc;
    this.token = token;
    this.sessionUrl = null;
    this.etag = null;
    this.trickle = null;
    this.stopped = false;
    this._onState = onState;
    pc.addEventListener('connectionstatechange', () => this._report(pc.connectionState));
  }

  get state() { return this.stopped ? 'closed' : this.pc.connectionState; }

  _report(state) {
    if (typeof this._onState === 'function') {
      try { this._onState(state); } catch (e) { setTimeout(() => { throw e; }); }
    }
  }

  async _negotiate(endpoint) {
    const pc = this.pc;
    const candidates = [];
    const early = (e) => candidates.push(e.candidate);
    pc.addEventListener('icecandidate', early);
    await pc.setLocalDescription(await pc.createOffer());
    await waitForGathering(pc, GATHER_MS);
    const offer = pc.localDescription.sdp;
    const complete = pc.iceGatheringState === 'complete';
    this._report('connecting');
    let answer;
    try {
      const posted = await postOffer(endpoint, this.token, offer);
      this.sessionUrl = posted.sessionUrl;
      this.etag = posted.etag;
      answer = posted.answer;
      adoptIceServers(pc, posted.res);
    } finally {
      pc.removeEventListener('icecandidate', early);
    }
    if (this.stopped) {
      await this._delete(false);
      throw new MediaError('stopped', 'Stopped before the session started.');
    }
    this.trickle = new Trickle(pc, this, this.token);
    if (!complete) {
      // whatever was found while the offer was on its way, then the rest as it comes
      for (const c of candidates) this.trickle.add(c, offer);
      pc.addEventListener('icecandidate', (e) => this.trickle.add(e.candidate, offer));
    }
    await pc.setRemoteDescription({ type: 'answer', sdp: answer });
  }

  async _delete(keepalive) {
    const url = this.sessionUrl;
    this.sessionUrl = null;
    if (!url) return;
    try {
      await fetch(url, {
        method: 'DELETE',
        headers: { Authorization: `Bearer ${this.token}` },
        credentials: 'omit',
        keepalive: !!keepalive,
      });
    } catch (_) { /* the server frees vanished peers by itself */ }
  }

  /** End the session: DELETE it on the server and close the connection. Idempotent.
   *  `keepStream`: close without the DELETE (a lost publisher that will publish again:
   *  the server pauses the stream rather than ending it). */
  async stop({ keepalive = false, keepStream = false } = {}) {
    if (this.stopped) return;
    this.stopped = true;
    if (this.trickle) this.trickle.close();
    const deleting = keepStream ? Promise.resolve() : this._delete(keepalive);
    try { this.pc.close(); } catch (_) { /* already closed */ }
    this._report('closed');
    await deleting;
  }
}

function endpointUrl(kind, room) {
  return new URL(`/${kind}/${encodeURIComponent(room)}`, location.href).toString();
}

function newPeer() {
  return new RTCPeerConnection({ iceServers: cachedIceServers(), bundlePolicy: 'max-bundle' });
}

function preferVideoCodecs(transceiver) {
  if (typeof transceiver.setCodecPreferences !== 'function') return;
  for (const source of [globalThis.RTCRtpSender, globalThis.RTCRtpReceiver]) {
    const caps = source && typeof source.getCapabilities === 'function'
      ? source.getCapabilities('video') : null;
    if (!caps || !Array.isArray(caps.codecs)) continue;
    const ordered = [];
    for (const wanted of VIDEO_PREFERENCE) {
      for (const c of caps.codecs) if (wanted(c) && !ordered.includes(c)) ordered.push(c);
    }
    if (!ordered.some((c) => c.mimeType !== 'video/rtx')) continue;
    try {
      transceiver.setCodecPreferences(ordered);
      return;
    } catch (_) { /* this browser checks the other capability list: try it */ }
  }
}

/**
 * Publish `stream` to `room` over WHIP with the host token. Resolves with a handle:
 * {pc, state, replaceTrack(track), stop({keepalive})}.
 */
export async function publish(room, token, stream, { onState } = {}) {
  if (!canPlayWebRTC()) throw new MediaError('webrtc_unsupported', 'This browser has no WebRTC.');
  const pc = newPeer();
  const session = new MediaSession(pc, token, onState);
  const senders = {};
  for (const kind of ['audio', 'video']) {
    const track = stream.getTracks().find((t) => t.kind === kind) || null;
    // a section per kind even without a device: the server expects audio and video
    const tr = pc.addTransceiver(track || kind, { direction: 'sendonly', streams: [stream] });
    if (kind === 'video') preferVideoCodecs(tr);
    senders[kind] = tr.sender;
  }
  /** Swap the camera or microphone while live (no new offer needed). */
  session.replaceTrack = (track) => senders[track.kind].replaceTrack(track);
  try {
    await session._negotiate(endpointUrl('whip', room));
  } catch (e) {
    await session.stop();
    throw e instanceof MediaError ? e : new MediaError('webrtc_failed', String((e && e.message) || e));
  }
  return session;
}

/**
 * Play `room` over WHEP into `video` with any token of the room. Resolves with a
 * handle {pc, stream, state, stop({keepalive})}; the stream is attached to the
 * element and play() is attempted (the caller decides about sound: a muted
 * element autoplays everywhere).
 */
export async function play(room, token, video, { onState } = {}) {
  if (!canPlayWebRTC()) throw new MediaError('webrtc_unsupported', 'This browser has no WebRTC.');
  const pc = newPeer();
  const session = new MediaSession(pc, token, onState);
  const stream = new MediaStream();
  session.stream = stream;
  pc.addTransceiver('video', { direction: 'recvonly' });
  pc.addTransceiver('audio', { direction: 'recvonly' });
  pc.addEventListener('track', (e) => {
    if (!stream.getTracks().includes(e.track)) stream.addTrack(e.track);
    if (video.srcObject !== stream) video.srcObject = stream;
    const p = video.play();
    if (p && typeof p.catch === 'function') p.catch(() => { /* the page offers a play/unmute button */ });
  });
  try {
    await session._negotiate(endpointUrl('whep', room));
  } catch (e) {
    await session.stop();
    throw e instanceof MediaError ? e : new MediaError('webrtc_failed', String((e && e.message) || e));
  }
  const stop = session.stop.bind(session);
  session.stop = async (opts) => {
    await stop(opts);
    if (video.srcObject === stream) video.srcObject = null;
  };
  return session;
}
