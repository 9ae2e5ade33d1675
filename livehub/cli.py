"""The ``livehub`` command: serve, token, verify-draw, report."""

from __future__ import annotations

import argparse
import json
import logging
import ssl
import sys
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

from livehub import settings as settings_mod
from livehub.app import DB_FILE, SERVICES, STARTUP, create_app
from livehub.errors import LivehubError
from livehub.interactions import draw_proof
from livehub.reports import command as report_command
from livehub.rooms import tokens
from livehub.settings import Settings

DEMO_ROOM = "demo"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="livehub", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the server")
    settings_mod.add_arguments(serve)
    token = commands.add_parser("token", help="mint a token (e.g. for a private room)")
    token.add_argument("--room", required=True)
    token.add_argument(
        "--key",
        help="signing key: a private room's room_key or the server secret "
        "(default: LIVEHUB_SECRET, then DATA_DIR/secret.key)",
    )
    token.add_argument("--data-dir", default=None)
    token.add_argument("--role", default="viewer", choices=["viewer", "moderator", "host"])
    token.add_argument("--name", required=True)
    token.add_argument("--viewer-id", help="your platform's stable id for this person")
    token.add_argument("--ttl", type=int, default=24 * 3600, help="seconds (default 1 day)")
    verify = commands.add_parser(
        "verify-draw", help="check a prize draw transcript (prints OK or FAILED)"
    )
    verify.add_argument("transcript", help="the transcript JSON file ('-' for stdin)")
    report = commands.add_parser("report", help="write a stream's engagement report")
    report_command.add_arguments(report)
    args = parser.parse_args(argv)
    if args.command == "report":
        data_dir = settings_mod.load(argparse.Namespace(data_dir=args.data_dir)).data_dir
        return report_command.run(args, data_dir / DB_FILE)
    if args.command == "verify-draw":
        return _verify_draw(args.transcript)
    if args.command == "serve":
        try:
            settings = settings_mod.load(args)
        except ValueError as exc:  # e.g. LIVEHUB_PORT=abc: a usage error, not a traceback
            serve.error(str(exc))
        if settings.tls:
            try:
                tls_context(settings)  # unreadable or mismatched files: refuse before starting
            except (OSError, ssl.SSLError) as exc:
                serve.error(f"--tls-cert/--tls-key: {exc}")
        return _serve(settings)
    return _token(args)


def _verify_draw(path: str) -> int:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
        record = json.loads(text)
    except (OSError, UnicodeDecodeError) as exc:
        print(f"FAILED: cannot read {path}: {exc}")
        return 1
    except json.JSONDecodeError as exc:
        print(f"FAILED: not valid JSON: {exc}")
        return 1
    ok, reason = draw_proof.verify(record)
    if not ok:
        print(f"FAILED: {reason}")
        return 1
    names = record.get("winner_names") if isinstance(record.get("winner_names"), dict) else {}
    winners = [
        f"{w} ({names[w]})" if isinstance(names.get(w), str) else w for w in record["winners"]
    ]
    print(
        f"OK: draw {record['draw_id']} in room {record['room']}: "
        f"{len(winners)} winner(s) of {len(record['entrants'])} entrant(s)"
    )
    for winner in winners:
        print(f"  {winner}")
    return 0


def _token(args: argparse.Namespace) -> int:
    key = args.key
    if key is None:
        current = settings_mod.load(argparse.Namespace(data_dir=args.data_dir))
        key = current.secret
        if key is None:
            path = current.data_dir / "secret.key"
            if not path.exists():
                print(f"no --key given and no secret at {path}", file=sys.stderr)
                return 2
            key = path.read_text().strip()
    token, _, _ = tokens.mint(
        key,
        room=args.room,
        role=args.role,
        name=args.name,
        viewer_id=args.viewer_id,
        ttl_seconds=args.ttl,
    )
    print(token)
    return 0


SHUTDOWN_TIMEOUT = 10.0  # seconds a graceful stop waits for requests still running


def _serve(settings: Settings) -> int:
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    web.run_app(
        _start(settings),
        host=settings.host,
        port=settings.port,
        ssl_context=tls_context(settings) if settings.tls else None,
        print=None,
        access_log=None,
        # Live connections are closed as the stop begins (signaling/socket.py); this
        # bounds how long anything else still running may delay the stop.
        shutdown_timeout=SHUTDOWN_TIMEOUT,
    )
    return 0


def tls_context(settings: Settings) -> ssl.SSLContext:
    """The server's TLS context from ``--tls-cert`` and ``--tls-key`` (PEM files)."""
    if settings.tls_cert is None or settings.tls_key is None:
        raise ValueError("TLS needs both --tls-cert and --tls-key")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(settings.tls_cert, settings.tls_key)
    return context


async def _start(settings: Settings) -> web.Application:
    app = await create_app(settings)
    startup = app[STARTUP]
    print(f"livehub serving on {settings.base_url}", flush=True)
    if startup.admin_key_created:
        print(
            f"admin key (shown once; kept in {settings.data_dir / 'admin.key'}): "
            f"{startup.admin_key}",
            flush=True,
        )
    if settings.demo:
        await _print_demo(app, settings)
    return app


async def _print_demo(app: web.Application, settings: Settings) -> None:
    services = app[SERVICES]
    try:
        room = await services.rooms.get(DEMO_ROOM)
    except LivehubError:
        room = await services.rooms.create("livehub demo", room_id=DEMO_ROOM)
    base = settings.base_url
    secret = services.auth.secret
    host, _, _ = tokens.mint(
        secret, room=room.id, role="host", name="Host", ttl_seconds=settings.token_ttl_seconds
    )
    mod, _, _ = tokens.mint(
        secret,
        room=room.id,
        role="moderator",
        name="Moderator",
        ttl_seconds=settings.token_ttl_seconds,
    )
    print("demo room:", flush=True)
    print(f"  viewer:    {base}/watch/{room.id}", flush=True)
    print(f"  moderator: {base}/moderate/{room.id}#token={mod}", flush=True)
    print(f"  host:      {base}/moderate/{room.id}#token={host}", flush=True)
    print(f"  studio:    {base}/studio/{room.id}#token={host}", flush=True)
    print("publish from OBS (Settings > Stream > Service: WHIP):", flush=True)
    print(f"  WHIP URL: {base}/whip/{room.id}", flush=True)
    print(f"  Bearer token: {host}", flush=True)
