"""User accounts: registration, updates, deletion and the public view, plus ``ensure_user`` for the
bootstrap admin and ``pulsar-relay users create``.  Every change is announced on the invalidation
channel so all processes drop their cached copy.  Transport-neutral: raises ``relaycore.errors``."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence

from msgspec import UNSET

from auth.passwords import Passwords
from auth.schemas import UserCreate, UserPublic, UserStats, UserUpdate
from auth.sessions import Sessions, end_user_sessions
from relaycore import names
from relaycore.access import Authorizer
from relaycore.errors import BadRequest, Conflict, InvalidInput, NotFound
from relaycore.models import Permission, User, iso_z, utcnow
from relaycore.store.base import Backend


def canonical_permissions(permissions: Iterable[Permission]) -> list[Permission]:
    """Duplicates dropped, first occurrence kept."""
    return list(dict.fromkeys(permissions))


def new_user(
    username: str, hashed_password: str, email: str | None, permissions: Iterable[Permission]
) -> User:
    return User(
        user_id=str(uuid.uuid4()),
        username=username,
        email=email,
        hashed_password=hashed_password,
        permissions=canonical_permissions(permissions),
        is_active=True,
        created_at=iso_z(utcnow()),
    )


def checked_username(raw: str) -> str:
    """The username as stored (``relaycore.names``: NFKC), or a 422 naming the rule it breaks."""
    username = names.normal_username(raw)
    if problem := names.username_problem(username):
        raise InvalidInput.single(["body", "username"], problem, raw, "value_error")
    return username


async def ensure_user(
    backend: Backend,
    *,
    username: str,
    password: str,
    email: str | None,
    permissions: Sequence[Permission],
    passwords: Passwords | None = None,
) -> tuple[User, bool]:
    """Create the user, or make an existing one match: password, permissions, email (when given)
    and active.  Returns (user, created).  Safe to run from several processes at once."""
    hasher = passwords or Passwords()
    perms = canonical_permissions(permissions)
    username = checked_username(username)
    for _ in range(3):
        existing = await backend.users.get_by_name(username)
        if existing is None:
            user = new_user(username, await hasher.hash(password), email, perms)
            try:
                await backend.users.create(user)
            except Conflict:
                continue  # another process created it meanwhile: update that one
            return user, True
        wanted_email = existing.email if email is None else email
        same_password = await hasher.verify(existing.hashed_password, password)
        if (
            existing.is_active
            and existing.permissions == perms
            and existing.email == wanted_email
            and not hasher.needs_rehash(existing.hashed_password)
            and same_password
        ):
            return existing, False
        existing.hashed_password = await hasher.hash(password)
        existing.permissions = perms
        existing.email = wanted_email
        existing.is_active = True
        if await backend.users.save(existing):
            if not same_password:  # tokens signed in with the old password stop working
                await end_user_sessions(backend, existing.user_id)
            await backend.bus.publish(f"user:{existing.user_id}")
            return existing, False
    raise Conflict(f"Username '{username}' keeps changing; try again")


class Users:
    def __init__(
        self, backend: Backend, passwords: Passwords, authorizer: Authorizer, sessions: Sessions
    ) -> None:
        self._backend = backend
        self._passwords = passwords
        self._authorizer = authorizer
        self._sessions = sessions

    async def public(self, user: User) -> UserPublic:
        owned, _ = await self._backend.topics.names_for(user.user_id)
        return UserPublic(
            user_id=user.user_id,
            username=user.username,
            email=user.email,
            is_active=user.is_active,
            created_at=user.created_at,
            permissions=list(user.permissions),
            owned_topics=owned,
        )

    async def register(self, data: UserCreate) -> User:
        username = checked_username(data.username)
        # Cheap early answer for the common duplicate; the store's atomic claim decides races.
        if await self._backend.users.get_by_name(username) is not None:
            raise Conflict(f"Username '{username}' already exists")
        hashed = await self._passwords.hash(data.password)
        user = new_user(username, hashed, data.email, data.permissions)
        await self._backend.users.create(user)
        return user

    async def get(self, user_id: str) -> User:
        user = await self._backend.users.get(user_id)
        if user is None:
            raise NotFound(f"User with ID '{user_id}' not found")
        return user

    async def update(self, user_id: str, data: UserUpdate) -> User:
        # Hash first: the read-modify-write below then spans one round trip, not a hash.
        hashed = await self._passwords.hash(data.password) if isinstance(data.password, str) else None
        user = await self.get(user_id)
        if data.email is not UNSET:
            user.email = data.email
        if hashed is not None:
            user.hashed_password = hashed
        if isinstance(data.permissions, list):
            user.permissions = canonical_permissions(data.permissions)
        if isinstance(data.is_active, bool):
            user.is_active = data.is_active
        if not await self._backend.users.save(user):
            raise NotFound(f"User with ID '{user_id}' not found")
        await self._authorizer.notify(f"user:{user_id}")  # first: sockets then close with 4003
        if hashed is not None or data.is_active is False:
            # A new password or a deactivation signs the user out everywhere: every access and
            # refresh token issued before stops working (reactivation does not revive them).
            await self._sessions.end_all(user_id)
        return user

    async def delete(self, actor: User, user_id: str) -> None:
        if user_id == actor.user_id:
            raise BadRequest("Cannot delete your own user account")
        if not await self._backend.users.delete(user_id):
            raise NotFound(f"User with ID '{user_id}' not found")
        await self._backend.topics.forget_user(user_id)
        await self._backend.identities.forget_user(user_id)
        await self._authorizer.notify(f"user:{user_id}")
        await self._sessions.end_all(user_id)

    async def list(self) -> list[User]:
        return await self._backend.users.list()

    async def stats(self) -> UserStats:
        users = await self._backend.users.list()
        return UserStats(total_users=len(users), active_users=sum(u.is_active for u in users))
