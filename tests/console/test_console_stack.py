"""The console in the split deployment: auth, ingest and two gateways behind HAProxy running
deploy/haproxy.cfg, seen by a headless Chromium through the one public origin.  /console and
/api/v1/admin/* reach auth, the live tail's /ws reaches a gateway, and both gateways are listed."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import websockets

from tests.console.browser import Browser
from tests.console.conftest import ADMIN, bearer, login, relay_env
from tests.console.test_console_browser import publish, sign_in, wait_text
from tests.support.serve import child_env

pytestmark = pytest.mark.slow


class Origin:
    def __init__(self, url: str) -> None:
        self.url = url


@pytest.fixture
async def stack(valkey_url: str, tmp_path: Path) -> AsyncIterator[Origin]:
    if shutil.which("haproxy") is None:
        pytest.skip("the split stack needs haproxy (make valkey installs it)")
    from pulsar_relay.stack import Stack

    env = child_env(**relay_env(valkey_url))
    env.pop("PULSAR_GATEWAY_ID")  # the stack names its gateways gateway-1, gateway-2
    for attempt in (1, 2):
        s = Stack(data_dir=tmp_path / f"data-{attempt}", gateways=2, environ=env, log_dir=tmp_path)
        try:
            s.start()
        except Exception as exc:  # a probed free port taken before a child bound it
            if attempt == 2 or "Address already in use" not in str(exc):
                raise
            continue
        try:
            yield Origin(s.url)
        finally:
            s.stop()
        return


async def test_console_behind_haproxy(stack: Origin, browser: Browser) -> None:
    """Through HAProxy: sign in, see both gateways, and tail a topic over the gateways' /ws."""
    b = browser
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as http:
        admin = await login(http)
        await publish(http, admin, "builds", {"build": 1})
        async with websockets.connect(
            stack.url.replace("http", "ws", 1) + f"/ws?token={admin}", open_timeout=10
        ) as ws:
            await ws.send(json.dumps({"type": "subscribe", "topics": ["builds"]}))
            assert json.loads(await ws.recv())["type"] == "subscribed"
            await sign_in(b, stack.url, *ADMIN)
            await b.call("waitForUrl", path="/console/overview")
            await wait_text(b, "[data-total=gateways] .stat-value", "2")
            await b.call("goto", url=f"{stack.url}/console/gateways")
            await b.call("waitFor", selector="tr[data-gateway=gateway-1]")
            await b.call("waitFor", selector="tr[data-gateway=gateway-2]")
            await wait_text(b, "[data-total=websockets] .stat-value", "1")
            await wait_text(b, "[data-total=lag] .stat-value", "0")
            await b.screenshot("stack-gateways")

        await b.call("goto", url=f"{stack.url}/console/tail?topic=builds")
        await b.call("waitFor", selector="#status[data-state=live]")
        await b.call("waitFor", selector="#messages li.history")
        sent = await publish(http, admin, "builds", {"build": 2, "state": "passed"})
        await b.call("waitFor", selector=f"#messages li.live[data-id='{sent}']")
        overview = (await http.get("/api/v1/admin/overview", headers=bearer(admin))).json()
        assert {g["gateway_id"] for g in overview["gateways"]} == {"gateway-1", "gateway-2"}
        assert overview["totals"]["published_total"] == 2
    assert b.page_errors() == []
