"""Brute-force login: failures limited per client address (429 with Retry-After, also for the
right password once limited), a username guessed at from many addresses only slowed down (never
locked), a spoofed X-Forwarded-For from an untrusted peer buys nothing, and a failure costs about
the same whether or not the user exists."""

from __future__ import annotations

import statistics
import time

import pytest

from tests.reliability.harness import bearer
from tests.security.conftest import RelayFactory

LIMITED = {"PULSAR_LOGIN_RATE_LIMIT_ATTEMPTS": "5", "PULSAR_LOGIN_RATE_LIMIT_WINDOW": "60"}


def _retry_after(value: str | None) -> int:
    assert value is not None and value.isdigit(), value
    return int(value)


async def test_login_is_limited_per_address(relay_factory: RelayFactory) -> None:
    """Five failures from one address (through a trusted proxy), each for another username: the
    sixth attempt is 429 with Retry-After, even with a correct password; other addresses go on."""
    async with relay_factory(**LIMITED) as relay:
        await relay.user("victim")
        attacker = {"X-Forwarded-For": "203.0.113.7"}
        for n in range(5):
            r = await relay.login(f"nobody{n}", "guess", **attacker)
            assert r.status_code == 401, r.text
        r = await relay.login("victim", "password123", **attacker)
        assert r.status_code == 429, r.text
        assert 1 <= _retry_after(r.headers.get("retry-after")) <= 60
        assert "detail" in r.json()
        r = await relay.login("victim", "password123", **{"X-Forwarded-For": "198.51.100.1"})
        assert r.status_code == 200, r.text


async def test_a_username_guessed_from_many_addresses_is_slowed_not_locked(
    relay_factory: RelayFactory,
) -> None:
    """Eleven failures for one username from eleven addresses: the right password from a fresh
    address still logs in (after the slowdown's wait), and so does another username."""
    slow = {**LIMITED, "PULSAR_LOGIN_SLOWDOWN_AFTER": "5", "PULSAR_LOGIN_SLOWDOWN_DELAY": "0.3"}
    async with relay_factory(**slow) as relay:
        await relay.user("victim")
        await relay.user("bystander")
        for n in range(11):
            r = await relay.login("victim", f"guess{n}", **{"X-Forwarded-For": f"198.51.100.{n + 1}"})
            assert r.status_code == 401, r.text
        started = time.monotonic()
        r = await relay.login("victim", "password123", **{"X-Forwarded-For": "198.51.100.99"})
        assert r.status_code == 200, r.text
        assert time.monotonic() - started >= 0.3
        r = await relay.login("bystander", "password123", **{"X-Forwarded-For": "198.51.100.1"})
        assert r.status_code == 200, r.text


async def test_spoofed_forwarded_for_from_untrusted_peer_does_not_reset_the_limit(
    relay_factory: RelayFactory,
) -> None:
    """When the peer is not a trusted proxy, a fresh X-Forwarded-For per attempt changes nothing:
    the real address is limited."""
    async with relay_factory(**LIMITED, PULSAR_FORWARDED_ALLOW_IPS="10.255.255.1") as relay:
        statuses = [
            (await relay.login(f"nobody{n}", "guess", **{"X-Forwarded-For": f"192.0.2.{n}"})).status_code
            for n in range(8)
        ]
        # Only failures count (the admin's own login from this address did not).
        assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {429}, statuses


@pytest.mark.slow
async def test_failed_login_costs_the_same_for_unknown_and_known_users(relay_factory: RelayFactory) -> None:
    """With a production-like hashing cost (64 MiB), the median failure time for an unknown username and for a
    known one with a wrong password are within a small factor (no user enumeration by timing)."""
    costly = {
        "PULSAR_LOGIN_RATE_LIMIT_ATTEMPTS": "0",
        "PULSAR_PASSWORD_HASH_TIME_COST": "2",
        "PULSAR_PASSWORD_HASH_MEMORY_KIB": "65536",
    }
    async with relay_factory(**costly) as relay:
        await relay.user("known")
        samples: dict[str, list[float]] = {"unknown": [], "known": []}
        for n in range(9):
            for kind, username in (("unknown", f"ghost{n}"), ("known", "known")):
                start = time.perf_counter()
                r = await relay.login(username, "wrong-password")
                samples[kind].append(time.perf_counter() - start)
                assert r.status_code == 401 and r.json() == {"detail": "Incorrect username or password"}
        unknown, known = (statistics.median(samples[k]) for k in ("unknown", "known"))
        print(
            f"\nlogin failure medians: unknown user {unknown * 1000:.1f} ms, known user {known * 1000:.1f} ms"
        )
        assert max(unknown, known) / min(unknown, known) < 3, (unknown, known)
        assert (await relay.http.get("/auth/me", headers=bearer(relay.admin))).status_code == 200
