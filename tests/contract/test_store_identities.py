"""Federated identity and one-time record storage contract, against the memory and the Valkey
backend alike."""

from __future__ import annotations

import asyncio

from relaycore.store.base import Backend

ISS = "https://sso.example.org/realms/a b"  # a space in the issuer must not confuse the split


async def test_link_claims_an_identity_once(backend: Backend) -> None:
    """The first link wins; a second user gets the owner back, and the link stays."""
    assert await backend.identities.link(ISS, "sub 1", "u1") == "u1"
    assert await backend.identities.link(ISS, "sub 1", "u2") == "u1"
    assert await backend.identities.find(ISS, "sub 1") == "u1"
    assert await backend.identities.find(ISS, "sub 2") is None
    assert await backend.identities.of_user("u1") == [(ISS, "sub 1")]
    assert await backend.identities.of_user("u2") == []


async def test_concurrent_links_have_one_winner(backend: Backend) -> None:
    """Of many concurrent links of one identity, exactly one user gets it."""
    owners = await asyncio.gather(*(backend.identities.link(ISS, "s", f"u{i}") for i in range(20)))
    assert len(set(owners)) == 1
    assert await backend.identities.find(ISS, "s") == owners[0]


async def test_unlink_only_by_the_owner(backend: Backend) -> None:
    """unlink removes a link only for the user it points at."""
    await backend.identities.link(ISS, "s", "u1")
    assert not await backend.identities.unlink(ISS, "s", "u2")
    assert await backend.identities.find(ISS, "s") == "u1"
    assert await backend.identities.unlink(ISS, "s", "u1")
    assert await backend.identities.find(ISS, "s") is None
    assert await backend.identities.of_user("u1") == []
    assert not await backend.identities.unlink(ISS, "s", "u1")


async def test_forget_user_removes_every_link(backend: Backend) -> None:
    """forget_user drops all of a user's identities and no one else's."""
    await backend.identities.link(ISS, "a", "u1")
    await backend.identities.link("https://other.example", "a", "u1")
    await backend.identities.link(ISS, "b", "u2")
    await backend.identities.forget_user("u1")
    assert await backend.identities.of_user("u1") == []
    assert await backend.identities.find(ISS, "a") is None
    assert await backend.identities.find(ISS, "b") == "u2"


async def test_once_records_are_taken_once(backend: Backend) -> None:
    """A one-time record comes back once, then never; concurrent takes have one winner."""
    await backend.once.put("oidc", "st", b"value", 60)
    got = await asyncio.gather(*(backend.once.take("oidc", "st") for _ in range(10)))
    assert sorted(got, key=lambda v: v is None) == [b"value"] + [None] * 9
    assert await backend.once.take("oidc", "other") is None


async def test_once_records_expire(backend: Backend) -> None:
    """A one-time record is gone after its TTL."""
    await backend.once.put("oidc", "st", b"value", 0.05)
    await asyncio.sleep(0.15)
    assert await backend.once.take("oidc", "st") is None
