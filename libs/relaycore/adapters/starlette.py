"""Starlette past its documented API: an ASGI app put in front of a Starlette app's whole middleware
stack, so that a few hot paths (``/ws`` handshakes, ingest's publish routes) skip the middleware
and router chain while the app stays a plain ``Starlette`` (state, lifespan, mounting unchanged).

Adding it as the outermost user middleware instead would still leave Starlette's
``ServerErrorMiddleware`` around it, suspended for each WebSocket's whole life; the chain cost about
3.5 KiB per idle connection (tracemalloc) and most of a publish's CPU.  ``INTERNALS`` names what
this relies on; ``tests/contract/test_adapters.py`` fails with the name when a release changes it.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.applications import Starlette
from starlette.types import ASGIApp

INTERNALS = {
    "Starlette.build_middleware_stack()": "builds the app's middleware and router chain",
    "Starlette.middleware_stack": "when set, each call goes to it as it is (built lazily when None)",
}


def put_in_front(app: Starlette, front: Callable[[ASGIApp], ASGIApp]) -> None:
    """Every call of ``app`` goes to ``front(stack)``, ``stack`` being the app's own middleware and
    router chain, which ``front`` calls for whatever it does not answer itself."""
    app.middleware_stack = front(app.build_middleware_stack())
