"""Test identities without the auth service: users written straight into a backend, and tokens
signed with the test secret exactly as ``auth`` signs them (HS256; sub, username, permissions,
iat, exp, jti)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence

import jwt

from relaycore.models import Permission, User, iso_z, utcnow
from relaycore.store.base import Backend
from tests.conftest import TEST_SECRET


def token_for(user: User, *, secret: str = TEST_SECRET, ttl: int = 3600, **extra: object) -> str:
    now = int(time.time())
    claims = {
        "sub": user.user_id,
        "username": user.username,
        "permissions": list(user.permissions),
        "iat": now,
        "exp": now + ttl,
        "jti": uuid.uuid4().hex,
        **extra,
    }
    return jwt.encode(claims, secret, algorithm="HS256")


async def make_user(
    backend: Backend,
    username: str,
    permissions: Sequence[Permission] = ("read", "write"),
    *,
    active: bool = True,
) -> tuple[User, str]:
    """A stored user (no password: it cannot log in) and a valid bearer token for it."""
    user = User(
        user_id=uuid.uuid4().hex,
        username=username,
        permissions=list(permissions),
        is_active=active,
        created_at=iso_z(utcnow()),
    )
    await backend.users.create(user)
    return user, token_for(user)
