"""Login rate limiting (CONTRACT decision 12): per username and per client address, 429 with
Retry-After, a success clearing its username's count, X-Forwarded-For believed only from
trusted proxies."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from auth.app import create_app
from auth.ratelimit import LoginLimiter
from relaycore.config import Settings
from relaycore.store.memory import MemoryCounters
from tests.auth.conftest import Auth, auth_settings
from tests.support.serve import running


@asynccontextmanager
async def limited(settings_factory: Callable[..., Settings], **overrides: Any) -> AsyncIterator[Auth]:
    settings = auth_settings(settings_factory, **({"login_rate_limit_attempts": 3} | overrides))
    async with running(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as client:
        service = Auth(url, client, settings)
        service.admin_token = await service.token("admin", "admin1234")
        await service.user("alice")
        yield service


def via(address: str) -> dict[str, str]:
    return {"x-forwarded-for": address}


async def test_username_limit(settings_factory: Callable[..., Settings]) -> None:
    """After 3 failures for one username (from different addresses) the next attempt is 429 with
    Retry-After, even with the right password."""
    async with limited(settings_factory) as auth:
        for i in range(3):
            assert (await auth.login("alice", "wrong-password", **via(f"10.0.0.{i}"))).status_code == 401
        r = await auth.login("alice", "password123", **via("10.0.0.9"))
        assert r.status_code == 429
        assert "Too many login attempts" in r.json()["detail"]
        assert 1 <= int(r.headers["retry-after"]) <= 60
        # Another username is not affected.
        assert (await auth.login("admin", "admin1234", **via("10.0.1.1"))).status_code == 200


async def test_address_limit(settings_factory: Callable[..., Settings]) -> None:
    """More than 3 attempts from one address, whatever the usernames, is 429."""
    async with limited(settings_factory) as auth:
        for name in ("u1", "u2", "u3"):
            assert (await auth.login(name, "whatever-pass", **via("192.0.2.7"))).status_code == 401
        assert (await auth.login("alice", "password123", **via("192.0.2.7"))).status_code == 429
        assert (await auth.login("alice", "password123", **via("192.0.2.8"))).status_code == 200


async def test_success_clears_the_username_count(settings_factory: Callable[..., Settings]) -> None:
    """Failures separated by successful logins never reach the username limit."""
    async with limited(settings_factory) as auth:
        n = 0
        for _ in range(3):
            for _ in range(2):
                n += 1
                assert (await auth.login("alice", "wrong-password", **via(f"10.1.0.{n}"))).status_code == 401
            n += 1
            assert (await auth.login("alice", "password123", **via(f"10.1.0.{n}"))).status_code == 200


async def test_parallel_guesses_cannot_pass_the_limit(settings_factory: Callable[..., Settings]) -> None:
    """20 simultaneous guesses for one username: at most 3 are checked, the rest get 429."""
    async with limited(settings_factory) as auth:
        replies = await asyncio.gather(
            *(auth.login("alice", f"guess-{i:04d}", **via(f"10.2.0.{i}")) for i in range(20))
        )
        codes = sorted(r.status_code for r in replies)
        assert codes.count(401) == 3
        assert codes.count(429) == 17


async def test_untrusted_forwarded_for_is_ignored(settings_factory: Callable[..., Settings]) -> None:
    """When the peer is not a trusted proxy, X-Forwarded-For cannot spread attempts over addresses."""
    # 5 = the two set-up logins (admin, alice) from 127.0.0.1 + 3 failures below.
    async with limited(
        settings_factory, forwarded_allow_ips="10.0.0.0/8", login_rate_limit_attempts=5
    ) as auth:
        for i in range(3):
            assert (await auth.login(f"u{i}", "whatever-pass", **via(f"10.3.0.{i}"))).status_code == 401
        assert (await auth.login("alice", "password123", **via("10.3.0.99"))).status_code == 429


async def test_zero_disables_the_limit(settings_factory: Callable[..., Settings]) -> None:
    """login_rate_limit_attempts = 0 turns rate limiting off."""
    async with limited(settings_factory, login_rate_limit_attempts=0) as auth:
        for _ in range(6):
            assert (await auth.login("alice", "wrong-password")).status_code == 401


async def test_the_window_ends(settings_factory: Callable[..., Settings]) -> None:
    """Once the window has passed, the same username may try again."""
    async with limited(settings_factory, login_rate_limit_window=0.5) as auth:
        for i in range(4):
            await auth.login("alice", "wrong-password", **via(f"10.4.0.{i}"))
        deadline = time.monotonic() + 10
        n = 10
        while (r := await auth.login("alice", "password123", **via(f"10.4.0.{n}"))).status_code == 429:
            assert time.monotonic() < deadline, "limit never lifted"
            n += 1
            await asyncio.sleep(0.1)
        assert r.status_code == 200


@pytest.mark.parametrize(
    ("trusted", "peer", "forwarded", "expected"),
    [
        ("127.0.0.1", "127.0.0.1", [], "127.0.0.1"),
        ("127.0.0.1", "127.0.0.1", ["203.0.113.5"], "203.0.113.5"),
        ("127.0.0.1", "198.51.100.1", ["203.0.113.5"], "198.51.100.1"),
        ("127.0.0.1,10.0.0.0/8", "127.0.0.1", ["203.0.113.5, 10.1.2.3"], "203.0.113.5"),
        ("127.0.0.1,10.0.0.0/8", "127.0.0.1", ["6.6.6.6, 203.0.113.5, 10.1.2.3"], "203.0.113.5"),
        ("127.0.0.1", "127.0.0.1", ["6.6.6.6", "203.0.113.5"], "203.0.113.5"),
        ("*", "198.51.100.1", ["203.0.113.5"], "203.0.113.5"),
        ("127.0.0.1", "127.0.0.1", ["127.0.0.1"], "127.0.0.1"),
        ("127.0.0.1", "127.0.0.1", ["not-an-ip"], "not-an-ip"),
        ("", "127.0.0.1", ["203.0.113.5"], "127.0.0.1"),
        ("::1", "::1", ["2001:db8::1"], "2001:db8::1"),
    ],
)
def test_client_address(trusted: str, peer: str, forwarded: list[str], expected: str) -> None:
    """The nearest address in the X-Forwarded-For chain that is not a trusted proxy."""
    settings = Settings(forwarded_allow_ips=trusted)
    limiter = LoginLimiter(MemoryCounters(), settings)
    assert limiter.client_address(peer, forwarded) == expected
