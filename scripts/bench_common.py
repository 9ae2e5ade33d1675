"""Shared helpers for the chat benchmarks (scripts/bench_chat.py, scripts/chat_load.py).

Only the standard library at import time; PyJWT / psutil are imported where used.
Everything here talks to 127.0.0.1 only.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
SCRIPTS = Path(__file__).resolve().parent
REPO = SCRIPTS.parent
#: the project's interpreter (the virtual environment's when installed)
PY = (
    str(REPO / ".venv" / "bin" / "python")
    if (REPO / ".venv" / "bin" / "python").exists()
    else sys.executable
)


# ---------------------------------------------------------------------------
# process setup: CPU pinning and file-descriptor limits


def raise_nofile() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def pin_to(core: int | None) -> None:
    """Pin the calling process to one core, if that core exists."""
    if core is None or not hasattr(os, "sched_setaffinity"):
        return
    ncpu = os.cpu_count() or 1
    if core < ncpu:
        os.sched_setaffinity(0, {core})


def child_setup(core: int | None):
    """A preexec_fn for subprocess.Popen: pin to `core` and raise RLIMIT_NOFILE."""

    def _setup() -> None:
        pin_to(core)
        raise_nofile()

    return _setup


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------------------
# child processes: tracked so that they are always cleaned up


class Children:
    """Processes this benchmark started. Each gets its own session (process group),
    so stopping one also stops anything it spawned; nothing else is touched."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[Any]] = []

    def start(
        self,
        argv: list[str],
        *,
        core: int | None,
        log: Path | None = None,
        stdin: Any = subprocess.DEVNULL,
        stdout: Any = None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> subprocess.Popen[Any]:
        out: Any = stdout
        err: Any = None
        if log is not None:
            fh = open(log, "ab")
            err = fh
            if out is None:
                out = fh
        p = subprocess.Popen(
            argv,
            stdin=stdin,
            stdout=out,
            stderr=err,
            env=env,
            cwd=cwd,
            preexec_fn=child_setup(core),
            start_new_session=True,
        )
        p._bench_log = err  # type: ignore[attr-defined]
        self.procs.append(p)
        return p

    def stop(self, p: subprocess.Popen[Any], timeout: float = 5.0) -> int | None:
        if p.poll() is None:
            for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 3.0)):
                try:
                    os.killpg(p.pid, sig)  # the group we created for this child only
                except (ProcessLookupError, PermissionError):
                    try:
                        p.send_signal(sig)
                    except ProcessLookupError:
                        pass
                try:
                    p.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        else:
            # the leader exited; make sure nothing it spawned stays behind
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        fh = getattr(p, "_bench_log", None)
        if fh is not None:
            try:
                fh.close()
            except OSError:
                pass
        if p in self.procs:
            self.procs.remove(p)
        return p.returncode

    def stop_all(self) -> None:
        for p in list(reversed(self.procs)):
            try:
                self.stop(p, timeout=3.0)
            except Exception:
                pass


# ---------------------------------------------------------------------------
# tiny HTTP client (urllib, 127.0.0.1 only)


def http(
    method: str, url: str, body: Any = None, token: str | None = None, timeout: float = 5.0
) -> tuple[int, Any]:
    assert url.startswith(f"http://{HOST}:"), url
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
            status = r.status
    except urllib.error.HTTPError as e:
        raw = e.read()
        status = e.code
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")[:500]


def wait_healthz(port: int, proc: subprocess.Popen[Any] | None, timeout: float = 60.0) -> float:
    """Poll GET /healthz until it answers 200; return seconds waited. Raises on timeout/exit."""
    t0 = time.monotonic()
    last: Any = None
    while time.monotonic() - t0 < timeout:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(
                f"server exited with code {proc.returncode} before /healthz answered"
            )
        try:
            status, body = http("GET", f"http://{HOST}:{port}/healthz", timeout=2.0)
            if status == 200:
                return time.monotonic() - t0
            last = (status, body)
        except (OSError, urllib.error.URLError) as e:
            last = repr(e)
        time.sleep(0.2)
    raise RuntimeError(f"/healthz did not answer 200 within {timeout:.0f}s (last: {last})")


# ---------------------------------------------------------------------------
# tokens


def mint_tokens(
    secret: str, room: str, n: int, *, prefix: str = "bench", ttl: int = 6 * 3600
) -> list[str]:
    """n viewer tokens (HS256, aud=livehub) signed with the server secret, minted locally."""
    import jwt  # PyJWT

    now = int(time.time())
    out = []
    for i in range(n):
        claims = {
            "aud": "livehub",
            "room": room,
            "role": "viewer",
            "sub": f"{prefix}-{i}",
            "name": f"{prefix} {i}",
            "iat": now,
            "exp": now + ttl,
        }
        out.append(jwt.encode(claims, secret, algorithm="HS256"))
    return out


def random_secret(nbytes: int = 32) -> str:
    """Random, URL-safe, and never starting with "-" (it goes on a command line)."""
    return "k" + secrets.token_urlsafe(nbytes)


# ---------------------------------------------------------------------------
# machine


def machine_info() -> dict[str, Any]:
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
                break
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "mem_gb": mem_gb,
        "python": sys.version.split()[0],
        "kernel": platform.release(),
    }


def log(*a: Any) -> None:
    print(*a, file=sys.stderr, flush=True)


def _stat_line(prefix: str) -> list[int] | None:
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith(prefix):
                return ([int(x) for x in line.split()[1:]] + [0] * 8)[:8]
    except (OSError, ValueError):
        pass
    return None


def core_times(core: int | None) -> tuple[float, float, float, float] | None:
    """(busy, steal, irq, total) seconds for one core from /proc/stat ("cpuN"), or None.
    busy = user + nice + system (no irq/softirq, no idle/iowait/steal). Over a window,
    busy minus our own process's CPU is roughly what other processes took from that core."""
    if core is None:
        return None
    v = _stat_line(f"cpu{core} ")
    if v is None:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    user, nice, system, idle, iowait, irq, softirq, steal = v
    busy = user + nice + system
    total = busy + idle + iowait + irq + softirq + steal
    return busy / tick, steal / tick, (irq + softirq) / tick, total / tick


def core_window(
    a: tuple[float, ...] | None, b: tuple[float, ...] | None, wall: float
) -> dict[str, float] | None:
    if a is None or b is None or wall <= 0:
        return None
    return {
        "busy": round((b[0] - a[0]) / wall, 3),
        "steal": round((b[1] - a[1]) / wall, 3),
        "irq": round((b[2] - a[2]) / wall, 3),
    }


def machine_busy(interval: float = 2.0) -> float:
    """Fraction of all cores busy (user+nice+system+irq+softirq) over `interval` seconds."""
    a = _stat_line("cpu ")
    time.sleep(interval)
    b = _stat_line("cpu ")
    if a is None or b is None:
        return 0.0
    d = [y - x for x, y in zip(a, b, strict=True)]
    total = sum(d) or 1
    return (d[0] + d[1] + d[2] + d[5] + d[6]) / total


def wait_quiet(max_wait: float, threshold: float = 0.08) -> tuple[bool, float]:
    """Wait (at most max_wait s) until the machine is nearly idle; (quiet?, last busy)."""
    t0 = time.monotonic()
    busy = machine_busy(1.0)
    while busy > threshold and time.monotonic() - t0 < max_wait:
        busy = machine_busy(2.0)
    return busy <= threshold, busy
