"""``/auth/oidc/*``: sign-in through OpenID Connect providers (reference-wire-contract §8 row 9),
``/auth/web/*``: what the operator console needs of a browser sign-in, and
``/auth/users/{user_id}/identities``: linking federated identities to users (admin).

``GET /auth/oidc/{provider}/login?next=/path`` redirects (302) to the provider; its callback
starts a browser session (``WebSessions``), sets the cookie and redirects (303) to ``next``.
A browser that asked for HTML gets its errors as a small page, anything else as JSON; both carry
the same status (400 for a bad or replayed callback, 403 refused, 404 unknown provider, 409 a
username collision, 502 a provider that is down or slow).

The console keeps its token in ``sessionStorage`` and sends no cookie to the API.  After an OIDC
sign-in it reads ``GET /auth/web/session`` (who is signed in, and the session's CSRF token) and
trades the session for an access token with ``POST /auth/web/token`` and that token in the
``X-CSRF-Token`` header (the session ends there): no token ever travels in a URL, and another
site can neither read the CSRF token nor send the header."""

from __future__ import annotations

import secrets

import msgspec
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from auth import device_pages as pages
from auth.federation import Federation
from auth.routes_http import caller, client_address, decode, json_body, service
from auth.routes_web import (
    PAGE_HEADERS,
    clear_session_cookie,
    is_https,
    public_base,
    safe_next,
    same_origin,
    session_value,
    set_session_cookie,
)
from auth.schemas import TokenResponse
from relaycore.errors import Forbidden, RelayError, Unauthenticated
from relaycore.web import JSON, relay_error_response

_NO_STORE = {"Cache-Control": "no-store"}
# Binds a started sign-in to the browser that started it (federation.Federation.begin).
BINDING_COOKIE = "pulsar_relay_oidc"
_PARAM_MAX = 4096
_TITLES = {
    400: "Sign-in failed",
    403: "Sign-in refused",
    404: "Unknown provider",
    409: "Account exists",
    429: "Too many sign-ins",
}


class IdentityLink(msgspec.Struct, kw_only=True, frozen=True):
    provider: str
    subject: str


class ProviderSummary(msgspec.Struct, kw_only=True):
    name: str
    display_name: str
    login_url: str


def federation(request: Request) -> Federation:
    return service(request).federation


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def _error(request: Request, exc: RelayError) -> Response:
    response = relay_error_response(exc)
    if not _wants_html(request):
        return response
    title = _TITLES.get(response.status_code, "The identity provider is not available")
    retry = {"Retry-After": response.headers["retry-after"]} if "retry-after" in response.headers else {}
    return Response(
        pages.problem(title, exc.detail),
        response.status_code,
        {**PAGE_HEADERS, **retry},
        media_type="text/html; charset=utf-8",
    )


def _binding(request: Request) -> str | None:
    value = request.cookies.get(BINDING_COOKIE)
    return value if value and len(value) <= 64 and value.isascii() else None


def _redirect_uri(request: Request, name: str) -> str:
    return f"{public_base(request)}/auth/oidc/{name}/callback"


# --- sign-in


async def providers(request: Request) -> Response:
    return JSON(
        [
            ProviderSummary(name=p.name, display_name=p.label, login_url=f"/auth/oidc/{p.name}/login")
            for p in federation(request).providers
        ]
    )


async def login(request: Request) -> Response:
    name = request.path_params["provider"]
    next_path = safe_next(request.query_params.get("next"))
    browser = _binding(request) or secrets.token_urlsafe(32)
    try:
        url = await federation(request).begin(
            name,
            redirect_uri=_redirect_uri(request, name),
            next_path=next_path,
            address=client_address(request),
            browser=browser,
        )
    except RelayError as exc:
        return _error(request, exc)
    response = RedirectResponse(url, status_code=302, headers={**_NO_STORE, "Referrer-Policy": "no-referrer"})
    response.set_cookie(
        BINDING_COOKIE,
        browser,
        max_age=int(service(request).settings.oidc_state_ttl) + 60,
        path="/auth/oidc/",
        secure=is_https(request),
        httponly=True,
        samesite="lax",  # sent on the provider's top-level redirect back to the callback
    )
    return response


async def callback(request: Request) -> Response:
    name = request.path_params["provider"]
    params = {k: v[:_PARAM_MAX] for k, v in request.query_params.items()}
    svc = service(request)
    try:
        signed_in = await federation(request).finish(name, params, _binding(request))
    except RelayError as exc:
        return _error(request, exc)
    value = await svc.web.start(signed_in.user)
    response = RedirectResponse(signed_in.next, status_code=303, headers=PAGE_HEADERS)
    set_session_cookie(response, request, value)
    return response


# --- the console's use of a browser sign-in


class WebSession(msgspec.Struct, kw_only=True):
    signed_in: bool
    username: str | None = None
    csrf_token: str | None = None


async def web_session(request: Request) -> Response:
    web = service(request).web
    value = session_value(request)
    user = await web.user(value)
    if user is None or value is None:
        return JSON(WebSession(signed_in=False), headers=_NO_STORE)
    return JSON(
        WebSession(signed_in=True, username=user.username, csrf_token=web.csrf_token(value)),
        headers=_NO_STORE,
    )


async def web_token(request: Request) -> Response:
    """An access token for the browser session's user (no refresh token: the page keeps it for
    this tab only).  Needs the session cookie and its CSRF token in ``X-CSRF-Token``.  The browser
    session is traded, not kept: it ends here, so signing out of the console leaves no sign-in
    behind in the browser."""
    svc = service(request)
    value = session_value(request)
    user = await svc.web.user(value)
    if user is None or value is None:
        raise Unauthenticated("Not signed in: no browser session")
    if not same_origin(request) or not svc.web.csrf_ok(value, request.headers.get("x-csrf-token", "")[:128]):
        raise Forbidden("Missing or wrong X-CSRF-Token header for this browser session")
    issued = await svc.sessions.issue(user, client_hint="operator console (browser sign-in)")
    await svc.web.end(value)
    token = TokenResponse(access_token=issued.access_token, expires_in=issued.expires_in)
    response = JSON(token, headers=_NO_STORE)
    clear_session_cookie(response, request)
    return response


# --- administration


async def list_identities(request: Request) -> Response:
    await caller(request, "admin")
    user_id = request.path_params["user_id"]
    await service(request).users.get(user_id)  # 404 for an unknown user
    return JSON(await federation(request).identities(user_id))


async def link_identity(request: Request) -> Response:
    body = await json_body(request)
    await caller(request, "admin")
    data = decode(body, IdentityLink)
    identity = await federation(request).link(request.path_params["user_id"], data.provider, data.subject)
    return JSON(identity, 201)


async def unlink_identity(request: Request) -> Response:
    await caller(request, "admin")
    p = request.path_params
    await federation(request).unlink(p["user_id"], p["provider"], p["subject"])
    return Response(status_code=204)


routes = [
    Route("/auth/oidc/providers", providers, methods=["GET"]),
    Route("/auth/oidc/{provider}/login", login, methods=["GET"]),
    Route("/auth/oidc/{provider}/callback", callback, methods=["GET"]),
    Route("/auth/web/session", web_session, methods=["GET"]),
    Route("/auth/web/token", web_token, methods=["POST"]),
    Route("/auth/users/{user_id}/identities", list_identities, methods=["GET"]),
    Route("/auth/users/{user_id}/identities", link_identity, methods=["POST"]),
    Route("/auth/users/{user_id}/identities/{provider}/{subject:path}", unlink_identity, methods=["DELETE"]),
]
