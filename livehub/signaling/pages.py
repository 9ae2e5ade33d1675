"""The pages in web/, their static files, and the headers every response carries."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from livehub.errors import NotFound
from livehub.signaling.replies import Handler

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
VENDOR = {
    "socket.io.min.js": Path("socket.io-client/dist/socket.io.min.js"),
    "hls.min.js": Path("hls.js/dist/hls.min.js"),
}


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


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
