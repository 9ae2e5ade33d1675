"""The ``livehub`` command as an operator runs it: ``serve`` and ``token``.

Every server here is a real ``python -m livehub serve`` process; its stdout and
stderr are what the operator sees.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sqlite3
from pathlib import Path

import aiohttp
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection
from processes import (
    REPO_ROOT,
    NodeClients,
    ProcessGroup,
    ServerProcess,
    api,
    run_livehub_async,
)
from support import ADMIN_KEY, SECRET, LiveClient, Refused, free_port, wait_disconnected
from turn_server import start_turn

from livehub import cli
from livehub.errors import Forbidden
from livehub.rooms import tokens
from livehub.rooms.models import Principal

ALL_ROLES = frozenset({"host", "moderator", "viewer"})
VIEWER_ONLY = frozenset({"viewer"})
LINK = re.compile(r"^\s+(viewer|moderator|host):\s+(\S+)\s*$")
ADMIN_LINE = re.compile(r"^admin key \(shown once; kept in (.+)\): (\S+)$")
ROOM_KEY = "room-key-0123456789abcdef0123456789abcdef"
TURN_SECRET = "turn-secret-0123456789abcdef0123456789"


def serve_bare(procs: ProcessGroup, data: Path, *extra: str) -> ServerProcess:
    """``livehub serve`` with only a port and a data dir: keys and demo as shipped."""
    port = free_port()
    server = procs.launch(
        ["serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data), *extra],
        port=port,
        data_dir=data,
    )
    server.wait_healthy()
    return server


def demo_links(stdout: str) -> dict[str, str]:
    lines = stdout.splitlines()
    assert "demo room:" in lines, stdout
    start = lines.index("demo room:")
    links = {}
    for line in lines[start + 1 : start + 4]:
        match = LINK.match(line)
        assert match, stdout
        links[match[1]] = match[2]
    return links


def admin_key_lines(stdout: str) -> list[re.Match[str]]:
    return [m for line in stdout.splitlines() if (m := ADMIN_LINE.match(line))]


def token_in(link: str) -> str:
    _, sep, token = link.partition("#token=")
    assert sep and token, link
    return token


def refusal_code(refusal: object) -> str:
    """python-socketio wraps the error body of a connect_error in ``data``."""
    assert isinstance(refusal, dict), refusal
    body = refusal.get("data", refusal)
    assert isinstance(body, dict), refusal
    return str(body["code"])


async def fetch(url: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        return resp.status, resp.content_type, await resp.text()


async def test_first_start_prints_admin_key_once_and_demo_links(
    procs: ProcessGroup, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    first = serve_bare(procs, data)
    stdout = first.stdout()
    assert f"livehub serving on {first.url}" in stdout.splitlines()

    # The admin key is printed once, and it is the one kept in the data directory.
    shown = admin_key_lines(stdout)
    assert len(shown) == 1, stdout
    admin_key = shown[0][2]
    assert Path(shown[0][1]) == data / "admin.key"
    assert (data / "admin.key").read_text().strip() == admin_key
    assert (data / "admin.key").stat().st_mode & 0o077 == 0
    assert (data / "secret.key").stat().st_mode & 0o077 == 0
    status, body = await api(first.url, "POST", "/api/rooms", token=admin_key, json={"title": "T"})
    assert status == 201, body

    # The demo room with its three links; the staff links carry working tokens.
    links = demo_links(stdout)
    assert links["viewer"] == f"{first.url}/watch/demo"
    assert links["moderator"].startswith(f"{first.url}/moderate/demo#token=")
    assert links["host"].startswith(f"{first.url}/moderate/demo#token=")
    secret = (data / "secret.key").read_text().strip()
    keys = [(secret, ALL_ROLES)]
    mod = tokens.verify(token_in(links["moderator"]), keys, "demo")
    host = tokens.verify(token_in(links["host"]), keys, "demo")
    assert (mod.role, host.role) == ("moderator", "host")
    lines = stdout.splitlines()
    host_token = token_in(links["host"])
    assert f"  studio:    {first.url}/studio/demo#token={host_token}" in lines, stdout
    assert f"  WHIP URL: {first.url}/whip/demo" in lines, stdout
    assert f"  Bearer token: {host_token}" in lines, stdout
    with pytest.raises(Forbidden):
        tokens.verify(token_in(links["moderator"]), keys, "other")

    status, content_type, page = await fetch(links["viewer"])
    assert (status, content_type) == (200, "text/html")
    assert page == (REPO_ROOT / "web" / "static" / "watch.html").read_text()
    status, content_type, page = await fetch(links["moderator"].partition("#")[0])
    assert (status, content_type) == (200, "text/html")
    assert page == (REPO_ROOT / "web" / "static" / "moderate.html").read_text()
    assert first.stop() == 0

    # Second start on the same directory: no admin key shown, same keys, demo again.
    second = serve_bare(procs, data)
    stdout = second.stdout()
    assert admin_key_lines(stdout) == [], stdout
    assert "admin key" not in stdout
    assert (data / "admin.key").read_text().strip() == admin_key
    assert (data / "secret.key").read_text().strip() == secret
    links = demo_links(stdout)
    assert tokens.verify(token_in(links["moderator"]), keys, "demo").role == "moderator"
    status, _ = await api(second.url, "GET", "/api/rooms/demo", token=None)
    assert status == 200
    status, body = await api(second.url, "POST", "/api/rooms", token=admin_key, json={"title": "U"})
    assert status == 201, body


@pytest.mark.parametrize("log_level", ["INFO", "DEBUG"])
async def test_tokens_stay_out_of_the_logs(
    procs: ProcessGroup, node_clients: NodeClients, tmp_path: Path, log_level: str
) -> None:
    data = tmp_path / "data"
    server = serve_bare(procs, data, "--log-level", log_level)
    secret = (data / "secret.key").read_text().strip()
    viewer, _, _ = tokens.mint(secret, room="demo", role="viewer", name="Ann")
    host, _, _ = tokens.mint(secret, room="demo", role="host", name="Hal")
    forged, _, _ = tokens.mint(SECRET, room="demo", role="host", name="Eve")

    ann = await node_clients.connect(server, "demo", viewer)
    assert ann.welcome["you"]["role"] == "viewer"
    with pytest.raises(Refused):
        await node_clients.connect(server, "demo", forged)
    status, body = await api(server.url, "POST", "/api/rooms/demo/streams", token=host)
    assert status == 201, body
    status, body = await api(server.url, "POST", "/api/rooms/demo/streams", token=forged)
    assert status == 401, body
    await ann.close()
    assert server.stop() == 0  # a clean stop flushes everything it logged

    output = server.stdout() + server.stderr()
    assert "joined demo" in output, output  # connects are logged: the check below means something
    assert "connect refused: token_invalid" in output, output
    for secret_token in (viewer, host, forged):
        signature = secret_token.rsplit(".", 1)[1]
        assert signature not in output, f"a token reached the log:\n{output}"
    assert secret not in output


async def test_the_turn_secret_and_credentials_stay_out_of_the_logs(
    procs: ProcessGroup, tmp_path: Path
) -> None:
    turn = start_turn(tmp_path / "turn", TURN_SECRET)
    try:
        port = free_port()
        data = tmp_path / "data"
        args = ["serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data)]
        server = procs.launch(
            [*args, "--ice-server", turn.url, "--log-level", "DEBUG", "--admin-key", ADMIN_KEY],
            port=port,
            data_dir=data,
            env={"LIVEHUB_TURN_SECRET": TURN_SECRET},
        )
        server.wait_healthy()
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        try:
            pc.addTransceiver("video", direction="sendonly")
            await pc.setLocalDescription(await pc.createOffer())
            headers = {"Content-Type": "application/sdp", "Authorization": f"Bearer {ADMIN_KEY}"}
            async with (
                aiohttp.ClientSession() as http,
                http.post(
                    f"{server.url}/whip/demo", data=pc.localDescription.sdp, headers=headers
                ) as reply,
            ):
                assert reply.status == 201, await reply.text()
                links = reply.headers.getall("Link")
                answer = await reply.text()
        finally:
            await pc.close()
        assert server.stop() == 0
    finally:
        turn.stop()

    (link,) = links
    credential = re.search(r'credential="([^"]+)"', link)
    assert credential, link
    assert "typ relay" in answer, "the server allocated a relay: its TURN traffic was logged"
    output = server.stdout() + server.stderr()
    assert "TURN allocation created" in output, output
    assert TURN_SECRET not in output and credential[1] not in output, output


async def test_token_command_mints_verifiable_tokens() -> None:
    viewer, moderator = await asyncio.gather(
        run_livehub_async(
            "token", "--room", "course-1", "--key", ROOM_KEY, "--name", "Student",
            "--viewer-id", "u42",
        ),
        run_livehub_async(
            "token", "--room", "course-1", "--key", SECRET, "--role", "moderator", "--name", "Mo"
        ),
    )  # fmt: skip
    for done in (viewer, moderator):
        assert done.returncode == 0, done.stderr
        assert len(done.stdout.split()) == 1, done.stdout

    # A viewer token for one room, verifiable with the key it was signed with.
    token = viewer.stdout.strip()
    who = tokens.verify(token, [(ROOM_KEY, VIEWER_ONLY)], "course-1")
    assert who == Principal(room="course-1", viewer_id="u42", name="Student", role="viewer")
    with pytest.raises(Forbidden):
        tokens.verify(token, [(ROOM_KEY, VIEWER_ONLY)], "course-2")

    # Signed with the server secret it may carry a staff role; a room key may not.
    keys = [(SECRET, ALL_ROLES), (ROOM_KEY, VIEWER_ONLY)]
    assert tokens.verify(moderator.stdout.strip(), keys, "course-1").role == "moderator"
    with pytest.raises(Forbidden):
        tokens.verify(moderator.stdout.strip(), [(SECRET, VIEWER_ONLY)], "course-1")


def test_token_key_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --key: LIVEHUB_SECRET, then DATA_DIR/secret.key, else a clear refusal."""
    for name in [n for n in os.environ if n.startswith("LIVEHUB_")]:
        monkeypatch.delenv(name)
    base = ["token", "--room", "r", "--name", "N", "--data-dir", str(tmp_path / "data")]

    assert cli.main(base) == 2
    out = capsys.readouterr()
    assert out.out == "" and "secret" in out.err

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "secret.key").write_text(SECRET + "\n")
    assert cli.main(base) == 0
    token = capsys.readouterr().out.strip()
    assert tokens.verify(token, [(SECRET, ALL_ROLES)], "r").role == "viewer"

    other = "other-secret-0123456789abcdef0123456789"
    monkeypatch.setenv("LIVEHUB_SECRET", other)
    assert cli.main(base) == 0
    token = capsys.readouterr().out.strip()
    assert tokens.verify(token, [(other, ALL_ROLES)], "r").role == "viewer"


