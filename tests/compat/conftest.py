"""Fixtures for the drop-in compatibility suite: a relay started as an operator starts it, with a
bootstrap admin, on the session's real Valkey."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.compat.relay import Api, relay_env
from tests.support.serve import RelayProcess


@pytest.fixture
def relay(valkey_url: str) -> Iterator[RelayProcess]:
    """``pulsar-relay serve all`` on a free port over the flushed session Valkey."""
    proc = RelayProcess("all", relay_env(valkey_url))
    try:
        proc.start()
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def api(relay: RelayProcess) -> Iterator[Api]:
    client = Api(relay.url)
    yield client
    client.close()


@pytest.fixture
def admin_token(api: Api) -> str:
    return api.login()
