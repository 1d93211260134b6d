"""``/console``: the operator console's pages and assets (docs/CONSOLE.md).

The pages hold no data: each is the shared shell around a page fragment, and its script reads
the admin API with the bearer token the login page kept in ``sessionStorage``.  No cookie is
sent as a credential to the API, so there is no ambient credential for another site to ride
(the one cookie, a sign-in through an identity provider's browser session, is traded once for
a token at ``POST /auth/web/token`` with a CSRF header; routes_oidc.py), and the token
is the one the relay's own ``/ws`` accepts for the live tail.  A strict Content-Security-Policy
(scripts and styles from this origin only, nothing inline) narrows what an injection could do.
"""

from __future__ import annotations

import hashlib
import mimetypes
from pathlib import Path

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

STATIC = Path(__file__).with_name("static") / "console"
PAGES = {
    "login": "Sign in",
    "overview": "Overview",
    "topics": "Topics",
    "tail": "Live tail",
    "users": "Users",
    "gateways": "Gateways",
}
_SECURITY = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


class _File:
    def __init__(self, body: bytes, media_type: str) -> None:
        self.body = body
        self.media_type = media_type
        self.etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'

    def response(self, request: Request, headers: dict[str, str]) -> Response:
        # Revalidated on every load (cheap: 304), so an upgrade never leaves stale scripts behind.
        head = {**headers, "ETag": self.etag, "Cache-Control": "no-cache"}
        if request.headers.get("if-none-match") == self.etag:
            return Response(status_code=304, headers=head)
        return Response(self.body, media_type=self.media_type, headers=head)


def _page(name: str, title: str) -> _File:
    shell = (STATIC / "shell.html").read_text()
    fragment = (STATIC / "pages" / f"{name}.html").read_text()
    html = shell.replace("{{title}}", title).replace("{{page}}", name).replace("{{main}}", fragment)
    return _File(html.encode(), "text/html; charset=utf-8")


def _assets() -> dict[str, _File]:
    files: dict[str, _File] = {}
    for path in sorted((STATIC / "assets").iterdir()):
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if kind.startswith("text/"):
            kind += "; charset=utf-8"
        files[path.name] = _File(path.read_bytes(), kind)
    return files


def routes() -> list[Route]:
    """The console's routes, its files read once (they are a few kilobytes)."""
    pages = {name: _page(name, title) for name, title in PAGES.items()}
    assets = _assets()

    async def index(request: Request) -> Response:
        return RedirectResponse("/console/overview", status_code=303)

    async def page(request: Request) -> Response:
        found = pages.get(request.path_params["page"])
        if found is None:
            return Response("Not Found", 404, media_type="text/plain")
        return found.response(request, _SECURITY)

    async def asset(request: Request) -> Response:
        found = assets.get(request.path_params["name"])
        if found is None:
            return Response("Not Found", 404, media_type="text/plain")
        return found.response(request, {"X-Content-Type-Options": "nosniff"})

    return [
        Route("/console", index, methods=["GET", "HEAD"]),
        Route("/console/", index, methods=["GET", "HEAD"]),
        Route("/console/assets/{name}", asset, methods=["GET", "HEAD"]),
        Route("/console/{page}", page, methods=["GET", "HEAD"]),
    ]
