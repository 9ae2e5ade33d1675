"""Load generator for the chat fan-out benchmark (one process, meant to be pinned to its own core).

It speaks Engine.IO v4 / Socket.IO v5 over raw websockets (aiohttp's ws client),
not python-socketio's client, so that it stays cheap per frame:

    ws://127.0.0.1:PORT/socket.io/?EIO=4&transport=websocket
    <- 0{"sid":...,"pingInterval":...}           open
    -> 40/live,{"room":..,"token":..}           connect the namespace
    <- 40/live,{"sid":..}  |  44/live,{error}   accepted | refused
    <- 42/live,["welcome",{...}]                (livehub)
    <- 2   -> 3                                 ping / pong
    -> 42/live,<id>["chat",{...}]               chat with an ack
    <- 43/live,<id>[{"ok":true,...}]            the ack
    <- 42/live,["batch",{"messages":[...]...}]  (livehub) | 42/live,["chat",{...}] (--naive)

Every bench message text is ``"qzb <k> <send monotonic ns> <syllables>"``: distinct for
every k, and the ASCII marker ``qzb `` lets every viewer count the messages in a frame
with one ``bytes.count`` and no JSON parsing (ASCII so that a server encoding JSON with
ensure_ascii cannot hide it). Only ~50 probe viewers parse frames, to measure
send-to-receive latency (sender and probes share this process's monotonic clock).

Modes:
  load (default)  connect N viewers, S of them also send (M msg/s in total, each sender at
                  most 1 msg/s), warm up, measure for D seconds, print one JSON result.
  --idle N        connect N viewers and hold them until a line on stdin, SIGUSR1/SIGTERM/SIGINT,
                  or --hold-timeout; for memory measurements.

stdout carries one JSON object per line: {"event": "connected"|"measure_start"|"measure_end"|
"ready"|"result", ...}; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import resource
import signal
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import WSMsgType

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import HOST, core_times, core_window, log, mint_tokens, pin_to, raise_nofile

try:
    import msgspec

    _decode = msgspec.json.decode
except ImportError:  # pragma: no cover
    _decode = json.loads

NS = "/live"
MARKER = b"qzb "
MARKER_S = "qzb "
EV = b"42" + NS.encode() + b","  # 42/live,
ACK = b"43" + NS.encode() + b","  # 43/live,
CONNECT_OK = b"40" + NS.encode()
CONNECT_ERR = b"44" + NS.encode()
DISCONNECT = b"41" + NS.encode()
_CONS = "bcdfghjklmnprstvw"
_VOW = "aeiou"


def syllables(k: int) -> str:
    """A distinct pronounceable word for every k (never contains the marker)."""
    out = []
    base = len(_CONS) * len(_VOW)
    k += base  # at least two syllables
    while k:
        k, r = divmod(k, base)
        out.append(_CONS[r // len(_VOW)] + _VOW[r % len(_VOW)])
    return "".join(out)


def pct(sorted_vals: list[float], p: float) -> float | None:
    if not sorted_vals:
        return None
    i = min(len(sorted_vals) - 1, max(0, math.ceil(p / 100.0 * len(sorted_vals)) - 1))
    return sorted_vals[i]


def cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def invol_switches() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw


class Viewer:
    __slots__ = (
        "ack_id",
        "alive",
        "frames",
        "i",
        "lat",
        "n",
        "pending",
        "probe",
        "sender",
        "task",
        "ws",
    )

    def __init__(self, i: int) -> None:
        self.i = i
        self.ws: Any = None
        self.n = 0  # bench messages received (marker count) in counted event frames
        self.frames = 0  # counted event frames (batch / chat)
        self.probe = False
        self.sender = False
        self.alive = False
        self.ack_id = 0
        self.pending: dict[int, int] = {}  # ack id -> k
        self.lat: dict[int, int] = {}  # probes: k -> latency ns
        self.task: asyncio.Task[None] | None = None


class Load:
    def __init__(self, args: argparse.Namespace) -> None:
        self.a = args
        self.url = f"ws://{HOST}:{args.port}/socket.io/?EIO=4&transport=websocket"
        self.origin = args.origin or f"http://{HOST}:{args.port}"
        self.naive = args.naive
        self.ev_prefix = EV + (b'["chat"' if args.naive else b'["batch"')
        self.expect_welcome = (
            (not args.naive) if args.expect_welcome is None else args.expect_welcome
        )
        self.viewers: list[Viewer] = []
        self.session: aiohttp.ClientSession | None = None
        self.stop = asyncio.Event()
        self.stopping = False
        # connect accounting
        self.connect_fail: dict[str, int] = {}
        self.refusals: dict[str, int] = {}
        self.disconnects = 0
        self.other_events: dict[str, int] = {}
        # sending
        self.sent_t: dict[int, int] = {}  # k -> send monotonic ns
        self.ack: dict[int, str] = {}  # k -> "ok" | error code
        self.ack_flags = {"held": 0, "duplicate": 0}
        self.ack_lat: list[int] = []
        self.send_skipped = 0
        self.send_errors = 0
        # measurement window
        self.measuring = False
        self.dropped0 = 0  # sum of `dropped` seen by probe 0 in the window
        self.dropped_frames0 = 0
        self.dup_at_probes = 0
        self.probe_parse_errors = 0
        self.lag: list[float] = []
        self.probe0 = 0
        self.next_k = 0

    # ------------------------------------------------------------------ tokens

    def tokens(self, n: int) -> list[str]:
        a = self.a
        if a.tokens_file:
            toks = [t.strip() for t in Path(a.tokens_file).read_text().splitlines() if t.strip()]
            if len(toks) < n:
                raise SystemExit(f"--tokens-file has {len(toks)} tokens, need {n}")
            return toks[:n]
        if a.secret:
            return mint_tokens(a.secret, a.room, n, prefix=a.viewer_prefix)
        return ["naive"] * n

    # ------------------------------------------------------------------ connect

    async def connect_one(self, v: Viewer, token: str, sem: asyncio.Semaphore) -> None:
        assert self.session is not None
        auth = {"room": self.a.room, "token": token}
        async with sem:
            if self.stop.is_set():
                return
            ws = None
            try:
                async with asyncio.timeout(self.a.connect_timeout):
                    ws = await self.session.ws_connect(
                        self.url,
                        decode_text=False,
                        autoping=True,
                        autoclose=True,
                        max_msg_size=16 * 1024 * 1024,
                        origin=self.origin,
                        compress=0,
                        timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=2.0),
                    )
                    msg = await ws.receive()
                    if msg.type is not WSMsgType.TEXT or not msg.data.startswith(b"0"):
                        raise ConnectionError(f"no open packet: {msg.type} {str(msg.data)[:80]}")
                    await ws.send_str("40" + NS + "," + json.dumps(auth, separators=(",", ":")))
                    ok = welcomed = False
                    while not (ok and (welcomed or not self.expect_welcome)):
                        msg = await ws.receive()
                        if msg.type is not WSMsgType.TEXT:
                            if msg.type in (
                                WSMsgType.CLOSE,
                                WSMsgType.CLOSED,
                                WSMsgType.CLOSING,
                                WSMsgType.ERROR,
                            ):
                                raise ConnectionError(f"closed during connect ({msg.type.name})")
                            continue
                        d = msg.data
                        if d.startswith(CONNECT_OK):
                            ok = True
                        elif d.startswith(CONNECT_ERR):
                            code = "refused"
                            try:
                                body = _decode(d[len(CONNECT_ERR) + 1 :])
                                data = body.get("data", body) if isinstance(body, dict) else body
                                if isinstance(data, dict):
                                    code = str(data.get("code") or data.get("message") or data)[:80]
                                else:
                                    code = str(data)[:80]
                            except Exception:
                                code = d[:80].decode(errors="replace")
                            self.refusals[code] = self.refusals.get(code, 0) + 1
                            await ws.close()
                            return
                        elif d.startswith(EV + b'["welcome"'):
                            welcomed = True
                        elif d == b"2":
                            await ws.send_str("3")
            except (TimeoutError, OSError, aiohttp.ClientError, ConnectionError) as e:
                key = type(e).__name__ + (f": {e}"[:100] if str(e) else "")
                self.connect_fail[key] = self.connect_fail.get(key, 0) + 1
                if ws is not None:
                    try:
                        ws._response.close()  # drop the socket; no close handshake
                    except Exception:
                        pass
                return
            v.ws = ws
            v.alive = True
            v.task = asyncio.create_task(self.reader(v))

    async def connect_all(self, n: int) -> float:
        toks = self.tokens(n)
        self.viewers = [Viewer(i) for i in range(n)]
        sem = asyncio.Semaphore(self.a.ramp)
        t0 = time.monotonic()
        tasks = [asyncio.create_task(self.connect_one(v, toks[v.i], sem)) for v in self.viewers]
        deadline = t0 + self.a.connect_deadline
        pending = set(tasks)
        while pending and time.monotonic() < deadline and not self.stop.is_set():
            _, pending = await asyncio.wait(pending, timeout=2.0)
            alive = sum(1 for v in self.viewers if v.alive)
            log(
                f"[load] connecting: {alive}/{n} up, {len(pending)} pending, "
                f"{sum(self.connect_fail.values())} failed, {sum(self.refusals.values())} refused, "
                f"{time.monotonic() - t0:.1f}s"
            )
        for t in pending:
            t.cancel()
        if pending:
            await asyncio.wait(pending, timeout=5.0)
            self.connect_fail["connect_deadline"] = len(pending)
        return time.monotonic() - t0

    # ------------------------------------------------------------------ receive

    async def reader(self, v: Viewer) -> None:
        ws = v.ws
        recv = ws.receive
        prefix = self.ev_prefix
        marker = MARKER
        text = WSMsgType.TEXT
        try:
            while True:
                msg = await recv()
                if msg.type is not text:
                    if msg.type in (
                        WSMsgType.CLOSE,
                        WSMsgType.CLOSED,
                        WSMsgType.CLOSING,
                        WSMsgType.ERROR,
                    ):
                        break
                    continue
                d = msg.data
                if d.startswith(prefix):
                    v.frames += 1
                    v.n += d.count(marker)
                    if v.probe:
                        self.on_probe_frame(v, d)
                elif d == b"2":
                    await ws.send_str("3")
                elif d.startswith(ACK):
                    self.on_ack(v, d)
                elif d.startswith(EV):
                    name = (
                        d[len(EV) : len(EV) + 40]
                        .split(b",", 1)[0]
                        .strip(b'["]')
                        .decode(errors="replace")
                    )
                    self.other_events[name] = self.other_events.get(name, 0) + 1
                elif d.startswith(DISCONNECT) or d[:1] == b"1":
                    break
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log(f"[load] reader {v.i} crashed: {e!r}")
        finally:
            v.alive = False
            if not self.stopping:
                self.disconnects += 1

    def on_probe_frame(self, v: Viewer, d: bytes) -> None:
        now = time.monotonic_ns()
        try:
            ev = _decode(d[len(EV) :])
            payload = ev[1]
            if self.naive:
                msgs = [payload]
            else:
                msgs = payload.get("messages") or ()
                if self.measuring and v is self.viewers[self.probe0]:
                    self.dropped0 += int(payload.get("dropped") or 0)
                    self.dropped_frames0 += 1
            lat = v.lat
            for m in msgs:
                t = m.get("text")
                if isinstance(t, str) and t.startswith(MARKER_S):
                    parts = t.split(" ", 3)
                    k = int(parts[1])
                    if k in lat:
                        self.dup_at_probes += 1
                    else:
                        lat[k] = now - int(parts[2])
        except Exception:
            self.probe_parse_errors += 1

    def on_ack(self, v: Viewer, d: bytes) -> None:
        now = time.monotonic_ns()
        try:
            j = d.index(b"[", len(ACK))
            aid = int(d[len(ACK) : j])
            k = v.pending.pop(aid, None)
            if k is None:
                return
            body = _decode(d[j:])
            res = body[0] if isinstance(body, list) and body else body
            if isinstance(res, dict) and res.get("ok"):
                self.ack[k] = "ok"
                for f in ("held", "duplicate"):
                    if res.get(f):
                        self.ack_flags[f] += 1
            else:
                code = "unknown"
                if isinstance(res, dict):
                    err = res.get("error")
                    code = str(err.get("code") if isinstance(err, dict) else err or res)[:60]
                self.ack[k] = code
            self.ack_lat.append(now - self.sent_t.get(k, now))
        except Exception:
            self.ack[-1] = "unparsable_ack"

    # ------------------------------------------------------------------ send

    async def send_chat(self, v: Viewer, k: int) -> None:
        v.ack_id += 1
        aid = v.ack_id
        t = time.monotonic_ns()
        text = f"{MARKER_S}{k} {t} {syllables(k)}"
        frame = (
            f'42{NS},{aid}["chat",'
            + json.dumps({"text": text, "client_id": f"b{k}"}, separators=(",", ":"))
            + "]"
        )
        v.pending[aid] = k
        self.sent_t[k] = t
        try:
            await v.ws.send_str(frame)
        except Exception:
            self.send_errors += 1

    def expected_total(self) -> int:
        """Messages sent so far that the server did not refuse (acked ok or not yet acked)."""
        return sum(1 for k in self.sent_t if self.ack.get(k, "ok") == "ok")

    async def send_loop(self, senders: list[Viewer], rate: float, until: float) -> None:
        """Message k goes out at t0 + k/rate from sender k % S: each sender at rate/S msg/s."""
        t0 = time.monotonic()
        k = self.next_k
        base = k
        S = len(senders)
        max_backlog = max(1, int(rate))  # never burst more than 1 s of messages
        while not self.stop.is_set():
            now = time.monotonic()
            if now >= until:
                break
            due = base + int((now - t0) * rate)
            if due - k > max_backlog:
                self.send_skipped += due - k - max_backlog
                k = due - max_backlog
            while k < due:
                v = senders[k % S]
                if v.alive:
                    await self.send_chat(v, k)
                else:
                    self.send_skipped += 1
                k += 1
            await asyncio.sleep(0.004)
        self.next_k = k

    @staticmethod
    def quiet_gc() -> None:
        """Keep the cyclic GC from stalling the loop: freeze the long-lived connection
        objects (so full collections don't walk them) and collect young objects less often."""
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 50, 1000)

    async def lag_monitor(self) -> None:
        period = 0.05
        while not self.stop.is_set():
            t = time.monotonic()
            await asyncio.sleep(period)
            if self.measuring:
                self.lag.append(time.monotonic() - t - period)

    # ------------------------------------------------------------------ phases

    async def sleep_or_stop(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.stop.wait(), timeout=max(0.0, seconds))
        except TimeoutError:
            pass

    def emit(self, obj: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    async def run_load(self) -> dict[str, Any]:
        a = self.a
        n = a.viewers
        rate = float(a.rate)
        S = a.senders or max(1, math.ceil(rate / a.max_sender_rate))
        S = min(S, n)
        per_sender = rate / S
        if per_sender > a.max_sender_rate + 1e-9:
            log(
                f"[load] WARNING: {S} senders at {per_sender:.2f} msg/s each exceeds "
                f"--max-sender-rate {a.max_sender_rate}"
            )
        connect_s = await self.connect_all(n)
        self.quiet_gc()
        connected = [v for v in self.viewers if v.alive]
        self.emit(
            {"event": "connected", "connected": len(connected), "seconds": round(connect_s, 2)}
        )
        log(
            f"[load] {len(connected)}/{n} connected in {connect_s:.1f}s; "
            f"failures={self.connect_fail} refusals={self.refusals}"
        )
        if not connected:
            return self.result(n, S, per_sender, connect_s, 0, 0, {}, {}, 0.0, 0.0)
        # senders: the first S connected viewers; probes: spread over all connected viewers
        senders = connected[:S]
        for v in senders:
            v.sender = True
        step = max(1, len(connected) // max(1, a.probes))
        probes = connected[::step][: a.probes]
        for v in probes:
            v.probe = True
        self.probe0 = self.viewers.index(probes[0])
        lagger = asyncio.create_task(self.lag_monitor())
        self.next_k = 0
        await self.sleep_or_stop(a.settle)
        # warm-up, then the measured window, with one continuous send loop
        t_start = time.monotonic()
        sender_task = asyncio.create_task(
            self.send_loop(senders, rate, t_start + a.warmup + a.duration)
        )
        log(
            f"[load] sending {rate:g} msg/s from {S} senders ({per_sender:.2f} msg/s each); "
            f"warm-up {a.warmup:g}s"
        )
        await self.sleep_or_stop(a.warmup)
        n0 = {v.i: v.n for v in self.viewers if v.alive}
        f0 = sum(v.frames for v in self.viewers)
        d0 = sum(v.n for v in self.viewers)
        c0 = cpu_seconds()
        sw0 = invol_switches()
        k0 = core_times(self.a.core)
        m0 = time.monotonic_ns()
        self.measuring = True
        self.emit({"event": "measure_start"})
        log(f"[load] measuring {a.duration:g}s")
        await self.sleep_or_stop(a.duration)
        m1 = time.monotonic_ns()
        self.measuring = False
        c1 = cpu_seconds()
        sw1 = invol_switches()
        k1 = core_times(self.a.core)
        d1 = sum(v.n for v in self.viewers)
        f1 = sum(v.frames for v in self.viewers)
        n1 = {v.i: v.n for v in self.viewers if v.alive}
        self.emit({"event": "measure_end"})
        await asyncio.wait([sender_task], timeout=5.0)
        sender_task.cancel()
        # drain: give in-flight messages (sent in the window) time to reach the probes
        window = [k for k, t in self.sent_t.items() if m0 <= t < m1]
        t_drain = time.monotonic()
        while time.monotonic() - t_drain < a.drain and not self.stop.is_set():
            expected = [k for k in window if self.ack.get(k, "ok") == "ok"]
            total = self.expected_total()
            if (
                all(k in self.ack for k in window)
                and all(v.n >= total for v in self.viewers if v.alive)
                and all(all(k in p.lat for k in expected) for p in probes if p.alive)
            ):
                break
            await asyncio.sleep(0.1)
        # every viewer connected before the first message, so each should have received
        # every message the server did not refuse, warm-up and drain included
        total = self.expected_total()
        totals = sorted(v.n / total for v in self.viewers if v.alive) if total else []
        lagger.cancel()
        t_end = time.monotonic_ns()
        wall = (m1 - m0) / 1e9
        per_viewer = {i: n1[i] - n0[i] for i in n1 if i in n0}
        res = self.result(
            n,
            S,
            per_sender,
            connect_s,
            d1 - d0,
            f1 - f0,
            per_viewer,
            {"window": window, "m0": m0, "m1": m1, "probes": probes, "t_end": t_end},
            wall,
            c1 - c0,
        )
        res["total_msgs_not_refused"] = total
        res["total_ratio_min"] = _r(totals[0] if totals else None, 4)
        res["total_ratio_median"] = _r(pct(totals, 50), 4)
        res["total_ratio_max"] = _r(totals[-1] if totals else None, 4)
        res["viewers_with_every_message"] = sum(1 for x in totals if x >= 1.0)
        res["loader_involuntary_switches"] = sw1 - sw0
        res["loader_core"] = core_window(k0, k1, wall)  # whole core: loader + anything else
        return res

    def result(
        self,
        n: int,
        S: int,
        per_sender: float,
        connect_s: float,
        deliveries: int,
        frames: int,
        per_viewer: dict[int, int],
        w: dict[str, Any],
        wall: float,
        cpu: float,
    ) -> dict[str, Any]:
        a = self.a
        window: list[int] = w.get("window", [])
        acks = [self.ack.get(k) for k in window]
        ok = sum(1 for x in acks if x == "ok")
        unacked = sum(1 for x in acks if x is None)
        errors: dict[str, int] = {}
        for x in acks:
            if x is not None and x != "ok":
                errors[x] = errors.get(x, 0) + 1
        rejected = sum(errors.values())
        expected_msgs = len(window) - rejected  # everything the server did not refuse
        alive_end = sum(1 for v in self.viewers if v.alive)
        lats: list[float] = []
        missing = 0
        probes: list[Viewer] = w.get("probes", [])
        exp_keys = [k for k in window if self.ack.get(k, "ok") == "ok"]
        # a message that never reached a probe by the end of the drain counts with the
        # latency it had at that moment: a lower bound, flagged below
        t_end = w.get("t_end", time.monotonic_ns())
        for p in probes:
            for k in exp_keys:
                x = p.lat.get(k)
                if x is None:
                    missing += 1
                    lats.append(-(t_end - self.sent_t[k]) / 1e6)
                else:
                    lats.append(x / 1e6)
        lats.sort(key=abs)
        lb = {
            f"latency_{q}_lower_bound": bool(pct(lats, v) is not None and pct(lats, v) < 0)
            for q, v in (("p50", 50), ("p90", 90), ("p99", 99))
        }
        lb["latency_max_lower_bound"] = bool(lats and lats[-1] < 0)
        lats = [abs(x) for x in lats]
        probe_expected = len(exp_keys) * len(probes)
        ratios = sorted(c / expected_msgs for c in per_viewer.values()) if expected_msgs else []
        lag = sorted(self.lag)
        ack_lat = sorted(x / 1e6 for x in self.ack_lat)
        r = {
            "event": "result",
            "mode": "naive" if self.naive else "livehub",
            "viewers_requested": n,
            "connected": len([v for v in self.viewers if v.ws is not None]),
            "connected_at_end": alive_end,
            "connect_seconds": round(connect_s, 2),
            "connect_failures": self.connect_fail,
            "connect_refusals": self.refusals,
            "disconnects": self.disconnects,
            "senders": S,
            "per_sender_rate": round(per_sender, 3),
            "rate_offered": a.rate,
            "duration_s": round(wall, 3),
            "msgs_sent": len(window),
            "msgs_sent_per_s": round(len(window) / wall, 1) if wall else 0,
            "acks_ok": ok,
            "acks_errors": errors,
            "acks_missing": unacked,
            "ack_flags": self.ack_flags,
            "ack_p50_ms": _r(pct(ack_lat, 50)),
            "ack_p99_ms": _r(pct(ack_lat, 99)),
            "deliveries": deliveries,
            "deliveries_per_s": round(deliveries / wall, 1) if wall else 0,
            "frames_per_s": round(frames / wall, 1) if wall else 0,
            "msgs_per_frame": round(deliveries / frames, 2) if frames else None,
            "expected_deliveries_per_s": round(expected_msgs * len(per_viewer) / wall, 1)
            if wall
            else 0,
            "delivery_ratio": round(deliveries / (expected_msgs * len(per_viewer)), 4)
            if expected_msgs and per_viewer
            else None,
            "per_viewer_ratio_min": _r(ratios[0] if ratios else None, 4),
            "per_viewer_ratio_p01": _r(pct(ratios, 1), 4),
            "per_viewer_ratio_median": _r(pct(ratios, 50), 4),
            "per_viewer_ratio_max": _r(ratios[-1] if ratios else None, 4),
            "probes": len(probes),
            "probe_samples": len(lats) - missing,
            "probe_missing": missing,
            "probe_completeness": round((len(lats) - missing) / probe_expected, 4)
            if probe_expected
            else None,
            "latency_p50_ms": _r(pct(lats, 50)),
            "latency_p90_ms": _r(pct(lats, 90)),
            "latency_p99_ms": _r(pct(lats, 99)),
            "latency_max_ms": _r(lats[-1] if lats else None),
            **lb,
            "dup_at_probes": self.dup_at_probes,
            "probe_parse_errors": self.probe_parse_errors,
            "sampled_away_probe0": self.dropped0,
            "probe0_frames": self.dropped_frames0,
            "send_skipped": self.send_skipped,
            "send_errors": self.send_errors,
            "other_events": self.other_events,
            "loader_cpu": round(cpu / wall, 3) if wall else None,
            "loader_loop_lag_p99_ms": _r(pct(lag, 99) * 1000 if lag else None),
            "loader_loop_lag_max_ms": _r(lag[-1] * 1000 if lag else None),
        }
        return r

    async def run_idle(self) -> dict[str, Any]:
        a = self.a
        n = a.idle
        connect_s = await self.connect_all(n)
        alive = sum(1 for v in self.viewers if v.alive)
        frames_ramp = sum(v.frames for v in self.viewers)
        log(
            f"[load] idle: {alive}/{n} connected in {connect_s:.1f}s; "
            f"failures={self.connect_fail} refusals={self.refusals}"
        )
        self.emit(
            {
                "event": "ready",
                "connected": alive,
                "seconds": round(connect_s, 2),
                "event_frames_during_connect": frames_ramp,
                "connect_failures": self.connect_fail,
                "connect_refusals": self.refusals,
            }
        )
        # hold until told: a line on stdin, a signal, or the hold timeout
        loop = asyncio.get_running_loop()
        try:
            loop.add_reader(sys.stdin.fileno(), self.stop.set)
        except (OSError, ValueError, NotImplementedError):
            pass
        await self.sleep_or_stop(a.hold_timeout)
        alive_end = sum(1 for v in self.viewers if v.alive)
        return {
            "event": "result",
            "mode": "idle",
            "viewers_requested": n,
            "connected": alive,
            "connected_at_end": alive_end,
            "connect_seconds": round(connect_s, 2),
            "connect_failures": self.connect_fail,
            "connect_refusals": self.refusals,
            "disconnects": self.disconnects,
            "other_events": self.other_events,
        }

    async def close_all(self) -> None:
        self.stopping = True
        tasks = [v.task for v in self.viewers if v.task is not None]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5.0)
        wss = [v.ws for v in self.viewers if v.ws is not None and not v.ws.closed]
        for i in range(0, len(wss), 500):  # polite close, bounded
            chunk = [asyncio.create_task(w.close()) for w in wss[i : i + 500]]
            _, pending = await asyncio.wait(chunk, timeout=3.0)
            for t in pending:
                t.cancel()

    async def main(self) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1):
            loop.add_signal_handler(sig, self.stop.set)
        conn = aiohttp.TCPConnector(limit=0, force_close=True)
        self.session = aiohttp.ClientSession(
            connector=conn, timeout=aiohttp.ClientTimeout(total=None, sock_connect=30)
        )
        try:
            if self.a.idle:
                return await self.run_idle()
            return await self.run_load()
        finally:
            try:
                await asyncio.wait_for(self.close_all(), timeout=30.0)
            except TimeoutError:
                log("[load] close_all timed out")
            await self.session.close()


