"""Bare-ASGI routes served in front of a service's framework app, for hot endpoints whose cost per
request is mostly framework: exact method+path pairs (another method on one of their paths is 405),
through the same request pipeline as ``RelayMiddleware`` (``relaycore.http_pipeline``: request ids,
413 body limit, 408 body deadline, metrics, error bodies) but without the middleware, router and
Request/Response chain.  Everything else falls through to the app.  Framework-free: the service's
app module plugs it into Starlette."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from types import CoroutineType
from typing import Any

from relaycore import eager, errors, logs
from relaycore.http_pipeline import (
    BodyLimits,
    RawHeaders,
    Receive,
    Reply,
    RequestMetrics,
    Scope,
    Send,
    drain_body,
    error_reply,
    request_id_of,
    respond,
)

ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
# The request body and its headers (lower-case names; the first of repeated headers, as Starlette).
Handler = Callable[[bytes, Mapping[bytes, bytes]], Awaitable[Reply]]

_DISCONNECTED = 499  # the metrics' status for a request whose client left before it was answered


class _Disconnected(Exception):
    """The client went away before its body was complete."""


class BareRoutes:
    """An ASGI app: ``routes`` served directly, anything else passed to ``fallback``."""

    def __init__(
        self,
        fallback: ASGIApp,
        routes: Mapping[tuple[str, str], Handler],
        *,
        service: str,
        max_body_bytes: int,
        body_timeout: float,
    ) -> None:
        self.fallback = fallback
        self.routes = dict(routes)
        self.service = service
        self.limits = BodyLimits(max_body_bytes, body_timeout)
        self.metrics = RequestMetrics(service)
        methods: dict[str, list[str]] = {}
        for method, path in self.routes:
            methods.setdefault(path, []).append(method)
        # Another method on a served path: 405 naming the methods, as a framework router answers.
        self.not_allowed = {path: _not_allowed(", ".join(allow)) for path, allow in methods.items()}

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Returns the awaitable it picks instead of awaiting it: no frame of its own, neither per
        # request nor for a WebSocket's life.
        if scope["type"] == "http":
            handler = self.routes.get((scope["method"], scope["path"])) or self.not_allowed.get(scope["path"])
            if handler is not None:
                return self._serve(handler, scope, receive, send)
        return self.fallback(scope, receive, send)

    async def _serve(self, handler: Handler, scope: Scope, receive: Receive, send: Send) -> None:
        start = time.perf_counter()
        scope.setdefault("relay.service", self.service)
        raw: RawHeaders = scope["headers"]
        last = dict(raw)  # RelayMiddleware reads x-request-id and content-length from the last one
        request_text = request_id_of(last)
        request_id = request_text.encode("latin-1")
        logged_as = logs.request_id.set(request_text)
        status = _DISCONNECTED
        try:
            length = last.get(b"content-length")
            if length is not None and self.limits.declared_over(length):
                status = 413
                await self.limits.refuse_declared(length, receive, send, request_id)
                return
            headers = last if len(last) == len(raw) else dict(reversed(raw))
            try:
                status, out, extra = await handler(await self._body(receive), headers)
            except _Disconnected:
                return
            except Exception as exc:
                status, out, extra = error_reply(exc, self.service, scope["path"])
            await respond(send, status, out, extra, request_id)
        finally:
            logs.request_id.reset(logged_as)
            self.metrics.observe(scope["method"], scope["path"], status, time.perf_counter() - start)

    async def _body(self, receive: Receive) -> bytes:
        """The whole body, within the body deadline (408) and size limit (413).  As in
        RelayMiddleware, the rest of an over-long body is dropped without the deadline."""
        limits = self.limits
        # A small body has usually arrived with the head: then it is taken without arming the
        # deadline (a timer per request was ~4 % of a publish's CPU).
        first = receive()
        if isinstance(first, CoroutineType):
            done, waiting = eager.step(first)
            if done:
                chunk, more = _chunk(waiting)
                if not more and len(chunk) <= limits.max_body:
                    return chunk
                pending: Awaitable[MutableMapping[str, Any]] | None = _ready(waiting)
            else:
                pending = eager.resume(first, waiting)
        else:
            pending = first
        chunks: list[bytes] = []
        seen = 0
        try:
            async with asyncio.timeout(limits.body_timeout):
                while True:
                    message = await (pending or receive())
                    pending = None
                    chunk, more = _chunk(message)
                    seen += len(chunk)
                    if seen > limits.max_body:
                        break
                    if not more and not chunks:
                        return chunk
                    chunks.append(chunk)
                    if not more:
                        return b"".join(chunks)
        except TimeoutError:
            raise limits.timed_out() from None
        if more:
            await drain_body(receive, seen, limits.drain_limit)
        raise limits.too_large()


def _not_allowed(allow: str) -> Handler:
    async def refuse(body: bytes, headers: Mapping[bytes, bytes]) -> Reply:
        raise errors.MethodNotAllowed(allow)

    return refuse


def _chunk(message: MutableMapping[str, Any]) -> tuple[bytes, bool]:
    """A received message's body chunk and whether more follows; disconnected: ``_Disconnected``."""
    if message["type"] != "http.request":
        raise _Disconnected
    return message.get("body", b""), message.get("more_body", False)


async def _ready(message: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    return message
