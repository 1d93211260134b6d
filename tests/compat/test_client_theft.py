"""The real ``pulsar-relay-client`` 0.2.2 when its refresh token is stolen and replayed: the relay
ends the chain, and the client is told to sign in again (CONTRACT decision 6)."""

from __future__ import annotations

import pytest

from tests.compat.relay import Relay
from tests.compat.test_client_refresh import _fresh_refresh_token

pytest.importorskip("pulsar_relay_client", minversion="0.2.2")
from pulsar_relay_client import (
    HttpRelayClient,
    InMemoryCredentialsStore,
    RefreshTokenRejectedError,
    RelayAuthError,
    RelayAuthManager,
)


@pytest.fixture
def relay_extra_env() -> dict[str, str]:
    """No reuse grace here: any repeat of a replaced refresh token counts as theft."""
    return {"PULSAR_REFRESH_TOKEN_REUSE_GRACE": "0"}


def test_replaying_a_stolen_token_ends_the_clients_session(relay: Relay) -> None:
    """A thief replays the refresh token the client already rotated: the relay ends the chain, so
    the client's next refresh fails with RelayAuthError (re-run pulsar-config --login)."""
    stolen = _fresh_refresh_token(relay)
    store = InMemoryCredentialsStore(relay.url, stolen)
    manager = RelayAuthManager(relay.url, credentials_store=store)
    manager.get_token()
    with pytest.raises(RefreshTokenRejectedError):
        HttpRelayClient(relay.url).exchange_refresh_token(stolen)
    manager.invalidate()
    with pytest.raises(RelayAuthError):
        manager.get_token()
