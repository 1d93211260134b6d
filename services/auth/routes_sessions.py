"""Refresh tokens and sign-in sessions (reference rows 6 and 8): ``/auth/token/refresh``,
``/auth/token/revoke``, ``/auth/logout``, ``/auth/sessions``, and an admin's view of another
user's sessions under ``/auth/users/{user_id}/sessions``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from auth.routes_http import caller, client_address, json_body, service
from auth.schemas import RefreshRequest, RevokeRequest
from relaycore import jsonbody
from relaycore.web import JSON, bearer_token

_NO_STORE = {"Cache-Control": "no-store"}


async def refresh(request: Request) -> Response:
    data = jsonbody.decode(await json_body(request), RefreshRequest)
    svc = service(request)
    async with svc.login.limiter.refresh(client_address(request)):  # failures only
        tokens = await svc.sessions.refresh(data.refresh_token)
    return JSON(tokens, headers=_NO_STORE)


async def revoke(request: Request) -> Response:
    data = jsonbody.decode(await json_body(request), RevokeRequest)
    svc = service(request)
    async with svc.login.limiter.refresh(client_address(request)):  # malformed tokens count
        await svc.sessions.revoke_token(data.refresh_token, chain=data.revoke_chain)
    return Response(status_code=204)


async def logout(request: Request) -> Response:
    """Ends the bearer token's sign-in session: that access token, the others of its session and
    its refresh token stop working everywhere within a second."""
    await caller(request)
    svc = service(request)
    claims = svc.ctx.authorizer.claims(bearer_token(request) or "")
    if claims.sid:
        await svc.sessions.end(claims.sid)
    return Response(status_code=204)


async def list_sessions(request: Request) -> Response:
    user = await caller(request)
    return JSON(await service(request).sessions.list(user.user_id), headers=_NO_STORE)


async def end_session(request: Request) -> Response:
    user = await caller(request)
    await service(request).sessions.end_of(user.user_id, request.path_params["jti"])
    return Response(status_code=204)


# --- an admin acting on another user's sessions


async def _target(request: Request) -> str:
    await caller(request, "admin")
    user_id: str = request.path_params["user_id"]
    await service(request).users.get(user_id)  # 404 for an unknown user
    return user_id


async def user_sessions(request: Request) -> Response:
    user_id = await _target(request)
    return JSON(await service(request).sessions.list(user_id), headers=_NO_STORE)


async def end_user_session(request: Request) -> Response:
    user_id = await _target(request)
    await service(request).sessions.end_of(user_id, request.path_params["jti"])
    return Response(status_code=204)


async def end_user_sessions(request: Request) -> Response:
    user_id = await _target(request)
    await service(request).sessions.end_all(user_id)
    return Response(status_code=204)


routes = [
    Route("/auth/token/refresh", refresh, methods=["POST"]),
    Route("/auth/token/revoke", revoke, methods=["POST"]),
    Route("/auth/logout", logout, methods=["POST"]),
    Route("/auth/sessions", list_sessions, methods=["GET"]),
    Route("/auth/sessions/{jti}", end_session, methods=["DELETE"]),
    Route("/auth/users/{user_id}/sessions", user_sessions, methods=["GET"]),
    Route("/auth/users/{user_id}/sessions", end_user_sessions, methods=["DELETE"]),
    Route("/auth/users/{user_id}/sessions/{jti}", end_user_session, methods=["DELETE"]),
]
