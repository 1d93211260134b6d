"""The Valkey connection pool under a burst larger than itself."""

from __future__ import annotations

import asyncio

from relaycore.store.valkey_backend import ValkeyBackend
from tests.conftest import make_settings


async def test_a_burst_larger_than_the_pool_waits_for_connections(valkey_url: str) -> None:
    """50 concurrent reads through a pool of 2 all succeed (they wait; none is refused with 503)."""
    backend = ValkeyBackend(make_settings(valkey_url, valkey_pool_size=2))
    try:
        results = await asyncio.gather(*(backend.messages.read_after(f"t{i}", None, 10) for i in range(50)))
        assert results == [[]] * 50
    finally:
        await backend.close()
