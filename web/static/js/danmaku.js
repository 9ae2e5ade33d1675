// Danmaku overlay: flying (scroll) comments and fixed top/bottom comments over
// the video. Text only through textContent; movement through the Web
// Animations API (CSP-safe), falling back to a CSS @keyframes class.

const COLOR_RE = /^#[0-9a-fA-F]{6}$/;
const GAP_PX = 24;            // horizontal gap kept between scroll items in a lane

export class DanmakuOverlay {
  /**
   * @param {HTMLElement} container  the overlay (#danmaku), positioned over the video
   */
  constructor(container, {
    scrollMs = 8000, fixedMs = 4000, maxNodes = 120, maxQueue = 30, queueWaitMs = 2500,
  } = {}) {
    this.el = container;
    this.scrollMs = scrollMs;
    this.fixedMs = fixedMs;
    this.maxNodes = maxNodes;
    this.maxQueue = maxQueue;
    this.queueWaitMs = queueWaitMs;
    this.enabled = true;
    this.dropped = 0;           // messages not shown because every lane was busy
    this.onDrop = null;         // optional callback(totalDropped)
    this.items = new Map();     // id -> {el, anim}
    this.queue = [];            // [{msg, at}]
    this._queueTimer = null;
    this.width = 0;
    this.height = 0;
    this.laneHeight = 0;
    this.scrollLanes = [];      // per lane: last item {start, width, W, duration} or null
    this.topLanes = [];         // per lane: time until which the lane is taken
    this.bottomLanes = [];
    this._layout();
    if (typeof ResizeObserver === 'function') {
      this._ro = new ResizeObserver(() => this._layout());
      this._ro.observe(container);
    } else {
      window.addEventListener('resize', () => this._layout());
    }
  }

  _layout() {
    this.width = this.el.clientWidth;
    this.height = this.el.clientHeight;
    const font = Math.max(14, Math.min(28, Math.round(this.height / 20)));
    this.laneHeight = Math.round(font * 1.3);
    this.el.style.setProperty('--danmaku-size', `${font}px`);
    this.el.style.setProperty('--danmaku-lane', `${this.laneHeight}px`);
    const lanes = Math.max(1, Math.floor(this.height / Math.max(1, this.laneHeight)));
    const fixed = Math.max(1, Math.floor(lanes / 2));
    this.scrollLanes = resize(this.scrollLanes, lanes, null);
    this.topLanes = resize(this.topLanes, fixed, 0);
    this.bottomLanes = resize(this.bottomLanes, fixed, 0);
  }

  setEnabled(on) {
    this.enabled = !!on;
    this.el.classList.toggle('is-off', !this.enabled);
    if (!this.enabled) this.clear();
  }

  /** Show one message ({id, text, mode, color, role, own?}). */
  add(msg) {
    if (!this.enabled || !msg || typeof msg.text !== 'string' || msg.text === '') return;
    if (msg.id !== undefined && this.items.has(msg.id)) return;
    if (!this._tryShow(msg)) this._enqueue(msg);
  }

  /** Remove a message (deleted by a moderator) wherever it is. */
  remove(id) {
    const item = this.items.get(id);
    if (item) this._drop(id, item);
    this.queue = this.queue.filter((q) => q.msg.id !== id);
  }

  clear() {
    for (const [id, item] of [...this.items]) this._drop(id, item);
    this.queue = [];
    this.scrollLanes.fill(null);
    this.topLanes.fill(0);
    this.bottomLanes.fill(0);
  }

  _drop(id, item) {
    this.items.delete(id);
    if (item.anim) {
      try { item.anim.cancel(); } catch (_) { /* already done */ }
    }
    item.el.remove();
  }

  _count(n = 1) {
    this.dropped += n;
    this.el.dataset.dropped = String(this.dropped);
    if (typeof this.onDrop === 'function') this.onDrop(this.dropped);
  }

  _enqueue(msg) {
    if (this.queue.length >= this.maxQueue) {
      this._count();
      return;
    }
    this.queue.push({ msg, at: performance.now() });
    if (!this._queueTimer) this._queueTimer = setInterval(() => this._drain(), 200);
  }

