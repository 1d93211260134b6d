"""Composition of the ingest service: routes, lifespan hooks.  Wires; does not decide."""

from __future__ import annotations

from starlette.applications import Starlette

from ingest.routes import bare, routes
from relaycore.bare_routes import serve_in_front
from relaycore.config import Settings
from relaycore.context import Context
from relaycore.web import service_app


def create_app(settings: Settings, ctx: Context | None = None) -> Starlette:
    context = ctx or Context(settings)
    app = service_app("ingest", settings, context, routes(context))
    # The publish endpoints skip Starlette's per-request chain (most of their CPU otherwise).
    serve_in_front(app, bare(context), service="ingest")
    return app
