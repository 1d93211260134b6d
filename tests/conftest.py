"""Session-wide real Valkey (a private redis-server/valkey-server process, or testcontainers),
flushed before each test that asks for it, plus settings and backend factories."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import redis

from relaycore.config import Settings
from relaycore.store.base import Backend
from relaycore.store.memory import MemoryBackend
from relaycore.store.valkey_backend import ValkeyBackend
from tests.support.valkey import ContainerValkey, ValkeyServer, start_any

TEST_SECRET = "test-secret-cT_8WMAVCrf86m3yYQtutYa_apOSJkIEz6q9pJzo"


@pytest.fixture(scope="session")
def valkey_server() -> Iterator[ValkeyServer | ContainerValkey]:
    server = start_any()
    yield server
    server.cleanup()


@pytest.fixture
def valkey_url(valkey_server: ValkeyServer | ContainerValkey) -> str:
    """The URL of the session's Valkey, flushed empty for this test."""
    client = redis.Redis.from_url(valkey_server.url)
    client.flushall()
    client.close()
    return valkey_server.url


def make_settings(valkey_url: str = "", **overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "jwt_secret_key": TEST_SECRET,
        "storage_backend": "valkey" if valkey_url else "memory",
        "valkey_url": valkey_url,
        "fanout_partitions": 4,
        "gateway_heartbeat_interval": 0.5,
        "tail_block": 0.2,
    }
    return Settings(**(base | overrides))


@pytest.fixture
def settings_factory(valkey_url: str) -> Callable[..., Settings]:
    return lambda **kw: make_settings(valkey_url, **kw)


@pytest.fixture(params=["memory", "valkey"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    """Each storage backend in turn, empty: the contract tests run against both."""
    if request.param == "memory":
        yield MemoryBackend(make_settings())
        return
    url = request.getfixturevalue("valkey_url")
    b = ValkeyBackend(make_settings(url))
    yield b
    await b.close()