async def test_token_command_against_a_running_server(
    procs: ProcessGroup, node_clients: NodeClients, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    server = serve_bare(procs, data, "--no-demo", "--admin-key", ADMIN_KEY)
    status, created = await api(
        server.url, "POST", "/api/rooms", json={"id": "paid", "title": "Paid", "private": True}
    )
    assert status == 201, created
    room_key = created["room_key"]

    pat_done, mo_done, fake_done = await asyncio.gather(
        # a course platform mints a viewer token with the room key
        run_livehub_async("token", "--room", "paid", "--key", room_key, "--name", "Pat"),
        # a moderator token signed with the server secret, read from the data dir
        run_livehub_async(
            "token", "--room", "paid", "--data-dir", str(data), "--role", "moderator",
            "--name", "Mo",
        ),
        # the room key cannot make a moderator
        run_livehub_async(
            "token", "--room", "paid", "--key", room_key, "--role", "moderator", "--name", "X"
        ),
    )  # fmt: skip
    for done in (pat_done, mo_done, fake_done):
        assert done.returncode == 0, done.stderr

    pat = await node_clients.connect(server, "paid", pat_done.stdout.strip())
    assert pat.welcome["you"]["name"] == "Pat" and pat.welcome["you"]["role"] == "viewer"

    mo = await node_clients.connect(server, "paid", mo_done.stdout.strip())
    assert mo.welcome["you"]["role"] == "moderator"
    stats = await mo.call("mod_stats", {})
    assert stats["ok"] is True and stats["viewers"] == 2, stats

    with pytest.raises(Refused) as refused:
        await node_clients.connect(server, "paid", fake_done.stdout.strip())
    assert refusal_code(refused.value.data) == "forbidden", refused.value.data


async def test_environment_variables_configure_serve(
    procs: ProcessGroup, tmp_path: Path, redis_url: str
) -> None:
    data = tmp_path / "env-data"
    port = free_port()
    env = {
        "LIVEHUB_HOST": "127.0.0.1",
        "LIVEHUB_PORT": str(port),
        "LIVEHUB_DATA_DIR": str(data),
        "LIVEHUB_SECRET": SECRET,
        "LIVEHUB_ADMIN_KEY": ADMIN_KEY,
        "LIVEHUB_REDIS_URL": redis_url,
        "LIVEHUB_DEMO": "0",
        "LIVEHUB_PUBLIC_URL": "https://live.example.test/",
    }
    server = procs.launch(["serve"], port=port, data_dir=data, env=env, cwd=tmp_path)
    health = server.wait_healthy()
    assert health["store"] == "redis"
    stdout = server.stdout()
    assert "livehub serving on https://live.example.test" in stdout.splitlines(), stdout
    assert "demo room:" not in stdout and "admin key" not in stdout
    assert (data / "livehub.db").exists()
    assert not (data / "secret.key").exists() and not (data / "admin.key").exists()
    assert not (tmp_path / "livehub-data").exists()

    status, _ = await api(server.url, "POST", "/api/rooms", token="wrong", json={"title": "T"})
    assert status == 403
    status, created = await api(server.url, "POST", "/api/rooms", json={"id": "e", "title": "T"})
    assert status == 201, created
    # Tokens the server mints are signed with LIVEHUB_SECRET.
    assert tokens.verify(created["host_token"], [(SECRET, ALL_ROLES)], "e").role == "host"
    assert server.stop() == 0

    # A flag wins over its environment variable.
    flag_port = free_port()
    server = procs.launch(
        ["serve", "--port", str(flag_port)], port=flag_port, data_dir=data, env=env, cwd=tmp_path
    )
    server.wait_healthy()
    status, room = await api(server.url, "GET", "/api/rooms/e", token=None)
    assert status == 200, room


INVALID = [
    ([], {}, "required"),
    (["frobnicate"], {}, "invalid choice"),
    (["serve", "--bogus"], {}, "unrecognized arguments"),
    (["serve", "--port", "eighty"], {}, "invalid int value"),
    (["serve", "--sqlite-synchronous", "OFF"], {}, "invalid choice"),
    (["serve", "--tick-ms"], {}, "expected one argument"),
    (["serve", "--port", "99999"], {}, "--port: port must be 0-65535"),
    (["serve"], {"LIVEHUB_PORT": "eighty"}, "LIVEHUB_PORT"),
    (["serve"], {"LIVEHUB_TICK_MS": "fast"}, "LIVEHUB_TICK_MS"),
    (["serve", "--public-url", "live.example.com"], {}, "--public-url: 'live.example.com'"),
    (["serve"], {"LIVEHUB_PUBLIC_URL": "ftp://x"}, "LIVEHUB_PUBLIC_URL"),
    (["serve", "--allowed-origins", "https://a.example; script-src *"], {}, "not an origin"),
    (["token", "--room", "r"], {}, "--name"),
    (["token", "--room", "r", "--name", "n", "--role", "admin"], {}, "invalid choice"),
    (["token", "--room", "r", "--name", "n", "--ttl", "soon"], {}, "invalid int value"),
    (["serve", "--turn-ttl", "soon"], {}, "--turn-ttl: 'soon' is not a number of seconds"),
    (["serve"], {"LIVEHUB_TURN_TTL": "5"}, "LIVEHUB_TURN_TTL: a TURN credential lifetime"),
    (["serve", "--turn-secret", "s3cret-turn"], {}, "needs a turn: or turns: URL"),
    (
        ["serve", "--ice-server", "turn:t.example"],
        {"LIVEHUB_TURN_SECRET": " "},
        "LIVEHUB_TURN_SECRET: the TURN secret is empty",
    ),
    (["serve", "--commit-deadline-seconds", "0"], {}, "--commit-deadline-seconds: must be"),
    (["serve"], {"LIVEHUB_COMMIT_DEADLINE_SECONDS": "soon"}, "LIVEHUB_COMMIT_DEADLINE_SECONDS"),
    (["serve", "--heartbeat-seconds", "0"], {}, "--heartbeat-seconds: a heartbeat must be"),
    (["serve"], {"LIVEHUB_HEARTBEAT_SECONDS": "soon"}, "LIVEHUB_HEARTBEAT_SECONDS: could not"),
]
# These run as real processes too; the rest only through main().
AS_PROCESSES = [2, 6, 7]


def with_data_dir(args: list[str], tmp_path: Path) -> list[str]:
    return [*args, "--data-dir", str(tmp_path / "data")] if args[:1] == ["serve"] else args


def usage_error(code: int, stderr: str, complaint: str) -> str | None:
    """Why this is not a clean usage error (exit 2, a usage line, the reason), or None."""
    if code == 2 and complaint in stderr and "usage: livehub" in stderr:
        return None if "Traceback" not in stderr else "traceback"
    return f"exit {code}"


def test_invalid_arguments_are_usage_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    served: list[object] = []
    monkeypatch.setattr(cli, "_serve", lambda settings: served.append(settings) or 0)
    failures = []
    for args, env, complaint in INVALID:
        with monkeypatch.context() as patch:
            for name in [n for n in os.environ if n.startswith("LIVEHUB_")]:
                patch.delenv(name)
            for name, value in env.items():
                patch.setenv(name, value)
            with pytest.raises(SystemExit) as exited:
                cli.main(with_data_dir(args, tmp_path))
        stderr = capsys.readouterr().err
        code = exited.value.code if isinstance(exited.value.code, int) else 1
        if why := usage_error(code, stderr, complaint):
            failures.append(f"{args} {env}: {why}\n{stderr}")
        elif "s3cret-turn" in stderr:
            failures.append(f"{args} {env}: the TURN secret was echoed\n{stderr}")
    assert not failures, "\n\n".join(failures)
    assert served == []


async def test_invalid_arguments_exit_nonzero_as_processes(tmp_path: Path) -> None:
    cases = [INVALID[i] for i in AS_PROCESSES]
    results = await asyncio.gather(
        *(
            run_livehub_async(*with_data_dir(args, tmp_path), env=env, cwd=tmp_path)
            for args, env, _ in cases
        )
    )
    for (args, env, complaint), done in zip(cases, results, strict=True):
        why = usage_error(done.returncode, done.stderr, complaint)
        assert why is None, f"{args} {env}: {why}\n{done.stderr}"
    assert not (tmp_path / "data" / "livehub.db").exists()


def test_sigterm_stops_serve_cleanly(procs: ProcessGroup, tmp_path: Path) -> None:
    server = procs.serve(tmp_path / "data")
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=10) == 0
    assert "Traceback" not in server.stderr(), server.stderr()


