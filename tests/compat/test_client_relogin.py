"""The real client's token handling against the all-in-one relay: bad credentials surface as its
auth error, and a token the relay no longer accepts (a changed secret, or tokens minted by a
previous relay) is replaced by logging in again, without losing the publish or the poll."""

from __future__ import annotations

import pytest

from tests.compat.relay import ADMIN_PASSWORD, ADMIN_USERNAME, Api, relay_env
from tests.support.serve import RelayProcess

# The real client is a dev dependency (pyproject [dev]: pulsar-relay-client==0.2.2).
pytest.importorskip("pulsar_relay_client", minversion="0.2.2")
from pulsar_relay_client import RelayAuthError, RelayTransport


def test_wrong_password_raises_the_clients_auth_error(relay: RelayProcess) -> None:
    """A 401 from /auth/login reaches the caller as RelayAuthError (Pulsar's loop sleeps and retries)."""
    t = RelayTransport(relay.url, username=ADMIN_USERNAME, password="not-the-password")
    try:
        with pytest.raises(RelayAuthError):
            t.post_message("compat_denied", {"job_id": "x"})
    finally:
        t.close()


def test_client_logs_in_again_when_its_cached_token_stops_verifying(valkey_url: str) -> None:
    """After a restart with a new secret the cached token gets 401; the client re-logs in and succeeds."""
    first = RelayProcess("all", relay_env(valkey_url)).start()
    port = first.port
    t = RelayTransport(first.url, username=ADMIN_USERNAME, password=ADMIN_PASSWORD)
    second: RelayProcess | None = None
    try:
        before = t.post_message("compat_relogin", {"n": 1})
        first.stop()
        second = RelayProcess(
            "all",
            relay_env(
                valkey_url, PULSAR_JWT_SECRET_KEY="rotated-secret-slW_ep3tLXkgWbYc4Eshs5nur01QNmBJdlCxO8Am"
            ),
            port=port,
        ).start()
        after = t.post_message("compat_relogin", {"n": 2})
        assert t.long_poll(["compat_relogin"], timeout=1) == []
        api = Api(second.url)
        try:
            stored = api.history(api.login(), "compat_relogin")
        finally:
            api.close()
    finally:
        t.close()
        first.stop()
        if second is not None:
            second.stop()
    assert [m["message_id"] for m in stored] == [before["message_id"], after["message_id"]]
