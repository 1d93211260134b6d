"""Changes made through the auth API reach other processes' authorizers within one second
(CONTRACT decision 6): a second Context on the same Valkey stands in for ingest or a gateway."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from relaycore.config import Settings
from relaycore.context import Context
from relaycore.errors import Forbidden, Unauthenticated
from relaycore.models import User
from tests.auth.conftest import Auth, bearer

CONTRACT_DELAY = 1.0


@pytest.fixture
async def other(auth: Auth) -> AsyncIterator[Context]:
    """Another process's view: its own Context with its invalidation listener running."""
    ctx = Context(auth.settings)
    await ctx.start()
    deadline = time.monotonic() + 10
    while not ctx.backend.bus.connected:
        assert time.monotonic() < deadline, "invalidation listener never connected"
        await asyncio.sleep(0.01)
    yield ctx
    await ctx.stop()


async def _within_contract(check: Callable[[], Awaitable[bool]]) -> None:
    deadline = time.monotonic() + CONTRACT_DELAY
    while not await check():
        assert time.monotonic() < deadline, "the change did not reach the other process within 1 s"
        await asyncio.sleep(0.01)


async def _refused(ctx: Context, token: str, error: type[Exception]) -> bool:
    try:
        await ctx.authorizer.authenticate(token)
    except error:
        return True
    return False


async def test_deactivation_reaches_other_processes(auth: Auth, other: Context) -> None:
    """The other process has the user cached as active; after PATCH is_active=false it refuses the
    token (403) within one second.  Reactivation does not revive it (deactivation ended the user's
    sessions); a new login works."""
    user_id, token = await auth.user("alice")
    assert (await other.authorizer.authenticate(token)).user_id == user_id
    admin = bearer(auth.admin_token)
    await auth.client.patch(f"/auth/users/{user_id}", json={"is_active": False}, headers=admin)
    await _within_contract(lambda: _refused(other, token, Forbidden))
    await auth.client.patch(f"/auth/users/{user_id}", json={"is_active": True}, headers=admin)
    assert await _refused(other, token, Unauthenticated)
    fresh = await auth.token("alice", "password123")
    assert (await other.authorizer.authenticate(fresh)).user_id == user_id


async def test_deletion_reaches_other_processes(auth: Auth, other: Context) -> None:
    """After DELETE the other process answers "User not found" within one second."""
    user_id, token = await auth.user("alice")
    await other.authorizer.authenticate(token)
    await auth.client.delete(f"/auth/users/{user_id}", headers=bearer(auth.admin_token))
    await _within_contract(lambda: _refused(other, token, Unauthenticated))


async def test_permission_change_reaches_other_processes(auth: Auth, other: Context) -> None:
    """Dropping a permission is seen by the other process's require() within one second."""
    user_id, token = await auth.user("alice", ["read", "write"])
    assert (await other.authorizer.authenticate(token)).has("write")
    await auth.client.patch(
        f"/auth/users/{user_id}", json={"permissions": ["read"]}, headers=bearer(auth.admin_token)
    )

    async def lost_write() -> bool:
        return not (await other.authorizer.authenticate(token)).has("write")

    await _within_contract(lost_write)


async def _reads(ctx: Context, user: User, name: str) -> bool:
    return not (await ctx.authorizer.read_access(user, [name])).forbidden


async def test_grant_and_revoke_reach_other_processes(auth: Auth, other: Context) -> None:
    """A grant, then its revocation, change the other process's read decision within one second."""
    _, owner = await auth.user("owner")
    reader_id, reader_token = await auth.user("reader")
    await auth.client.post("/api/v1/topics", json={"topic_name": "jobs"}, headers=bearer(owner))
    reader = await other.authorizer.authenticate(reader_token)
    assert not await _reads(other, reader, "jobs")
    url = "/api/v1/topics/jobs/permissions"
    await auth.client.post(url, json={"user_id": reader_id}, headers=bearer(owner))

    async def readable() -> bool:
        return await _reads(other, reader, "jobs")

    await _within_contract(readable)
    await auth.client.delete(f"{url}/{reader_id}", headers=bearer(owner))

    async def unreadable() -> bool:
        return not await _reads(other, reader, "jobs")

    await _within_contract(unreadable)


async def test_logout_reaches_other_processes(auth: Auth, other: Context) -> None:
    """After POST /auth/logout the other process refuses that token within one second, while a
    token of another session of the same user keeps working."""
    user_id, token = await auth.user("alice")
    second = await auth.token("alice", "password123")
    assert (await other.authorizer.authenticate(token)).user_id == user_id
    assert (await other.authorizer.authenticate(second)).user_id == user_id
    assert (await auth.client.post("/auth/logout", headers=bearer(token))).status_code == 204
    await _within_contract(lambda: _refused(other, token, Unauthenticated))
    assert (await other.authorizer.authenticate(second)).user_id == user_id


async def test_password_change_reaches_other_processes(auth: Auth, other: Context) -> None:
    """A token issued before PATCH changed the password is refused by the other process within
    one second (it used to work until it expired)."""
    user_id, token = await auth.user("alice")
    await other.authorizer.authenticate(token)
    r = await auth.client.patch(
        f"/auth/users/{user_id}", json={"password": "another-password"}, headers=bearer(auth.admin_token)
    )
    assert r.status_code == 200
    await _within_contract(lambda: _refused(other, token, Unauthenticated))


def test_cache_is_long_enough_to_matter(auth: Auth) -> None:
    """The tests above prove invalidation, not expiry: records may be cached far longer than 1 s."""
    settings: Settings = auth.settings
    assert settings.access_cache_ttl > 10 * CONTRACT_DELAY
