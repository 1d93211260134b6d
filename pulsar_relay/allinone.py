"""All three services in one process behind one origin: what a newcomer runs first."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send

import auth.app
import gateway.app
import ingest.app
from pulsar_relay.routing import service_for
from relaycore.config import Settings
from relaycore.context import Context


class AllInOne:
    """Dispatches each request to the service that owns its path; runs every service's lifespan."""

    def __init__(self, settings: Settings) -> None:
        ctx = Context(settings)
        self.apps: dict[str, Starlette] = {
            "auth": auth.app.create_app(settings, ctx),
            "ingest": ingest.app.create_app(settings, ctx),
            "gateway": gateway.app.create_app(settings, ctx),
        }

    @contextlib.asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            for app in self.apps.values():
                await stack.enter_async_context(app.router.lifespan_context(app))
            yield

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        method = scope.get("method", "GET")
        await self.apps[service_for(method, scope["path"])](scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        await receive()  # lifespan.startup
        try:
            async with self.lifespan():
                await send({"type": "lifespan.startup.complete"})
                await receive()  # lifespan.shutdown
        except BaseException as exc:
            await send({"type": "lifespan.startup.failed", "message": repr(exc)})
            raise
        await send({"type": "lifespan.shutdown.complete"})


def create_app(settings: Settings) -> AllInOne:
    return AllInOne(settings)
