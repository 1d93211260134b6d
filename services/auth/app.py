"""Composition of the auth service: routes, lifespan hooks.  Wires; does not decide."""

from __future__ import annotations

from starlette.applications import Starlette

from auth import (
    routes_admin,
    routes_console,
    routes_device,
    routes_oidc,
    routes_sessions,
    routes_topics,
    routes_users,
)
from auth.service import AuthService
from auth.signing import Signer
from relaycore.config import Settings
from relaycore.context import Context
from relaycore.web import service_app


def create_app(settings: Settings, ctx: Context | None = None) -> Starlette:
    signer = Signer(settings)  # first: its key-file errors name the settings involved
    context = ctx or Context(settings)
    auth = AuthService(settings, context, signer)
    app = service_app(
        "auth",
        settings,
        context,
        [
            *routes_users.routes,
            *routes_sessions.routes,
            *routes_device.routes,
            *routes_oidc.routes,
            *routes_topics.routes,
            *routes_admin.routes,
            *routes_console.routes(),
        ],
        startup=[auth.passwords.prepare, auth.bootstrap_admin],
        shutdown=[auth.rates.stop, auth.federation.close],
    )
    app.state.auth = auth
    return app
