"""The ingest service on a real socket (uvicorn in the test loop, as `serve` runs it) over the
session Valkey or a fresh memory backend, with helpers for users, HTTP clients and reading Valkey
keys directly."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aredis

import ingest.app
from relaycore.config import Settings
from relaycore.context import Context
from relaycore.keys import Keys
from relaycore.models import Permission, User
from relaycore.store.base import Backend
from relaycore.store.memory import MemoryBackend
from tests.conftest import TEST_SECRET, make_settings
from tests.support.identity import make_user
from tests.support.serve import running

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Ingest:
    """A running ingest service and what a test needs around it."""

    url: str
    settings: Settings
    backend: Backend
    stack: contextlib.AsyncExitStack
    clients: list[httpx.AsyncClient] = field(default_factory=list)

    def client(self, token: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        c = httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30)
        self.clients.append(c)
        return c

    async def user(
        self, name: str, permissions: Sequence[Permission] = ("read", "write"), *, active: bool = True
    ) -> tuple[User, httpx.AsyncClient]:
        user, token = await make_user(self.backend, name, permissions, active=active)
        return user, self.client(token)

    @property
    def keys(self) -> Keys:
        return Keys(self.settings.key_prefix, self.settings.fanout_partitions)

    def valkey(self) -> aredis.Redis:
        """A plain client on the service's Valkey, closed with the fixture."""
        r = aredis.Redis.from_url(self.settings.valkey_url)
        self.stack.push_async_callback(r.aclose)
        return r


IngestFactory = Callable[..., Awaitable[Ingest]]


@pytest.fixture
async def start_ingest(valkey_url: str) -> AsyncIterator[IngestFactory]:
    """Start ingest services with settings overrides; ``memory=True`` for the memory backend."""
    async with contextlib.AsyncExitStack() as stack:
        started: list[Ingest] = []

        async def start(*, memory: bool = False, **overrides: Any) -> Ingest:
            settings = make_settings("" if memory else valkey_url, **overrides)
            ctx = Context(settings, MemoryBackend(settings) if memory else None)
            url = await stack.enter_async_context(running(ingest.app.create_app(settings, ctx)))
            svc = Ingest(url, settings, ctx.backend, stack)
            started.append(svc)
            return svc

        try:
            yield start
        finally:
            for svc in started:
                for c in svc.clients:
                    await c.aclose()


@pytest.fixture
async def svc(start_ingest: IngestFactory) -> Ingest:
    """Ingest over the session Valkey (flushed), default settings."""
    return await start_ingest()


@pytest.fixture(params=["valkey", "memory"])
async def any_svc(request: pytest.FixtureRequest, start_ingest: IngestFactory) -> Ingest:
    """Ingest over each storage backend in turn."""
    return await start_ingest(memory=request.param == "memory")


def process_env(valkey_url: str, settings: Settings) -> dict[str, str]:
    """Environment for a ``pulsar-relay serve`` child on the given Valkey; PYTHONPATH makes it
    work from a plain checkout as well as from an installed package."""
    return {
        "PULSAR_JWT_SECRET_KEY": TEST_SECRET,
        "PULSAR_STORAGE_BACKEND": "valkey",
        "PULSAR_VALKEY_URL": valkey_url,
        "PULSAR_FANOUT_PARTITIONS": str(settings.fanout_partitions),
        "PULSAR_LOG_LEVEL": "WARNING",
    }


async def stream_entries(r: aredis.Redis, key: str) -> list[tuple[str, dict[str, str]]]:
    rows: Any = await r.xrange(key)
    return [(i.decode(), {k.decode(): v.decode() for k, v in f.items()}) for i, f in rows]
