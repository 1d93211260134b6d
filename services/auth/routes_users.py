"""``/auth/*``: login, the caller, user administration and the JWKS (reference §2, §3.1)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from auth.routes_http import caller, client_address, decode, json_body, login_form, service
from auth.schemas import UserCreate, UserUpdate
from relaycore.errors import NotFound
from relaycore.web import JSON


async def login(request: Request) -> Response:
    username, password = await login_form(request)
    hint = request.headers.get("user-agent")
    token = await service(request).login(username, password, client_address(request), client_hint=hint)
    return JSON(token, headers={"Cache-Control": "no-store"})


async def register(request: Request) -> Response:
    body = await json_body(request)
    await caller(request, "admin")
    data = decode(body, UserCreate)
    users = service(request).users
    return JSON(await users.public(await users.register(data)), 201)


async def me(request: Request) -> Response:
    user = await caller(request)
    return JSON(await service(request).users.public(user))


async def list_users(request: Request) -> Response:
    await caller(request, "admin")
    users = service(request).users
    return JSON([await users.public(u) for u in await users.list()])


async def user_stats(request: Request) -> Response:
    await caller(request, "admin")
    return JSON(await service(request).users.stats())


async def update_user(request: Request) -> Response:
    body = await json_body(request)
    await caller(request, "admin")
    data = decode(body, UserUpdate)
    users = service(request).users
    return JSON(await users.public(await users.update(request.path_params["user_id"], data)))


async def delete_user(request: Request) -> Response:
    actor = await caller(request, "admin")
    await service(request).users.delete(actor, request.path_params["user_id"])
    return Response(status_code=204)


async def jwks(request: Request) -> Response:
    keys = service(request).signer.jwks
    if keys is None:
        raise NotFound("Not Found")  # HS256: there is no public key to publish
    return JSON(keys, headers={"Cache-Control": "public, max-age=300"})


routes = [
    Route("/auth/login", login, methods=["POST"]),
    Route("/auth/register", register, methods=["POST"]),
    Route("/auth/me", me, methods=["GET"]),
    Route("/auth/jwks.json", jwks, methods=["GET"]),
    Route("/auth/users", list_users, methods=["GET"]),
    Route("/auth/users/stats", user_stats, methods=["GET"]),
    Route("/auth/users/{user_id}", update_user, methods=["PATCH"]),
    Route("/auth/users/{user_id}", delete_user, methods=["DELETE"]),
]
