"""Browser sign-in sessions (services/auth/websession.py) on both storage backends."""

from __future__ import annotations

import asyncio

from auth.websession import WebSessions
from relaycore.models import User
from relaycore.store.base import Backend


async def _user(backend: Backend, name: str = "alice") -> User:
    user = User(user_id=f"id-{name}", username=name, permissions=["read"])
    await backend.users.create(user)
    return user


async def test_started_session_names_its_user(backend: Backend) -> None:
    """start() returns an opaque value that user() resolves to the current user record."""
    web = WebSessions(backend, 60)
    user = await _user(backend)
    value = await web.start(user)
    assert len(value) >= 40 and "." not in value  # random, not a JWT
    found = await web.user(value)
    assert found is not None and found.user_id == user.user_id


async def test_unknown_tampered_or_missing_values_are_nobody(backend: Backend) -> None:
    """A missing, unknown, altered or absurdly long cookie value signs nobody in."""
    web = WebSessions(backend, 60)
    value = await web.start(await _user(backend))
    for bad in (None, "", "nope", value[:-1], value + "x", "x" * 10_000, "é" * 10):
        assert await web.user(bad) is None


async def test_end_signs_out(backend: Backend) -> None:
    """end() deletes the session: the same value no longer names anyone."""
    web = WebSessions(backend, 60)
    value = await web.start(await _user(backend))
    await web.end(value)
    assert await web.user(value) is None


async def test_deactivated_or_deleted_user_is_signed_out(backend: Backend) -> None:
    """user() reads the current record: a deactivated or deleted user's session names nobody."""
    web = WebSessions(backend, 60)
    alice = await _user(backend, "alice")
    bob = await _user(backend, "bob")
    a, b = await web.start(alice), await web.start(bob)
    alice.is_active = False
    assert await backend.users.save(alice)
    await backend.users.delete(bob.user_id)
    assert await web.user(a) is None
    assert await web.user(b) is None


async def test_password_change_signs_browsers_out(backend: Backend) -> None:
    """A session started before a password change names nobody after it."""
    web = WebSessions(backend, 60)
    user = await _user(backend)
    value = await web.start(user)
    user.hashed_password = "$argon2id$another-hash"
    assert await backend.users.save(user)
    assert await web.user(value) is None
    assert await web.user(await web.start(user)) is not None  # signing in again works


async def test_session_expires(backend: Backend) -> None:
    """A session lives web_session_lifetime and no longer."""
    web = WebSessions(backend, 0.3)
    value = await web.start(await _user(backend))
    assert await web.user(value) is not None
    await asyncio.sleep(0.5)
    assert await web.user(value) is None


async def test_store_keeps_only_a_digest(backend: Backend) -> None:
    """The store is keyed by the value's SHA-256: the raw cookie value is not a key."""
    web = WebSessions(backend, 60)
    value = await web.start(await _user(backend))
    assert await backend.web_sessions.owner(value) is None


async def test_csrf_token_is_bound_to_the_session(backend: Backend) -> None:
    """csrf_ok accepts the token of this session only."""
    web = WebSessions(backend, 60)
    user = await _user(backend)
    a, b = await web.start(user), await web.start(user)
    token = web.csrf_token(a)
    assert web.csrf_ok(a, token)
    assert not web.csrf_ok(b, token)
    assert not web.csrf_ok(a, token[:-1])
    assert not web.csrf_ok(a, "")
    assert not web.csrf_ok(a, "é" * 64)
    assert token != a and a not in token
