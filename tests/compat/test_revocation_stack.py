"""Ending a sign-in session through the split stack (auth, ingest, two gateways behind HAProxy):
within one second of a logout at auth, ingest answers 401 for that access token and every
WebSocket using it, on whichever gateway, is closed with 4002 (CONTRACT decision 6)."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.compat.relay import ADMIN_PASSWORD, ADMIN_USERNAME, DEPLOYMENTS, Relay, bearer

pytestmark = pytest.mark.parametrize("relay", DEPLOYMENTS, indirect=True)
CONTRACT_DELAY = 1.0
SOCKETS = 4  # HAProxy spreads them over both gateways


async def _sign_in(http: httpx.AsyncClient) -> dict[str, str]:
    r = await http.post("/auth/login", data={"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD})
    assert r.status_code == 200, r.text
    body: dict[str, str] = r.json()
    return body


async def _subscribed(url: str, token: str) -> ClientConnection:
    ws = await connect(f"{url}/ws?token={token}", open_timeout=10)
    await ws.send(json.dumps({"type": "subscribe", "topics": ["compat_revoke"]}))
    async with asyncio.timeout(10):
        reply = json.loads(await ws.recv())
    assert reply["type"] == "subscribed", reply
    return ws


async def _closed_at(ws: ClientConnection) -> tuple[float, int | None]:
    """(monotonic time the close frame arrived, its code)."""
    try:
        async with asyncio.timeout(10):
            while True:
                await ws.recv()
    except ConnectionClosed as exc:
        return time.monotonic(), exc.rcvd.code if exc.rcvd else None
    raise AssertionError("unreachable")


async def test_logout_reaches_ingest_and_every_gateway_within_a_second(relay: Relay) -> None:
    """After POST /auth/logout, ingest refuses the token (401) and all sockets using it close
    with 4002 within one second; a socket of another session stays open and a publish with its
    token still works."""
    ws_url = relay.url.replace("http://", "ws://")
    async with httpx.AsyncClient(base_url=relay.url, timeout=30) as http:
        doomed, other = await _sign_in(http), await _sign_in(http)
        message = {"topic": "compat_revoke", "payload": {"n": 1}}
        r = await http.post("/api/v1/messages", json=message, headers=bearer(doomed["access_token"]))
        assert r.status_code == 201, r.text
        sockets = [await _subscribed(ws_url, doomed["access_token"]) for _ in range(SOCKETS)]
        survivor = await _subscribed(ws_url, other["access_token"])
        closes = [asyncio.create_task(_closed_at(ws)) for ws in sockets]
        await asyncio.sleep(0.2)
        started = time.monotonic()
        assert (await http.post("/auth/logout", headers=bearer(doomed["access_token"]))).status_code == 204
        while True:
            r = await http.post("/api/v1/messages", json=message, headers=bearer(doomed["access_token"]))
            if r.status_code == 401:
                break
            assert r.status_code == 201, r.text
            assert time.monotonic() - started < CONTRACT_DELAY, "ingest still accepts the token after 1 s"
            await asyncio.sleep(0.02)
        assert r.json() == {"detail": "Token has been revoked"}
        for at, code in await asyncio.gather(*closes):
            assert code == 4002
            assert at - started < CONTRACT_DELAY, f"a socket closed {at - started:.2f} s after the logout"
        await survivor.send(json.dumps({"type": "ping"}))
        async with asyncio.timeout(10):
            assert json.loads(await survivor.recv())["type"] == "pong"
        await survivor.close()
        r = await http.post("/api/v1/messages", json=message, headers=bearer(other["access_token"]))
        assert r.status_code == 201, r.text
        r = await http.post("/auth/token/refresh", json={"refresh_token": doomed["refresh_token"]})
        assert r.status_code == 401
