"""gateway.standing: a long-poll's last look at its user and session, on real Valkey, one storage
read shared only by the polls that asked before it was sent."""

from __future__ import annotations

import asyncio

import pytest

from gateway.standing import Standing
from relaycore.errors import Forbidden, Unauthenticated
from relaycore.models import User
from tests.gateway.conftest import Relay
from tests.gateway.test_revocation import _signed_in


class CountingUsers:
    """The real user store, counting ``get`` (a seam we own: the Valkey reads are real)."""

    def __init__(self, relay: Relay) -> None:
        self._users = relay.backend.users
        self.reads = 0

    async def get(self, user_id: str) -> User | None:
        self.reads += 1
        return await self._users.get(user_id)


async def test_checks_asked_together_share_one_read(relay: Relay) -> None:
    """Ten checks asked in one step of the loop read the user once; a later check reads again."""
    bob, _ = await relay.user("bob", ["read"])
    sid, _ = await _signed_in(relay, bob)
    users = CountingUsers(relay)
    standing = Standing(users, relay.backend.sessions)  # type: ignore[arg-type]
    await asyncio.gather(*(standing.check(bob.user_id, sid) for _ in range(10)))
    assert users.reads == 1
    await standing.check(bob.user_id, sid)
    assert users.reads == 2


async def test_a_check_asked_after_the_read_was_sent_does_not_join_it(relay: Relay) -> None:
    """A read already on its way may predate what the later poll collected: the later one reads
    again, and sees the session that ended in between."""
    bob, _ = await relay.user("bob", ["read"])
    sid, _ = await _signed_in(relay, bob)
    users = CountingUsers(relay)
    standing = Standing(users, relay.backend.sessions)  # type: ignore[arg-type]
    first = asyncio.create_task(standing.check(bob.user_id, sid))
    await asyncio.sleep(0)
    await asyncio.sleep(0)  # the first read has started
    await relay.backend.sessions.delete(sid)
    with pytest.raises(Unauthenticated, match="Token has been revoked"):
        await standing.check(bob.user_id, sid)
    await asyncio.gather(first, return_exceptions=True)  # it may or may not see the deletion
    assert users.reads == 2


async def test_answers_name_what_ended(relay: Relay) -> None:
    """A missing user is 401 "User not found", one without read 403, a token without a session
    only needs the user."""
    carol, _ = await relay.user("carol", ["write"])
    standing = Standing(relay.backend.users, relay.backend.sessions)
    with pytest.raises(Unauthenticated, match="User not found"):
        await standing.check("no-such-user", "")
    with pytest.raises(Forbidden, match="Permission 'read' required"):
        await standing.check(carol.user_id, "")
    dave, _ = await relay.user("dave", ["read"])
    await standing.check(dave.user_id, "")
