"""The gateway and ingest services on real sockets (uvicorn in the test loop, as `serve` runs it)
sharing one context, over the session Valkey or a memory backend; WebSocket clients from ``websockets``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

import gateway.app
import ingest.app
from gateway.node import Node
from relaycore.config import Settings
from relaycore.context import Context
from relaycore.models import NewMessage, Permission, Topic, User, iso_z, utcnow
from relaycore.store.base import Backend
from relaycore.store.memory import MemoryBackend
from tests.conftest import TEST_SECRET, make_settings
from tests.support.identity import make_user
from tests.support.serve import running
from tests.support.valkey import free_port

WAIT = 10.0  # safety net for anything awaited in a test; never a timing assertion


@dataclass
class Relay:
    """A running gateway (+ ingest) and what a test needs around it."""

    gateway: str
    ingest: str
    ctx: Context
    node: Node
    stack: contextlib.AsyncExitStack
    http: httpx.AsyncClient = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.AsyncClient(timeout=70)

    @property
    def backend(self) -> Backend:
        return self.ctx.backend

    @property
    def settings(self) -> Settings:
        return self.ctx.settings

    @property
    def ws_url(self) -> str:
        return self.gateway.replace("http://", "ws://") + "/ws"

    async def user(
        self, name: str, permissions: Sequence[Permission] = ("read", "write")
    ) -> tuple[User, str]:
        return await make_user(self.backend, name, permissions)

    async def connect(self, token: str | None = None, **kw: Any) -> ClientConnection:
        url = self.ws_url + (f"?token={token}" if token else "")
        ws = await connect(url, open_timeout=WAIT, **kw)
        self.stack.push_async_callback(ws.close)
        return ws

    async def subscribe(self, token: str, topics: list[str], **extra: Any) -> ClientConnection:
        ws = await self.connect(token)
        await ws.send(json.dumps({"type": "subscribe", "topics": topics, **extra}))
        reply = await recv(ws)
        assert reply["type"] == "subscribed", reply
        return ws

    async def publish(self, token: str, topic: str, payloads: Sequence[dict[str, Any]]) -> list[str]:
        """Publish through the ingest service, in bulks of 100; returns the ids in order."""
        out: list[str] = []
        for i in range(0, len(payloads), 100):
            body = {"messages": [{"topic": topic, "payload": p} for p in payloads[i : i + 100]]}
            r = await self.http.post(self.ingest + "/api/v1/messages/bulk", json=body, headers=bearer(token))
            assert r.status_code == 207, r.text
            out += [x["message_id"] for x in r.json()["results"]]
        return out

    async def poll(self, token: str, body: dict[str, Any]) -> httpx.Response:
        return await self.http.post(self.gateway + "/messages/poll", json=body, headers=bearer(token))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def recv(ws: ClientConnection, within: float = WAIT) -> dict[str, Any]:
    async with asyncio.timeout(within):
        data: dict[str, Any] = json.loads(await ws.recv())
        return data


async def messages(ws: ClientConnection, count: int, within: float = WAIT) -> list[dict[str, Any]]:
    """The next ``count`` message frames (server pings skipped, anything else is an error)."""
    out: list[dict[str, Any]] = []
    async with asyncio.timeout(within):
        while len(out) < count:
            frame = json.loads(await ws.recv())
            if frame["type"] == "ping":
                continue
            assert frame["type"] == "message", frame
            out.append(frame)
    return out


async def publish_direct(
    backend: Backend, user: User, topic: str, count: int, start: int = 0, *, pad: int = 0, bulk: int = 100
) -> list[str]:
    """Publish as ingest does (the same store call), without HTTP: for very fast producers.
    Payloads are ``{"n": <i>}``, plus ``pad`` bytes of filler when asked."""
    filler = b',"pad":"' + b"x" * pad + b'"' if pad else b""
    out: list[str] = []
    for i in range(start, start + count, bulk):
        batch = [
            NewMessage(topic=topic, payload=b'{"n":%d%s}' % (n, filler), timestamp=iso_z(utcnow()))
            for n in range(i, min(i + bulk, start + count))
        ]
        result = await backend.messages.publish(
            batch,
            user=user,
            kind="bulk",
            idempotency_key=None,
            idempotency_ttl=600,
            topic_ids=[uuid.uuid4().hex for _ in batch],
        )
        out += result.message_ids
    return out


@contextlib.asynccontextmanager
async def serve(settings: Settings, backend: Backend | None = None) -> AsyncIterator[Relay]:
    ctx = Context(settings, backend)
    before = asyncio.all_tasks()
    async with contextlib.AsyncExitStack() as stack:
        gw_app = gateway.app.create_app(settings, ctx)
        in_app = ingest.app.create_app(settings, ctx)
        gw = await stack.enter_async_context(running(gw_app))
        ing = await stack.enter_async_context(running(in_app))
        relay = Relay(gw, ing, ctx, gw_app.state.gateway, stack)
        stack.push_async_callback(relay.http.aclose)
        yield relay
    ours = asyncio.all_tasks() - before
    leftover = [t for t in ours if t.get_name().startswith("gateway-") and not t.done()]
    if leftover:
        # Reported below; cancelled here so they do not outlive this test too (tests share one
        # event loop, and every later check would otherwise report them again).
        for task in leftover:
            task.cancel()
        await asyncio.wait(leftover, timeout=5)
    assert not leftover, f"gateway tasks outlived their server: {leftover}"


@pytest.fixture
def relay_factory(valkey_url: str) -> Callable[..., contextlib.AbstractAsyncContextManager[Relay]]:
    """``async with relay_factory(**settings) as relay`` over the session Valkey."""
    return lambda **kw: serve(make_settings(valkey_url, **kw))


@pytest.fixture
async def relay(
    relay_factory: Callable[..., contextlib.AbstractAsyncContextManager[Relay]],
) -> AsyncIterator[Relay]:
    async with relay_factory() as r:
        yield r


@pytest.fixture(params=["valkey", "memory"])
async def any_relay(request: pytest.FixtureRequest) -> AsyncIterator[Relay]:
    """The same relay on each storage backend."""
    if request.param == "memory":
        settings = make_settings()
        async with serve(settings, MemoryBackend(settings)) as r:
            yield r
        return
    url = request.getfixturevalue("valkey_url")
    async with serve(make_settings(url)) as r:
        yield r


def gateway_env(valkey_url: str, gateway_id: str, **extra: str) -> dict[str, str]:
    """Environment for a ``pulsar-relay serve gateway`` child process on the session Valkey."""
    return {
        "PULSAR_VALKEY_URL": valkey_url,
        "PULSAR_STORAGE_BACKEND": "valkey",
        "PULSAR_JWT_SECRET_KEY": TEST_SECRET,
        "PULSAR_FANOUT_PARTITIONS": "4",
        "PULSAR_GATEWAY_ID": gateway_id,
        "PULSAR_GATEWAY_HEARTBEAT_INTERVAL": "0.2",
        "PULSAR_TAIL_BLOCK": "0.2",
        "PULSAR_LOG_LEVEL": "WARNING",
        **extra,
    }


async def eventually(condition: Callable[[], bool], within: float = 30) -> None:
    """Wait until ``condition()`` holds (a safety net, not a timing assertion)."""
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 - the condition is plain state, nothing to await
            await asyncio.sleep(0.005)


__all__ = [
    "WAIT",
    "Relay",
    "bearer",
    "eventually",
    "free_port",
    "gateway_env",
    "messages",
    "publish_direct",
    "recv",
]


async def make_topic(relay: Relay, owner: User, name: str, *, public: bool = False) -> None:
    """A topic owned by ``owner``, written straight into the backend."""
    await relay.backend.topics.create(
        Topic(
            topic_id=name,
            topic_name=name,
            owner_id=owner.user_id,
            is_public=public,
            created_at=iso_z(utcnow()),
        )
    )
