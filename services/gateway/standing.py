"""Whether a user may still be handed what a long-poll collected: their record and their sign-in
session, read from storage (a session that ends by expiry sends no event), once for every poll
that asks in the same moment.

When one published message wakes many polls of one user (ten pollers on a topic, one account),
they all answer in the same turn of the event loop.  Each asks here after it has stopped
collecting; the first one's read is sent only when the loop next runs it, so every poll that
joins it asked before it was sent and gets an answer at least as fresh as its own read would
have been.  A poll that asks after a read was sent starts a new one.
"""

from __future__ import annotations

import asyncio

from relaycore.errors import Forbidden, Unauthenticated
from relaycore.models import User
from relaycore.store.base import SessionStore, UserStore


class _Read:
    __slots__ = ("sent", "task")

    def __init__(self) -> None:
        self.sent = False
        self.task: asyncio.Task[tuple[User | None, bool]] | None = None


class Standing:
    def __init__(self, users: UserStore, sessions: SessionStore) -> None:
        self._users = users
        self._sessions = sessions
        self._pending: dict[tuple[str, str], _Read] = {}

    async def check(self, user_id: str, sign_in: str) -> None:
        """``Unauthenticated`` or ``Forbidden`` (the reference's texts) if the user is gone,
        inactive or without ``read``, or the token's sign-in session ("": none) has ended."""
        key = (user_id, sign_in)
        read = self._pending.get(key)
        if read is None or read.sent:
            read = self._pending[key] = _Read()
            read.task = asyncio.get_running_loop().create_task(self._read(key, read))
        assert read.task is not None
        user, alive = await asyncio.shield(read.task)
        if user is None:
            raise Unauthenticated("User not found")
        if not user.is_active:
            raise Forbidden("User is inactive")
        if not user.has("read"):
            raise Forbidden("Permission 'read' required")
        if not alive:  # after the user, as everywhere
            raise Unauthenticated("Token has been revoked")

    async def _read(self, key: tuple[str, str], read: _Read) -> tuple[User | None, bool]:
        read.sent = True
        if self._pending.get(key) is read:
            del self._pending[key]
        user_id, sign_in = key
        if not sign_in:
            return await self._users.get(user_id), True
        user, alive = await asyncio.gather(self._users.get(user_id), self._sessions.alive(sign_in))
        return user, alive
