"""Start a throwaway redis-server for tests and scripts.

Not a fixture: ``tests/conftest.py`` wraps it, and scripts can call
``start_redis`` directly.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis
from binaries import find_binary

_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 10.0


@dataclass
class RedisProcess:
    """A running redis-server on 127.0.0.1."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def kill(self) -> None:
        """SIGKILL: no save, no goodbye to the clients."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=_STOP_TIMEOUT)

    def stop(self) -> None:
        """Terminate the server and wait for it to exit."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class OwnRedis:
    """A test's own Redis "service" on one port: killed, frozen and started again.

    ``start()`` starts it, again on the same port and in the same directory; what it
    comes back with is ``keeps``: nothing ("empty"), everything (an fsync'd
    append-only file, "persisted"), or the last ``snapshot()`` ("snapshot", an
    older copy). ``stop_all()`` ends every server it started (the ``own_redis``
    fixture calls it).
    """

    tmp_dir: Path
    keeps: str = "empty"
    servers: list[RedisProcess] = field(default_factory=list)

    def start(self) -> RedisProcess:
        port = self.servers[0].port if self.servers else None
        server = start_redis(self.tmp_dir, port=port, persist=self.keeps == "persisted")
        self.servers.append(server)
        return server

    def snapshot(self) -> None:
        """SAVE now (what a "snapshot" restart comes back with)."""
        if self.keeps == "snapshot":
            with contextlib.closing(redis.Redis(port=self.port)) as client:
                client.save()

    @property
    def port(self) -> int:
        return self.current.port

    @property
    def current(self) -> RedisProcess:
        return self.servers[-1]

    @property
    def url(self) -> str:
        return self.current.url

    def kill(self) -> None:
        self.current.kill()

    def freeze(self) -> None:
        os.kill(self.current.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        if self.current.process.poll() is None:
            os.kill(self.current.process.pid, signal.SIGCONT)

    def stop_all(self) -> None:
        for server in self.servers:
            if server.process.poll() is None:
                os.kill(server.process.pid, signal.SIGCONT)
            server.stop()


def start_redis(
    tmp_dir: Path, binary: str | None = None, *, port: int | None = None, persist: bool = False
) -> RedisProcess:
    """Start redis-server on a free local port (or ``port``, to restart one) and wait for PING.

    ``persist``: an append-only file in ``tmp_dir`` (fsync every write), so a
    restart in the same directory comes back with the data; otherwise it keeps nothing.
    """
    executable = find_binary("redis-server", binary, "run scripts/install-system")
    tmp_dir.mkdir(parents=True, exist_ok=True)
    port = port or _free_port()
    log_path = tmp_dir / f"redis-{port}.log"
    command = [
        executable,
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--save", "",
        "--appendonly", "yes" if persist else "no",
        "--appendfsync", "always",
        "--dir", str(tmp_dir),
        "--daemonize", "no",
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    server = RedisProcess(process=process, port=port, log_path=log_path)
    try:
        _wait_for_ping(server)
    except BaseException:
        server.stop()
        raise
    return server


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_for_ping(server: RedisProcess) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    client = redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=1.0)
    try:
        while True:
            if server.process.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited with code {server.process.returncode}:\n"
                    + server.log_path.read_text(errors="replace")
                )
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"redis-server on port {server.port} did not answer PING "
                    f"within {_START_TIMEOUT:.0f} s"
                )
            time.sleep(0.02)
    finally:
        client.close()
