"""All-in-one relay processes on a private Valkey, with per-test settings, plus the HTTP and
WebSocket helpers the security tests share."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.reliability.harness import ADMIN, Services, bearer
from tests.support.serve import RelayProcess
from tests.support.valkey import ValkeyServer, server_binary

WAIT = 10.0  # safety net for anything awaited; never a timing assertion


@dataclass
class Relay:
    """A running all-in-one relay and an HTTP client for it."""

    proc: RelayProcess
    valkey: ValkeyServer
    http: httpx.AsyncClient
    admin: str = ""
    sockets: list[ClientConnection] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.proc.url

    def ws_url(self, token: str | None = None) -> str:
        return self.url.replace("http://", "ws://") + "/ws" + (f"?token={token}" if token else "")

    async def login(self, username: str, password: str, **headers: str) -> httpx.Response:
        return await self.http.post(
            "/auth/login", data={"username": username, "password": password}, headers=headers
        )

    async def user(
        self, username: str, permissions: tuple[str, ...] = ("read", "write"), password: str = "password123"
    ) -> tuple[str, str]:
        """Register a user as the admin and log it in: (user_id, token)."""
        r = await self.http.post(
            "/auth/register",
            json={"username": username, "password": password, "permissions": list(permissions)},
            headers=bearer(self.admin),
        )
        assert r.status_code == 201, r.text
        login = await self.login(username, password)
        assert login.status_code == 200, login.text
        return r.json()["user_id"], login.json()["access_token"]

    async def websocket(self, token: str, **kw: Any) -> ClientConnection:
        ws = await connect(self.ws_url(token), open_timeout=WAIT, **kw)
        self.sockets.append(ws)
        return ws

    async def subscribe(self, token: str, topics: list[str], **extra: Any) -> ClientConnection:
        ws = await self.websocket(token)
        await ws.send(json.dumps({"type": "subscribe", "topics": topics, **extra}))
        reply = await recv(ws)
        assert reply["type"] == "subscribed", reply
        return ws


async def recv(ws: ClientConnection, within: float = WAIT) -> dict[str, Any]:
    """The next frame that is not a server ping."""
    async with asyncio.timeout(within):
        while True:
            frame: dict[str, Any] = json.loads(await ws.recv())
            if frame.get("type") != "ping":
                return frame


RelayFactory = Callable[..., contextlib.AbstractAsyncContextManager[Relay]]


@pytest.fixture
def valkey() -> Iterator[ValkeyServer]:
    if server_binary() is None:
        pytest.skip("no valkey-server or redis-server on PATH")
    server = ValkeyServer().start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def relay_factory(valkey: ValkeyServer) -> RelayFactory:
    """``async with relay_factory(PULSAR_X="..") as relay``: an all-in-one process, admin logged in."""

    @contextlib.asynccontextmanager
    async def start(service: str = "all", **env: str) -> AsyncIterator[Relay]:
        procs = Services(valkey.url, **env)
        try:
            proc = await procs.start(service)
            async with httpx.AsyncClient(base_url=proc.url, timeout=30) as http:
                relay = Relay(proc, valkey, http)
                if service in ("all", "auth"):
                    r = await relay.login(*ADMIN)
                    assert r.status_code == 200, r.text
                    relay.admin = r.json()["access_token"]
                try:
                    yield relay
                finally:
                    for ws in relay.sockets:
                        await ws.close()
        finally:
            procs.stop()

    return start


@pytest.fixture
async def relay(relay_factory: RelayFactory) -> AsyncIterator[Relay]:
    """An all-in-one relay with default settings (plus fast heartbeats and hashing)."""
    async with relay_factory() as r:
        yield r