def _r(x: float | None, nd: int = 1) -> float | None:
    return None if x is None else round(x, nd)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="chat fan-out load generator (raw Engine.IO v4 / Socket.IO v5)"
    )
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--room", default="bench")
    ap.add_argument("--origin", help="Origin header (default http://127.0.0.1:PORT)")
    ap.add_argument("--tokens-file", help="viewer tokens, one per line")
    ap.add_argument("--secret", help="mint viewer tokens locally with this server secret")
    ap.add_argument("--viewer-prefix", default="bench", help="sub/name prefix when minting")
    ap.add_argument("--naive", action="store_true", help="count `chat` events (naive server)")
    ap.add_argument("--expect-welcome", dest="expect_welcome", action="store_true", default=None)
    ap.add_argument("--no-expect-welcome", dest="expect_welcome", action="store_false")
    ap.add_argument("--viewers", type=int, default=2000)
    ap.add_argument("--rate", type=float, default=200.0, help="total messages/s in")
    ap.add_argument(
        "--senders",
        type=int,
        default=0,
        help="sender connections (default: ceil(rate / max-sender-rate))",
    )
    ap.add_argument("--max-sender-rate", type=float, default=1.0)
    ap.add_argument("--probes", type=int, default=50)
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--settle", type=float, default=2.0, help="pause after connecting")
    ap.add_argument("--drain", type=float, default=3.0)
    ap.add_argument("--ramp", type=int, default=200, help="concurrent connects")
    ap.add_argument("--connect-timeout", type=float, default=30.0)
    ap.add_argument("--connect-deadline", type=float, default=300.0)
    ap.add_argument("--idle", type=int, default=0, help="connect N idle viewers and hold")
    ap.add_argument("--hold-timeout", type=float, default=600.0)
    ap.add_argument("--core", type=int, default=None, help="pin to this core")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    pin_to(args.core)
    lim = raise_nofile()
    need = (args.idle or args.viewers) + 100
    if lim < need:
        log(f"[load] WARNING: RLIMIT_NOFILE {lim} < {need}")
    res = asyncio.run(Load(args).main())
    res["pid"] = os.getpid()
    sys.stdout.write(json.dumps(res) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
