"""HAProxy's request log (deploy/haproxy.cfg, the same file in compose and the native stack) names
each request's method and path but never its query string: a WebSocket's ``?token=<JWT>`` stays
out of the log."""

from __future__ import annotations

from pathlib import Path

import httpx
from websockets.asyncio.client import connect

from tests.e2e.launch import split_stack
from tests.e2e.walkthrough import login


async def test_websocket_token_is_not_logged(tmp_path: Path) -> None:
    """A WebSocket opened with ?token=<JWT> is logged as "GET /ws HTTP/1.1", without the token."""
    with split_stack(tmp_path, gateways=1) as stack:
        assert stack.admin is not None
        async with httpx.AsyncClient(base_url=stack.url, timeout=30) as http:
            token = await login(http, *stack.admin)
            r = await http.get("/messages/poll/stats", params={"token": token, "other": "kept-out"})
            assert r.status_code < 500, r.text
        ws_url = stack.url.replace("http://", "ws://") + f"/ws?token={token}"
        async with connect(ws_url) as ws:
            assert ws.response is not None and ws.response.status_code == 101
    # Stopped: HAProxy has written every line.
    log = (tmp_path / "logs" / "haproxy.log").read_text()
    assert '"GET /ws HTTP/1.1"' in log, log[-2000:]
    assert '"GET /messages/poll/stats HTTP/1.1"' in log, log[-2000:]
    assert token not in log and "token=" not in log and "kept-out" not in log, log[-2000:]
