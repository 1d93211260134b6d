"""Composition of the gateway service: routes, lifespan hooks.  Wires; does not decide."""

from __future__ import annotations

from collections.abc import Awaitable

from starlette.applications import Starlette
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.history import history_endpoint
from gateway.longpoll import PollEndpoint, stats_endpoint
from gateway.node import Node
from gateway.ws import WebSocketEndpoint
from relaycore.adapters.starlette import put_in_front
from relaycore.bare_routes import BareRoutes
from relaycore.config import Settings
from relaycore.context import Context
from relaycore.web import service_app


def create_app(settings: Settings, ctx: Context | None = None) -> Starlette:
    context = ctx or Context(settings)
    node = Node(context)
    routes = [
        WebSocketRoute("/ws", WebSocketEndpoint()),  # for the route table; see _SocketsInFront
        Route("/messages/poll/stats", stats_endpoint, methods=["GET"]),
        Route("/api/v1/topics/{name}/messages", history_endpoint, methods=["GET"]),
    ]
    app = service_app("gateway", settings, context, routes, startup=[node.start], shutdown=[node.stop])
    app.state.gateway = node
    # /ws handshakes and long-polls skip Starlette's per-request chain; POST /messages/poll has no
    # Starlette route: BareRoutes answers every request for its path.
    put_in_front(
        app,
        lambda stack: BareRoutes(
            _SocketsInFront(stack, WebSocketEndpoint()),
            {("POST", "/messages/poll"): PollEndpoint(node).bare()},
            service="gateway",
            max_body_bytes=settings.max_body_bytes,
            body_timeout=settings.read_timeout,
        ),
    )
    app.state.drain = node.drain  # pulsar_relay.server calls it on SIGTERM, before the grace period
    return app


class _SocketsInFront:
    """``/ws`` handshakes go straight to the endpoint, not through the middleware and router chain:
    each of those layers would stay suspended for the socket's whole life (about 3.5 KiB per idle
    connection, measured with tracemalloc); see ``relaycore.adapters.starlette``."""

    def __init__(self, app: ASGIApp, endpoint: ASGIApp) -> None:
        self.app = app
        self.endpoint = endpoint

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Returns the awaitable it picks instead of awaiting it: no frame of its own is held.
        if scope["type"] == "websocket" and scope["path"] == "/ws":
            scope.setdefault("relay.service", "gateway")
            return self.endpoint(scope, receive, send)
        return self.app(scope, receive, send)
