"""Sign-in rate limiting (CONTRACT decision 12): failures only, per client address and per
(username, address), 429 with Retry-After; a username's failures only slow it down, so nobody is
locked out; failed refreshes limited per address; X-Forwarded-For believed only from trusted
proxies."""

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
from relaycore.store.memory import MemoryThrottle
from tests.auth.conftest import Auth, auth_settings
from tests.support.serve import running


@asynccontextmanager
async def limited(settings_factory: Callable[..., Settings], **overrides: Any) -> AsyncIterator[Auth]:
    base = {"login_rate_limit_attempts": 3, "login_rate_limit_user_address": 2, "login_slowdown_after": 3}
    settings = auth_settings(settings_factory, **(base | overrides))
    async with running(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as client:
        service = Auth(url, client, settings)
        service.admin_token = await service.token("admin", "admin1234")
        await service.user("alice")
        yield service


def via(address: str) -> dict[str, str]:
    return {"x-forwarded-for": address}


async def test_burst_of_correct_logins_from_one_address_is_never_refused(
    settings_factory: Callable[..., Settings],
) -> None:
    """Thirty simultaneous correct logins from one address (a host starting many clients), then
    twenty more one after another: all 200, whatever the limits (only failures count)."""
    async with limited(settings_factory) as auth:
        replies = await asyncio.gather(
            *(auth.login("alice", "password123", **via("10.9.0.1")) for _ in range(30))
        )
        assert [r.status_code for r in replies] == [200] * 30
        for _ in range(20):
            assert (await auth.login("alice", "password123", **via("10.9.0.1"))).status_code == 200


async def test_address_limit(settings_factory: Callable[..., Settings]) -> None:
    """After 3 failures from one address, whatever the usernames, that address gets 429 with
    Retry-After (even with a right password); another address does not."""
    async with limited(settings_factory) as auth:
        for name in ("u1", "u2", "u3"):
            assert (await auth.login(name, "whatever-pass", **via("192.0.2.7"))).status_code == 401
        r = await auth.login("alice", "password123", **via("192.0.2.7"))
        assert r.status_code == 429
        assert r.json()["detail"].startswith("Too many failed login attempts, retry in ")
        assert 1 <= int(r.headers["retry-after"]) <= 60
        assert (await auth.login("alice", "password123", **via("192.0.2.8"))).status_code == 200


async def test_username_and_address_limit(settings_factory: Callable[..., Settings]) -> None:
    """After 2 failures for alice from one address, alice from there gets 429; other users from
    that address, and alice from elsewhere, still log in."""
    async with limited(settings_factory) as auth:
        await auth.user("bob")
        for _ in range(2):
            assert (await auth.login("alice", "wrong-password", **via("192.0.2.9"))).status_code == 401
        assert (await auth.login("alice", "password123", **via("192.0.2.9"))).status_code == 429
        assert (await auth.login("bob", "password123", **via("192.0.2.9"))).status_code == 200
        assert (await auth.login("alice", "password123", **via("192.0.2.10"))).status_code == 200


async def test_a_stranger_cannot_lock_the_user_out(settings_factory: Callable[..., Settings]) -> None:
    """11 wrong passwords for alice from 11 addresses never make her right password from a fresh
    address a 429: it is only slowed down (by login_slowdown_delay) and succeeds."""
    async with limited(settings_factory, login_slowdown_delay=0.4) as auth:
        for i in range(11):
            assert (await auth.login("alice", "wrong-password", **via(f"10.0.0.{i}"))).status_code == 401
        started = time.monotonic()
        r = await auth.login("alice", "password123", **via("10.0.0.99"))
        assert r.status_code == 200, r.text
        assert time.monotonic() - started >= 0.4
        # another username is not slowed down
        started = time.monotonic()
        assert (await auth.login("admin", "admin1234", **via("10.0.1.1"))).status_code == 200


async def test_success_clears_the_pair_count(settings_factory: Callable[..., Settings]) -> None:
    """Failures for one username from one address, separated by successful logins, never reach
    the (username, address) limit."""
    async with limited(settings_factory, login_rate_limit_attempts=100) as auth:
        for _ in range(4):
            assert (await auth.login("alice", "wrong-password", **via("10.1.0.1"))).status_code == 401
            assert (await auth.login("alice", "password123", **via("10.1.0.1"))).status_code == 200


async def test_parallel_guesses_cannot_pass_the_limit(settings_factory: Callable[..., Settings]) -> None:
    """20 simultaneous guesses from one address: exactly 3 are checked, the rest get 429."""
    async with limited(settings_factory, login_rate_limit_user_address=100) as auth:
        replies = await asyncio.gather(
            *(auth.login("alice", f"guess-{i:04d}", **via("10.2.0.1")) for i in range(20))
        )
        codes = sorted(r.status_code for r in replies)
        assert codes.count(401) == 3
        assert codes.count(429) == 17


async def test_untrusted_forwarded_for_is_ignored(settings_factory: Callable[..., Settings]) -> None:
    """When the peer is not a trusted proxy, X-Forwarded-For cannot spread attempts over addresses."""
    async with limited(settings_factory, forwarded_allow_ips="10.0.0.0/8") as auth:
        for i in range(3):
            assert (await auth.login(f"u{i}", "whatever-pass", **via(f"10.3.0.{i}"))).status_code == 401
        assert (await auth.login("alice", "password123", **via("10.3.0.99"))).status_code == 429


async def test_zero_disables_the_limit(settings_factory: Callable[..., Settings]) -> None:
    """login_rate_limit_attempts = 0 turns login rate limiting off."""
    async with limited(settings_factory, login_rate_limit_attempts=0) as auth:
        for _ in range(6):
            assert (await auth.login("alice", "wrong-password")).status_code == 401


async def test_the_window_ends(settings_factory: Callable[..., Settings]) -> None:
    """Once the window has passed, the refused address may try again."""
    async with limited(settings_factory, login_rate_limit_window=0.5) as auth:
        for i in range(4):
            await auth.login(f"u{i}", "wrong-password", **via("10.4.0.1"))
        deadline = time.monotonic() + 10
        while (r := await auth.login("alice", "password123", **via("10.4.0.1"))).status_code == 429:
            assert time.monotonic() < deadline, "limit never lifted"
            await asyncio.sleep(0.1)
        assert r.status_code == 200


async def test_failed_refreshes_are_limited_per_address(settings_factory: Callable[..., Settings]) -> None:
    """After 3 failed refreshes from one address, refreshes from there get 429 (a valid token
    too); another address is unaffected, and successful refreshes are never counted."""
    async with limited(settings_factory, refresh_rate_limit_failures=3) as auth:
        tokens = (await auth.login("alice", "password123")).json()
        for _ in range(10):  # successes do not count
            r = await auth.client.post(
                "/auth/token/refresh",
                json={"refresh_token": tokens["refresh_token"]},
                headers=via("10.5.0.1"),
            )
            assert r.status_code == 200
            tokens = r.json()
        for _ in range(3):
            r = await auth.client.post(
                "/auth/token/refresh", json={"refresh_token": "bad"}, headers=via("10.5.0.1")
            )
            assert r.status_code == 401
        body = {"refresh_token": tokens["refresh_token"]}
        r = await auth.client.post("/auth/token/refresh", json=body, headers=via("10.5.0.1"))
        assert r.status_code == 429 and r.json()["detail"].startswith("Too many failed refresh attempts")
        assert (
            await auth.client.post("/auth/token/refresh", json=body, headers=via("10.5.0.2"))
        ).status_code == 200


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
    limiter = LoginLimiter(MemoryThrottle(), settings)
    assert limiter.client_address(peer, forwarded) == expected
