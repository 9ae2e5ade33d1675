"""Start a throwaway redis-server for tests and scripts.

Not a fixture: ``tests/conftest.py`` wraps it, and scripts can call
``start_redis`` directly.
"""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass
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

    def stop(self) -> None:
        """Terminate the server and wait for it to exit."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_redis(
    tmp_dir: Path, binary: str | None = None, *, port: int | None = None
) -> RedisProcess:
    """Start redis-server on a free local port (or ``port``: a restart of an earlier
    one, empty) and wait until it answers PING."""
    executable = find_binary("redis-server", binary, "run scripts/install-system")
    tmp_dir.mkdir(parents=True, exist_ok=True)
    port = port or _free_port()
    log_path = tmp_dir / f"redis-{port}.log"
    command = [
        executable,
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--save", "",
        "--appendonly", "no",
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
