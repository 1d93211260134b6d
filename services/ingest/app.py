"""Composition of the ingest service: routes, lifespan hooks.  Wires; does not decide."""

from __future__ import annotations

from starlette.applications import Starlette

from ingest.routes import routes
from relaycore.config import Settings
from relaycore.context import Context
from relaycore.web import service_app


def create_app(settings: Settings, ctx: Context | None = None) -> Starlette:
    context = ctx or Context(settings)
    return service_app("ingest", settings, context, routes(context))
