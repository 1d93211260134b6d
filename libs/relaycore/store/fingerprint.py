"""What makes two publishes "the same request" for an ``Idempotency-Key`` (CONTRACT decision 5):
the endpoint (single or bulk) and each message's topic, payload and metadata, in order.  The
receipt timestamp and the expiry derived from ``ttl`` are stamped per request, so they are not
part of it.  A key reused with a request of another fingerprint is refused with a 422.  Pure."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from relaycore.errors import InvalidInput
from relaycore.models import NewMessage


def of(kind: str, messages: Sequence[NewMessage]) -> str:
    """A short digest of the request (length-prefixed parts, so no two requests share one text)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(kind.encode())
    for m in messages:
        for part in (m.topic.encode(), m.payload, m.metadata or b""):
            h.update(b"%d:" % len(part))
            h.update(part)
    return h.hexdigest()


def require_same(stored: str, given: str, key: str) -> None:
    """Raise the 422 when a record made with fingerprint ``stored`` is repeated by another request
    (records written before fingerprints were kept have ``stored`` empty and always match)."""
    if stored and stored != given:
        raise InvalidInput.single(
            ["header", "idempotency-key"],
            "Idempotency-Key was already used for a different request (another body or endpoint);"
            " send a new key for a new request",
            key,
            "idempotency_key_reused",
        )
