"""Message ids are Valkey stream entry ids, ``"<ms>-<seq>"``, compared numerically.  Pure."""

from __future__ import annotations

import re

from relaycore.errors import InvalidInput

_ID = re.compile(r"^(\d{1,20})-(\d{1,20})$")
_U64 = 2**64

StreamId = tuple[int, int]
ZERO: StreamId = (0, 0)
MAX: StreamId = (2**64 - 1, 2**64 - 1)


def parse(value: str) -> StreamId | None:
    """The id as ``(ms, seq)``, or None if it is not a well-formed stream id."""
    m = _ID.match(value) if isinstance(value, str) else None
    if m is None:
        return None
    ms, seq = int(m.group(1)), int(m.group(2))
    if ms >= _U64 or seq >= _U64:
        return None
    return ms, seq


def require(value: object, loc: list[str | int]) -> StreamId:
    """Parse or raise a 422 naming the field (CONTRACT decision 4)."""
    parsed = parse(value) if isinstance(value, str) else None
    if parsed is None:
        raise InvalidInput.single(
            loc, "Invalid message id: expected '<milliseconds>-<sequence>', e.g. '1715600000123-0'", value
        )
    return parsed


def fmt(sid: StreamId) -> str:
    return f"{sid[0]}-{sid[1]}"
