"""Ended sign-in sessions on the gateway (CONTRACT decision 6): a token whose session ended is
refused at the handshake and by long-poll, and a live socket using it is closed with 4002."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from relaycore.models import User, now_ms
from relaycore.store.base import SessionRecord
from tests.gateway.conftest import WAIT, Relay, bearer, messages
from tests.gateway.test_live_access import closed_with, still_open
from tests.support.identity import token_for


async def _signed_in(relay: Relay, user: User, *, idle: float = 3600) -> tuple[str, str]:
    """(session id, access token of that session), as the auth service would issue them; the
    session ends by itself after ``idle`` seconds."""
    sid = uuid.uuid4().hex
    now = now_ms()
    record = SessionRecord(
        session_id=sid, user_id=user.user_id, client_hint=None, issued_at=now, expires_at=now + 3_600_000
    )
    await relay.backend.sessions.create(record, "hash", idle=idle)
    return sid, token_for(user, sid=sid)


async def _end(relay: Relay, sid: str) -> None:
    """End a session the way the auth service does: delete it, then announce it."""
    await relay.backend.sessions.delete(sid)
    await relay.backend.bus.publish(f"session:{sid}")


async def test_ended_session_closes_its_live_sockets_with_4002(any_relay: Relay) -> None:
    """Ending a session closes the sockets using its tokens with 4002 "Token revoked"; a socket
    of another session of the same user stays open."""
    relay = any_relay
    bob, _ = await relay.user("bob", ["read"])
    sid, token = await _signed_in(relay, bob)
    _, other_token = await _signed_in(relay, bob)
    ws = await relay.subscribe(token, ["jobs"])
    other = await relay.subscribe(other_token, ["jobs"])
    await _end(relay, sid)
    assert await closed_with(ws) == (4002, "Token revoked")
    await still_open(other)


async def test_session_ended_without_its_event_is_caught_at_the_next_recheck(relay: Relay) -> None:
    """A session deleted without its event (say, missed while the channel was down) closes its
    socket with 4002 at the next full re-check of its user (a user event, or a reconnect)."""
    bob, _ = await relay.user("bob", ["read"])
    sid, token = await _signed_in(relay, bob)
    ws = await relay.subscribe(token, ["jobs"])
    await relay.backend.sessions.delete(sid)
    await relay.backend.bus.publish(f"user:{bob.user_id}")
    assert await closed_with(ws) == (4002, "Token revoked")


async def test_ended_session_is_refused_at_the_handshake(relay: Relay) -> None:
    """A token of an ended session gets the handshake refused (HTTP 403), by query and subprotocol."""
    bob, _ = await relay.user("bob", ["read"])
    sid, token = await _signed_in(relay, bob)
    await _end(relay, sid)
    with pytest.raises(InvalidStatus) as exc:
        async with connect(f"{relay.ws_url}?token={token}", open_timeout=WAIT):
            pass
    assert exc.value.response.status_code == 403
    with pytest.raises(InvalidStatus) as exc:
        async with connect(relay.ws_url, subprotocols=["bearer", f"bearer.{token}"], open_timeout=WAIT):  # type: ignore[list-item]
            pass
    assert exc.value.response.status_code == 403


async def test_ended_session_is_refused_by_long_poll(any_relay: Relay) -> None:
    """Long-poll with a token of an ended session is 401 "Token has been revoked"."""
    relay = any_relay
    bob, _ = await relay.user("bob", ["read"])
    sid, token = await _signed_in(relay, bob)
    assert (await relay.poll(token, {"topics": ["jobs"], "timeout": 1})).status_code == 200
    await _end(relay, sid)
    await asyncio.sleep(0.2)
    r = await relay.poll(token, {"topics": ["jobs"], "timeout": 1})
    assert (r.status_code, r.json()) == (401, {"detail": "Token has been revoked"})


async def test_session_ended_during_a_poll_gets_nothing(relay: Relay) -> None:
    """A poll that is waiting when its session ends hands out nothing that arrives afterwards: 401."""
    bob, bob_token = await relay.user("bob")
    sid, token = await _signed_in(relay, bob)
    waiting = asyncio.create_task(relay.poll(token, {"topics": ["jobs"], "timeout": 5}))
    await asyncio.sleep(0.3)
    await _end(relay, sid)
    await asyncio.sleep(0.2)  # the event is on its way (CONTRACT decision 6: within one second)
    await relay.publish(bob_token, "jobs", [{"n": 1}])
    r = await waiting
    assert (r.status_code, r.json()) == (401, {"detail": "Token has been revoked"})


async def test_session_expired_during_a_poll_gets_nothing(relay: Relay) -> None:
    """A session that ends by expiry sends no event: a poll waiting when it expires hands out
    nothing that arrives afterwards (401), although the poll's start found it alive."""
    bob, bob_token = await relay.user("bob")
    sid, token = await _signed_in(relay, bob, idle=0.8)
    waiting = asyncio.create_task(relay.poll(token, {"topics": ["jobs"], "timeout": 5}))
    await asyncio.sleep(1.0)
    assert await relay.backend.sessions.remaining(sid) is None
    await relay.publish(bob_token, "jobs", [{"n": 1}])
    r = await waiting
    assert (r.status_code, r.json()) == (401, {"detail": "Token has been revoked"})


async def test_session_expired_between_polls_is_refused(relay: Relay) -> None:
    """A session found alive by one poll and expired before the next is refused by the next
    (its cached "alive" does not outlast it)."""
    bob, _ = await relay.user("bob")
    _, token = await _signed_in(relay, bob, idle=0.5)
    assert (await relay.poll(token, {"topics": ["jobs"], "timeout": 1})).status_code == 200
    r = await relay.poll(token, {"topics": ["jobs"], "timeout": 1})
    assert (r.status_code, r.json()) == (401, {"detail": "Token has been revoked"})


async def test_tokens_without_a_session_still_work(relay: Relay) -> None:
    """Tokens minted before sessions existed (no sid) are accepted until they expire."""
    _, token = await relay.user("bob")
    ws = await relay.subscribe(token, ["jobs"])
    [mid] = await relay.publish(token, "jobs", [{"n": 1}])
    assert (await messages(ws, 1))[0]["message_id"] == mid
    r = await relay.http.get(relay.gateway + "/api/v1/topics/jobs/messages", headers=bearer(token))
    assert r.status_code == 200
