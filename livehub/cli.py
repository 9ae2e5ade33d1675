"""The ``livehub`` command: serve, token."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from aiohttp import web

from livehub import settings as settings_mod
from livehub.app import SERVICES, STARTUP, create_app
from livehub.errors import LivehubError
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
    args = parser.parse_args(argv)
    if args.command == "serve":
        return _serve(settings_mod.load(args))
    return _token(args)


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


def _serve(settings: Settings) -> int:
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    web.run_app(
        _start(settings), host=settings.host, port=settings.port, print=None, access_log=None
    )
    return 0


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
