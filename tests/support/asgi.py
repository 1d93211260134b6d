"""The smallest ASGI app parts for tests that serve a WebSocket app of their own under the default
server: lifespan and a plain HTTP answer."""

from __future__ import annotations

from typing import Any


async def lifespan_or_http(scope: Any, receive: Any, send: Any) -> bool:
    """Answer a lifespan or HTTP scope (``ok``); False for a WebSocket scope, left to the caller."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return True
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        return True
    return False
