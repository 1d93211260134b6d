"""The seed README's walkthrough end to end over real sockets: through HAProxy in front of the split
stack (two gateways, clients on both), against ``serve all``, and against ``pulsar-relay dev``."""

from __future__ import annotations

import secrets
import stat
from pathlib import Path

import httpx
import pytest
import redis
from websockets.asyncio.client import ClientConnection

from pulsar_relay.stack import Stack
from tests.e2e.launch import DevProcess, child_env, require_tools, split_stack
from tests.e2e.walkthrough import login, walkthrough
from tests.support.serve import RelayProcess

pytestmark = pytest.mark.slow


def spread_over_gateways(stack: Stack):
    async def check(sockets: list[ClientConnection]) -> None:
        routes = [ws.response.headers["X-Relay-Route"] for ws in sockets if ws.response is not None]
        assert all(r.startswith("gateway/") for r in routes), routes
        assert len(set(routes)) == len(sockets), f"both WebSockets landed on one gateway: {routes}"
        # HAProxy's own account agrees: one open session on each gateway server.
        assert stack.runtime is not None
        sessions = {name: int(row["scur"]) for name, row in stack.runtime.servers("gateway").items()}
        assert sorted(sessions.values()) == [1, 1], sessions

    return check


async def test_walkthrough_through_haproxy_split_stack(tmp_path: Path) -> None:
    """Every README step works through HAProxy's one port, with WebSocket clients on two gateways."""
    with split_stack(tmp_path, gateways=2) as stack:
        assert stack.admin is not None
        await walkthrough(stack.url, stack.admin, spread=spread_over_gateways(stack))


async def test_walkthrough_against_serve_all(valkey_url: str) -> None:
    """The same walkthrough against the all-in-one process."""
    password = secrets.token_urlsafe(12)
    env = child_env(
        PULSAR_JWT_SECRET_KEY=secrets.token_urlsafe(48),
        PULSAR_STORAGE_BACKEND="valkey",
        PULSAR_VALKEY_URL=valkey_url,
        PULSAR_BOOTSTRAP_ADMIN_USERNAME="admin",
        PULSAR_BOOTSTRAP_ADMIN_PASSWORD=password,
    )
    proc = RelayProcess("all", env).start()
    try:
        await walkthrough(proc.url, ("admin", password))
    finally:
        proc.stop()


async def test_walkthrough_against_dev_with_printed_credentials(tmp_path: Path) -> None:
    """dev prints a working login, keeps data and 0600 secrets between runs, and Ctrl-C stops its Valkey."""
    require_tools(haproxy=False)
    dev = DevProcess(tmp_path, child_env())
    try:
        dev.start()
        admin = dev.credentials()
        assert admin[0] == "admin"
        suffix = await walkthrough(dev.url, admin)
        assert dev.interrupt() == 0, dev.output()
    finally:
        dev.kill()
    data = tmp_path / ".relay-data"
    for name in ("jwt-secret", "admin-password"):
        assert stat.S_IMODE((data / name).stat().st_mode) == 0o600
    assert (data / "admin-password").read_text().strip() == admin[1]
    assert (data / "valkey" / "appendonlydir").is_dir()
    port = int(dev.stdout().split("redis://127.0.0.1:", 1)[1].split("/", 1)[0])
    with pytest.raises(redis.ConnectionError):
        redis.Redis(port=port, socket_connect_timeout=1).ping()

    again = DevProcess(tmp_path, child_env())
    try:
        again.start()
        assert again.credentials() == admin
        async with httpx.AsyncClient(base_url=again.url) as http:
            token = await login(http, *admin)
            users = (await http.get("/auth/users", headers={"Authorization": f"Bearer {token}"})).json()
        assert f"producer-{suffix}" in [u["username"] for u in users]
        assert again.interrupt() == 0, again.output()
    finally:
        again.kill()
