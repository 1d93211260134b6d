"""Valkey replies as the stores read them.  No client here sets redis-py's ``decode_responses``, so
replies are bytes; redis-py's types also allow ``str`` (decoding is a runtime flag of the client),
so a reply the type checker sees as ``bytes | str`` is read through these."""

from __future__ import annotations

from typing import cast

# A stream entry as XRANGE / XREVRANGE give it here: (id, fields), all bytes.
Entry = tuple[bytes, dict[bytes, bytes]]


def text(reply: bytes | str) -> str:
    """A reply as text (UTF-8)."""
    return reply.decode() if isinstance(reply, bytes) else reply


def raw(reply: bytes | str) -> bytes:
    """A reply as bytes."""
    return reply if isinstance(reply, bytes) else reply.encode()


def entries(rows: object) -> list[Entry]:
    """XRANGE / XREVRANGE rows.  redis-py types them loosely (``None``, ``str``, entries without
    fields, which only XCLAIM-style replies hold); XRANGE answers a list of ``Entry``."""
    return cast("list[Entry]", rows)
