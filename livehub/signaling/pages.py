"""The pages in web/, their static files, and the headers every response carries."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Middleware

from livehub.errors import NotFound
from livehub.signaling.replies import Handler

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self' blob:; connect-src {connect}; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def csp(origins: list[str]) -> str:
    """The pages' Content-Security-Policy. Scripts may connect to this origin and to
    the allowed origins (the other nodes, whose WHEP a node may redirect to)."""
    return CSP.replace("{connect}", " ".join(["'self'", *origins]))


def security_headers(origins: list[str]) -> Middleware:
    """Middleware adding the security headers (and the CSP) to every response."""
    headers = {"Content-Security-Policy": csp(origins), **SECURITY_HEADERS}

    @web.middleware
    async def add_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        for name, value in headers.items():
            response.headers.setdefault(name, value)
        return response

    return add_headers


VENDOR = {
    "socket.io.min.js": Path("socket.io-client/dist/socket.io.min.js"),
    "hls.min.js": Path("hls.js/dist/hls.min.js"),
}


class Pages:
    def __init__(self, web_dir: Path) -> None:
        self._static = web_dir / "static"
        self._modules = web_dir / "node_modules"

    def routes(self) -> list[web.AbstractRouteDef]:
        return [
            web.get("/", self._page("index.html")),
            web.get("/watch/{room}", self._page("watch.html")),
            web.get("/moderate/{room}", self._page("moderate.html")),
            web.get("/studio/{room}", self._page("studio.html")),
            web.get("/verify", self._page("verify.html")),
            web.get("/rooms/{room}/report", self._page("report.html")),
            web.get("/replay/{room}/{stream}", self._page("replay.html")),
            web.get("/static/vendor/{name}", self.vendor),
            web.static("/static", self._static, append_version=False),
        ]

    def _page(self, name: str) -> Handler:
        path = self._static / name

        async def serve(request: web.Request) -> web.StreamResponse:
            return web.FileResponse(path, headers={"Cache-Control": "no-cache"})

        return serve

    async def vendor(self, request: web.Request) -> web.StreamResponse:
        relative = VENDOR.get(request.match_info["name"])
        if relative is None or not (self._modules / relative).is_file():
            raise NotFound("not_found", "No such file.")
        return web.FileResponse(self._modules / relative)
