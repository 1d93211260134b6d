"""The only Starlette-aware module in relaycore: the request pipeline (``relaycore.http_pipeline``:
request ids, body limits, metrics, error bodies) as Starlette middleware and exception handlers,
JSON in and out, the bearer token, and the ``/health``, ``/ready``, ``/metrics`` routes."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import msgspec
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from relaycore import errors, http_pipeline, jsonbody, logs, metrics, readiness
from relaycore.config import Settings
from relaycore.context import Context
from relaycore.http_pipeline import BodyLimits, RequestMetrics, bearer_of, drain_body, request_id_of
from relaycore.models import User, iso_z

log = logging.getLogger(__name__)
T = TypeVar("T")
VERSION = "0.1.0"

_encoder = msgspec.json.Encoder()


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return _encoder.encode(content)


def _response(reply: http_pipeline.Reply) -> Response:
    status, body, headers = reply
    return Response(
        body,
        status,
        {name.decode("latin-1"): value.decode("latin-1") for name, value in headers},
        media_type="application/json",
    )


def relay_error_response(exc: errors.RelayError) -> Response:
    return _response(http_pipeline.relay_error_reply(exc))


async def _on_error(request: HTTPConnection, exc: Exception) -> Response:
    return _response(http_pipeline.error_reply(exc, _service(request), request.url.path))


async def _on_http_error(request: HTTPConnection, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSON({"detail": exc.detail}, exc.status_code, exc.headers)


EXCEPTION_HANDLERS: dict[Any, Callable[[HTTPConnection, Exception], Awaitable[Response]]] = {
    errors.RelayError: _on_error,
    HTTPException: _on_http_error,
    RedisError: _on_error,
    Exception: _on_error,
}


# --- JSON bodies ------------------------------------------------------------------------------


async def read_json(request: Request, schema: type[T]) -> T:
    """The body decoded straight into ``schema`` (a msgspec Struct); 4xx on any problem."""
    return jsonbody.decode(jsonbody.compact(await request.body()), schema)


# --- identity ---------------------------------------------------------------------------------


def bearer_token(conn: HTTPConnection) -> str | None:
    return bearer_of(conn.headers.get("authorization", ""))


def context_of(conn: HTTPConnection) -> Context:
    ctx: Context = conn.app.state.relay
    return ctx


async def current_user(conn: HTTPConnection) -> User:
    return await context_of(conn).authorizer.authenticate(bearer_token(conn))


# --- ops routes -------------------------------------------------------------------------------


async def health(request: Request) -> Response:
    return JSON({"status": "healthy", "timestamp": iso_z(datetime.now(UTC)), "version": VERSION})


async def ready(request: Request) -> Response:
    ctx = context_of(request)
    try:
        async with asyncio.timeout(ctx.settings.ready_timeout):  # a stalled Valkey is not ready
            await ctx.backend.ping()
    except TimeoutError:
        return JSON({"ready": False, "checks": {"storage": "error: no answer in time"}}, 503)
    except (errors.Unavailable, RedisError, OSError) as exc:
        return JSON({"ready": False, "checks": {"storage": f"error: {readiness.storage_problem(exc)}"}}, 503)
    return JSON({"ready": True, "checks": {"storage": "ok"}})


async def metrics_endpoint(request: Request) -> Response:
    settings = context_of(request).settings
    if settings.metrics_port:  # served on a listener of its own
        return JSON({"detail": "Not Found"}, 404)
    if settings.metrics_token:
        given = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, b"Bearer " + settings.metrics_token.encode()):
            return JSON(
                {"detail": "Metrics need the metrics token"}, 401, headers={"WWW-Authenticate": "Bearer"}
            )
    return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)


OPS_ROUTES = [
    Route("/health", health, methods=["GET"]),
    Route("/ready", ready, methods=["GET"]),
    Route("/metrics", metrics_endpoint, methods=["GET"]),
]


# --- middleware -------------------------------------------------------------------------------


def _service(conn: HTTPConnection) -> str:
    return str(conn.scope.get("relay.service", "relay"))


class RelayMiddleware:
    """Request ids, body-size limit (413 before the handler sees an over-long body), a deadline for
    the whole body (408: the server's read timeout is per read, so a body dribbled a byte at a time
    would otherwise hold a request open forever) and metrics."""

    def __init__(self, app: ASGIApp, *, service: str, max_body_bytes: int, body_timeout: float) -> None:
        self.app = app
        self.service = service
        self.limits = BodyLimits(max_body_bytes, body_timeout)
        self.metrics = RequestMetrics(service)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            scope.setdefault("relay.service", self.service)
            await self.app(scope, receive, send)
            return
        scope.setdefault("relay.service", self.service)
        headers = dict(scope["headers"])
        request_id = request_id_of(headers)
        limits = self.limits
        length = headers.get(b"content-length")
        if length is not None and limits.declared_over(length):
            await limits.refuse_declared(length, receive, send, request_id.encode("latin-1"))
            return
        seen = 0
        status = 500
        body_deadline = asyncio.get_running_loop().time() + limits.body_timeout
        body_done = False

        async def limited_receive() -> Message:
            nonlocal seen, body_done
            if body_done:  # later receives wait for a disconnect, as long as they like
                return await receive()
            try:
                async with asyncio.timeout_at(body_deadline):
                    message = await receive()
            except TimeoutError:
                raise limits.timed_out() from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limits.max_body:
                    if message.get("more_body", False):
                        await drain_body(receive, seen, limits.drain_limit)
                    raise limits.too_large()
            return message

        async def tagged_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode("latin-1")),
                ]
            await send(message)

        start = time.perf_counter()
        logged_as = logs.request_id.set(request_id)
        try:
            await self.app(scope, limited_receive, tagged_send)
        finally:
            logs.request_id.reset(logged_as)
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            self.metrics.observe(scope["method"], path, status, time.perf_counter() - start)


# --- app factory ------------------------------------------------------------------------------

Hook = Callable[[], Awaitable[None]]


def service_app(
    service: str,
    settings: Settings,
    ctx: Context | None,
    routes: Sequence[BaseRoute],
    *,
    startup: Sequence[Hook] = (),
    shutdown: Sequence[Hook] = (),
) -> Starlette:
    """A service's Starlette app: its routes plus the ops routes, relay error mapping, limits and
    metrics, and a lifespan that starts the shared context, then ``startup`` hooks (and the reverse)."""
    context = ctx or Context(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await context.start()
        try:
            for hook in startup:
                await hook()
            yield
        finally:
            for hook in reversed(shutdown):
                await hook()
            await context.stop()

    app = Starlette(
        routes=[*routes, *OPS_ROUTES],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
        middleware=[
            Middleware(
                RelayMiddleware,
                service=service,
                max_body_bytes=settings.max_body_bytes,
                body_timeout=settings.read_timeout,
            )
        ],
    )
    app.state.relay = context
    return app
