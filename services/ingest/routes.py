"""HTTP transport of the publish endpoints (``ingest.endpoints``): bare-ASGI handlers that the app
serves in front of Starlette (``relaycore.bare_routes``); there are no Starlette routes for them."""

from __future__ import annotations

from collections.abc import Mapping

from ingest.endpoints import PublishEndpoint, endpoints
from ingest.publisher import Publisher
from relaycore import bare_routes, http_pipeline
from relaycore.context import Context

_REPLAYED_HEADER = (b"idempotent-replayed", b"true")


def _bare(endpoint: PublishEndpoint) -> bare_routes.Handler:
    async def handle(body: bytes, headers: Mapping[bytes, bytes]) -> http_pipeline.Reply:
        key = headers.get(b"idempotency-key")
        status, out, repeat = await endpoint(
            body, http_pipeline.bearer_token(headers), None if key is None else key.decode("latin-1")
        )
        return status, out, [_REPLAYED_HEADER] if repeat else []

    return handle


def publish_endpoints(ctx: Context) -> dict[str, PublishEndpoint]:
    """The publish endpoints by path."""
    return endpoints(ctx.authorizer, Publisher(ctx.backend.messages, ctx.settings.idempotency_ttl))


def bare(by_path: dict[str, PublishEndpoint]) -> dict[tuple[str, str], bare_routes.Handler]:
    return {("POST", path): _bare(e) for path, e in by_path.items()}
