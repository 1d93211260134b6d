"""Bare-ASGI routes served in front of a service's framework app, for hot endpoints whose cost per
request is mostly framework: exact method+path pairs, with ``RelayMiddleware``'s behaviour (request
ids, 413 body limit, 408 body deadline, metrics) and the app's own error mapping (``on_error``), but
without the middleware, router and Request/Response chain.  Everything else falls through to the app.
Framework-free: the service's app module plugs it into Starlette."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from types import CoroutineType
from typing import Any

import msgspec

from relaycore import eager, errors, logs, metrics

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
RawHeaders = list[tuple[bytes, bytes]]
# (status, JSON body, headers that go before content-length/content-type, as Starlette orders them)
Reply = tuple[int, bytes, RawHeaders]
# The request body and its headers (lower-case names; the first of repeated headers, as Starlette).
Handler = Callable[[bytes, Mapping[bytes, bytes]], Awaitable[Reply]]
# The answer the framework app would give for an exception raised while serving ``scope``.
ErrorReply = Callable[[Scope, Exception], Awaitable[Reply]]

_JSON_TYPE = (b"content-type", b"application/json")
_encoder = msgspec.json.Encoder()
_DISCONNECTED = 499  # the metrics' status for a request whose client left before it was answered
# uuid4's version and variant bits over 128 random bits: uuid.uuid4() reads os.urandom, a syscall
# per request for an id that only has to be unique (random reseeds itself in forked children).
_V4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_V4_SET = (0x4000 << 64) | (0x8000 << 48)


def request_id_hex() -> str:
    """A fresh request id: 32 hex digits shaped like ``uuid.uuid4().hex``."""
    return f"{random.getrandbits(128) & _V4_CLEAR | _V4_SET:032x}"


def bearer_of(authorization: str) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header value; None for anything else."""
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def bearer_token(headers: Mapping[bytes, bytes]) -> str | None:
    """The bearer token of raw ASGI headers."""
    return bearer_of(headers.get(b"authorization", b"").decode("latin-1"))


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


class _Disconnected(Exception):
    """The client went away before its body was complete."""


class BareRoutes:
    """An ASGI app: ``routes`` served directly, anything else passed to ``fallback``."""

    def __init__(
        self,
        fallback: ASGIApp,
        routes: Mapping[tuple[str, str], Handler],
        *,
        on_error: ErrorReply,
        service: str,
        max_body_bytes: int,
        body_timeout: float,
    ) -> None:
        self.fallback = fallback
        self.on_error = on_error
        self.routes = dict(routes)
        self.service = service
        self.max_body = max_body_bytes
        self.body_timeout = body_timeout
        self.drain_limit = drain_limit(max_body_bytes)
        self._too_large = f"Request body exceeds {max_body_bytes} bytes"
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            handler = self.routes.get((scope["method"], scope["path"]))
            if handler is not None:
                await self._serve(handler, scope, receive, send)
                return
        await self.fallback(scope, receive, send)

    async def _serve(self, handler: Handler, scope: Scope, receive: Receive, send: Send) -> None:
        start = time.perf_counter()
        scope.setdefault("relay.service", self.service)
        raw: RawHeaders = scope["headers"]
        last = dict(raw)  # RelayMiddleware reads x-request-id and content-length from the last one
        given = last.get(b"x-request-id", b"").decode("latin-1")[:64]
        request_text = given or request_id_hex()
        request_id = request_text.encode("latin-1")
        logged_as = logs.request_id.set(request_text)
        status = _DISCONNECTED
        try:
            length = last.get(b"content-length")
            if length is not None and (not length.isdigit() or int(length) > self.max_body):
                if length.isdigit() and int(length) <= self.drain_limit:
                    await drain_body(receive, 0, self.drain_limit)
                status = 413
                body = _json_detail(self._too_large)
                # RelayMiddleware's early 413 names the request id first.
                await _respond(send, status, body, [(b"x-request-id", request_id)], None)
                return
            headers = last if len(last) == len(raw) else dict(reversed(raw))
            try:
                status, out, extra = await handler(await self._body(receive), headers)
            except _Disconnected:
                return
            except Exception as exc:
                status, out, extra = await self.on_error(scope, exc)
            await _respond(send, status, out, extra, request_id)
        finally:
            logs.request_id.reset(logged_as)
            counter, latency = self._metrics(scope["method"], scope["path"], status)
            counter.inc()
            latency.observe(time.perf_counter() - start)

    async def _body(self, receive: Receive) -> bytes:
        """The whole body, within ``body_timeout`` (408) and ``max_body_bytes`` (413).  As in
        RelayMiddleware, the rest of an over-long body is dropped without the deadline."""
        # A small body has usually arrived with the head: then it is taken without arming the
        # deadline (a timer per request was ~4 % of a publish's CPU).
        first = receive()
        if isinstance(first, CoroutineType):
            done, waiting = eager.step(first)
            if done:
                chunk, more = _chunk(waiting)
                if not more and len(chunk) <= self.max_body:
                    return chunk
                pending: Awaitable[MutableMapping[str, Any]] | None = _ready(waiting)
            else:
                pending = eager.resume(first, waiting)
        else:
            pending = first
        chunks: list[bytes] = []
        seen = 0
        try:
            async with asyncio.timeout(self.body_timeout):
                while True:
                    message = await (pending or receive())
                    pending = None
                    chunk, more = _chunk(message)
                    seen += len(chunk)
                    if seen > self.max_body:
                        break
                    if not more and not chunks:
                        return chunk
                    chunks.append(chunk)
                    if not more:
                        return b"".join(chunks)
        except TimeoutError:
            raise errors.RequestTimeout(
                f"Request body not received within {self.body_timeout:g} seconds"
            ) from None
        if more:
            await drain_body(receive, seen, self.drain_limit)
        raise errors.PayloadTooLarge(self._too_large)

    def _metrics(self, method: str, path: str, status: int) -> tuple[Any, Any]:
        """The request counter and latency series of a route and status, looked up once."""
        key = (method, path, status)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = (
                metrics.http_requests.labels(self.service, method, path, str(status)),
                metrics.http_latency.labels(self.service, path),
            )
        return series


def _chunk(message: MutableMapping[str, Any]) -> tuple[bytes, bool]:
    """A received message's body chunk and whether more follows; disconnected: ``_Disconnected``."""
    if message["type"] != "http.request":
        raise _Disconnected
    return message.get("body", b""), message.get("more_body", False)


async def _ready(message: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    return message


def _json_detail(detail: str) -> bytes:
    return _encoder.encode({"detail": detail})


async def _respond(send: Send, status: int, body: bytes, first: RawHeaders, request_id: bytes | None) -> None:
    """One JSON response, headers in the order Starlette's ``JSON`` + RelayMiddleware give them."""
    headers = [*first, (b"content-length", str(len(body)).encode()), _JSON_TYPE]
    if request_id is not None:
        headers.append((b"x-request-id", request_id))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
