"""Plumbing shared by the relay's own HTML pages (the device verification page, the identity
providers' sign-in): the session cookie, same-origin checks, the ``next`` rule, page headers."""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from auth.routes_http import service

DEFAULT_NEXT = "/auth/device"
NEXT_MAX = 2048
# As the console: this origin's styles only, no scripts at all, forms post here only.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    # Not no-referrer: with it, browsers send ``Origin: null`` on the page's own form posts.
    # Other origins (an identity provider) still get nothing, the user code in the URL included.
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def is_https(request: Request) -> bool:
    return request.url.scheme == "https" or service(request).settings.public_url.startswith("https:")


def public_base(request: Request) -> str:
    """``scheme://host[:port]`` as people reach the relay (``public_url``, else this request's)."""
    configured = service(request).settings.public_url.rstrip("/")
    if configured:
        return configured
    return f"{request.url.scheme}://{request.url.netloc}"


def session_value(request: Request) -> str | None:
    return request.cookies.get(service(request).web.COOKIE)


def set_session_cookie(response: Response, request: Request, value: str) -> None:
    """Hand the browser a session started with ``WebSessions.start``."""
    response.set_cookie(
        service(request).web.COOKIE,
        value,
        max_age=int(service(request).web.lifetime),
        path="/",
        secure=is_https(request),
        httponly=True,
        samesite="lax",
    )


def clear_session_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        service(request).web.COOKIE, path="/", secure=is_https(request), httponly=True, samesite="lax"
    )


def same_origin(request: Request) -> bool:
    """False for a form posted from another site (CSRF on forms no session protects yet, such as
    sign-in).  Browsers send ``Sec-Fetch-Site`` (and ``Origin``) on every POST; tools send neither."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None:
        return True
    if origin == "null":
        return False
    host = urlsplit(origin).netloc
    return host in (request.headers.get("host"), urlsplit(public_base(request)).netloc)


def safe_next(value: str | None) -> str:
    """A same-origin relative path to return to after sign-in, else the verification page."""
    if not value or len(value) > NEXT_MAX or not value.startswith("/") or value.startswith("//"):
        return DEFAULT_NEXT
    if "\\" in value or any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in value):
        return DEFAULT_NEXT
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return DEFAULT_NEXT
    return value
