"""Fixtures for the fault tests: a private Valkey per test (so it can be killed and restarted from
its AOF without touching the session's), and the relay child processes started on it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.reliability.harness import Services
from tests.support.valkey import ValkeyServer, server_binary


@pytest.fixture
def private_valkey() -> Iterator[ValkeyServer]:
    """A Valkey of this test's own, AOF with ``appendfsync always`` (the durable setting)."""
    if server_binary() is None:
        pytest.skip("no valkey-server or redis-server on PATH")
    server = ValkeyServer(appendfsync="always").start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def relay_procs(private_valkey: ValkeyServer) -> Iterator[Services]:
    """Relay services as child processes on the private Valkey; all stopped at the end."""
    procs = Services(private_valkey.url)
    try:
        yield procs
    finally:
        procs.stop()
