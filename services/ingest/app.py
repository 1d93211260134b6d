"""Composition of the ingest service: routes, lifespan hooks.  Wires; does not decide."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.applications import Starlette

from ingest.routes import bare, publish_endpoints
from relaycore.adapters.starlette import put_in_front
from relaycore.bare_routes import BareRoutes, Handler
from relaycore.config import Settings
from relaycore.context import Context
from relaycore.web import service_app


def create_app(settings: Settings, ctx: Context | None = None) -> Starlette:
    context = ctx or Context(settings)
    app = service_app("ingest", settings, context, [])
    # The publish endpoints skip Starlette's per-request chain (most of their CPU otherwise); they
    # have no Starlette routes: every request for their paths is answered in front.
    serve_in_front(app, bare(publish_endpoints(context)), service="ingest")
    return app


def serve_in_front(app: Starlette, handlers: Mapping[tuple[str, str], Handler], *, service: str) -> None:
    """Make ``app`` answer ``handlers`` through ``BareRoutes`` before its middleware stack."""
    settings: Settings = app.state.relay.settings
    put_in_front(
        app,
        lambda stack: BareRoutes(
            stack,
            handlers,
            service=service,
            max_body_bytes=settings.max_body_bytes,
            body_timeout=settings.read_timeout,
        ),
    )
