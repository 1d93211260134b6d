"""Password login: rate limit, check the password (at the same cost whether or not the user
exists), upgrade an outdated hash, start a sign-in session (an access and a refresh token).
Transport-neutral: raises ``relaycore.errors``."""

from __future__ import annotations

import logging

from auth.passwords import Passwords
from auth.ratelimit import LoginLimiter
from auth.schemas import TokenResponse
from auth.sessions import Sessions
from relaycore import metrics, names
from relaycore.errors import Forbidden, RateLimited, Unauthenticated
from relaycore.models import User
from relaycore.store.base import Backend

log = logging.getLogger(__name__)


class Login:
    def __init__(
        self, backend: Backend, passwords: Passwords, sessions: Sessions, limiter: LoginLimiter
    ) -> None:
        self._backend = backend
        self._passwords = passwords
        self._sessions = sessions
        self.limiter = limiter

    async def __call__(
        self, username: str, password: str, address: str, *, client_hint: str | None = None
    ) -> TokenResponse:
        user = await self.verify(username, password, address)
        return await self._sessions.issue(user, client_hint=client_hint)

    async def verify(self, username: str, password: str, address: str) -> User:
        """The active user these credentials name, under the same rate limits as ``/auth/login``
        (also used by the browser sign-in of the relay's pages, which mints no token)."""
        username = names.normal_username(username)  # as stored; and one throttle for its spellings
        try:
            async with self.limiter.login(address, username):
                user = await self._backend.users.get_by_name(username)
                if not await self._passwords.verify(user.hashed_password if user else None, password):
                    metrics.login_attempts.labels("failed").inc()
                    raise Unauthenticated("Incorrect username or password")
        except RateLimited:
            metrics.login_attempts.labels("limited").inc()
            raise
        assert user is not None
        await self.limiter.succeeded(address, username)
        if not user.is_active:
            metrics.login_attempts.labels("inactive").inc()
            raise Forbidden("User account is inactive")
        if self._passwords.needs_rehash(user.hashed_password):
            await self._upgrade_hash(user.user_id, user.hashed_password, password)
        metrics.login_attempts.labels("ok").inc()
        return user

    async def _upgrade_hash(self, user_id: str, old_hash: str, password: str) -> None:
        hashed = await self._passwords.hash(password)
        # Re-read so a change made while hashing (say, a deactivation) is not overwritten.
        fresh = await self._backend.users.get(user_id)
        if fresh is None or fresh.hashed_password != old_hash:
            return
        fresh.hashed_password = hashed
        if await self._backend.users.save(fresh):
            log.info("upgraded the password hash of user %s", user_id)
