"""Media fan-out benchmark: livehub's forwarding relay vs aiortc's MediaRelay, same machine.

    .venv/bin/python scripts/bench_media.py                  # full run: livehub 0,10,25,50 viewers,
                                                             # baseline 0,2,5,10, 15 s per level
    .venv/bin/python scripts/bench_media.py --quick          # smoke run
    .venv/bin/python scripts/bench_media.py --skip-baseline --viewers 0,25,50,100

One 720p30 H.264 stream is published over WHIP and played by N viewers over WHEP.
The server under test is pinned to core 0; this process (the publisher, every viewer
and the measuring) to core 1. Nothing on the load side encodes or decodes per run:

* the publisher pre-encodes ~10 s of 1280x720 frames once (libx264, baseline profile,
  keyframe every 2 s, no B-frames, tune zerolatency, a target bitrate) and loops the
  packets; its track's recv() returns av.Packet, which aiortc 1.16's RTCRtpSender only
  packetizes (RTCRtpSender._next_encoded_frame: anything that is not an av.Frame goes
  to encoder.pack()). A picture loss indication from the server is answered like a
  browser's encoder would, with the next frame an IDR: the loop jumps to the next
  keyframe of the clip (--ignore-pli makes the publisher behave like OBS instead);
* viewers swap their receivers' decoder queue for a counting sink
  (livehub.media.forwarding.forward_receiver), so no decoder is ever built; they
  still reassemble frames, send RTCP receiver reports and NACKs like any aiortc peer.

Measured per viewer level (after a settle period): server CPU (psutil user+system over
wall time, as a fraction of one core), this process's CPU, CPU other processes took from
both cores (/proc/stat), frames each viewer got. The marginal CPU per viewer is the slope
of a least-squares line through the levels where every viewer kept up. Then, at every
level, late joiners: a fresh viewer joins mid-stream (the level's viewers still watching),
the time from its WHEP POST to its first keyframe is taken, and it leaves; several times.
The load process's own event-loop lag during those joins is reported alongside: with many
viewers in one process, part of a late joiner's wait is the load side's, not the server's.

The baseline is scripts/media_baseline_server.py: the same endpoints, aiortc used the
usual way (MediaRelay().subscribe(track) per viewer, so each viewer's sender re-encodes).

Targets (reported, never asserted): each added viewer under 1% of a core at 720p30
(about 200 viewers a core), at least 20x cheaper per viewer than the baseline, a late
joiner's first frame under 0.5 s. Everything listens on and talks to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fractions
import itertools
import json
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import (
    HOST,
    PY,
    REPO,
    SCRIPTS,
    Children,
    core_times,
    core_window,
    free_port,
    http,
    log,
    machine_info,
    pin_to,
    random_secret,
    wait_healthz,
    wait_quiet,
)

sys.path.insert(0, str(REPO))

import aiohttp
import aiortc
import av
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)

from livehub.media.forwarding import forward_receiver
from livehub.media.relay import EncodedFrame
from livehub.rooms import tokens
from livehub.rooms.models import Role

ROOM = "mediabench"
SDP = "application/sdp"
VIDEO_CLOCK = 90000
CHILDREN = Children()


def no_ice_servers() -> RTCConfiguration:
    # aiortc's default is a public STUN server; loopback needs none.
    return RTCConfiguration(iceServers=[])


# ---------------------------------------------------------------------------
# the pre-encoded clip


@dataclass
class Clip:
    frames: list[bytes]
    keyframes: list[int]  # indices of IDR frames
    fps: int
    kbps: float
    encode_seconds: float
    profile_level: str

    def next_keyframe(self, after: int) -> int:
        """The index of the first keyframe strictly after ``after`` (wrapping)."""
        for k in self.keyframes:
            if k > after:
                return k
        return self.keyframes[0]


def encode_clip(args: argparse.Namespace) -> Clip:
    """~clip_seconds of 1280x720 testsrc2 (plus temporal noise, so the encoder has to
    spend its bitrate), encoded once with libx264 into Annex-B access units."""
    t0 = time.monotonic()
    w, h = (int(x) for x in args.size.split("x"))
    n = int(args.clip_seconds * args.fps)
    gop = max(1, round(args.gop * args.fps))
    graph = av.filter.Graph()
    chain = [graph.add("testsrc2", f"size={w}x{h}:rate={args.fps}")]
    if args.noise > 0:
        chain.append(graph.add("noise", f"alls={args.noise}:allf=t"))
    chain += [graph.add("format", "yuv420p"), graph.add("buffersink")]
    for a, b in itertools.pairwise(chain):
        a.link_to(b)
    graph.configure()
    kbps = args.bitrate
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt = w, h, "yuv420p"
    enc.time_base = fractions.Fraction(1, args.fps)
    enc.framerate = fractions.Fraction(args.fps, 1)
    enc.bit_rate = kbps * 1000
    enc.profile = "Baseline"
    enc.options = {
        "preset": args.preset,
        "tune": "zerolatency",
        "level": "31",
        "x264-params": (
            f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0:repeat-headers=1"
            f":vbv-maxrate={kbps}:vbv-bufsize={kbps}"
        ),
    }
    frames: list[bytes] = []
    keys: list[int] = []

    def take(packets: list[av.Packet[Any]]) -> None:
        for p in packets:
            if p.is_keyframe:
                keys.append(len(frames))
            frames.append(bytes(p))

    for i in range(n):
        frame = chain[-1].pull()
        assert isinstance(frame, av.VideoFrame)
        frame.pts = i
        frame.pict_type = av.video.frame.PictureType.NONE
        take(enc.encode(frame))
    take(enc.encode(None))
    if not frames or not keys or keys[0] != 0:
        raise RuntimeError(f"pre-encoding went wrong: {len(frames)} frames, keyframes {keys}")
    sps = frames[0].find(b"\x00\x00\x01\x67")
    profile_level = frames[0][sps + 4 : sps + 7].hex() if sps >= 0 else "?"
    total = sum(len(f) for f in frames)
    return Clip(
        frames,
        keys,
        args.fps,
        total * 8 / (len(frames) / args.fps) / 1000,
        time.monotonic() - t0,
        profile_level,
    )


# ---------------------------------------------------------------------------
# publisher: a track that returns pre-encoded packets


class PacketTrack(MediaStreamTrack):
    kind = "video"

    def __init__(self, clip: Clip, honour_pli: bool) -> None:
        super().__init__()
        self.clip = clip
        self.honour_pli = honour_pli
        self.index = 0  # position in the clip
        self.sent = 0  # frames returned so far (the pts counter)
        self.keyframes_sent = 0
        self.pli = 0
        self.pli_honoured = 0
        self.max_late = 0.0
        self._want_key = False
        self._start: float | None = None
        self._step = VIDEO_CLOCK // clip.fps
        self._tb = fractions.Fraction(1, VIDEO_CLOCK)

    def request_keyframe(self) -> None:
        """Installed as the sender's _send_keyframe: called on the server's PLI/FIR."""
        self.pli += 1
        if self.honour_pli:
            self._want_key = True

    async def recv(self) -> av.Packet[Any]:
        if self.readyState != "live":
            raise aiortc.MediaStreamError
        now = time.monotonic()
        self._start = self._start or now
        due = self._start + self.sent / self.clip.fps
        if due > now:
            await asyncio.sleep(due - now)
        else:
            self.max_late = max(self.max_late, now - due)
        if self._want_key:
            self._want_key = False
            if self.index not in self.clip.keyframes:
                self.index = self.clip.next_keyframe(self.index)
                self.pli_honoured += 1
        if self.index in self.clip.keyframes:
            self.keyframes_sent += 1
        packet = av.Packet(self.clip.frames[self.index])
        packet.pts = self.sent * self._step
        packet.time_base = self._tb
        self.sent += 1
        self.index = (self.index + 1) % len(self.clip.frames)
        return packet


def h264_preferences() -> list[Any]:
    return [
        c
        for c in RTCRtpSender.getCapabilities("video").codecs
        if c.mimeType in ("video/H264", "video/rtx")
    ]


# ---------------------------------------------------------------------------
# peers


@dataclass
class Peer:
    pc: RTCPeerConnection
    token: str | None
    location: str = ""
    t_start: float = 0.0
    t_post: float = 0.0
    t_answer: float | None = None
    t_connected: float | None = None
    t_first_key: float | None = None
    t_first_frame: float | None = None
    frames: int = 0
    keyframes: int = 0
    bytes: int = 0
    state: str = "new"
    error: str | None = None

    def on_frame(self, frame: EncodedFrame) -> None:
        now = time.monotonic()
        if self.t_first_frame is None:
            self.t_first_frame = now
        if frame.keyframe:
            self.keyframes += 1
            if self.t_first_key is None:
                self.t_first_key = now
        self.frames += 1
        self.bytes += len(frame.data)


def watch_state(peer: Peer) -> None:
    @peer.pc.on("connectionstatechange")
    def _() -> None:
        peer.state = peer.pc.connectionState
        if peer.state == "connected" and peer.t_connected is None:
            peer.t_connected = time.monotonic()


async def post_offer(
    session: aiohttp.ClientSession, url: str, sdp: str, token: str | None, limit_s: float
) -> tuple[int, str, str]:
    headers = {"Content-Type": SDP}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    async with session.post(
        url, data=sdp.encode(), headers=headers, timeout=aiohttp.ClientTimeout(total=limit_s)
    ) as r:
        return r.status, await r.text(), r.headers.get("Location", "")


async def publish(
    session: aiohttp.ClientSession, base: str, token: str | None, track: PacketTrack, limit_s: float
) -> Peer:
    pc = RTCPeerConnection(no_ice_servers())
    peer = Peer(pc, token)
    watch_state(peer)
    transceiver = pc.addTransceiver(track, direction="sendonly")
    transceiver.setCodecPreferences(h264_preferences())
    # The server's PLI/FIR reaches RTCRtpSender._send_keyframe, which would only flag the
    # (absent) encoder; answer it from the clip instead.
    transceiver.sender._send_keyframe = track.request_keyframe  # type: ignore[method-assign]
    peer.t_start = time.monotonic()
    await pc.setLocalDescription(await pc.createOffer())
    peer.t_post = time.monotonic()
    status, text, location = await post_offer(
        session, f"{base}/whip/{ROOM}", pc.localDescription.sdp, token, limit_s
    )
    if status != 201:
        await pc.close()
        raise RuntimeError(f"WHIP POST answered {status}: {text[:300]}")
    peer.t_answer, peer.location = time.monotonic(), location
    await pc.setRemoteDescription(RTCSessionDescription(text, "answer"))
    return peer


async def join_viewer(
    session: aiohttp.ClientSession, base: str, token: str | None, limit_s: float
) -> Peer:
    """A WHEP viewer that counts the encoded frames it gets and never decodes them.
    Returns once its first keyframe arrived (or with .error set)."""
    pc = RTCPeerConnection(no_ice_servers())
    peer = Peer(pc, token)
    watch_state(peer)
    transceiver = pc.addTransceiver("video", direction="recvonly")
    transceiver.setCodecPreferences(h264_preferences())
    forward_receiver(transceiver.receiver, "video", peer.on_frame)  # no decoder, ever
    peer.t_start = time.monotonic()
    await pc.setLocalDescription(await pc.createOffer())
    peer.t_post = time.monotonic()
    try:
        status, text, location = await post_offer(
            session, f"{base}/whep/{ROOM}", pc.localDescription.sdp, token, limit_s
        )
    except (aiohttp.ClientError, TimeoutError) as e:
        peer.error = f"WHEP POST failed: {e!r}"
        return peer
    if status != 201:
        peer.error = f"WHEP POST answered {status}: {text[:200]}"
        return peer
    peer.t_answer, peer.location = time.monotonic(), location
    await pc.setRemoteDescription(RTCSessionDescription(text, "answer"))
    deadline = peer.t_post + limit_s
    while peer.t_first_key is None and time.monotonic() < deadline:
        if peer.state in ("failed", "closed"):
            peer.error = f"connection {peer.state} before the first keyframe"
            return peer
        await asyncio.sleep(0.005)
    if peer.t_first_key is None:
        peer.error = f"no keyframe within {limit_s:g} s (state {peer.state}, {peer.frames} frames)"
    return peer


async def leave(session: aiohttp.ClientSession, base: str, peer: Peer) -> None:
    if peer.location:
        headers = {"Authorization": f"Bearer {peer.token}"} if peer.token else {}
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with session.delete(
                base + peer.location, headers=headers, timeout=aiohttp.ClientTimeout(total=5)
            ) as r:
                await r.read()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(peer.pc.close(), 10)


async def bounded_gather(coros: list[Awaitable[Any]], limit: int) -> list[Any]:
    sem = asyncio.Semaphore(max(1, limit))

    async def one(c: Awaitable[Any]) -> Any:
        async with sem:
            return await c

    return await asyncio.gather(*(one(c) for c in coros), return_exceptions=True)


# ---------------------------------------------------------------------------
# servers


class Server:
    def __init__(self, kind: str, args: argparse.Namespace, tmp: Path) -> None:
        self.kind = kind
        self.args = args
        self.port = free_port()
        self.secret = random_secret()
        self.admin_key = random_secret()
        self.tmp = tmp
        self.log = tmp / f"{kind}-server.log"
        self.proc: Any = None
        self.ps: psutil.Process | None = None
        self.stop_rc: int | None = None

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"

    def argv(self) -> list[str]:
        if self.kind == "baseline":
            return [PY, str(SCRIPTS / "media_baseline_server.py"), "--port", str(self.port)]
        data = self.tmp / "livehub-data"
        data.mkdir(parents=True, exist_ok=True)
        return [
            PY,
            "-m",
            "livehub",
            "serve",
            "--no-demo",
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--data-dir",
            str(data),
            f"--secret={self.secret}",
            f"--admin-key={self.admin_key}",
            "--log-level",
            self.args.livehub_log_level,
        ]

    def start(self) -> None:
        argv = self.argv()
        shown = [
            a.split("=", 1)[0] + "=<random>" if a.startswith(("--secret=", "--admin-key=")) else a
            for a in argv
        ]
        log(f"[bench] starting {self.kind} on core {self.args.server_core}: {' '.join(shown)}")
        self.proc = CHILDREN.start(argv, core=self.args.server_core, log=self.log, cwd=REPO)
        try:
            waited = wait_healthz(self.port, self.proc, timeout=self.args.startup_timeout)
        except RuntimeError as e:
            raise RuntimeError(f"{self.kind} did not come up: {e}\n{tail(self.log)}") from None
        self.ps = psutil.Process(self.proc.pid)
        log(
            f"[bench] {self.kind} healthy after {waited:.1f}s (pid {self.proc.pid}, "
            f"affinity {self.ps.cpu_affinity()})"
        )
        if self.kind == "livehub":
            status, ans = http(
                "POST",
                f"{self.base}/api/rooms",
                {"id": ROOM, "title": ROOM},
                token=self.admin_key,
                timeout=10.0,
            )
            if status != 201:
                raise RuntimeError(f"POST /api/rooms answered {status}: {ans}")

    def token(self, role: Role, name: str) -> str | None:
        if self.kind != "livehub":
            return None
        tok, _, _ = tokens.mint(
            self.secret,
            room=ROOM,
            role=role,
            name=name,
            ttl_seconds=6 * 3600,
        )
        return tok

    def procs(self) -> list[psutil.Process]:
        if self.ps is None:
            return []
        try:
            return [self.ps, *self.ps.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def cpu(self) -> float:
        total = 0.0
        for p in self.procs():
            with contextlib.suppress(psutil.NoSuchProcess):
                t = p.cpu_times()
                total += t.user + t.system
        return total

    def rss(self) -> int:
        total = 0
        for p in self.procs():
            with contextlib.suppress(psutil.NoSuchProcess):
                total += p.memory_info().rss
        return total

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is not None:
            t0 = time.monotonic()
            self.stop_rc = CHILDREN.stop(self.proc, timeout=self.args.stop_timeout)
            log(
                f"[bench] {self.kind} stopped (rc {self.stop_rc}, "
                f"{time.monotonic() - t0:.1f}s after SIGTERM)"
            )


def tail(path: Path, n: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def udp_drops(pid: int) -> int | None:
    """Datagrams the kernel dropped on ``pid``'s UDP sockets (full receive buffers), summed
    from /proc/net/udp{,6}; sockets closed meanwhile are not counted."""
    try:
        inodes = set()
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
        total = 0
        for table in ("/proc/net/udp", "/proc/net/udp6"):
            with contextlib.suppress(OSError), open(table) as f:
                next(f, None)
                for line in f:
                    parts = line.split()
                    if len(parts) >= 13 and parts[9] in inodes:
                        total += int(parts[12])
        return total
    except OSError:
        return None


def log_findings(path: Path) -> dict[str, Any]:
    """Tracebacks and warnings/errors in a server log (livehub logs at WARNING by default)."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return {}
    bad = [
        ln
        for ln in lines
        if "Traceback" in ln
        or " ERROR" in ln
        or "ERROR:" in ln
        or "WARNING" in ln
        or "Exception" in ln
    ]
    return {
        "tracebacks": sum("Traceback" in ln for ln in lines),
        "warning_or_error_lines": len(bad),
        "first": bad[:8],
    }


