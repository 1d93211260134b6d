"""Browser sign-in sessions for the relay's own HTML pages (the device verification page, and
the console's sign-in through an identity provider).

A session is an opaque random value that the browser keeps in an HttpOnly, SameSite=Lax cookie
(``routes_web.set_session_cookie``).  Valkey keeps only its SHA-256, naming the user, with a TTL:
a copy of the store cannot be replayed as a cookie, and a session ends by deleting one key.  It
is deliberately not a JWT: it cannot be used as a bearer token anywhere, and it stops at once:
when it is ended, and when its user is deactivated, deleted or changes password (the session
records a fingerprint of the password hash it began with).

Every form a session may submit carries ``csrf_token(value)``, an HMAC keyed by the session value:
only a page that could read the (HttpOnly) cookie's value could compute it, so another site
cannot, and no server secret is needed to check it on any replica.  Transport-neutral.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable

from relaycore.models import User
from relaycore.store.base import Backend

# (display name, login URL without ``next``) of each identity provider people may sign in with.
ProviderLinks = Callable[[], Awaitable[list[tuple[str, str]]]]


async def no_providers() -> list[tuple[str, str]]:
    return []


_VALUE_BYTES = 32
_VALUE_MAX = 64  # token_urlsafe(32) is 43 characters; anything much longer is not ours
_CSRF_LABEL = b"pulsar-relay web session csrf v1"


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _owner(user: User) -> str:
    """What a session records: the user id, and a fingerprint of the password hash it had."""
    return f"{user.user_id} {hashlib.sha256(user.hashed_password.encode()).hexdigest()[:16]}"


def _plausible(value: str | None) -> bool:
    return bool(value) and len(value or "") <= _VALUE_MAX and (value or "").isascii()


class WebSessions:
    COOKIE = "pulsar_relay_session"

    def __init__(self, backend: Backend, lifetime: float) -> None:
        self._backend = backend
        self.lifetime = lifetime
        # The identity providers offered beside the local sign-in; the OIDC part of the auth
        # service replaces this when providers are configured.
        self.providers: ProviderLinks = no_providers

    async def start(self, user: User) -> str:
        """A new session for ``user``: the value to set as the cookie."""
        value = secrets.token_urlsafe(_VALUE_BYTES)
        await self._backend.web_sessions.create(_digest(value), _owner(user), self.lifetime)
        return value

    async def user(self, value: str | None) -> User | None:
        """The signed-in user: the current record, only while it is active and its password is the
        one it had at sign-in (a password change signs every browser out)."""
        if value is None or not _plausible(value):
            return None
        owner = await self._backend.web_sessions.owner(_digest(value))
        if owner is None:
            return None
        user = await self._backend.users.get(owner.partition(" ")[0])
        if user is None or not user.is_active or _owner(user) != owner:
            return None
        return user

    async def end(self, value: str) -> None:
        if _plausible(value):
            await self._backend.web_sessions.delete(_digest(value))

    def csrf_token(self, value: str) -> str:
        return hmac.new(value.encode(), _CSRF_LABEL, hashlib.sha256).hexdigest()

    def csrf_ok(self, value: str, token: str) -> bool:
        if not _plausible(value) or not token.isascii():
            return False
        return hmac.compare_digest(self.csrf_token(value), token)
