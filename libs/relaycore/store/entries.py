"""Stream entry <-> StoredMessage.  Fields: ``t`` topic (fan-out log only), ``p`` payload JSON,
``ts`` ISO timestamp, ``m`` metadata JSON (optional), ``x`` expiry in epoch ms (optional)."""

from __future__ import annotations

from collections.abc import Iterable

from relaycore import metrics
from relaycore.models import NewMessage, StoredMessage


def fields_of(m: NewMessage) -> list[bytes | str]:
    return [
        m.payload,
        m.timestamp,
        m.metadata or b"",
        "" if m.expires_at_ms is None else str(m.expires_at_ms),
    ]


def decode(entry_id: bytes, fields: dict[bytes, bytes], topic: str | None = None) -> StoredMessage:
    x = fields.get(b"x")
    return StoredMessage(
        message_id=entry_id.decode(),
        topic=topic if topic is not None else fields[b"t"].decode(),
        payload=fields[b"p"],
        timestamp=fields[b"ts"].decode(),
        metadata=fields.get(b"m"),
        expires_at_ms=int(x) if x else None,
    )


def unexpired(messages: Iterable[StoredMessage], now: int, limit: int | None = None) -> list[StoredMessage]:
    """``messages`` (up to ``limit`` of them) without those past their ``ttl`` at ``now``; each one
    skipped is counted in ``relay_messages_expired_total``, as the cache and live dispatch count
    theirs."""
    out: list[StoredMessage] = []
    dropped = 0
    for m in messages:
        if m.expired(now):
            dropped += 1
            continue
        out.append(m)
        if limit is not None and len(out) >= limit:
            break
    if dropped:
        metrics.messages_expired.inc(dropped)
    return out