# ---------------------------------------------------------------------------
# one server under load


def fit(points: list[tuple[float, float]]) -> dict[str, float] | None:
    """Least-squares line cpu = a + b * viewers."""
    if len(points) < 2 or len({x for x, _ in points}) < 2:
        return None
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    sxy = sum((x - mx) * (y - my) for x, y in points)
    b = sxy / sxx
    a = my - b * mx
    ss_tot = sum((y - my) ** 2 for _, y in points)
    ss_res = sum((y - a - b * x) ** 2 for x, y in points)
    r2 = 1 - ss_res / ss_tot if ss_tot > 0 else 1.0
    return {"intercept": a, "slope": b, "r2": r2}


def summary(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {
        "n": len(values),
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
    }


async def measure(
    server: Server,
    me: psutil.Process,
    viewers: list[Peer],
    track: PacketTrack,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """One measured window of args.hold seconds at the current viewer level."""
    f0 = {id(v): (v.frames, v.bytes) for v in viewers}
    sent0 = track.sent
    c0, l0, w0 = server.cpu(), me.cpu_times(), time.monotonic()
    k0s, k0l = core_times(args.server_core), core_times(args.load_core)
    pli0 = track.pli
    d0s, d0l = udp_drops(server.proc.pid), udp_drops(os.getpid())
    await asyncio.sleep(args.hold)
    wall = time.monotonic() - w0
    d1s, d1l = udp_drops(server.proc.pid), udp_drops(os.getpid())
    c1, l1 = server.cpu(), me.cpu_times()
    k1s, k1l = core_times(args.server_core), core_times(args.load_core)
    server_cpu = (c1 - c0) / wall
    loader_cpu = (l1.user + l1.system - l0.user - l0.system) / wall
    cs, cl = core_window(k0s, k1s, wall), core_window(k0l, k1l, wall)
    fps = [(v.frames - f0[id(v)][0]) / wall for v in viewers]
    kbps = [(v.bytes - f0[id(v)][1]) * 8 / wall / 1000 for v in viewers]
    return {
        "server_cpu": round(server_cpu, 4),
        "loader_cpu": round(loader_cpu, 3),
        "others_server_core": round(cs["busy"] - server_cpu, 3) if cs else None,
        "others_load_core": round(cl["busy"] - loader_cpu, 3) if cl else None,
        "publisher_fps": round((track.sent - sent0) / wall, 1),
        "viewer_fps_min": round(min(fps), 1) if fps else None,
        "viewer_fps_median": round(statistics.median(fps), 1) if fps else None,
        "viewer_kbps_median": round(statistics.median(kbps)) if kbps else None,
        "server_rss_mb": round(server.rss() / 1048576, 1),
        "window_s": round(wall, 1),
        "publisher_pli": track.pli - pli0,
        "udp_drops_server": None if d0s is None or d1s is None else d1s - d0s,
        "udp_drops_load": None if d0l is None or d1l is None else d1l - d0l,
        "_fps": fps,
    }


async def wait_cores_quiet(
    server: Server, me: psutil.Process, args: argparse.Namespace, max_wait: float
) -> float:
    """Wait (at most max_wait s, in 2 s probes) until other processes leave the server's
    and the load core alone; returns the last probe's largest share taken by others."""
    t_end = time.monotonic() + max_wait
    worst = 0.0
    while True:
        c0, l0, w0 = server.cpu(), me.cpu_times(), time.monotonic()
        k0s, k0l = core_times(args.server_core), core_times(args.load_core)
        await asyncio.sleep(2.0)
        wall = time.monotonic() - w0
        l1 = me.cpu_times()
        cs = core_window(k0s, core_times(args.server_core), wall)
        cl = core_window(k0l, core_times(args.load_core), wall)
        if not cs or not cl:
            return 0.0
        worst = max(
            cs["busy"] - (server.cpu() - c0) / wall,
            cl["busy"] - (l1.user + l1.system - l0.user - l0.system) / wall,
        )
        if worst <= args.disturbance or time.monotonic() >= t_end:
            return float(worst)


def disturbed(r: dict[str, Any], limit: float) -> bool:
    return any(
        v is not None and v > limit
        for v in (r.get("others_server_core"), r.get("others_load_core"))
    )


class LoopLag:
    """How late this process's event loop wakes a 5 ms sleep: the load side's own delay."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            t = time.monotonic()
            await asyncio.sleep(0.005)
            self.samples.append(time.monotonic() - t - 0.005)

    def __enter__(self) -> LoopLag:
        self._task = asyncio.ensure_future(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task:
            self._task.cancel()

    def summary(self) -> dict[str, float] | None:
        if not self.samples:
            return None
        xs = sorted(self.samples)
        return {
            "p50_ms": round(xs[len(xs) // 2] * 1000, 1),
            "p99_ms": round(xs[int(len(xs) * 0.99)] * 1000, 1),
            "max_ms": round(xs[-1] * 1000, 1),
        }


async def late_joins(
    server: Server,
    session: aiohttp.ClientSession,
    me: psutil.Process,
    track: PacketTrack,
    args: argparse.Namespace,
    level: int,
) -> dict[str, Any]:
    """args.late_joins fresh viewers, one at a time, each joining mid-stream while the
    level's viewers keep watching: WHEP POST -> first keyframe, then it leaves."""
    joins: list[dict[str, Any]] = []
    await wait_cores_quiet(server, me, args, args.wait_quiet / 4)
    pli_before = track.pli
    k0s, k0l, w0 = core_times(args.server_core), core_times(args.load_core), time.monotonic()
    c0, l0 = server.cpu(), me.cpu_times()
    d0s, d0l = udp_drops(server.proc.pid), udp_drops(os.getpid())
    with LoopLag() as lag:
        for i in range(args.late_joins):
            if not server.alive():
                break
            await asyncio.sleep(random.uniform(0.4, 1.4))  # a random point in the GOP
            p0, kf0 = track.pli, track.keyframes_sent
            peer = await join_viewer(
                session, server.base, server.token("viewer", f"late{level}-{i}"), args.join_timeout
            )
            rec: dict[str, Any] = {
                "error": peer.error,
                "pli": track.pli - p0,
                "keyframes_sent": track.keyframes_sent - kf0,
            }
            if peer.t_answer is not None:
                rec["answer_ms"] = round((peer.t_answer - peer.t_post) * 1000)
            if peer.t_connected is not None:
                rec["connected_ms"] = round((peer.t_connected - peer.t_post) * 1000)
            if peer.t_first_key is not None:
                rec["first_keyframe_ms"] = round((peer.t_first_key - peer.t_post) * 1000)
            rec["offer_ms"] = round((peer.t_post - peer.t_start) * 1000)
            joins.append(rec)
            log(f"[bench] {server.kind} @ {level}: late joiner {i + 1}: {rec}")
            await leave(session, server.base, peer)
    out: dict[str, Any] = {
        "joins": joins,
        "loop_lag": lag.summary(),
        "pli_received": track.pli - pli_before,
    }
    d1s, d1l = udp_drops(server.proc.pid), udp_drops(os.getpid())
    if None not in (d0s, d1s, d0l, d1l):
        out["udp_drops"] = {"server": d1s - d0s, "load": d1l - d0l}  # type: ignore[operator]
    wall = time.monotonic() - w0
    cs = core_window(k0s, core_times(args.server_core), wall)
    cl = core_window(k0l, core_times(args.load_core), wall)
    l1 = me.cpu_times()
    if cs and cl:
        out["others"] = {
            "server_core": round(cs["busy"] - (server.cpu() - c0) / wall, 3),
            "load_core": round(cl["busy"] - (l1.user + l1.system - l0.user - l0.system) / wall, 3),
        }
    out["first_keyframe_ms"] = summary(
        [r["first_keyframe_ms"] for r in joins if "first_keyframe_ms" in r]
    )
    out["answer_ms"] = summary([r["answer_ms"] for r in joins if "answer_ms" in r])
    out["connected_ms"] = summary([r["connected_ms"] for r in joins if "connected_ms" in r])
    out["failed"] = sum(1 for r in joins if r.get("error"))
    return out


async def run_target(
    kind: str,
    levels: list[int],
    clip: Clip,
    args: argparse.Namespace,
    tmp: Path,
    out: dict[str, Any],
) -> None:
    """Fills ``out`` as it goes, so an interrupted run still reports what it measured."""
    out.update({"kind": kind, "levels_requested": levels, "levels": []})
    server = Server(kind, args, tmp)
    me = psutil.Process()
    viewers: list[Peer] = []
    publisher: Peer | None = None
    track = PacketTrack(clip, honour_pli=not args.ignore_pli)
    session = aiohttp.ClientSession()
    try:
        quiet, busy = await asyncio.to_thread(wait_quiet, args.wait_quiet)
        out["machine_busy_before"] = round(busy, 3)
        if not quiet:
            log(f"[bench] machine still {busy:.0%} busy; running anyway")
        await asyncio.to_thread(server.start)
        out["server_affinity"] = server.ps.cpu_affinity() if server.ps else None
        publisher = await publish(
            session, server.base, server.token("host", "bench host"), track, args.join_timeout
        )
        t_end = time.monotonic() + args.join_timeout
        while publisher.state != "connected" and time.monotonic() < t_end:
            if publisher.state in ("failed", "closed"):
                break
            await asyncio.sleep(0.05)
        if publisher.state != "connected" or publisher.t_connected is None:
            raise RuntimeError(f"the publisher did not connect (state {publisher.state})")
        out["publisher_connect_ms"] = round((publisher.t_connected - publisher.t_post) * 1000)
        await asyncio.sleep(args.warmup)
        rss0 = server.rss()
        for level in levels:
            if not server.alive():
                out["server_exit"] = server.proc.returncode
                log(f"[bench] {kind} DIED (rc {server.proc.returncode}):\n{tail(server.log)}")
                break
            need = level - len(viewers)
            t0 = time.monotonic()
            if need > 0:
                joined = await bounded_gather(
                    [
                        join_viewer(
                            session, server.base, server.token("viewer", f"v{i}"), args.join_timeout
                        )
                        for i in range(len(viewers), level)
                    ],
                    args.join_batch,
                )
                for j in joined:
                    if isinstance(j, Peer):
                        viewers.append(j)
                    else:
                        log(f"[bench] {kind}: a viewer join raised {j!r}")
            failed = [v for v in viewers if v.error]
            join_s = time.monotonic() - t0
            log(
                f"[bench] {kind}: {len(viewers)} viewers ({len(failed)} failed) "
                f"joined in {join_s:.1f}s; settling {args.settle:g}s"
            )
            await asyncio.sleep(args.settle)
            # the measured window, repeated when other processes took our cores
            attempts: list[dict[str, Any]] = []
            for _attempt in range(1 + args.retries):
                others = await wait_cores_quiet(server, me, args, args.wait_quiet / 2)
                if others > args.disturbance:
                    log(
                        f"[bench] {kind} @ {level}: other processes still take {others:.2f} "
                        "of a core; measuring anyway"
                    )
                attempts.append(await measure(server, me, viewers, track, args))
                if not disturbed(attempts[-1], args.disturbance):
                    break
                log(
                    f"[bench] {kind} @ {level}: other processes took CPU from our cores "
                    f"({attempts[-1]['others_server_core']} / {attempts[-1]['others_load_core']}"
                    "); measuring again"
                )
            rec = min(
                attempts,
                key=lambda r: max(r["others_server_core"] or 0, r["others_load_core"] or 0),
            )
            rec.update(
                {
                    "viewers": level,
                    "viewers_ok": sum(1 for v in viewers if not v.error and v.state == "connected"),
                    "join_failures": len(failed),
                    "join_errors": sorted({v.error for v in failed if v.error})[:3],
                    "join_s": round(join_s, 1),
                    "attempts": len(attempts),
                    "disturbed": disturbed(rec, args.disturbance),
                }
            )
            server_cpu, fps = rec["server_cpu"], rec.pop("_fps")
            for r in attempts:
                r.pop("_fps", None)
            # kept up: every viewer got (nearly) every frame; such a level is a valid point
            # for the fit even near a full core. Saturated: no headroom or fell behind.
            rec["kept_up"] = bool(not failed and (not fps or min(fps) >= 0.95 * clip.fps))
            rec["saturated"] = bool(server_cpu >= args.saturation or not rec["kept_up"])
            out["levels"].append(rec)
            log(
                f"[bench] {kind} @ {level} viewers: server {server_cpu:.3f} cores, "
                f"loader {rec['loader_cpu']:.3f}, viewer fps min {rec['viewer_fps_min']}, "
                f"kbps {rec['viewer_kbps_median']}, others {rec['others_server_core']}/"
                f"{rec['others_load_core']}, PLIs {rec['publisher_pli']}, UDP drops server/load "
                f"{rec['udp_drops_server']}/{rec['udp_drops_load']}"
                f"{'  SATURATED' if rec['saturated'] else ''}"
                f"{'  DISTURBED' if rec['disturbed'] else ''}"
            )
            if args.late_joins > 0 and server.alive():
                rec["late"] = await late_joins(server, session, me, track, args, level)
            if rec["saturated"] and level != levels[-1]:
                log(f"[bench] {kind}: saturated at {level} viewers; no higher levels")
                out["stopped_at_saturation"] = level
                break
        out["server_rss_growth_mb"] = round((server.rss() - rss0) / 1048576, 1)
        with_late = [x for x in out["levels"] if x.get("late")]
        if with_late:  # the headline: the highest level measured
            out["late"] = with_late[-1]["late"]
    except RuntimeError as e:
        out["error"] = str(e)
        log(f"[bench] {kind}: {e}")
    finally:
        out["publisher"] = {
            "frames_sent": track.sent,
            "keyframes_sent": track.keyframes_sent,
            "pli_received": track.pli,
            "pli_honoured": track.pli_honoured,
            "max_late_ms": round(track.max_late * 1000, 1),
        }
        peers = viewers + ([publisher] if publisher else [])
        await bounded_gather([leave(session, server.base, p) for p in peers], 20)
        await session.close()
        if server.alive():
            await asyncio.sleep(0.5)
        elif server.proc is not None and "server_exit" not in out:
            out["server_exit"] = server.proc.returncode
        await asyncio.to_thread(server.stop)
        out["server_stop_rc"] = server.stop_rc
        out["server_log"] = str(server.log)
        out["server_log_findings"] = log_findings(server.log)
        usable = [(r["viewers"], r["server_cpu"]) for r in out["levels"] if r["kept_up"]]
        out["fit_levels"] = [x for x, _ in usable]
        out["fit"] = fit(usable)
        if out["fit"] is None and len(out["levels"]) >= 2:  # fell behind: a lower bound
            out["fit"] = fit([(r["viewers"], r["server_cpu"]) for r in out["levels"]])
            if out["fit"]:
                out["fit"]["lower_bound"] = True


# ---------------------------------------------------------------------------
# report


def pct(x: float | None, nd: int = 2) -> str:
    return "n/a" if x is None else f"{x * 100:.{nd}f} %"


def ms(s: dict[str, float] | None) -> str:
    return "n/a" if not s else f"{s['median']:.0f} / {s['max']:.0f}"


def per_viewer(r: dict[str, Any] | None) -> float | None:
    f = (r or {}).get("fit")
    return f["slope"] if f else None


def capacity(r: dict[str, Any] | None) -> str:
    f = (r or {}).get("fit")
    if not f or f["slope"] <= 0:
        return "n/a"
    spare = (1 - max(f["intercept"], 0.0)) / f["slope"]
    return f"{spare:,.0f} (1 / per-viewer: {1 / f['slope']:,.0f})"


def dash(x: Any) -> str:
    return "-" if x is None else str(x)


def verdict(ok: bool | None) -> str:
    return "" if ok is None else (" ✅" if ok else " ❌")


def report(results: dict[str, Any], args: argparse.Namespace) -> str:
    m = results["machine"]
    clip = results["clip"]
    live, base = results.get("livehub"), results.get("baseline")
    pli_mode = (
        "ignores PLI (like OBS)"
        if args.ignore_pli
        else "answers PLI with an IDR (jumps to the next keyframe of the clip)"
    )
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['mem_gb']} GB RAM, Python {m['python']}, "
        f"Linux {m['kernel']}, aiortc {aiortc.__version__}, av {av.__version__} "
        f"(FFmpeg {'.'.join(map(str, av.library_versions['libavcodec']))} libavcodec); "
        f"server pinned to core {args.server_core}, publisher + viewers + measuring "
        f"(this process) to core {args.load_core}.",
        "",
        f"Stream: one {args.size} {args.fps} fps H.264 video stream (profile-level "
        f"{clip['profile_level']}), pre-encoded once ({clip['frames']} frames in "
        f"{clip['encode_seconds']:.1f} s, libx264 {args.preset}, keyframe every {args.gop:g} s, "
        f"no B-frames, zerolatency) at {clip['kbps']:,.0f} kbit/s, looped; no audio. "
        f"Publisher {pli_mode}. "
        f"Viewers reassemble but never decode. {args.settle:g} s settle + {args.hold:g} s "
        "measured per level.",
        "",
    ]

    def levels_of(r: dict[str, Any] | None) -> str:
        if not r:
            return "skipped"
        return ", ".join(str(x["viewers"]) for x in r.get("levels", [])) or "n/a"

    def cpu_levels(r: dict[str, Any] | None) -> str:
        if not r:
            return "skipped"
        return (
            " / ".join(
                f"{x['viewers']}: {x['server_cpu']:.3f}" + ("*" if x["saturated"] else "")
                for x in r["levels"]
            )
            or "n/a"
        )

    def fps_levels(r: dict[str, Any] | None) -> str:
        if not r:
            return "skipped"
        return (
            " / ".join(f"{x['viewers']}: {dash(x['viewer_fps_min'])}" for x in r["levels"]) or "n/a"
        )

    def loader_levels(r: dict[str, Any] | None) -> str:
        if not r:
            return "skipped"
        return " / ".join(f"{x['viewers']}: {x['loader_cpu']:.2f}" for x in r["levels"]) or "n/a"

    def others(r: dict[str, Any] | None) -> str:
        if not r or not r["levels"]:
            return "n/a"
        s = max((x["others_server_core"] or 0) for x in r["levels"])
        lc = max((x["others_load_core"] or 0) for x in r["levels"])
        return f"{s:.3f} / {lc:.3f}"

    def fixed(r: dict[str, Any] | None) -> str:
        f = (r or {}).get("fit")
        if not f:
            return "n/a"
        lvl = ", ".join(map(str, r.get("fit_levels") or [])) if r else ""
        return (
            f"{pct(f['intercept'], 1)} (fit over {lvl} viewers, R² {f['r2']:.3f}"
            + (", levels that fell behind: lower bound" if f.get("lower_bound") else "")
            + ")"
        )

    def pv(r: dict[str, Any] | None) -> str:
        f = (r or {}).get("fit")
        if not f:
            return "n/a" if r else "skipped"
        s = pct(f["slope"], 2)
        return f"≥ {s}" if f.get("lower_bound") else s

    def late_levels(r: dict[str, Any] | None) -> str:
        if not r:
            return "skipped"
        cells = []
        for x in r["levels"]:
            lt = x.get("late")
            if not lt:
                continue
            fk = lt.get("first_keyframe_ms")
            cell = f"{x['viewers']}: {ms(fk)}"
            if fk:
                cell += verdict(fk["max"] < 500) if fk["median"] < 500 else verdict(False)
            if lt.get("failed"):
                cell += f" ({lt['failed']} failed)"
            cells.append(cell)
        return " · ".join(cells) or "n/a"

    def late_top(r: dict[str, Any] | None) -> str:
        if not r:
            return "skipped"
        with_late = [x for x in r["levels"] if x.get("late")]
        if not with_late:
            return "n/a"
        x = with_late[-1]
        lt = x["late"]
        lag = lt.get("loop_lag") or {}
        return (
            f"@ {x['viewers']}: {ms(lt.get('answer_ms'))} ; {ms(lt.get('connected_ms'))} ; "
            f"load loop lag p99 {lag.get('p99_ms', 'n/a')} / max {lag.get('max_ms', 'n/a')}"
        )

    def pli(r: dict[str, Any] | None) -> str:
        if not r:
            return "skipped"
        p = r["publisher"]
        joins = [j for x in r["levels"] for j in (x.get("late") or {}).get("joins", [])]
        per_join = (
            f"; per late join: {statistics.median([j['pli'] for j in joins]):g} "
            f"(max {max(j['pli'] for j in joins)})"
            if joins
            else ""
        )
        return f"{p['pli_received']} / {p['keyframes_sent']}{per_join}"

    lv, bv = per_viewer(live), per_viewer(base)
    ratio = bv / lv if lv and bv and lv > 0 else None
    ratio_lb = bool(((base or {}).get("fit") or {}).get("lower_bound"))
    rows = [
        ("viewer levels measured", levels_of(live), levels_of(base), ""),
        (
            "server CPU (cores) per level (* ≥ 0.9 core or fell behind)",
            cpu_levels(live),
            cpu_levels(base),
            "< 1",
        ),
        ("min viewer fps per level", fps_levels(live), fps_levels(base), f"{args.fps}"),
        ("fixed cost (publisher, 0 viewers; fit intercept)", fixed(live), fixed(base), ""),
        (
            "**server CPU per added viewer** (% of a core, fit slope)",
            pv(live) + verdict(lv < 0.01 if lv is not None else None),
            pv(base),
            "< 1 %",
        ),
        (
            "**baseline / livehub per viewer**",
            "",
            f"{'≥ ' if ratio_lb else ''}{ratio:,.1f}x{verdict(ratio >= 20)}" if ratio else "n/a",
            "≥ 20x",
        ),
        (
            "viewers one core could serve ((1 − fixed) / per-viewer)",
            capacity(live),
            capacity(base),
            "~200",
        ),
        (
            "**late joiner: WHEP POST → first keyframe, ms** (median / max, per level)",
            late_levels(live),
            late_levels(base),
            "< 500",
        ),
        (
            "late joiner at the top level: POST → answer ; → ICE+DTLS connected, ms (median / max)",
            late_top(live),
            late_top(base),
            "",
        ),
        ("publisher: PLIs received / keyframes sent", pli(live), pli(base), ""),
        ("load process CPU (cores) per level", loader_levels(live), loader_levels(base), "< 1"),
        ("max CPU others took: server core / load core", others(live), others(base), "~0"),
    ]
    lines.append(
        "| | livehub (forwarding) | baseline (aiortc MediaRelay, re-encode per viewer) | target |"
    )
    lines.append("|---|---|---|---|")
    for label, a, b, t in rows:
        lines.append(f"| {label} | {a} | {b} | {t} |")
    lines.append("")
    for name, r in (("livehub", live), ("baseline", base)):
        if not r or not r.get("levels"):
            continue
        lines.append(f"{name} per level:")
        lines.append("")
        lines.append(
            "| viewers | server CPU | (cpu − cpu@0) / viewers | viewer fps min / median "
            "| kbit/s per viewer | publisher fps | load CPU | others (server / load core) "
            "| server RSS MB | late joiner first keyframe ms (median / max) "
            "| UDP drops server / load |"
        )
        lines.append("|---:|---:|---:|---|---:|---:|---:|---|---:|---|---|")
        c0 = r["levels"][0]["server_cpu"] if r["levels"][0]["viewers"] == 0 else None
        for x in r["levels"]:
            marg = (
                pct((x["server_cpu"] - c0) / x["viewers"])
                if c0 is not None and x["viewers"]
                else ""
            )
            lines.append(
                f"| {x['viewers']}{' *' if x['saturated'] else ''} | {x['server_cpu']:.3f} | "
                f"{marg} | "
                f"{dash(x['viewer_fps_min'])} / {dash(x['viewer_fps_median'])} | "
                f"{dash(x['viewer_kbps_median'])} | "
                f"{x['publisher_fps']} | {x['loader_cpu']:.3f} | {x['others_server_core']} / "
                f"{x['others_load_core']} | {x['server_rss_mb']} | "
                f"{ms((x.get('late') or {}).get('first_keyframe_ms'))} | "
                f"{dash(x.get('udp_drops_server'))} / {dash(x.get('udp_drops_load'))} |"
            )
        lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------------------


