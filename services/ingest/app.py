"""Composition of the ingest service: routes, lifespan hooks.  Wires; does not decide."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.applications import Starlette
from starlette.requests import HTTPConnection

from ingest.routes import bare, publish_endpoints, routes
from relaycore.adapters.starlette import put_in_front
from relaycore.bare_routes import BareRoutes, Handler, Reply, Scope
from relaycore.config import Settings
from relaycore.context import Context
from relaycore.web import EXCEPTION_HANDLERS, service_app


def create_app(settings: Settings, ctx: Context | None = None) -> Starlette:
    context = ctx or Context(settings)
    by_path = publish_endpoints(context)
    app = service_app("ingest", settings, context, routes(by_path))
    # The publish endpoints skip Starlette's per-request chain (most of their CPU otherwise).
    serve_in_front(app, bare(by_path), service="ingest")
    return app


def serve_in_front(app: Starlette, handlers: Mapping[tuple[str, str], Handler], *, service: str) -> None:
    """Make ``app`` answer ``handlers`` through ``BareRoutes`` before its middleware stack."""
    settings: Settings = app.state.relay.settings
    put_in_front(
        app,
        lambda stack: BareRoutes(
            stack,
            handlers,
            on_error=error_reply,
            service=service,
            max_body_bytes=settings.max_body_bytes,
            body_timeout=settings.read_timeout,
        ),
    )


async def error_reply(scope: Scope, exc: Exception) -> Reply:
    """The answer the Starlette app gives for ``exc``: its own exception handlers, by class."""
    handler = next(EXCEPTION_HANDLERS[c] for c in type(exc).__mro__ if c in EXCEPTION_HANDLERS)
    response = await handler(HTTPConnection(scope), exc)
    headers = [h for h in response.raw_headers if h[0] not in (b"content-length", b"content-type")]
    return response.status_code, bytes(response.body), headers
