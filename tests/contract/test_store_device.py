"""Device-grant storage contract (RFC 8628 codes), run against the memory and the Valkey backend
alike: user codes claimed once, decisions only while pending, polls paced and an approval handed
out exactly once, even to concurrent polls."""

from __future__ import annotations

import asyncio

from relaycore.models import now_ms
from relaycore.store.base import Backend, DeviceGrant


def grant(
    code: str = "BCDFGHJK", *, lifetime_ms: int = 60_000, interval: int = 5, pair: bool = False
) -> DeviceGrant:
    return DeviceGrant(
        user_code=code,
        client_hint="host-1",
        scope="",
        pair=pair,
        expires_ms=now_ms() + lifetime_ms,
        interval=interval,
    )


async def test_created_grant_is_found_by_user_code(backend: Backend) -> None:
    """A stored grant is found by its user code with every field intact."""
    assert await backend.device_grants.create("dk1", grant(pair=True), 60)
    found = await backend.device_grants.by_user_code("BCDFGHJK")
    assert found is not None
    key, g = found
    assert key == "dk1" and g.client_hint == "host-1" and g.pair and g.status == "pending" and g.interval == 5
    assert await backend.device_grants.by_user_code("ZZZZZZZZ") is None


async def test_user_code_is_claimed_once(backend: Backend) -> None:
    """A second grant with a user code in use is refused and the first is untouched."""
    assert await backend.device_grants.create("dk1", grant(), 60)
    assert not await backend.device_grants.create("dk2", grant(), 60)
    found = await backend.device_grants.by_user_code("BCDFGHJK")
    assert found is not None and found[0] == "dk1"
    outcome, _ = await backend.device_grants.poll("dk2", now_ms(), 0)
    assert outcome == "unknown"


async def test_decide_only_while_pending(backend: Backend) -> None:
    """The first decision wins; later approve/deny calls change nothing."""
    await backend.device_grants.create("dk1", grant(), 60)
    decided = await backend.device_grants.decide("dk1", "u-ann", False, now_ms())
    assert decided is not None and decided.status == "denied" and decided.user_id == "u-ann"
    assert await backend.device_grants.decide("dk1", "u-bob", True, now_ms()) is None
    outcome, g = await backend.device_grants.poll("dk1", now_ms(), 0)
    assert outcome == "denied" and g is not None and g.user_id == "u-ann"
    assert await backend.device_grants.decide("nope", "u-ann", True, now_ms()) is None


async def test_poll_paces_and_raises_interval(backend: Backend) -> None:
    """A poll within the interval is slow_down and adds 5 s; one after it is pending."""
    await backend.device_grants.create("dk1", grant(interval=1), 60)
    t = now_ms()
    assert (await backend.device_grants.poll("dk1", t, 0))[0] == "pending"
    outcome, g = await backend.device_grants.poll("dk1", t + 500, 0)
    assert outcome == "slow_down" and g is not None and g.interval == 6
    assert (await backend.device_grants.poll("dk1", t + 500 + 6_000, 0))[0] == "pending"
    # The slack lets a poll arrive a little early without counting as too fast...
    assert (await backend.device_grants.poll("dk1", t + 500 + 6_000 + 5_900, 200))[0] == "pending"
    # ...but not much earlier; and every slow_down adds another 5 s.
    outcome, g = await backend.device_grants.poll("dk1", t + 500 + 6_000 + 5_900 + 5_000, 200)
    assert outcome == "slow_down" and g is not None and g.interval == 11


async def test_approved_grant_is_handed_out_once(backend: Backend) -> None:
    """Of many concurrent polls of an approved grant exactly one gets it; later ones hear 'used'."""
    await backend.device_grants.create("dk1", grant(interval=1), 60)
    await backend.device_grants.decide("dk1", "u-ann", True, now_ms())
    t = now_ms()
    outcomes = await asyncio.gather(*(backend.device_grants.poll("dk1", t + 2_000, 0) for _ in range(20)))
    kinds = sorted(o for o, _ in outcomes)
    assert kinds.count("approved") == 1, kinds
    assert set(kinds) <= {"approved", "slow_down", "used"}
    [(_, g)] = [(o, g) for o, g in outcomes if o == "approved"]
    assert g is not None and g.user_id == "u-ann"
    assert (await backend.device_grants.poll("dk1", t + 60_000 - 1, 0))[0] in ("used", "expired")


async def test_expired_grant_answers_expired_and_cannot_be_decided(backend: Backend) -> None:
    """Past expires_ms a poll says expired and a decision is refused (the record still exists)."""
    await backend.device_grants.create("dk1", grant(lifetime_ms=1_000), 60)
    later = now_ms() + 2_000
    assert await backend.device_grants.decide("dk1", "u-ann", True, later) is None
    assert (await backend.device_grants.poll("dk1", later, 0))[0] == "expired"


async def test_records_vanish_after_their_ttl(backend: Backend) -> None:
    """Nothing outlives its TTL: the grant and its user code are gone."""
    await backend.device_grants.create("dk1", grant(), 0.3)
    await asyncio.sleep(0.5)
    assert await backend.device_grants.by_user_code("BCDFGHJK") is None
    assert (await backend.device_grants.poll("dk1", now_ms(), 0))[0] == "unknown"
    assert await backend.device_grants.create("dk2", grant(), 60)  # the code is free again


async def test_web_sessions_round_trip_and_expire(backend: Backend) -> None:
    """A web session names its user until deleted or past its TTL."""
    await backend.web_sessions.create("h1", "u-ann", 60)
    await backend.web_sessions.create("h2", "u-bob", 0.3)
    assert await backend.web_sessions.owner("h1") == "u-ann"
    await backend.web_sessions.delete("h1")
    assert await backend.web_sessions.owner("h1") is None
    await asyncio.sleep(0.5)
    assert await backend.web_sessions.owner("h2") is None
