"""Authorizer.standing: a long-poll's last look at its user and session (and every request's, after
its token is verified), through the authorizer's caches, on real Valkey: cached while events keep
them honest, never past a session's own end."""

from __future__ import annotations

import asyncio
import uuid

import msgspec
import pytest

from relaycore.errors import Forbidden, Unauthenticated
from relaycore.models import User, now_ms
from relaycore.store.base import SessionRecord
from tests.gateway.conftest import Relay


class CountingSessions:
    """The real session store, counting ``remaining`` (a seam we own: the Valkey reads are real)."""

    def __init__(self, relay: Relay) -> None:
        self._sessions = relay.backend.sessions
        self.reads = 0

    async def remaining(self, session_id: str) -> float | None:
        self.reads += 1
        return await self._sessions.remaining(session_id)


async def _session(relay: Relay, user: User, lifetime: float) -> str:
    sid = uuid.uuid4().hex
    now = now_ms()
    record = SessionRecord(
        session_id=sid, user_id=user.user_id, client_hint=None, issued_at=now, expires_at=now + 3_600_000
    )
    await relay.backend.sessions.create(record, "hash", idle=lifetime)
    return sid


async def test_a_live_session_is_read_once_while_the_channel_is_up(
    relay: Relay, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Answers after the first come from the cache: no storage read per woken poll."""
    bob, _ = await relay.user("bob", ["read"])
    sid = await _session(relay, bob, 3600)
    counting = CountingSessions(relay)
    monkeypatch.setattr(relay.backend, "sessions", counting)
    for _ in range(5):
        await relay.ctx.authorizer.standing(bob.user_id, sid)
    assert counting.reads == 1


async def test_a_session_that_expires_is_refused_once_it_has_expired(relay: Relay) -> None:
    """The cached "alive" of a session lasts no longer than the session: it ends by expiry,
    without an event, and the next check says so."""
    bob, _ = await relay.user("bob", ["read"])
    sid = await _session(relay, bob, 0.5)
    await relay.ctx.authorizer.standing(bob.user_id, sid)
    await asyncio.sleep(0.6)
    with pytest.raises(Unauthenticated, match="Token has been revoked"):
        await relay.ctx.authorizer.standing(bob.user_id, sid)


async def test_an_ended_session_is_refused_once_its_event_arrives(relay: Relay) -> None:
    """A session deleted and announced (logout, revocation) is refused although it was cached."""
    bob, _ = await relay.user("bob", ["read"])
    sid = await _session(relay, bob, 3600)
    authorizer = relay.ctx.authorizer
    await authorizer.standing(bob.user_id, sid)
    await relay.backend.sessions.delete(sid)
    await relay.backend.bus.publish(f"session:{sid}")
    deadline = asyncio.get_running_loop().time() + 5
    while True:
        try:
            await authorizer.standing(bob.user_id, sid)
        except Unauthenticated as exc:
            assert str(exc) == "Token has been revoked"
            break
        assert asyncio.get_running_loop().time() < deadline, "the ended session was still accepted"
        await asyncio.sleep(0.02)


async def test_answers_name_what_ended(relay: Relay) -> None:
    """A missing user is 401 "User not found", an inactive one 403 "User is inactive"; a token
    without a session only needs the user, whose record comes back."""
    authorizer = relay.ctx.authorizer
    with pytest.raises(Unauthenticated, match="User not found"):
        await authorizer.standing("no-such-user", "")
    carol, _ = await relay.user("carol", ["read"])
    await relay.backend.users.save(msgspec.structs.replace(carol, is_active=False))
    with pytest.raises(Forbidden, match="User is inactive"):
        await authorizer.standing(carol.user_id, "")
    dave, _ = await relay.user("dave", ["read"])
    assert (await authorizer.standing(dave.user_id, "")).user_id == dave.user_id