async def test_sigterm_closes_live_connections_and_records_their_leave(
    procs: ProcessGroup, node_clients: NodeClients, tmp_path: Path
) -> None:
    """A graceful stop does not wait out open websockets (aiohttp would give them 60 s)
    but closes them, so each viewer's leave and watch time are recorded."""
    data = tmp_path / "data"
    server = serve_bare(procs, data)
    secret = (data / "secret.key").read_text().strip()
    viewers = []
    for name in ("Ann", "Bob", "Cy"):
        token, _, _ = tokens.mint(secret, room="demo", role="viewer", name=name)
        viewers.append(await node_clients.connect(server, "demo", token))
    polling_token, _, _ = tokens.mint(secret, room="demo", role="viewer", name="Poll")
    polling = LiveClient(server.url, "demo", polling_token, transport="polling")
    node_clients.append(polling)
    await polling.connect()

    assert await asyncio.to_thread(server.stop) == 0  # SIGTERM, SIGKILL after 5 s
    for viewer in [*viewers, polling]:
        await wait_disconnected(viewer)
    with contextlib.closing(sqlite3.connect(data / "livehub.db")) as db:
        left = {
            row[0] for row in db.execute("SELECT actor FROM events WHERE kind = 'presence.leave'")
        }
    assert left == {v.welcome["you"]["viewer_id"] for v in [*viewers, polling]}
