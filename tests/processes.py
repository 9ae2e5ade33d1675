"""Run the real server as separate OS processes (``python -m livehub serve``).

Not a fixture: ``tests/conftest.py`` wraps ``ProcessGroup`` and ``NodeClients`` in
the ``procs``, ``node_clients`` and ``two_nodes`` fixtures, so every process a test
starts is killed in teardown, whatever the test did.

Each process writes stdout and stderr to files (a pipe nobody reads would fill
and stall the server); ``ServerProcess.stdout()`` and ``stderr()`` read them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from support import ADMIN_KEY, SECRET, LiveClient, free_port

REPO_ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0
_PORT_ATTEMPTS = 3
_loads = json.loads  # ``api`` takes a parameter named json


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The test's environment without any LIVEHUB_* variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEHUB_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def livehub_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "livehub", *args]


def run_livehub(
    *args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None, timeout: float = 15
) -> subprocess.CompletedProcess[str]:
    """Run a short ``livehub`` command (``token``, a refused ``serve``) to completion."""
    return subprocess.run(
        livehub_command(*args),
        env=clean_env(env),
        cwd=cwd or REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


async def run_livehub_async(
    *args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None, timeout: float = 15
) -> subprocess.CompletedProcess[str]:
    """``run_livehub`` without blocking the event loop, so several can run at once."""
    process = await asyncio.create_subprocess_exec(
        *livehub_command(*args),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=clean_env(env),
        cwd=cwd or REPO_ROOT,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return subprocess.CompletedProcess(
        list(args), process.returncode, out.decode(errors="replace"), err.decode(errors="replace")
    )


@dataclass
class ServerProcess:
    """One ``livehub serve`` process listening on 127.0.0.1:``port``."""

    process: subprocess.Popen[bytes]
    port: int
    data_dir: Path | None
    stdout_path: Path
    stderr_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def output(self) -> str:
        return f"--- stdout ---\n{self.stdout()}\n--- stderr ---\n{self.stderr()}"

    def alive(self) -> bool:
        return self.process.poll() is None

    def health(self, timeout: float = 2.0) -> tuple[int, Any]:
        """GET /healthz: (status, body); status 0 when nothing answers."""
        try:
            with urllib.request.urlopen(self.url + "/healthz", timeout=timeout) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:  # 503 still says what fails
            try:
                return exc.code, json.loads(exc.read())
            except ValueError:
                return exc.code, None
        except (OSError, ValueError):
            return 0, None

    def wait_healthy(self, timeout: float = START_TIMEOUT) -> dict[str, Any]:
        """Wait for ``GET /healthz`` to answer 200; fail with the server's output."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive():
                raise ServerFailed(
                    f"livehub exited with code {self.process.returncode} before it was "
                    f"healthy\n{self.output()}"
                )
            status, body = self.health(timeout=1.0)
            if status == 200:
                return dict(body)
            if time.monotonic() > deadline:
                raise ServerFailed(
                    f"livehub on port {self.port} not healthy within {timeout:.0f} s "
                    f"(last status {status})\n{self.output()}"
                )
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to flush or clean up."""
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
        self.process.wait(timeout=STOP_TIMEOUT)

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM (a graceful shutdown), then SIGKILL if it has not exited in time."""
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT)
        return self.process.returncode


class ServerFailed(AssertionError):
    """A server process did not come up; the message carries its output."""


@dataclass
class ProcessGroup:
    """Starts server processes and stops every one of them in ``stop_all``."""

    log_dir: Path
    processes: list[ServerProcess] = field(default_factory=list)

    def launch(
        self,
        args: Sequence[str],
        *,
        port: int,
        data_dir: Path | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> ServerProcess:
        """Start ``python -m livehub <args>`` as given; do not wait for it."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        n = len(self.processes)
        stdout_path = self.log_dir / f"server-{n}-{port}.out"
        stderr_path = self.log_dir / f"server-{n}-{port}.err"
        with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
            process = subprocess.Popen(
                livehub_command(*args),
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env=clean_env(env),
                cwd=cwd or self.log_dir,
            )
        server = ServerProcess(process, port, data_dir, stdout_path, stderr_path)
        self.processes.append(server)
        return server

    def serve(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        redis_url: str | None = None,
        secret: str | None = SECRET,
        admin_key: str | None = ADMIN_KEY,
        demo: bool = False,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        timeout: float = START_TIMEOUT,
    ) -> ServerProcess:
        """Start ``livehub serve`` on a free port (unless given) and wait until healthy."""
        for attempt in range(_PORT_ATTEMPTS):
            chosen = port or free_port()
            args = ["serve", "--host", "127.0.0.1", "--port", str(chosen)]
            args += ["--data-dir", str(data_dir)]
            if secret is not None:
                args += ["--secret", secret]
            if admin_key is not None:
                args += ["--admin-key", admin_key]
            if redis_url is not None:
                args += ["--redis-url", redis_url]
            if not demo:
                args.append("--no-demo")
            args += list(extra_args)
            server = self.launch(args, port=chosen, data_dir=data_dir, env=env)
            try:
                server.wait_healthy(timeout)
            except ServerFailed:
                # another process took the free port between our probe and its bind
                lost_race = "address already in use" in server.stderr().lower()
                if port is None and lost_race and attempt + 1 < _PORT_ATTEMPTS:
                    server.stop()
                    continue
                server.stop()
                raise
            return server
        raise AssertionError("unreachable")

    def stop_all(self) -> None:
        """Stop every process started here (SIGKILL for any that linger)."""
        for server in self.processes:
            if server.alive():
                server.process.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT
        for server in self.processes:
            try:
                server.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait(timeout=STOP_TIMEOUT)


TwoNodes = tuple[ServerProcess, ServerProcess]


class NodeClients(list[LiveClient]):
    """Socket.IO clients of server processes, to close before the processes stop."""

    async def connect(
        self, node: ServerProcess, room: str, token: str, *, last_event_id: int | None = None
    ) -> LiveClient:
        """A client of ``node``'s ``room``, kept here before it connects (a refused one too)."""
        client = LiveClient(node.url, room, token, last_event_id)
        self.append(client)
        await client.connect()
        return client

    async def close_all(self) -> None:
        for client in self:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.close(), 5)


async def api(
    base_url: str,
    method: str,
    path: str,
    *,
    token: str | None = ADMIN_KEY,
    json: Any = None,
) -> tuple[int, Any]:
    """One REST call to a server process: (status, decoded JSON body or None)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    timeout = aiohttp.ClientTimeout(total=10)
    async with (
        aiohttp.ClientSession(timeout=timeout) as http,
        http.request(method, base_url + path, json=json, headers=headers) as resp,
    ):
        text = await resp.text()
        try:
            body = _loads(text) if text else None
        except ValueError:
            body = None
        return resp.status, body


async def create_room(base_url: str, room_id: str, title: str, **body: Any) -> dict[str, Any]:
    """POST /api/rooms to a server process with the admin key; the room must be created."""
    status, created = await api(
        base_url, "POST", "/api/rooms", json={"id": room_id, "title": title, **body}
    )
    assert status == 201, created
    return dict(created)
