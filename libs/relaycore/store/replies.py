"""Valkey replies as the stores read them.  No client here sets redis-py's ``decode_responses``, so
replies are bytes; redis-py's types also allow ``str`` (decoding is a runtime flag of the client),
so a reply the type checker sees as ``bytes | str`` is read through these."""

from __future__ import annotations


def text(reply: bytes | str) -> str:
    """A reply as text (UTF-8)."""
    return reply.decode() if isinstance(reply, bytes) else reply


def raw(reply: bytes | str) -> bytes:
    """A reply as bytes."""
    return reply if isinstance(reply, bytes) else reply.encode()
