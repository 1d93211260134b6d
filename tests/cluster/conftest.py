"""A session-wide real 3-primary Valkey Cluster (``cluster.py``), flushed before each test that asks
for it.  ``valkey_url`` is overridden to the cluster's ``valkey+cluster://`` URL, so fixtures and
helpers written for one server run unchanged against the cluster."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from relaycore.store.base import Backend
from relaycore.store.valkey_backend import ValkeyBackend
from tests.cluster.cluster import ValkeyCluster, cli_binary
from tests.conftest import make_settings
from tests.support.valkey import server_binary


@pytest.fixture(scope="session")
def cluster() -> Iterator[ValkeyCluster]:
    if server_binary() is None or cli_binary() is None:
        pytest.skip("a cluster needs valkey-server/redis-server and valkey-cli/redis-cli")
    c = ValkeyCluster(masters=3).start()
    try:
        yield c
    finally:
        c.cleanup()


@pytest.fixture
def valkey_url(cluster: ValkeyCluster) -> str:
    """The session cluster's URL (``valkey+cluster://…``), flushed empty for this test."""
    cluster.flush()
    return cluster.url


@pytest.fixture
async def backend(valkey_url: str) -> AsyncIterator[Backend]:
    """A Valkey backend on the (empty) cluster: what the contract suite runs against here."""
    b = ValkeyBackend(make_settings(valkey_url))
    yield b
    await b.close()
