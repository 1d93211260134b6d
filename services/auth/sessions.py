"""Sign-in sessions: a refresh-token rotation chain per sign-in, and the access tokens minted
from it (they carry its id as ``sid`` and stop working on every service when it ends).

The wire refresh token is ``<session id>.<secret>`` (32 hex digits, a dot, 43 URL-safe base64
characters); only a SHA-256 of the secret is stored.  Each refresh replaces the secret; presenting
a replaced one again ends the session (theft detection), except right after a rotation, when it
is the loser of two concurrent refreshes and just gets 401.  Transport-neutral: raises
``relaycore.errors``.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import uuid

from auth.schemas import SessionInfo, TokenResponse
from auth.signing import Signer
from relaycore import metrics
from relaycore.access import Authorizer
from relaycore.config import Settings
from relaycore.errors import BadRequest, NotFound, Unauthenticated
from relaycore.models import User, iso_z_from_ms, now_ms
from relaycore.store.base import Backend, SessionRecord

log = logging.getLogger(__name__)

# How many replaced secrets a session remembers for theft detection: with hourly refreshes, the
# last four days' worth.  An older one is still refused, it just does not end the session.
REPLACED_KEPT = 100
HINT_MAX = 200
INVALID = "Invalid refresh token"
_WIRE = re.compile(r"([0-9a-f]{32})\.([A-Za-z0-9_-]{43})")


def session_event(session_id: str) -> str:
    """The invalidation-channel event that says a session ended."""
    return f"session:{session_id}"


async def end_user_sessions(backend: Backend, user_id: str) -> int:
    """End every session of a user straight through the store and the invalidation channel (for
    code that runs without a ``Sessions``, such as ``ensure_user``)."""
    records = await backend.sessions.for_user(user_id)
    for record in records:
        await backend.sessions.delete(record.session_id)
        await backend.bus.publish(session_event(record.session_id))
    return len(records)


def split_token(wire: str) -> tuple[str, str] | None:
    """(session id, secret hash) of a well-formed refresh token, else None."""
    m = _WIRE.fullmatch(wire)
    if m is None:
        return None
    return m.group(1), _hash(m.group(2))


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _new_secret() -> tuple[str, str]:
    secret = secrets.token_urlsafe(32)
    return secret, _hash(secret)


class Sessions:
    def __init__(self, backend: Backend, signer: Signer, authorizer: Authorizer, settings: Settings) -> None:
        self._backend = backend
        self._store = backend.sessions
        self._signer = signer
        self._authorizer = authorizer
        self._idle = settings.refresh_token_idle_lifetime
        self._absolute = settings.refresh_token_absolute_lifetime
        self._grace = settings.refresh_token_reuse_grace
        self._cap = settings.max_sessions_per_user

    async def issue(self, user: User, *, client_hint: str | None = None) -> TokenResponse:
        """A new access token and the first refresh token of a new, independent session."""
        session_id = uuid.uuid4().hex
        secret, hashed = _new_secret()
        now = now_ms()
        record = SessionRecord(
            session_id=session_id,
            user_id=user.user_id,
            client_hint=client_hint[:HINT_MAX] if client_hint else None,
            issued_at=now,
            expires_at=now + int(self._absolute * 1000),
        )
        await self._store.create(record, hashed, idle=self._idle)
        if await self._store.count(user.user_id) > self._cap:
            await self._trim(user.user_id)
        return self._tokens(user, session_id, secret)

    async def _trim(self, user_id: str) -> None:
        """End the user's least recently used sessions beyond the cap."""
        records = await self._store.for_user(user_id)
        records.sort(key=lambda r: (r.last_used_at or r.issued_at, r.issued_at))
        for record in records[: max(0, len(records) - self._cap)]:
            await self.end(record.session_id)

    async def refresh(self, wire: str) -> TokenResponse:
        """Rotate: a new access token and a new refresh token; 401 for anything else."""
        parsed = split_token(wire)
        if parsed is None:
            metrics.refreshes.labels("malformed").inc()
            raise Unauthenticated(INVALID)
        session_id, presented = parsed
        secret, hashed = _new_secret()
        rotation = await self._store.rotate(
            session_id,
            presented,
            hashed,
            now_ms=now_ms(),
            idle=self._idle,
            grace=self._grace,
            keep=REPLACED_KEPT,
        )
        metrics.refreshes.labels(rotation.outcome).inc()
        if rotation.outcome in ("replayed", "expired"):
            if rotation.outcome == "replayed":
                log.warning("a replaced refresh token was presented again: session %s ended", session_id)
            await self._authorizer.notify(session_event(session_id))
        if rotation.outcome != "ok":
            raise Unauthenticated(INVALID)
        assert rotation.user_id is not None
        user = await self._backend.users.get(rotation.user_id)
        if user is None or not user.is_active:
            await self.end(session_id)
            raise Unauthenticated(INVALID)
        return self._tokens(user, session_id, secret)

    async def revoke_token(self, wire: str, *, chain: bool) -> None:
        """``POST /auth/token/revoke``: end the session of a current refresh token (or of a
        replaced one with ``chain``).  Whether anything matched is not told (no oracle); only a
        malformed token is refused."""
        parsed = split_token(wire)
        if parsed is None:
            raise BadRequest("Malformed refresh token")
        session_id, presented = parsed
        match = await self._store.matches(session_id, presented)
        if match == "current" or (match == "old" and chain):
            await self.end(session_id)

    async def list(self, user_id: str) -> list[SessionInfo]:
        return [_info(r) for r in await self._store.for_user(user_id)]

    async def end_of(self, user_id: str, session_id: str) -> None:
        """End one of a user's sessions; 404 (and nothing changes) for anyone else's or an
        unknown id."""
        record = await self._store.get(session_id)
        if record is None or record.user_id != user_id:
            raise NotFound("Session not found")
        await self.end(session_id)

    async def end(self, session_id: str) -> None:
        """End a session: its refresh token and every access token minted from it stop working."""
        await self._store.delete(session_id)
        await self._authorizer.notify(session_event(session_id))

    async def end_all(self, user_id: str) -> int:
        """End every session of a user (password change, deactivation, deletion, admin)."""
        records = await self._store.for_user(user_id)
        for record in records:
            await self.end(record.session_id)
        return len(records)

    def _tokens(self, user: User, session_id: str, secret: str) -> TokenResponse:
        return TokenResponse(
            access_token=self._signer.issue(user, session_id=session_id),
            expires_in=self._signer.ttl,
            refresh_token=f"{session_id}.{secret}",
        )


def _info(record: SessionRecord) -> SessionInfo:
    return SessionInfo(
        jti=record.session_id,
        issued_at=iso_z_from_ms(record.issued_at),
        expires_at=iso_z_from_ms(record.expires_at),
        last_used_at=None if record.last_used_at is None else iso_z_from_ms(record.last_used_at),
        client_hint=record.client_hint,
    )
