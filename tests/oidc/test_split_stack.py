"""OIDC sign-in through the split stack (HAProxy in front of auth, ingest and two gateways): the
redirect URI, the cookies and the callback all pass the load balancer, and the token the console
trades for works on the other services."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from pulsar_relay.stack import Stack
from tests.e2e.launch import _logs, require_tools
from tests.oidc.conftest import CLIENT_ID, CLIENT_SECRET
from tests.oidc.idp import IdentityProvider
from tests.support.serve import child_env


@pytest.mark.slow
async def test_sign_in_through_haproxy(tmp_path: Path, idp: IdentityProvider) -> None:
    """A first sign-in through the split stack creates the user, and its console token publishes
    through ingest and reads back through a gateway."""
    require_tools(haproxy=True)
    providers = [
        {
            "name": "corp",
            "issuer": idp.issuer,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "default_permissions": ["read", "write"],
        }
    ]
    env = child_env(PULSAR_OIDC_PROVIDERS=json.dumps(providers))
    stack = Stack(data_dir=tmp_path / "data", gateways=2, environ=env, log_dir=tmp_path / "logs")
    try:
        await asyncio.to_thread(stack.start)
    except Exception as exc:
        await asyncio.to_thread(stack.stop)
        raise AssertionError(f"the split stack did not start: {exc}\n{_logs(tmp_path / 'logs')}") from exc
    try:
        idp.register(CLIENT_ID, f"{stack.url}/auth/oidc/corp/callback", CLIENT_SECRET)
        async with httpx.AsyncClient(base_url=stack.url, timeout=30) as who:
            r = await who.get("/auth/oidc/corp/login", params={"next": "/console/login?oidc=1"})
            assert r.status_code == 302, r.text
            back = await idp.approve(r.headers["location"], "haley")
            r = await who.get(back.removeprefix(stack.url))
            assert (r.status_code, r.headers.get("location")) == (303, "/console/login?oidc=1"), r.text
            session = (await who.get("/auth/web/session")).json()
            assert session["username"] == "haley"
            r = await who.post("/auth/web/token", headers={"X-CSRF-Token": session["csrf_token"]})
            assert r.status_code == 200, r.text
            bearer = {"Authorization": f"Bearer {r.json()['access_token']}"}
            r = await who.post(
                "/api/v1/messages", json={"topic": "oidc_jobs", "payload": {"n": 1}}, headers=bearer
            )
            assert r.status_code == 201, r.text
            r = await who.get("/api/v1/topics/oidc_jobs/messages", headers=bearer)
            assert r.status_code == 200 and r.json()["messages"][0]["payload"] == {"n": 1}, r.text
    finally:
        await asyncio.to_thread(stack.stop)
