"""The HTTP request pipeline, written once and framework-free: request ids, the body limit (413) and
deadline (408), request metrics, and the error bodies.  ``relaycore.web.RelayMiddleware`` with its
Starlette exception handlers, and ``relaycore.bare_routes.BareRoutes`` (hot routes in front of
Starlette) both call these, so a publish and any other route answer alike."""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

import msgspec
from redis.exceptions import RedisError

from relaycore import errors, metrics

log = logging.getLogger("relaycore.web")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
RawHeaders = list[tuple[bytes, bytes]]
# (status, JSON body, headers that go before content-length/content-type, as Starlette orders them)
Reply = tuple[int, bytes, RawHeaders]

_JSON_TYPE = (b"content-type", b"application/json")
_encoder = msgspec.json.Encoder()
# uuid4's version and variant bits over 128 random bits: uuid.uuid4() reads os.urandom, a syscall
# per request for an id that only has to be unique (random reseeds itself in forked children).
_V4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_V4_SET = (0x4000 << 64) | (0x8000 << 48)


# --- request ids and the bearer token ----------------------------------------------------------


def request_id_hex() -> str:
    """A fresh request id: 32 hex digits shaped like ``uuid.uuid4().hex``."""
    return f"{random.getrandbits(128) & _V4_CLEAR | _V4_SET:032x}"


def request_id_of(headers: Mapping[bytes, bytes]) -> str:
    """The client's ``X-Request-Id`` (its first 64 characters), or a fresh one."""
    return headers.get(b"x-request-id", b"").decode("latin-1")[:64] or request_id_hex()


def bearer_of(authorization: str) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header value; None for anything else."""
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def bearer_token(headers: Mapping[bytes, bytes]) -> str | None:
    """The bearer token of raw ASGI headers."""
    return bearer_of(headers.get(b"authorization", b"").decode("latin-1"))


# --- body limits -------------------------------------------------------------------------------


def drain_limit(max_body_bytes: int) -> int:
    """How much of an over-long body is read and dropped before answering 413.  Clients that send
    the whole body before reading (requests, httpx) otherwise get a connection reset instead of the
    413 (the real client retries resets forever); beyond this, the connection is just closed."""
    return max(8 * max_body_bytes, 16 * 1024 * 1024)


async def drain_body(receive: Receive, seen: int, limit: int) -> None:
    """Read and drop the rest of a request body, up to ``limit`` bytes in all."""
    while seen <= limit:
        message = await receive()
        if message["type"] != "http.request":
            return
        seen += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


class BodyLimits:
    """A service's body size limit and body deadline, and the answers for breaking them."""

    def __init__(self, max_body_bytes: int, body_timeout: float) -> None:
        self.max_body = max_body_bytes
        self.body_timeout = body_timeout
        self.drain_limit = drain_limit(max_body_bytes)
        self.too_large_detail = f"Request body exceeds {max_body_bytes} bytes"
        self._too_large_body = json_detail(self.too_large_detail)

    def declared_over(self, length: bytes) -> bool:
        """Whether a ``Content-Length`` value is refused before the body is read: not a number, or
        over the limit."""
        return not length.isdigit() or int(length) > self.max_body

    async def refuse_declared(self, length: bytes, receive: Receive, send: Send, request_id: bytes) -> None:
        """Answer 413 (request id first) for a refused ``Content-Length``, having dropped the body
        when it is small enough to drain."""
        if length.isdigit() and int(length) <= self.drain_limit:
            await drain_body(receive, 0, self.drain_limit)
        await respond(send, 413, self._too_large_body, [(b"x-request-id", request_id)], None)

    def too_large(self) -> errors.PayloadTooLarge:
        return errors.PayloadTooLarge(self.too_large_detail)

    def timed_out(self) -> errors.RequestTimeout:
        return errors.RequestTimeout(f"Request body not received within {self.body_timeout:g} seconds")


# --- responses ---------------------------------------------------------------------------------


def json_detail(detail: Any) -> bytes:
    return _encoder.encode({"detail": detail})


async def respond(send: Send, status: int, body: bytes, first: RawHeaders, request_id: bytes | None) -> None:
    """One JSON response, headers in the order Starlette's ``JSON`` + RelayMiddleware give them:
    ``first``, content-length, content-type, then the request id (if given)."""
    headers = [*first, (b"content-length", str(len(body)).encode()), _JSON_TYPE]
    if request_id is not None:
        headers.append((b"x-request-id", request_id))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


_STATUS: dict[type[errors.RelayError], int] = {
    errors.Unauthenticated: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.MethodNotAllowed: 405,
    errors.Conflict: 409,
    errors.BadRequest: 400,
    errors.InvalidInput: 422,
    errors.PayloadTooLarge: 413,
    errors.RequestTimeout: 408,
    errors.RateLimited: 429,
    errors.Unavailable: 503,
    errors.BadGateway: 502,
}


def relay_error_reply(exc: errors.RelayError) -> Reply:
    """The HTTP answer for a ``RelayError``: status by class, ``{"detail": ...}``, auth headers."""
    status = next((s for cls, s in _STATUS.items() if isinstance(exc, cls)), 500)
    headers: RawHeaders = []
    if isinstance(exc, errors.Unauthenticated):
        headers.append((b"www-authenticate", b"Bearer"))
    elif isinstance(exc, errors.RateLimited):
        headers.append((b"retry-after", str(exc.retry_after).encode()))
    elif isinstance(exc, errors.MethodNotAllowed):
        headers.append((b"allow", exc.allow.encode("latin-1")))
    if isinstance(exc, errors.InvalidInput):
        return status, json_detail(exc.errors), headers
    return status, json_detail(exc.detail), headers


_STORAGE_DOWN: Reply = (503, json_detail("Storage is unavailable, retry later"), [])
_CRASH: Reply = (
    500,
    _encoder.encode({"error": "INTERNAL_ERROR", "message": "An internal error occurred", "details": None}),
    [],
)


def error_reply(exc: Exception, service: str, path: str) -> Reply:
    """The answer for anything a handler raised: a ``RelayError`` by its class, a Valkey failure
    503 (both counted as storage errors when storage is the cause), anything else 500, logged."""
    if isinstance(exc, errors.RelayError):
        if isinstance(exc, errors.Unavailable):  # the stores turn Valkey failures into this
            metrics.storage_errors.labels(service).inc()
            log.warning("503 on %s: %s (%r)", path, exc.detail, exc.__cause__)
        return relay_error_reply(exc)
    if isinstance(exc, RedisError):
        metrics.storage_errors.labels(service).inc()
        log.warning("storage error on %s: %r", path, exc)
        return _STORAGE_DOWN
    log.error("unhandled error on %s", path, exc_info=exc)
    return _CRASH


# --- metrics -----------------------------------------------------------------------------------


class RequestMetrics:
    """A service's request counter and latency series, each (method, route, status) looked up once."""

    def __init__(self, service: str) -> None:
        self.service = service
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = (
                metrics.http_requests.labels(self.service, method, route, str(status)),
                metrics.http_latency.labels(self.service, route),
            )
        series[0].inc()
        series[1].observe(seconds)
