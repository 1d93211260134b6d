"""The console as an operator meets it: ``pulsar-relay serve all`` on the session's real Valkey
with a bootstrap admin, an HTTP client for setting the scene, and a headless Chromium."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.conftest import TEST_SECRET
from tests.console.browser import Browser
from tests.support.serve import RelayProcess

ADMIN = ("root", "root-password-1")


def relay_env(valkey_url: str, **extra: str) -> dict[str, str]:
    return {
        "PULSAR_JWT_SECRET_KEY": TEST_SECRET,
        "PULSAR_STORAGE_BACKEND": "valkey",
        "PULSAR_VALKEY_URL": valkey_url,
        "PULSAR_BOOTSTRAP_ADMIN_USERNAME": ADMIN[0],
        "PULSAR_BOOTSTRAP_ADMIN_PASSWORD": ADMIN[1],
        "PULSAR_GATEWAY_ID": "gw-console-test",
        "PULSAR_GATEWAY_HEARTBEAT_INTERVAL": "0.5",
        "PULSAR_PASSWORD_HASH_TIME_COST": "1",
        "PULSAR_PASSWORD_HASH_MEMORY_KIB": "64",
        "PULSAR_LOG_LEVEL": "WARNING",
        **extra,
    }


@pytest.fixture
def relay(valkey_url: str) -> Iterator[RelayProcess]:
    """``pulsar-relay serve all`` on a free port over the flushed session Valkey."""
    proc = start_relay(relay_env(valkey_url))
    try:
        yield proc
    finally:
        proc.stop()


def start_relay(env: dict[str, str]) -> RelayProcess:
    """Start it; once more if the free port it probed was taken before the child bound it."""
    for attempt in (1, 2):
        proc = RelayProcess("all", env)
        try:
            return proc.start()
        except RuntimeError as exc:
            proc.stop()
            if attempt == 2 or "Address already in use" not in str(exc):
                raise
    raise AssertionError("unreachable")


@pytest.fixture
async def http(relay: RelayProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=relay.url, timeout=30) as client:
        yield client


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    b = await Browser.start()
    try:
        yield b
    finally:
        await b.close()


async def login(http: httpx.AsyncClient, username: str = ADMIN[0], password: str = ADMIN[1]) -> str:
    r = await http.post("/auth/login", data={"username": username, "password": password})
    assert r.status_code == 200, r.text
    token: str = r.json()["access_token"]
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
