"""JSON request bodies, the reference's way: syntax first (before authentication), then the
schema, with FastAPI-style error items.  One place for every service.  Pure.

    compact(body)          -> compact JSON text (None if empty); 422 json_invalid / 400 bad UTF-8
    decode(body, Schema)   -> a Schema instance; 422 with one item naming the field
    invalid(exc)           -> a msgspec failure as InvalidInput
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec

from relaycore.errors import BadRequest, InvalidInput

T = TypeVar("T")
_PATH = re.compile(r"\.(\w+)|\[(\d+)\]")
_BYTE = re.compile(r"\(byte (\d+)\)")
MISSING_BODY = {"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}


def compact(body: bytes) -> bytes | None:
    """The body re-encoded compactly (which also proves it is JSON), or None when empty.
    Malformed JSON is 422 ``json_invalid``; bytes that are not UTF-8 are 400, as the reference."""
    if not body.strip():
        return None
    if not body.isascii():
        try:
            body.decode()
        except UnicodeDecodeError:
            raise BadRequest("There was an error parsing the body") from None
    try:
        return msgspec.json.format(body, indent=-1)
    except msgspec.DecodeError as exc:
        at = _BYTE.search(str(exc))
        raise json_invalid(int(at.group(1)) if at else len(body), str(exc)) from None
    except RecursionError:
        raise json_invalid(0, "JSON nested too deeply") from None


def decode(body: bytes | None, schema: type[T] | msgspec.json.Decoder[T]) -> T:
    """``body`` (already syntax-checked, or not) decoded into ``schema``; 422 on any mismatch."""
    if not body:
        raise InvalidInput([dict(MISSING_BODY)])
    try:
        if isinstance(schema, msgspec.json.Decoder):
            return schema.decode(body)
        return msgspec.json.decode(body, type=schema)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise invalid(exc) from None
    except UnicodeDecodeError:
        raise BadRequest("There was an error parsing the body") from None
    except RecursionError:
        raise json_invalid(0, "JSON nested too deeply") from None


def invalid(exc: msgspec.ValidationError | msgspec.DecodeError) -> InvalidInput:
    """A msgspec failure as one FastAPI-style 422 item."""
    text = str(exc)
    if isinstance(exc, msgspec.DecodeError) and not isinstance(exc, msgspec.ValidationError):
        at = _BYTE.search(text)
        return json_invalid(int(at.group(1)) if at else 0, text)
    msg, _, path = text.partition(" - at `$")
    loc: list[str | int] = ["body"]
    loc += [m.group(1) if m.group(1) else int(m.group(2)) for m in _PATH.finditer(path.rstrip("`"))]
    if msg.startswith("Object missing required field"):
        return InvalidInput(
            [{"type": "missing", "loc": [*loc, msg.split("`")[1]], "msg": "Field required", "input": None}]
        )
    return InvalidInput([{"type": "value_error", "loc": loc, "msg": msg, "input": None}])


def json_invalid(position: int, error: str) -> InvalidInput:
    item: dict[str, Any] = {
        "type": "json_invalid",
        "loc": ["body", position],
        "msg": "JSON decode error",
        "input": {},
        "ctx": {"error": error},
    }
    return InvalidInput([item])
