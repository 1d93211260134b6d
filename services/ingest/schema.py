"""The publish endpoints' wire shapes (seed reference, CONTRACT decisions 3-5) as msgspec Structs,
with one module-level decoder per request schema.  Pure: no I/O."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

MAX_BULK = 100

PositiveInt = Annotated[int, msgspec.Meta(gt=0)]


class MessageIn(msgspec.Struct, kw_only=True):
    """One message as a producer sends it.  ``payload`` stays raw JSON text (validated to be an
    object later); unknown fields are ignored, as the reference's pydantic model does."""

    topic: str
    payload: msgspec.Raw
    ttl: PositiveInt | None = None
    metadata: dict[str, str] | None = None


class BulkIn(msgspec.Struct, kw_only=True):
    messages: Annotated[list[MessageIn], msgspec.Meta(min_length=1, max_length=MAX_BULK)]


class PublishedOut(msgspec.Struct):
    message_id: str
    topic: str
    timestamp: str


class BulkItemOut(msgspec.Struct, omit_defaults=False):
    message_id: str | None
    topic: str
    status: Literal["accepted", "rejected"] = "accepted"
    error: str | None = None


class SummaryOut(msgspec.Struct):
    total: int
    accepted: int
    rejected: int


class BulkOut(msgspec.Struct):
    results: list[BulkItemOut]
    summary: SummaryOut


# Lax mode mirrors pydantic's: a ttl of "5" or 5.0 is accepted as 5; booleans stay rejected.
# It only relaxes non-string targets, so topic and metadata values must still be JSON strings.
single_decoder = msgspec.json.Decoder(MessageIn, strict=False)
bulk_decoder = msgspec.json.Decoder(BulkIn, strict=False)
metadata_encoder = msgspec.json.Encoder()
