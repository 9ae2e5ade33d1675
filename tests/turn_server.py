"""Start a throwaway coturn ``turnserver`` for tests, in TURN REST API mode.

Not a fixture: tests wrap it (``tests/media/test_turn.py``). It listens on
127.0.0.1 only, UDP and TCP on one free port, without TLS/DTLS or its telnet
CLI, relays to loopback peers (which a production server must refuse), and
accepts the time-limited credentials of ``--use-auth-secret`` for ``secret``.
"""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from aioice import stun
from binaries import find_binary

_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 10.0
REALM = "livehub.test"


@dataclass
class TurnProcess:
    """A running turnserver on 127.0.0.1."""

    process: subprocess.Popen[bytes]
    port: int
    secret: str
    log_path: Path

    @property
    def url(self) -> str:
        return f"turn:127.0.0.1:{self.port}?transport=udp"

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        """Terminate the server and wait for it to exit."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_turn(tmp_dir: Path, secret: str, binary: str | None = None) -> TurnProcess:
    """Start turnserver on a free local port and wait until it answers a STUN binding."""
    executable = find_binary("turnserver", binary, "run scripts/install-system (coturn)")
    tmp_dir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    relay_low = _free_port()
    log_path = tmp_dir / f"turn-{port}.log"
    command = [
        executable,
        "-n",  # no configuration file: only these flags
        "--listening-ip=127.0.0.1",
        f"--listening-port={port}",
        "--relay-ip=127.0.0.1",
        # relay ports: a small range starting at a port that was free just now
        f"--min-port={relay_low}",
        f"--max-port={min(relay_low + 20, 65535)}",
        "--use-auth-secret",
        f"--static-auth-secret={secret}",
        f"--realm={REALM}",
        "--no-tls",
        "--no-dtls",
        "--no-cli",
        "--no-rfc5780",
        "--allow-loopback-peers",
        "--no-software-attribute",
        f"--db={tmp_dir / 'turndb'}",
        f"--pidfile={tmp_dir / 'turnserver.pid'}",
        f"--log-file={log_path}",
        "--simple-log",
        "--no-stdout-log",
        "--verbose",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = TurnProcess(process=process, port=port, secret=secret, log_path=log_path)
    try:
        _wait_for_binding(server)
    except BaseException:
        server.stop()
        raise
    return server


def _free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (turnserver listens on both)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port: int = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port


def _wait_for_binding(server: TurnProcess) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.2)
        while True:
            if server.process.poll() is not None:
                raise RuntimeError(
                    f"turnserver exited with code {server.process.returncode}:\n{server.log()}"
                )
            request = stun.Message(
                message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST
            )
            try:
                sock.sendto(bytes(request), server.address)
                answer = stun.parse_message(sock.recv(2048))
                if answer.transaction_id == request.transaction_id:
                    return
            except (TimeoutError, ConnectionRefusedError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"turnserver on port {server.port} did not answer a STUN binding "
                    f"within {_START_TIMEOUT:.0f} s:\n{server.log()}"
                )
