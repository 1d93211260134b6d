"""HTTP transport of the publish endpoints.  Check order as the reference: a body that is not JSON
at all (422), then the bearer token (401/403) and the ``write`` permission (403), then the
``Idempotency-Key`` header and the body's schema (422), then storage (403 per topic, 503)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ingest import validation
from ingest.publisher import Publisher, response_of
from relaycore import jsonbody
from relaycore.context import Context
from relaycore.models import NewMessage
from relaycore.store.base import PublishKind
from relaycore.web import JSON, bearer_token

Parse = Callable[[bytes | None, int], list[NewMessage]]
Endpoint = Callable[[Request], Awaitable[Response]]
_REPLAYED = {"idempotent-replayed": "true"}


def _endpoint(ctx: Context, publisher: Publisher, kind: PublishKind, parse: Parse) -> Endpoint:
    authorizer = ctx.authorizer

    async def endpoint(request: Request) -> Response:
        body = jsonbody.compact(await request.body())
        user = await authorizer.authenticate(bearer_token(request))
        authorizer.require(user, "write")
        key = validation.idempotency_key(request.headers.get("idempotency-key"))
        messages = parse(body, time.time_ns())
        result = await publisher.publish(messages, user=user, kind=kind, idempotency_key=key)
        status, out = response_of(result)
        return JSON(out, status, _REPLAYED if result.duplicate else None)

    return endpoint


def routes(ctx: Context) -> list[Route]:
    publisher = Publisher(ctx.backend.messages, ctx.settings.idempotency_ttl)
    return [
        Route("/api/v1/messages", _endpoint(ctx, publisher, "single", validation.single), methods=["POST"]),
        Route("/api/v1/messages/bulk", _endpoint(ctx, publisher, "bulk", validation.bulk), methods=["POST"]),
    ]
