"""The one place that turns errors into what goes back on the wire."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from livehub.errors import LivehubError

log = logging.getLogger("livehub.edge")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def ack_ok(result: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"ok": True, **(result or {})}


def ack_error(err: LivehubError) -> dict[str, Any]:
    return {"ok": False, "error": err.to_dict()}


def http_error(err: LivehubError) -> web.Response:
    response = web.json_response(err.to_dict(), status=err.status)
    retry_after = err.details.get("retry_after")
    if retry_after is not None:
        response.headers["Retry-After"] = str(max(1, round(float(retry_after))))
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except LivehubError as err:
        log.info("%s %s -> %s %s", request.method, request.path, err.status, err.code)
        return http_error(err)
    except web.HTTPRequestEntityTooLarge:
        return web.json_response(
            {"code": "too_large", "message": "The request body is too large."}, status=413
        )
