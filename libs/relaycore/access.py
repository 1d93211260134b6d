"""Who is asking, and may they?  Resolves a bearer token to the *current* user record and answers
topic access questions, from short process-local caches that the invalidation channel clears.

While the invalidation channel is down, nothing is served from cache, so a deactivated user or a
revoked grant takes effect everywhere as soon as the change is stored (CONTRACT decision 6).
Transport-neutral: raises ``relaycore.errors``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from relaycore.errors import Forbidden, Unauthenticated
from relaycore.models import Permission, Topic, User
from relaycore.store.base import Backend
from relaycore.tokens import Claims, Verifier

log = logging.getLogger(__name__)

_TOKEN_CACHE_SIZE = 10_000
_RECORD_CACHE_SIZE = 50_000

Listener = Callable[[str], None]


V = TypeVar("V")


class _TTLCache(Generic[V]):
    def __init__(self, size: int) -> None:
        self._data: OrderedDict[str, tuple[float, V]] = OrderedDict()
        self._size = size

    def get(self, key: str) -> tuple[bool, V | None]:
        hit = self._data.get(key)
        if hit is None or hit[0] < time.monotonic():
            return False, None
        return True, hit[1]

    def put(self, key: str, value: V, ttl: float) -> None:
        self._data[key] = (time.monotonic() + ttl, value)
        self._data.move_to_end(key)
        if len(self._data) > self._size:
            self._data.popitem(last=False)

    def drop(self, key: str) -> None:
        self._data.pop(key, None)

    def clear(self) -> None:
        self._data.clear()


@dataclass(frozen=True, slots=True)
class ReadAccess:
    """One answer to "may this user read these topics": ``forbidden`` lists the names the user may
    not read (in the order asked), ``missing`` the names no topic has yet (anyone may follow
    those, as in the reference), ``readable`` every name that is not forbidden (the missing
    included)."""

    readable: list[str]
    missing: set[str]
    forbidden: list[str]


class Authorizer:
    def __init__(self, backend: Backend, verifier: Verifier, *, cache_ttl: float) -> None:
        self._backend = backend
        self._verifier = verifier
        self._ttl = cache_ttl
        self._tokens: _TTLCache[Claims] = _TTLCache(_TOKEN_CACHE_SIZE)
        self._users: _TTLCache[User | None] = _TTLCache(_RECORD_CACHE_SIZE)
        self._topics: _TTLCache[Topic | None] = _TTLCache(_RECORD_CACHE_SIZE)
        self._sessions: _TTLCache[bool] = _TTLCache(_RECORD_CACHE_SIZE)
        self._listeners: list[Listener] = []

    # --- invalidation
    def on_change(self, listener: Listener) -> None:
        """Call ``listener("user:<id>" | "topic:<name>" | "session:<id>" | "*")`` after each
        invalidation ("session:<id>": that sign-in session ended)."""
        self._listeners.append(listener)

    async def run(self) -> None:
        """Apply invalidation events until cancelled; run it as a background task."""
        async for event in self._backend.bus.listen():
            if event is None:
                self._users.clear()
                self._topics.clear()
                self._sessions.clear()
                event = "*"
            elif event.startswith("user:"):
                self._users.drop(event[5:])
            elif event.startswith("topic:"):
                self._topics.drop(event[6:])
            elif event.startswith("session:"):
                self._sessions.drop(event[8:])
            for listener in self._listeners:
                try:
                    listener(event)
                except Exception:
                    log.exception("invalidation listener failed on %s", event)

    async def notify(self, event: str) -> None:
        """Tell every process that a record changed (the auth service calls this)."""
        if event.startswith("user:"):
            self._users.drop(event[5:])
        elif event.startswith("session:"):
            self._sessions.drop(event[8:])
        await self._backend.bus.publish(event)

    @property
    def _cache_ok(self) -> bool:
        return self._backend.bus.connected

    # --- records
    async def user(self, user_id: str) -> User | None:
        if self._cache_ok:
            hit, cached = self._users.get(user_id)
            if hit:
                return cached
        user = await self._backend.users.get(user_id)
        self._users.put(user_id, user, self._ttl)
        return user

    async def topic(self, name: str) -> Topic | None:
        if self._cache_ok:
            hit, cached = self._topics.get(name)
            if hit:
                return cached
        topic = await self._backend.topics.get(name)
        self._topics.put(name, topic, self._ttl)
        return topic

    async def session_alive(self, session_id: str) -> bool:
        """Whether a sign-in session (an access token's ``sid``) has not ended.  An ending sends
        an event, except the end by expiry: so a live session is cached no longer than it has
        left, counted from before the read (Valkey's clock cannot be behind that)."""
        if self._cache_ok:
            hit, cached = self._sessions.get(session_id)
            if hit:
                return bool(cached)
        asked = time.monotonic()
        left = await self._backend.sessions.remaining(session_id)
        if left is None:
            self._sessions.put(session_id, False, self._ttl)  # an ended session stays ended
            return False
        ttl = min(self._ttl, left - (time.monotonic() - asked))
        if ttl > 0:
            self._sessions.put(session_id, True, ttl)
        return True

    async def check_session(self, sign_in: str) -> None:
        """``Unauthenticated`` if the token's sign-in session (its ``sid``) has ended (logout,
        revocation, a password change...).  "": tokens without one predate sessions and only
        expire."""
        if sign_in and not await self.session_alive(sign_in):
            raise Unauthenticated("Token has been revoked")

    # --- decisions
    def claims(self, token: str) -> Claims:
        hit, claims = self._tokens.get(token)
        if hit and claims is not None and claims.exp > time.time():
            return claims
        claims = self._verifier.verify(token)
        self._tokens.put(token, claims, max(0.0, claims.exp - time.time()))
        return claims

    async def authenticate(self, token: str | None) -> User:
        """The active user behind a bearer token (reference status codes and texts)."""
        if not token:
            raise Unauthenticated("Not authenticated")
        claims = self.claims(token)
        return await self.standing(claims.sub, claims.sid)

    async def standing(self, user_id: str, sign_in: str) -> User:
        """The user as they stand now, for a token already verified: ``Unauthenticated`` or
        ``Forbidden`` (the reference's texts) if they are gone or inactive, or if the token's
        sign-in session ("": none, tokens that predate sessions) has ended.  From the caches while
        the invalidation channel is up (a long-poll asks again before it hands anything out)."""
        user = await self.user(user_id)
        if user is None:
            raise Unauthenticated("User not found")
        if not user.is_active:
            raise Forbidden("User is inactive")
        await self.check_session(sign_in)  # after the user: the reference's answers come first
        return user

    @staticmethod
    def require(user: User, permission: Permission) -> None:
        if not user.has(permission):
            raise Forbidden(f"Permission '{permission}' required")

    async def read_access(
        self, user: User, names: Iterable[str], *, messages: bool = False, fresh: Collection[str] = ()
    ) -> ReadAccess:
        """The one read-access decision: WebSocket subscribe and its re-checks, long-poll, history
        and stats all ask here.  Topic records come from the cache that invalidation events clear
        (nothing is cached while the invalidation channel is down); the names in ``fresh`` are
        read from storage whatever the cache holds, and the cache takes the fresh record (for a
        topic that may have been created since it was cached as missing: its creation's event can
        arrive after its first message).  ``messages``: the history rule (a public topic's
        messages need ``read``, CONTRACT decision 3) instead of the subscription rule."""
        wanted = list(dict.fromkeys(names))
        records: dict[str, Topic | None] = {}
        lookups: list[str] = []
        cache_ok = self._cache_ok
        for name in wanted:
            if cache_ok and name not in fresh:
                hit, cached = self._topics.get(name)
                if hit:
                    records[name] = cached
                    continue
            lookups.append(name)
        if lookups:
            found = await asyncio.gather(*(self._backend.topics.get(n) for n in lookups))
            for name, record in zip(lookups, found, strict=True):
                self._topics.put(name, record, self._ttl)
                records[name] = record
        missing = {n for n in wanted if records[n] is None}
        forbidden = [n for n in wanted if not _may_read(records[n], user, messages)]
        if not forbidden:
            return ReadAccess(readable=wanted, missing=missing, forbidden=[])
        denied = set(forbidden)
        return ReadAccess(
            readable=[n for n in wanted if n not in denied], missing=missing, forbidden=forbidden
        )


def _may_read(topic: Topic | None, user: User, messages: bool) -> bool:
    if topic is None:
        return True
    return topic.can_read_messages(user) if messages else topic.can_read(user)
