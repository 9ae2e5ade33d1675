"""The naive baseline for the chat fan-out benchmark.

A minimal python-socketio AsyncServer on aiohttp, namespace ``/live``: any connect
with an ``auth.room`` joins that room, and every ``chat`` is immediately emitted
to the whole room as one ``chat`` event (one emit per message, the naive way),
then acked ``{"ok": true, "id": n}``. ``GET /healthz`` answers 200 for readiness.

    python scripts/naive_server.py --port 8090
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import socketio
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import HOST, raise_nofile

NS = "/live"


def build_app() -> web.Application:
    sio = socketio.AsyncServer(
        async_mode="aiohttp", cors_allowed_origins="*", logger=False, engineio_logger=False
    )
    app = web.Application()
    sio.attach(app)
    ids = itertools.count(1)

    @sio.on("connect", namespace=NS)
    async def connect(sid, environ, auth):  # type: ignore[no-untyped-def]
        if not isinstance(auth, dict) or not isinstance(auth.get("room"), str) or not auth["room"]:
            raise socketio.exceptions.ConnectionRefusedError(
                {"code": "bad_payload", "message": "auth.room is required"}
            )
        await sio.enter_room(sid, auth["room"], namespace=NS)
        await sio.save_session(sid, {"room": auth["room"]}, namespace=NS)

    @sio.on("chat", namespace=NS)
    async def chat(sid, data):  # type: ignore[no-untyped-def]
        if not isinstance(data, dict) or not isinstance(data.get("text"), str):
            return {"ok": False, "error": {"code": "bad_payload", "message": "text required"}}
        session = await sio.get_session(sid, namespace=NS)
        n = next(ids)
        msg = {"id": n, "text": data["text"], "ts": time.time()}
        await sio.emit("chat", msg, room=session["room"], namespace=NS)
        return {"ok": True, "id": n}

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "store": "memory", "node": "naive"})

    app.router.add_get("/healthz", healthz)
    return app


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=8090)
    args = ap.parse_args()
    raise_nofile()
    web.run_app(
        build_app(),
        host=HOST,
        port=args.port,
        access_log=None,
        print=None,
        backlog=4096,
        shutdown_timeout=2.0,
    )


if __name__ == "__main__":
    main()
