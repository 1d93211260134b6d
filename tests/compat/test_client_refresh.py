"""The real ``pulsar-relay-client`` 0.2.2 in its refresh-token modes (CONTRACT decision 6): the
password login capturing a refresh token into a credentials file, ``RefreshTokenAuthenticator``
through ``RelayAuthManager(credentials_file=)`` and ``(credentials_store=)``,
``HttpRelayClient.exchange_refresh_token``, ``RelayTransport`` logging in or refreshing again on a
401, and two clients refreshing one chain at once."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.compat.relay import ADMIN_PASSWORD, ADMIN_USERNAME, DEPLOYMENTS, Api, Relay, bearer, relay_env
from tests.support.serve import RelayProcess

# The real client is a dev dependency (pyproject [dev]: pulsar-relay-client==0.2.2).
pytest.importorskip("pulsar_relay_client", minversion="0.2.2")
from pulsar_relay_client import (
    CredentialsFile,
    HttpRelayClient,
    InMemoryCredentialsStore,
    PasswordAuthenticator,
    RefreshTokenRejectedError,
    RelayAuthError,
    RelayAuthManager,
    RelayTransport,
)

WIRE = re.compile(r"^[0-9a-f]{32}\.[A-Za-z0-9_-]{43}$")


def _credentials(tmp_path: Path) -> Path:
    directory = tmp_path / "creds"
    directory.mkdir(mode=0o700)
    return directory / "relay_credentials.json"


def _captured(relay: Relay, path: Path) -> str:
    """Log in with the client's PasswordAuthenticator, which writes the refresh token to ``path``."""
    auth = PasswordAuthenticator(
        relay.url, ADMIN_USERNAME, ADMIN_PASSWORD, credentials_file=CredentialsFile(str(path))
    )
    manager = RelayAuthManager(relay.url, authenticator=auth)
    manager.get_token()
    token: str = json.loads(path.read_text())["refresh_token"]
    return token


