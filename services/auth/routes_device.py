"""``/auth/device*``: the RFC 8628 device flow (reference-wire-contract §8 row 9).

The device's side answers JSON: ``POST /auth/device/code`` and ``POST /auth/device/token``, errors
as 400 ``{"error", "error_description"}`` with RFC 8628's codes.  The person's side is HTML without
scripts: ``GET /auth/device[?user_code=]`` (sign in, type the code, see what asks), and the POSTs
``/auth/device/signin``, ``/signout``, ``/approve``, ``/deny``.  The last three need the signed-in
person's session and its CSRF token; sign-in refuses forms posted from another origin.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from auth import device_pages as pages
from auth.device import (
    CLIENT_HINT_MAX,
    DEVICE_CODE_MAX,
    GRANT_TYPE,
    SCOPE_MAX,
    DeviceError,
    display_user_code,
)
from auth.passwords import PASSWORD_MAX
from auth.routes_http import client_address, service
from auth.routes_web import (
    NEXT_MAX,
    PAGE_HEADERS,
    clear_session_cookie,
    public_base,
    safe_next,
    same_origin,
    session_value,
    set_session_cookie,
)
from relaycore.errors import Forbidden, RateLimited, Unauthenticated
from relaycore.models import User
from relaycore.web import JSON

_STYLE = (Path(__file__).with_name("static") / "device" / "device.css").read_bytes()
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
_USER_CODE_MAX = 32
_CSRF_MAX = 128
_USERNAME_MAX = 200


class FormProblem(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def _form(request: Request, limits: dict[str, int]) -> dict[str, str]:
    """The named string fields of a form post (absent or empty: left out); ``FormProblem`` for a
    body that is not a form, a file, or a value over its limit."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in _FORM_TYPES:
        if kind or await request.body():
            raise FormProblem("The body must be a form (application/x-www-form-urlencoded)")
        return {}
    try:
        async with request.form(max_files=0, max_fields=32) as form:
            raw = {name: form.getlist(name) for name in limits}
    except HTTPException as exc:  # starlette's answer to a malformed multipart body
        raise FormProblem(f"Malformed form: {exc.detail}") from exc
    values: dict[str, str] = {}
    for name, limit in limits.items():
        found = raw[name]
        if len(found) > 1:
            raise FormProblem(f"Field '{name}' is given more than once")
        if not found or found[0] == "":
            continue
        value = found[0]
        if isinstance(value, UploadFile):
            raise FormProblem(f"Field '{name}' must be text, not a file")
        if len(value) > limit:
            raise FormProblem(f"Field '{name}' is longer than {limit} characters")
        values[name] = value
    return values


def _oauth_error(error: str, description: str) -> Response:
    return JSON({"error": error, "error_description": description}, 400, {"Cache-Control": "no-store"})


# --- the device's side -------------------------------------------------------------------------


async def device_code(request: Request) -> Response:
    try:
        form = await _form(request, {"client_hint": CLIENT_HINT_MAX, "scope": SCOPE_MAX, "pair": 8})
    except FormProblem as exc:
        return _oauth_error("invalid_request", exc.reason)
    pair_value = form.get("pair", "false").lower()
    if pair_value not in ("true", "false", "1", "0"):
        return _oauth_error("invalid_request", "pair must be true or false")
    hint = form.get("client_hint", "")
    if any(ord(ch) < 0x20 for ch in hint):
        return _oauth_error("invalid_request", "client_hint must not contain control characters")
    flow = service(request).device
    try:
        await flow.limit_codes(client_address(request))
    except RateLimited as exc:
        body = {"error": "too_many_requests", "error_description": exc.detail, "detail": exc.detail}
        return JSON(body, 429, {"Retry-After": str(exc.retry_after), "Cache-Control": "no-store"})
    answer = await flow.start(
        client_hint=hint or "an unnamed device",
        scope=form.get("scope", ""),
        pair=pair_value in ("true", "1"),
        verification_uri=public_base(request) + "/auth/device",
    )
    return JSON(answer, headers={"Cache-Control": "no-store"})


