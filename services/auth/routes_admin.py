"""``/api/v1/admin/*``: the read-only views the operator console is built on (docs/CONSOLE.md).
Admin only: 401 without a valid token, 403 without the ``admin`` permission."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from auth.routes_http import caller, service
from relaycore.web import JSON

_NO_STORE = {"Cache-Control": "no-store"}


async def overview(request: Request) -> Response:
    await caller(request, "admin")
    return JSON(await service(request).admin.overview(), headers=_NO_STORE)


async def users(request: Request) -> Response:
    await caller(request, "admin")
    return JSON(await service(request).admin.users(), headers=_NO_STORE)


async def rates(request: Request) -> Response:
    await caller(request, "admin")
    ring = service(request).rates
    ring.ensure_running()
    return JSON(ring.view(), headers=_NO_STORE)


routes = [
    Route("/api/v1/admin/overview", overview, methods=["GET"]),
    Route("/api/v1/admin/users", users, methods=["GET"]),
    Route("/api/v1/admin/rates", rates, methods=["GET"]),
]