def parse_levels(s: str) -> list[int]:
    levels = sorted({int(x) for x in s.replace(" ", "").split(",") if x})
    if not levels or levels[0] < 0:
        raise argparse.ArgumentTypeError(f"bad viewer levels {s!r}")
    return levels


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="media fan-out benchmark: livehub vs MediaRelay")
    ap.add_argument(
        "--viewers",
        type=parse_levels,
        default=parse_levels("0,10,25,50"),
        help="livehub viewer levels (default 0,10,25,50)",
    )
    ap.add_argument(
        "--baseline-viewers",
        type=parse_levels,
        default=parse_levels("0,2,5,10"),
        help="baseline viewer levels (default 0,2,5,10); stops at saturation",
    )
    ap.add_argument("--hold", type=float, default=15.0, help="measured seconds per level")
    ap.add_argument(
        "--settle", type=float, default=3.0, help="seconds after the level's joins before measuring"
    )
    ap.add_argument("--warmup", type=float, default=2.0, help="seconds after publishing")
    ap.add_argument("--late-joins", type=int, default=5)
    ap.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: livehub 0,5,10, baseline 0,2, 5 s holds, 3 late joins",
    )
    ap.add_argument("--skip-baseline", action="store_true")
    ap.add_argument("--skip-livehub", action="store_true")
    ap.add_argument("--json", help="also write all results as JSON here")
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--bitrate", type=int, default=2500, help="kbit/s of the pre-encoded stream")
    ap.add_argument("--gop", type=float, default=2.0, help="seconds between keyframes")
    ap.add_argument("--clip-seconds", type=float, default=10.0)
    ap.add_argument("--noise", type=int, default=8, help="temporal noise strength (0 = none)")
    ap.add_argument("--preset", default="veryfast", help="libx264 preset for the pre-encode")
    ap.add_argument(
        "--ignore-pli",
        action="store_true",
        help="the publisher ignores keyframe requests (like OBS)",
    )
    ap.add_argument("--join-batch", type=int, default=5, help="concurrent viewer joins")
    ap.add_argument("--join-timeout", type=float, default=20.0)
    ap.add_argument(
        "--saturation",
        type=float,
        default=0.9,
        help="server CPU (cores) at which a level counts as saturated",
    )
    ap.add_argument("--server-core", type=int, default=0)
    ap.add_argument("--load-core", type=int, default=1)
    ap.add_argument("--startup-timeout", type=float, default=60.0)
    ap.add_argument("--stop-timeout", type=float, default=10.0)
    ap.add_argument(
        "--retries",
        type=int,
        default=2,
        help="measure a level again (up to this many times) when other processes "
        "took a noticeable share of the server's or the load core",
    )
    ap.add_argument(
        "--disturbance",
        type=float,
        default=0.1,
        help="share of a core taken by others that counts as disturbed",
    )
    ap.add_argument(
        "--wait-quiet",
        type=float,
        default=120.0,
        help="before each server, wait up to this long for the machine to be idle",
    )
    ap.add_argument("--livehub-log-level", default="WARNING")
    ap.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (server logs)")
    a = ap.parse_args()
    if a.quick:  # smaller defaults; flags given explicitly still win
        for name, value in (
            ("viewers", [0, 5, 10]),
            ("baseline_viewers", [0, 2]),
            ("hold", 5.0),
            ("settle", 2.0),
            ("late_joins", 3),
            ("wait_quiet", 10.0),
        ):
            if getattr(a, name) == ap.get_default(name):
                setattr(a, name, value)
    return a


