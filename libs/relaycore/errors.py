"""Errors that cross layers.  Transport-neutral: ``relaycore.web`` maps them to HTTP, the
gateway maps them to WebSocket frames and close codes.

    RelayError                    base; ``code`` is a stable string, ``detail`` the human text
    ├── Unauthenticated           no credentials, or a bad/expired token          (HTTP 401)
    ├── Forbidden                 authenticated, but not allowed                   (HTTP 403)
    ├── NotFound                  the named user or topic does not exist           (HTTP 404)
    ├── MethodNotAllowed          the path exists, not for this method; ``allow``   (HTTP 405)
    ├── Conflict                  it exists already                                (HTTP 409)
    ├── BadRequest                understood, but refused by a rule                (HTTP 400)
    ├── InvalidInput              fails validation; carries FastAPI-style items    (HTTP 422)
    ├── PayloadTooLarge           body over the configured limit                   (HTTP 413)
    ├── RequestTimeout            body not received within the read timeout        (HTTP 408)
    ├── RateLimited               too many attempts; carries retry_after seconds   (HTTP 429)
    ├── Unavailable               a dependency (Valkey) is down; retry later       (HTTP 503)
    └── BadGateway                an upstream (an identity provider) failed        (HTTP 502)
"""

from __future__ import annotations

from typing import Any


class RelayError(Exception):
    code = "RELAY_ERROR"

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail)
        self.detail = detail


class Unauthenticated(RelayError):
    code = "UNAUTHENTICATED"


class Forbidden(RelayError):
    code = "FORBIDDEN"


class NotFound(RelayError):
    code = "NOT_FOUND"


class MethodNotAllowed(RelayError):
    """``allow`` names the methods the path answers (the ``Allow`` header)."""

    code = "METHOD_NOT_ALLOWED"

    def __init__(self, allow: str) -> None:
        super().__init__("Method Not Allowed")
        self.allow = allow


class Conflict(RelayError):
    code = "CONFLICT"


class BadRequest(RelayError):
    code = "BAD_REQUEST"


class InvalidInput(RelayError):
    """``errors`` are FastAPI/pydantic-shaped items: ``{"type", "loc", "msg", "input"}``."""

    code = "INVALID_INPUT"

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(str(e.get("msg", "")) for e in errors))
        self.errors = errors

    @classmethod
    def single(
        cls, loc: list[str | int], msg: str, input: Any = None, type: str = "value_error"
    ) -> InvalidInput:
        return cls([{"type": type, "loc": loc, "msg": msg, "input": input}])


class PayloadTooLarge(RelayError):
    code = "PAYLOAD_TOO_LARGE"


class RequestTimeout(RelayError):
    code = "REQUEST_TIMEOUT"


class RateLimited(RelayError):
    code = "RATE_LIMITED"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class Unavailable(RelayError):
    code = "UNAVAILABLE"


class BadGateway(RelayError):
    code = "BAD_GATEWAY"