async def device_token(request: Request) -> Response:
    try:
        form = await _form(request, {"grant_type": 128, "device_code": DEVICE_CODE_MAX})
    except FormProblem as exc:
        return _oauth_error("invalid_request", exc.reason)
    grant = form.get("grant_type")
    if grant is None:
        return _oauth_error("invalid_request", "grant_type is required")
    if grant != GRANT_TYPE:
        return _oauth_error("unsupported_grant_type", f"grant_type must be {GRANT_TYPE}")
    code = form.get("device_code")
    if code is None:
        return _oauth_error("invalid_request", "device_code is required")
    try:
        tokens = await service(request).device.exchange(code)
    except DeviceError as exc:
        return _oauth_error(exc.error, exc.description)
    return JSON(tokens, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


# --- the person's side -------------------------------------------------------------------------


def _html(body: str, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(body, status, {**PAGE_HEADERS, **(headers or {})}, media_type="text/html; charset=utf-8")


async def style(request: Request) -> Response:
    return Response(_STYLE, media_type="text/css; charset=utf-8", headers={"Cache-Control": "no-cache"})


async def _signed_in(request: Request) -> tuple[str, User] | None:
    value = session_value(request)
    user = await service(request).web.user(value)
    return None if user is None or value is None else (value, user)


async def _sign_in_page(
    request: Request, user_code: str, status: int = 200, error: str | None = None
) -> Response:
    next_path = pages.device_link(user_code)
    links = await service(request).web.providers()
    providers = [
        (name, f"{url}{'&' if '?' in url else '?'}{urlencode({'next': next_path})}") for name, url in links
    ]
    return _html(
        pages.sign_in(next_path=next_path, user_code=user_code, providers=providers, error=error), status
    )


async def page(request: Request) -> Response:
    typed = request.query_params.get("user_code", "").strip()
    if len(typed) > _USER_CODE_MAX:
        return _html(pages.problem("Unknown code", "That is not a code this relay hands out."), 400)
    session = await _signed_in(request)
    if session is None:
        return await _sign_in_page(request, typed)
    value, user = session
    csrf = service(request).web.csrf_token(value)
    if not typed:
        return _html(pages.enter_code(username=user.username, csrf=csrf))
    return await _with_grant(request, typed, user, csrf, None)


async def _with_grant(request: Request, typed: str, user: User, csrf: str, approve: bool | None) -> Response:
    """Look the code up (rate limited) and show it, or, with ``approve`` set, decide it."""
    flow = service(request).device
    try:
        await flow.limit(client_address(request))
    except RateLimited as exc:
        page = pages.enter_code(username=user.username, csrf=csrf, error=exc.detail)
        return _html(page, 429, {"Retry-After": str(exc.retry_after)})
    found = await flow.find(typed)
    if found is None:
        error = "That code is unknown, already used or expired. Check it, or start again on the device."
        return _html(pages.enter_code(username=user.username, csrf=csrf, error=error), 404)
    device_key, grant = found
    shown = display_user_code(grant.user_code)
    if approve is None:
        return _html(pages.confirm(username=user.username, csrf=csrf, user_code=shown, grant=grant))
    if not await flow.decide(device_key, user, approve=approve):
        error = "That code was decided meanwhile, or has expired."
        return _html(pages.enter_code(username=user.username, csrf=csrf, error=error), 409)
    return _html(pages.done(username=user.username, csrf=csrf, approved=approve))


async def _decision(request: Request, approve: bool) -> Response:
    try:
        form = await _form(request, {"user_code": _USER_CODE_MAX, "csrf_token": _CSRF_MAX})
    except FormProblem as exc:
        return _html(pages.problem("Bad request", exc.reason), 400)
    session = await _signed_in(request)
    if session is None:
        return _html(pages.problem("Not signed in", "Sign in first: your session has ended."), 401)
    value, user = session
    web = service(request).web
    if not same_origin(request) or not web.csrf_ok(value, form.get("csrf_token", "")):
        return _html(
            pages.problem("Forbidden", "This form is stale or came from another site; reload the page."), 403
        )
    typed = form.get("user_code")
    if typed is None:
        return _html(pages.problem("Bad request", "The user_code field is required."), 400)
    return await _with_grant(request, typed, user, web.csrf_token(value), approve)


async def approve(request: Request) -> Response:
    return await _decision(request, True)


async def deny(request: Request) -> Response:
    return await _decision(request, False)


async def sign_in(request: Request) -> Response:
    try:
        form = await _form(request, {"username": _USERNAME_MAX, "password": PASSWORD_MAX, "next": NEXT_MAX})
    except FormProblem as exc:
        return _html(pages.problem("Bad request", exc.reason), 400)
    next_path = safe_next(form.get("next"))
    # Shown again on the form if sign-in fails: the code the person arrived with, if any.
    user_code = ""
    if urlsplit(next_path).path == "/auth/device":
        user_code = parse_qs(urlsplit(next_path).query).get("user_code", [""])[0][:_USER_CODE_MAX]
    if not same_origin(request):
        return _html(pages.problem("Forbidden", "This sign-in form came from another site."), 403)
    if "username" not in form or "password" not in form:
        return await _sign_in_page(request, user_code, 400, "Enter a username and a password.")
    svc = service(request)
    try:
        user = await svc.login.verify(form["username"], form["password"], client_address(request))
    except RateLimited as exc:
        page = await _sign_in_page(request, user_code, 429, exc.detail)
        page.headers["Retry-After"] = str(exc.retry_after)
        return page
    except (Unauthenticated, Forbidden) as exc:
        status = 401 if isinstance(exc, Unauthenticated) else 403
        return await _sign_in_page(request, user_code, status, exc.detail)
    previous = session_value(request)
    if previous is not None:
        await svc.web.end(previous)  # one session per sign-in: an old (or planted) value dies here
    value = await svc.web.start(user)
    response = RedirectResponse(next_path, status_code=303, headers=PAGE_HEADERS)
    set_session_cookie(response, request, value)
    return response


async def sign_out(request: Request) -> Response:
    try:
        form = await _form(request, {"csrf_token": _CSRF_MAX})
    except FormProblem as exc:
        return _html(pages.problem("Bad request", exc.reason), 400)
    value = session_value(request)
    web = service(request).web
    if value is not None:
        if not same_origin(request) or not web.csrf_ok(value, form.get("csrf_token", "")):
            return _html(pages.problem("Forbidden", "This form is stale or came from another site."), 403)
        await web.end(value)
    response = RedirectResponse("/auth/device", status_code=303, headers=PAGE_HEADERS)
    clear_session_cookie(response, request)
    return response


routes = [
    Route("/auth/device/code", device_code, methods=["POST"]),
    Route("/auth/device/token", device_token, methods=["POST"]),
    Route("/auth/device", page, methods=["GET", "HEAD"]),
    Route("/auth/device/style.css", style, methods=["GET", "HEAD"]),
    Route("/auth/device/signin", sign_in, methods=["POST"]),
    Route("/auth/device/signout", sign_out, methods=["POST"]),
    Route("/auth/device/approve", approve, methods=["POST"]),
    Route("/auth/device/deny", deny, methods=["POST"]),
]
