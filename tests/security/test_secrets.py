"""Secrets stay secret: with DEBUG logging, registering, logging in (right and wrong), changing a
password, publishing, subscribing and polling leave no password, token or signing key in the logs;
and no service starts outside development mode with a missing or weak signing key."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from websockets.asyncio.client import connect

from tests.conftest import TEST_SECRET
from tests.reliability.harness import ADMIN, ROOT, bearer, full_log, relay_env
from tests.security.conftest import WAIT, RelayFactory, recv
from tests.support.serve import child_env
from tests.support.valkey import ValkeyServer, free_port

USER_PASSWORD = "correct-horse-battery-9"
NEW_PASSWORD = "another-horse-battery-7"
WRONG_PASSWORD = "wrong-horse-battery-3"


@pytest.mark.parametrize("json_logs", ["0", "1"])
async def test_debug_logs_hold_no_secret(relay_factory: RelayFactory, json_logs: str) -> None:
    """Everything a user does, logged at DEBUG (plain and JSON): none of the passwords, tokens or
    the JWT secret appears in the output."""
    async with relay_factory(PULSAR_LOG_LEVEL="DEBUG", PULSAR_LOG_JSON=json_logs) as relay:
        uid, token = await relay.user("carol", password=USER_PASSWORD)
        assert (await relay.login("carol", WRONG_PASSWORD)).status_code == 401
        r = await relay.http.patch(
            f"/auth/users/{uid}", json={"password": NEW_PASSWORD}, headers=bearer(relay.admin)
        )
        assert r.status_code == 200, r.text
        r = await relay.login("carol", NEW_PASSWORD)
        assert r.status_code == 200
        token2 = r.json()["access_token"]
        h = bearer(token2)
        assert (
            await relay.http.post("/api/v1/messages", json={"topic": "s", "payload": {}}, headers=h)
        ).status_code == 201
        async with connect(relay.ws_url(token2), open_timeout=WAIT) as ws:
            await ws.send(json.dumps({"type": "subscribe", "topics": ["s"], "since": {"s": "0-0"}}))
            assert (await recv(ws))["type"] == "subscribed"
        async with connect(relay.ws_url(), subprotocols=["bearer", f"bearer.{token2}"], open_timeout=WAIT):  # type: ignore[list-item]
            pass
        r = await relay.http.post("/messages/poll", json={"topics": ["s"], "since": {"s": "0-0"}}, headers=h)
        assert r.status_code == 200
        assert (
            await relay.http.get("/api/v1/topics/s/messages", headers=bearer("x" + token))
        ).status_code == 401
        logged = full_log(relay.proc)
    secrets = {
        "user password": USER_PASSWORD,
        "new password": NEW_PASSWORD,
        "wrong password": WRONG_PASSWORD,
        "admin password": ADMIN[1],
        "token": token,
        "token after login": token2,
        "token signature": token2.rsplit(".", 1)[1],
        "JWT secret": TEST_SECRET,
    }
    leaked = [name for name, value in secrets.items() if value in logged]
    assert not leaked, f"{leaked} found in the DEBUG log:\n{logged[-3000:]}"
    assert logged, "the log was captured"


def _serve(service: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pulsar_relay", "serve", service, "--port", str(free_port())],
        env=child_env(**env),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize(
    ("service", "secret"),
    [
        *((service, None) for service in ("all", "auth", "ingest", "gateway")),
        *(
            ("all", weak)
            for weak in (
                "change-me",
                "short-but-random-Zx81",
                "your-secure-secret-key",
                " " * 32,
                "secret" * 6,
            )
        ),
    ],
)
def test_insecure_signing_key_is_refused_outside_development_mode(service: str, secret: str | None) -> None:
    """No key, a known placeholder, a short key or one with too little entropy: the process exits
    non-zero at once, naming PULSAR_JWT_SECRET_KEY and how to fix it."""
    env = {k: v for k, v in relay_env("redis://127.0.0.1:1/0").items() if k != "PULSAR_JWT_SECRET_KEY"}
    if secret is not None:
        env["PULSAR_JWT_SECRET_KEY"] = secret
    done = _serve(service, env)
    assert done.returncode != 0
    assert "PULSAR_JWT_SECRET_KEY" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr, done.stderr


def test_asymmetric_mode_without_a_public_key_is_refused() -> None:
    """EdDSA selected but no public key file: exit non-zero naming PULSAR_JWT_PUBLIC_KEY_FILE."""
    env = relay_env("redis://127.0.0.1:1/0", PULSAR_JWT_ALGORITHM="EdDSA")
    done = _serve("ingest", env)
    assert done.returncode != 0 and "PULSAR_JWT_PUBLIC_KEY_FILE" in done.stderr, done.stderr


async def test_development_mode_starts_without_a_key(
    valkey: ValkeyServer, relay_factory: RelayFactory
) -> None:
    """PULSAR_ALLOW_INSECURE_DEFAULTS=1 is the explicit opt-in: then a missing key is allowed."""
    async with relay_factory("ingest", PULSAR_JWT_SECRET_KEY="", PULSAR_ALLOW_INSECURE_DEFAULTS="1") as relay:
        assert (await relay.http.get("/health")).status_code == 200
