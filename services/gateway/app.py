"""Composition of the gateway service: routes, lifespan hooks.  Wires; does not decide."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import Route, WebSocketRoute

from gateway.history import history_endpoint
from gateway.longpoll import poll_endpoint, stats_endpoint
from gateway.node import Node
from gateway.ws import WebSocketEndpoint
from relaycore.config import Settings
from relaycore.context import Context
from relaycore.web import service_app


def create_app(settings: Settings, ctx: Context | None = None) -> Starlette:
    context = ctx or Context(settings)
    node = Node(context)
    routes = [
        WebSocketRoute("/ws", WebSocketEndpoint()),
        Route("/messages/poll", poll_endpoint, methods=["POST"]),
        Route("/messages/poll/stats", stats_endpoint, methods=["GET"]),
        Route("/api/v1/topics/{name}/messages", history_endpoint, methods=["GET"]),
    ]
    app = service_app("gateway", settings, context, routes, startup=[node.start], shutdown=[node.stop])
    app.state.gateway = node
    app.state.drain = node.drain  # pulsar_relay.server calls it on SIGTERM, before the grace period
    return app
