"""HTTP transport of the publish endpoints (``ingest.endpoints``): bare-ASGI handlers that the app
serves in front of Starlette (``relaycore.bare_routes``), and the same endpoints as Starlette
routes, which answer only if a request reaches the router (e.g. an app mounted under a prefix)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ingest.endpoints import PublishEndpoint, endpoints
from ingest.publisher import Publisher
from relaycore import bare_routes
from relaycore.context import Context
from relaycore.web import bearer_token

_REPLAYED_HEADER = (b"idempotent-replayed", b"true")
_REPLAYED = {"idempotent-replayed": "true"}


def _bare(endpoint: PublishEndpoint) -> bare_routes.Handler:
    async def handle(body: bytes, headers: Mapping[bytes, bytes]) -> bare_routes.Reply:
        key = headers.get(b"idempotency-key")
        status, out, repeat = await endpoint(
            body, bare_routes.bearer_token(headers), None if key is None else key.decode("latin-1")
        )
        return status, out, [_REPLAYED_HEADER] if repeat else []

    return handle


def _starlette(endpoint: PublishEndpoint) -> Callable[[Request], Awaitable[Response]]:
    async def handle(request: Request) -> Response:
        status, out, repeat = await endpoint(
            await request.body(), bearer_token(request), request.headers.get("idempotency-key")
        )
        return Response(out, status, _REPLAYED if repeat else None, media_type="application/json")

    return handle


def publish_endpoints(ctx: Context) -> dict[str, PublishEndpoint]:
    """The endpoints by path, made once: the Starlette routes and the bare handlers share them."""
    return endpoints(ctx.authorizer, Publisher(ctx.backend.messages, ctx.settings.idempotency_ttl))


def routes(by_path: dict[str, PublishEndpoint]) -> list[Route]:
    return [Route(path, _starlette(e), methods=["POST"]) for path, e in by_path.items()]


def bare(by_path: dict[str, PublishEndpoint]) -> dict[tuple[str, str], bare_routes.Handler]:
    return {("POST", path): _bare(e) for path, e in by_path.items()}