async def amain(args: argparse.Namespace, results: dict[str, Any], tmp: Path) -> None:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    for sig in (signal.SIGTERM, signal.SIGINT):  # SIGINT even when started with it ignored
        loop.add_signal_handler(sig, task.cancel)
    clip = results["_clip"]
    if not args.skip_livehub:
        await run_target(
            "livehub", args.viewers, clip, args, tmp, results.setdefault("livehub", {})
        )
    if not args.skip_baseline:
        await run_target(
            "baseline", args.baseline_viewers, clip, args, tmp, results.setdefault("baseline", {})
        )


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # until the loop takes over
    machine = machine_info()
    tmp = Path(tempfile.mkdtemp(prefix="livehub-bench-media-"))
    results: dict[str, Any] = {"machine": machine, "args": {k: v for k, v in vars(args).items()}}
    machine.update({"aiortc": aiortc.__version__, "av": av.__version__})
    problems: list[str] = []
    notes: list[str] = []
    try:
        log(
            f"[bench] pre-encoding {args.clip_seconds:g} s of {args.size}@{args.fps} "
            f"at {args.bitrate} kbit/s ..."
        )
        clip = encode_clip(args)  # before pinning: may use both cores, no server runs yet
        log(
            f"[bench] clip: {len(clip.frames)} frames, keyframes at {clip.keyframes}, "
            f"{clip.kbps:,.0f} kbit/s, profile-level {clip.profile_level}, "
            f"{clip.encode_seconds:.1f} s to encode"
        )
        results["_clip"] = clip
        results["clip"] = {
            "frames": len(clip.frames),
            "keyframes": clip.keyframes,
            "kbps": round(clip.kbps),
            "encode_seconds": round(clip.encode_seconds, 1),
            "profile_level": clip.profile_level,
            "max_frame_bytes": max(len(f) for f in clip.frames),
        }
        pin_to(args.load_core)
        results["load_affinity"] = sorted(os.sched_getaffinity(0))
        asyncio.run(amain(args, results, tmp))
    except (KeyboardInterrupt, asyncio.CancelledError):
        log("[bench] interrupted; stopping children")
        problems.append("interrupted")
    finally:
        CHILDREN.stop_all()
    results.pop("_clip", None)
    for k in ("livehub", "baseline"):
        r = results.get(k)
        if not r:
            continue
        if r.get("error"):
            problems.append(f"{k}: {r['error']}")
        if r.get("server_exit") is not None:
            problems.append(
                f"{k}: server exited early with rc {r['server_exit']} (log {r.get('server_log')})"
            )
        if k == "livehub" and r.get("server_stop_rc") == -signal.SIGKILL:
            problems.append(f"livehub did not exit within {args.stop_timeout:g} s of SIGTERM")
        for x in r.get("levels", []):
            lo = (x.get("late") or {}).get("others") or {}
            if max(lo.values() or [0]) > args.disturbance:
                notes.append(
                    f"{k} late joins @ {x['viewers']} viewers: other processes took CPU "
                    f"from the benchmark's cores ({lo})"
                )
        lf = r.get("server_log_findings") or {}
        if lf.get("tracebacks"):
            problems.append(f"{k}: {lf['tracebacks']} traceback(s) in {r.get('server_log')}")
        for x in r.get("levels", []):
            if x.get("join_failures"):
                problems.append(
                    f"{k} @ {x['viewers']}: {x['join_failures']} viewer(s) failed: "
                    f"{x.get('join_errors')}"
                )
            if x.get("disturbed"):
                notes.append(
                    f"{k} @ {x['viewers']} viewers: other processes took CPU from the "
                    f"benchmark's cores in every attempt ({x['others_server_core']} / "
                    f"{x['others_load_core']} of a core, {x['attempts']} attempts)"
                )
            if x["loader_cpu"] > 0.9:
                problems.append(
                    f"{k} @ {x['viewers']}: the load process used "
                    f"{x['loader_cpu']:.2f} of its core: it may be the bottleneck"
                )
    results["problems"] = problems
    results["notes"] = notes
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    print(
        json.dumps(
            {k: v for k, v in results.items() if k not in ("machine", "args")},
            indent=1,
            default=str,
        )
    )
    print()
    if "clip" in results:
        print(report(results, args))
    if notes:
        print("Notes:")
        for n in notes:
            print(f"- {n}")
    if problems:
        print("Problems:")
        for p in problems:
            print(f"- {p}")
    if args.keep_tmp or problems:
        log(f"[bench] logs kept in {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
