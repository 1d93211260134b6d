"""Hands validated messages to the message store (one atomic round trip) and shapes the answer.
Transport-neutral: the routes turn the returned status and Struct into an HTTP response."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence

from ingest.schema import BulkItemOut, BulkOut, PublishedOut, SummaryOut
from relaycore import metrics
from relaycore.models import NewMessage, User
from relaycore.store.base import MessageStore, PublishKind, PublishResult

_published = {kind: metrics.messages_published.labels(kind) for kind in ("single", "bulk")}
# uuid4's version and variant bits: a topic id is a uuid4 hex drawn from ``random`` (no syscall per
# publish as os.urandom makes; the id has to be unique, not secret).
_V4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_V4_SET = (0x4000 << 64) | (0x8000 << 48)


def _uuid4_hex() -> str:
    return f"{random.getrandbits(128) & _V4_CLEAR | _V4_SET:032x}"


def topic_ids(messages: Sequence[NewMessage]) -> list[str]:
    """An id per message for the topic the publish may create; messages of one topic share one
    (the store uses the first), so a bulk draws one uuid per distinct topic, not per message."""
    if len(messages) == 1:
        return [_uuid4_hex()]
    fresh: dict[str, str] = {}
    return [fresh.get(m.topic) or fresh.setdefault(m.topic, _uuid4_hex()) for m in messages]


class Publisher:
    def __init__(self, store: MessageStore, idempotency_ttl: float) -> None:
        self._store = store
        self._ttl = idempotency_ttl

    async def publish(
        self, messages: Sequence[NewMessage], *, user: User, kind: PublishKind, idempotency_key: str | None
    ) -> PublishResult:
        start = time.perf_counter()
        result = await self._store.publish(
            messages,
            user=user,
            kind=kind,
            idempotency_key=idempotency_key,
            idempotency_ttl=self._ttl,
            topic_ids=topic_ids(messages),
        )
        metrics.publish_latency.observe(time.perf_counter() - start)
        if result.duplicate:
            metrics.publish_duplicates.inc()
        else:
            _published[kind].inc(len(result.message_ids))
        return result


def response_of(result: PublishResult) -> tuple[int, PublishedOut | BulkOut]:
    """The status and body of a publish; a repeat is rendered from the first request's result,
    so it gets the same status and the same body even if sent to the other endpoint."""
    if result.kind == "single":
        return 201, PublishedOut(result.message_ids[0], result.topics[0], result.timestamps[0])
    n = len(result.message_ids)
    items = [BulkItemOut(i, t) for i, t in zip(result.message_ids, result.topics, strict=True)]
    return 207, BulkOut(items, SummaryOut(total=n, accepted=n, rejected=0))