def _fresh_refresh_token(relay: Relay) -> str:
    api = Api(relay.url)
    try:
        r = api.http.post("/auth/login", data={"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD})
        assert r.status_code == 200, r.text
        return str(r.json()["refresh_token"])
    finally:
        api.close()


@pytest.mark.parametrize("relay", DEPLOYMENTS, indirect=True)
def test_password_login_captures_a_refresh_token_that_a_later_process_uses(
    relay: Relay, tmp_path: Path
) -> None:
    """PasswordAuthenticator(credentials_file=) writes the login's refresh token (mode 0600); a
    transport built on that file then runs on refresh tokens, rotating the file, and publishes
    and polls."""
    path = _credentials(tmp_path)
    first = _captured(relay, path)
    assert WIRE.match(first), first
    assert path.stat().st_mode & 0o777 == 0o600
    assert json.loads(path.read_text())["relay_url"] == relay.url
    transport = RelayTransport(relay.url, credentials_file=str(path))
    try:
        assert transport.auth_manager.strategy_name == "refresh_token"
        sent = transport.post_message("compat_refresh", {"n": 1})
        assert transport.long_poll(["compat_refresh"], timeout=1) == []
    finally:
        transport.close()
    rotated = json.loads(path.read_text())["refresh_token"]
    assert WIRE.match(rotated) and rotated != first
    api = Api(relay.url)
    try:
        assert [m["message_id"] for m in api.history(api.login(), "compat_refresh")] == [sent["message_id"]]
    finally:
        api.close()


def test_in_memory_store_receives_every_rotation(relay: Relay) -> None:
    """RelayAuthManager(credentials_store=InMemoryCredentialsStore(...)) exchanges the token and
    hands each rotated one to on_save (Galaxy's vault); each works for the next exchange."""
    saved: list[dict[str, Any]] = []
    store = InMemoryCredentialsStore(relay.url, _fresh_refresh_token(relay), on_save=saved.append)
    manager = RelayAuthManager(relay.url, credentials_store=store)
    assert manager.strategy_name == "refresh_token"
    tokens = set()
    for _ in range(3):
        manager.invalidate()
        tokens.add(manager.get_token())
    assert len(saved) == 3 and len({s["refresh_token"] for s in saved}) == 3
    assert all(WIRE.match(s["refresh_token"]) for s in saved)
    loaded = store.load()
    assert loaded is not None and loaded["refresh_token"] == saved[-1]["refresh_token"]
    api = Api(relay.url)
    try:
        for token in tokens:
            assert api.http.get("/auth/me", headers=bearer(token)).status_code == 200
    finally:
        api.close()


def test_exchange_refresh_token_rotates_and_refuses_what_it_replaced(relay: Relay) -> None:
    """HttpRelayClient.exchange_refresh_token returns the reference's body (a new pair,
    refresh_token_secondary null); its access token works with whoami; presenting the replaced
    token again is RefreshTokenRejectedError."""
    client = HttpRelayClient(relay.url)
    first = _fresh_refresh_token(relay)
    body = client.exchange_refresh_token(first)
    assert set(body) >= {
        "access_token",
        "token_type",
        "expires_in",
        "refresh_token",
        "refresh_token_secondary",
    }
    assert body["refresh_token_secondary"] is None and body["refresh_token"] != first
    assert client.whoami(body["access_token"])["username"] == ADMIN_USERNAME
    with pytest.raises(RefreshTokenRejectedError):
        client.exchange_refresh_token(first)
    with pytest.raises(RefreshTokenRejectedError):
        client.exchange_refresh_token("0" * 32 + "." + "A" * 43)
    assert client.exchange_refresh_token(body["refresh_token"])["access_token"]


def test_two_clients_refreshing_one_chain_at_once_have_one_winner(relay: Relay) -> None:
    """Two RelayAuthManagers holding the same refresh token (two Galaxy handlers) refresh at the
    same moment: exactly one gets a token, the other RelayAuthError; the winner keeps refreshing."""
    shared = _fresh_refresh_token(relay)
    managers = [
        RelayAuthManager(relay.url, credentials_store=InMemoryCredentialsStore(relay.url, shared))
        for _ in range(2)
    ]
    barrier = threading.Barrier(2)
    results: list[str | Exception] = [RuntimeError("not run")] * 2

    def refresh(i: int) -> None:
        barrier.wait()
        try:
            results[i] = managers[i].get_token()
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=refresh, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    winners = [i for i, r in enumerate(results) if isinstance(r, str)]
    assert len(winners) == 1, results
    loser = results[1 - winners[0]]
    assert isinstance(loser, RelayAuthError), loser
    winner = managers[winners[0]]
    winner.invalidate()
    assert winner.get_token()


def test_password_transport_logs_in_again_after_logout(relay: Relay) -> None:
    """The server ends the transport's session (logout with its token): the next publish gets a
    401, and the client logs in again and succeeds without losing the message."""
    transport = RelayTransport(relay.url, username=ADMIN_USERNAME, password=ADMIN_PASSWORD)
    api = Api(relay.url)
    try:
        transport.post_message("compat_logout", {"n": 1})
        token = transport.auth_manager.get_token()
        assert api.http.post("/auth/logout", headers=bearer(token)).status_code == 204
        assert api.http.get("/auth/me", headers=bearer(token)).status_code == 401
        transport.post_message("compat_logout", {"n": 2})
        assert transport.auth_manager.get_token() != token
        stored = api.history(api.login(), "compat_logout")
    finally:
        transport.close()
        api.close()
    assert [m["payload"] for m in stored] == [{"n": 1}, {"n": 2}]


def test_refresh_transport_refreshes_after_a_restart_with_a_new_secret(
    valkey_url: str, tmp_path: Path
) -> None:
    """Sessions live in Valkey, so they survive a restart: after the relay restarts with a rotated
    JWT secret, the transport's cached access token gets 401 and the client exchanges its refresh
    token for a new one, publishing without loss."""
    first = RelayProcess("all", relay_env(valkey_url)).start()
    second: RelayProcess | None = None
    path = _credentials(tmp_path)
    try:
        _captured(first, path)
        transport = RelayTransport(first.url, credentials_file=str(path))
        before = transport.post_message("compat_rotate", {"n": 1})
        port = first.port
        first.stop()
        rotated = "rotated-secret-Hk3_wq9ZLpV2mT7xRcB4nY8sJ1dF6gA0eU5oI"
        second = RelayProcess("all", relay_env(valkey_url, PULSAR_JWT_SECRET_KEY=rotated), port=port).start()
        after = transport.post_message("compat_rotate", {"n": 2})
        transport.close()
        api = Api(second.url)
        try:
            stored = api.history(api.login(), "compat_rotate")
        finally:
            api.close()
    finally:
        first.stop()
        if second is not None:
            second.stop()
    assert [m["message_id"] for m in stored] == [before["message_id"], after["message_id"]]
