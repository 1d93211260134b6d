"""The publish endpoints, transport-neutral.  Check order as the reference: a body that is not JSON
at all (422), then the bearer token (401/403) and the ``write`` permission (403), then the
``Idempotency-Key`` header and the body's schema (422), then storage (403 per topic, 503)."""

from __future__ import annotations

import time
from collections.abc import Callable

import msgspec

from ingest import validation
from ingest.publisher import Publisher, response_of
from relaycore import jsonbody
from relaycore.access import Authorizer
from relaycore.models import NewMessage
from relaycore.store.base import PublishKind

Parse = Callable[[bytes | None, int], list[NewMessage]]
_encoder = msgspec.json.Encoder()


class PublishEndpoint:
    """``POST /api/v1/messages`` or ``/bulk``: raw body and headers in, (status, JSON body, whether
    it is an idempotent repeat) out; failures are raised as ``RelayError``s."""

    def __init__(self, authorizer: Authorizer, publisher: Publisher, kind: PublishKind, parse: Parse) -> None:
        self._authorizer = authorizer
        self._publisher = publisher
        self._kind: PublishKind = kind
        self._parse = parse

    async def __call__(
        self, body: bytes, token: str | None, idempotency_key: str | None
    ) -> tuple[int, bytes, bool]:
        compact = jsonbody.compact(body)
        user = await self._authorizer.authenticate(token)
        self._authorizer.require(user, "write")
        key = validation.idempotency_key(idempotency_key)
        messages = self._parse(compact, time.time_ns())
        result = await self._publisher.publish(messages, user=user, kind=self._kind, idempotency_key=key)
        status, out = response_of(result)
        return status, _encoder.encode(out), result.duplicate


def endpoints(authorizer: Authorizer, publisher: Publisher) -> dict[str, PublishEndpoint]:
    """The publish endpoints by path."""
    return {
        "/api/v1/messages": PublishEndpoint(authorizer, publisher, "single", validation.single),
        "/api/v1/messages/bulk": PublishEndpoint(authorizer, publisher, "bulk", validation.bulk),
    }