  _drain() {
    const now = performance.now();
    while (this.queue.length) {
      const head = this.queue[0];
      if (now - head.at > this.queueWaitMs) {
        this.queue.shift();
        this._count();
        continue;
      }
      if (!this._tryShow(head.msg)) break;
      this.queue.shift();
    }
    if (!this.queue.length) {
      clearInterval(this._queueTimer);
      this._queueTimer = null;
    }
  }

  _tryShow(msg) {
    if (this.items.size >= this.maxNodes) return false;
    if (!this.width || !this.height) this._layout();
    if (!this.width || !this.height) return false;
    const mode = msg.mode === 'top' || msg.mode === 'bottom' ? msg.mode : 'scroll';

    const el = document.createElement('div');
    el.className = 'danmaku-item danmaku-measure';
    if (msg.id !== undefined) el.dataset.id = String(msg.id);
    el.textContent = msg.text;
    if (typeof msg.color === 'string' && COLOR_RE.test(msg.color)) el.style.color = msg.color;
    if (msg.own) el.classList.add('is-own');
    if (msg.role === 'host' || msg.role === 'moderator') el.classList.add('is-staff');
    this.el.appendChild(el);

    const now = performance.now();
    if (mode === 'scroll') {
      const width = el.offsetWidth;
      const lane = this.scrollLanes.findIndex((last) => this._fits(last, width, now));
      if (lane < 0) {
        el.remove();
        return false;
      }
      this.scrollLanes[lane] = { start: now, width, W: this.width, duration: this.scrollMs };
      el.style.top = `${lane * this.laneHeight}px`;
      el.classList.remove('danmaku-measure');
      this._animate(msg.id, el, [
        { transform: `translateX(${this.width}px)` },
        { transform: `translateX(${-width}px)` },
      ], this.scrollMs, 'danmaku-fly');
      return true;
    }

    const lanes = mode === 'top' ? this.topLanes : this.bottomLanes;
    const lane = lanes.findIndex((until) => until <= now);
    if (lane < 0) {
      el.remove();
      return false;
    }
    lanes[lane] = now + this.fixedMs;
    el.classList.add('danmaku-fixed');
    if (mode === 'top') el.style.top = `${lane * this.laneHeight}px`;
    else {
      el.style.top = 'auto';
      el.style.bottom = `${lane * this.laneHeight}px`;
    }
    el.classList.remove('danmaku-measure');
    this._animate(msg.id, el, [
      { opacity: 1, offset: 0 },
      { opacity: 1, offset: 0.9 },
      { opacity: 0, offset: 1 },
    ], this.fixedMs, 'danmaku-fade');
    return true;
  }

  /** Whether a new scroll item of `width` can enter a lane whose last item is `last`. */
  _fits(last, width, now) {
    if (!last) return true;
    const elapsed = now - last.start;
    const remaining = last.duration - elapsed;
    if (remaining <= 0) return true;
    const vLast = (last.W + last.width) / last.duration;
    // the last item's tail must be on screen, with a gap behind it
    if (elapsed * vLast < last.width + GAP_PX) return false;
    // and the new (maybe faster) item must not catch it before it leaves
    const vNew = (this.width + width) / this.scrollMs;
    return vNew * remaining <= this.width - GAP_PX;
  }

  _animate(id, el, keyframes, duration, cssClass) {
    const key = id !== undefined ? id : Symbol('danmaku');
    const item = { el, anim: null };
    this.items.set(key, item);
    const done = () => {
      if (this.items.get(key) === item) this.items.delete(key);
      el.remove();
    };
    if (typeof el.animate === 'function') {
      item.anim = el.animate(keyframes, { duration, easing: 'linear', fill: 'forwards' });
      item.anim.onfinish = done;
      item.anim.oncancel = () => el.remove();
    } else {
      // CSS fallback: @keyframes in livehub.css driven by custom properties
      el.style.setProperty('--danmaku-from', `${this.width}px`);
      el.style.setProperty('--danmaku-to', `${-el.offsetWidth}px`);
      el.style.setProperty('--danmaku-duration', `${duration}ms`);
      el.classList.add(cssClass);
      el.addEventListener('animationend', done, { once: true });
    }
  }
}

function resize(arr, n, fill) {
  const out = arr.slice(0, n);
  while (out.length < n) out.push(fill);
  return out;
}
