"""Request bodies and headers -> validated ``NewMessage``s, with the reference's rules and
FastAPI-style 422 items.  Transport-neutral and pure apart from reading the clock once.

The body is re-encoded compactly in one pass (``msgspec.json.format``), which also proves it is
well-formed JSON before authentication runs (the reference's check order); the payloads are then
slices of that compact text, stored without ever being decoded into Python objects.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from ingest.schema import MessageIn, bulk_decoder, metadata_encoder, single_decoder
from relaycore import jsonbody
from relaycore.errors import InvalidInput
from relaycore.models import NewMessage, iso_z
from relaycore.names import topic_problem

IDEMPOTENCY_KEY_MAX = 255
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def idempotency_key(value: str | None) -> str | None:
    """The ``Idempotency-Key`` header: absent, or 1..255 printable ASCII characters."""
    if value is None:
        return None
    if 1 <= len(value) <= IDEMPOTENCY_KEY_MAX and value.isascii() and value.isprintable():
        return value
    raise InvalidInput.single(
        ["header", "idempotency-key"],
        f"Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_MAX} printable ASCII characters",
        value,
    )


def single(body: bytes | None, received_ns: int) -> list[NewMessage]:
    """The message of a ``POST /api/v1/messages`` body (compact JSON text)."""
    return _messages([_decode(single_decoder, body)], ["body"], received_ns, indexed=False)


def bulk(body: bytes | None, received_ns: int) -> list[NewMessage]:
    """The messages of a ``POST /api/v1/messages/bulk`` body; one bad item rejects them all.
    Every message is stamped with the same receipt instant."""
    return _messages(_decode(bulk_decoder, body).messages, ["body", "messages"], received_ns, indexed=True)


def _messages(
    items: list[MessageIn], loc: list[str | int], received_ns: int, *, indexed: bool
) -> list[NewMessage]:
    """Validated messages, or a 422 listing the topic and payload problems of every item."""
    ms, ts = received_ns // 1_000_000, timestamp_of(received_ns)
    out: list[NewMessage] = []
    problems: list[dict[str, Any]] = []
    for i, m in enumerate(items):
        payload = bytes(m.payload)
        problem = _topic_problem(m.topic)
        if problem is None and payload.startswith(b"{"):  # compact text: an object starts with '{'
            out.append(
                NewMessage(
                    topic=m.topic,
                    payload=payload,
                    timestamp=ts,
                    metadata=metadata_encoder.encode(m.metadata) if m.metadata else None,
                    expires_at_ms=None if m.ttl is None else ms + m.ttl * 1000,
                )
            )
            continue
        at = [*loc, i] if indexed else loc
        if problem is not None:
            problems.append(
                {
                    "type": "value_error",
                    "loc": [*at, "topic"],
                    "msg": f"Value error, {problem}",
                    "input": m.topic,
                }
            )
        if not payload.startswith(b"{"):
            problems.append(
                {
                    "type": "dict_type",
                    "loc": [*at, "payload"],
                    "msg": "Input should be a valid dictionary",
                    "input": msgspec.json.decode(payload),
                }
            )
    if problems:
        raise InvalidInput(problems)
    return out


# Producers reuse a handful of topic names: check each name once, not once per message.
_topic_problem = functools.lru_cache(maxsize=4096)(topic_problem)


def _decode(decoder: msgspec.json.Decoder[Any], body: bytes | None) -> Any:
    return jsonbody.decode(body, decoder)


def timestamp_of(received_ns: int) -> str:
    """ISO 8601 UTC ending in Z with microseconds (fraction omitted when zero), as the reference."""
    seconds, micros = divmod(received_ns // 1000, 1_000_000)
    whole = _whole_second(seconds)
    return f"{whole[:-1]}.{micros:06d}Z" if micros else whole


@functools.lru_cache(maxsize=4)
def _whole_second(seconds: int) -> str:
    """``iso_z`` of a whole second: formatted once per second rather than once per message."""
    return iso_z(_EPOCH + timedelta(seconds=seconds))
