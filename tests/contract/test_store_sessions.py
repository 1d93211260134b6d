"""Refresh-token session storage contract, run against the memory and the Valkey backend alike."""

from __future__ import annotations

import asyncio
import uuid

from relaycore.models import now_ms
from relaycore.store.base import Backend, SessionRecord

DAY = 86400.0


def record(
    user_id: str = "u-alice", *, lifetime_ms: int = 3_600_000, hint: str | None = "ci"
) -> SessionRecord:
    now = now_ms()
    return SessionRecord(
        session_id=uuid.uuid4().hex,
        user_id=user_id,
        client_hint=hint,
        issued_at=now,
        expires_at=now + lifetime_ms,
    )


async def rotate(backend: Backend, sid: str, old: str, new: str, *, grace: float = 0.0, keep: int = 100):
    return await backend.sessions.rotate(sid, old, new, now_ms=now_ms(), idle=DAY, grace=grace, keep=keep)


async def test_created_session_is_alive_and_listed(backend: Backend) -> None:
    """A created session is alive, readable, and listed for its user only."""
    r = record()
    await backend.sessions.create(r, "h0", idle=DAY)
    assert await backend.sessions.remaining(r.session_id) is not None
    got = await backend.sessions.get(r.session_id)
    assert (
        got is not None and got.user_id == "u-alice" and got.client_hint == "ci" and got.last_used_at is None
    )
    assert [s.session_id for s in await backend.sessions.for_user("u-alice")] == [r.session_id]
    assert await backend.sessions.for_user("u-bob") == []


async def test_rotation_replaces_the_secret(backend: Backend) -> None:
    """Rotating with the current hash succeeds once; the new hash is current afterwards."""
    r = record()
    await backend.sessions.create(r, "h0", idle=DAY)
    result = await rotate(backend, r.session_id, "h0", "h1")
    assert result.outcome == "ok" and result.user_id == "u-alice"
    assert await backend.sessions.matches(r.session_id, "h1") == "current"
    assert await backend.sessions.matches(r.session_id, "h0") == "old"
    assert await backend.sessions.matches(r.session_id, "nope") is None
    got = await backend.sessions.get(r.session_id)
    assert got is not None and got.last_used_at is not None
    assert (await rotate(backend, r.session_id, "h1", "h2")).outcome == "ok"


async def test_replaying_a_replaced_secret_ends_the_session(backend: Backend) -> None:
    """Presenting a replaced hash (past the grace) ends the whole session: theft detection."""
    r = record()
    await backend.sessions.create(r, "h0", idle=DAY)
    await rotate(backend, r.session_id, "h0", "h1")
    assert (await rotate(backend, r.session_id, "h0", "hx")).outcome == "replayed"
    assert await backend.sessions.remaining(r.session_id) is None
    assert (await rotate(backend, r.session_id, "h1", "h2")).outcome == "unknown"


async def test_repeat_within_grace_is_raced_and_changes_nothing(backend: Backend) -> None:
    """The just-replaced hash within the grace period is 'raced': the session and its new secret
    stay; an older replaced hash is still 'replayed'."""
    r = record()
    await backend.sessions.create(r, "h0", idle=DAY)
    await rotate(backend, r.session_id, "h0", "h1", grace=60)
    await rotate(backend, r.session_id, "h1", "h2", grace=60)
    assert (await rotate(backend, r.session_id, "h1", "hx", grace=60)).outcome == "raced"
    assert await backend.sessions.matches(r.session_id, "h2") == "current"
    assert (await rotate(backend, r.session_id, "h0", "hx", grace=60)).outcome == "replayed"
    assert await backend.sessions.remaining(r.session_id) is None


async def test_unknown_secret_or_session_changes_nothing(backend: Backend) -> None:
    """A hash the session never had, or an unknown session id, is 'unknown' and ends nothing."""
    r = record()
    await backend.sessions.create(r, "h0", idle=DAY)
    assert (await rotate(backend, r.session_id, "forged", "hx")).outcome == "unknown"
    assert (await rotate(backend, uuid.uuid4().hex, "h0", "hx")).outcome == "unknown"
    assert await backend.sessions.matches(r.session_id, "h0") == "current"


async def test_concurrent_rotations_have_exactly_one_winner(backend: Backend) -> None:
    """Twenty rotations of one hash at once: exactly one 'ok'."""
    r = record()
    await backend.sessions.create(r, "h0", idle=DAY)
    results = await asyncio.gather(
        *(rotate(backend, r.session_id, "h0", f"n{i}", grace=60) for i in range(20))
    )
    outcomes = [x.outcome for x in results]
    assert outcomes.count("ok") == 1 and set(outcomes) <= {"ok", "raced"}, outcomes
    winner = outcomes.index("ok")
    assert await backend.sessions.matches(r.session_id, f"n{winner}") == "current"


async def test_absolute_lifetime_ends_the_session(backend: Backend) -> None:
    """Past its absolute lifetime a session refuses rotation as 'expired' and is gone."""
    r = record(lifetime_ms=50)
    await backend.sessions.create(r, "h0", idle=DAY)
    await asyncio.sleep(0.1)
    assert (await rotate(backend, r.session_id, "h0", "h1")).outcome in ("expired", "unknown")
    assert await backend.sessions.remaining(r.session_id) is None


async def test_idle_lifetime_ends_the_session(backend: Backend) -> None:
    """A session not used within its idle lifetime disappears."""
    r = record()
    await backend.sessions.create(r, "h0", idle=0.05)
    await asyncio.sleep(0.15)
    assert await backend.sessions.remaining(r.session_id) is None
    assert await backend.sessions.for_user("u-alice") == []


async def test_delete_ends_one_session_only(backend: Backend) -> None:
    """Deleting a session leaves the user's others alive; a second delete is False."""
    a, b = record(), record()
    await backend.sessions.create(a, "ha", idle=DAY)
    await backend.sessions.create(b, "hb", idle=DAY)
    assert await backend.sessions.delete(a.session_id)
    assert not await backend.sessions.delete(a.session_id)
    assert (
        await backend.sessions.remaining(a.session_id) is None
        and await backend.sessions.remaining(b.session_id) is not None
    )
    assert [s.session_id for s in await backend.sessions.for_user("u-alice")] == [b.session_id]


async def test_count_covers_the_users_sessions(backend: Backend) -> None:
    """count() is at least the user's live sessions and counts no other user's."""
    for _ in range(3):
        await backend.sessions.create(record("u-carol"), "h", idle=DAY)
    await backend.sessions.create(record("u-dave"), "h", idle=DAY)
    assert await backend.sessions.count("u-carol") >= 3
    assert await backend.sessions.count("u-dave") >= 1
    assert len(await backend.sessions.for_user("u-carol")) == 3


async def test_remaining_is_the_time_a_session_has_left(backend: Backend) -> None:
    """``remaining`` is the idle lifetime (or the absolute one, if shorter) less the time passed,
    then None once the session has ended."""
    idle = record()
    await backend.sessions.create(idle, "h0", idle=60)
    left = await backend.sessions.remaining(idle.session_id)
    assert left is not None and 59 < left <= 60
    short = record(lifetime_ms=30_000)
    await backend.sessions.create(short, "h0", idle=DAY)
    left = await backend.sessions.remaining(short.session_id)
    assert left is not None and 29 < left <= 30
    await backend.sessions.delete(idle.session_id)
    assert await backend.sessions.remaining(idle.session_id) is None
    brief = record()
    await backend.sessions.create(brief, "h0", idle=0.2)
    await asyncio.sleep(0.3)
    assert await backend.sessions.remaining(brief.session_id) is None
