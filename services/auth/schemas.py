"""The auth service's wire shapes (reference §3.1-3.2): request bodies with their limits, and the
public views of users, tokens and topics.  Pure: no I/O."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import UNSET, UnsetType

from auth.passwords import PASSWORD_MAX, PASSWORD_MIN
from relaycore.models import Permission

Username = Annotated[str, msgspec.Meta(min_length=3, max_length=50)]
Email = Annotated[str, msgspec.Meta(max_length=254)]
Password = Annotated[str, msgspec.Meta(min_length=PASSWORD_MIN, max_length=PASSWORD_MAX)]
Description = Annotated[str, msgspec.Meta(max_length=500)]

# Request bodies ignore unknown fields, as FastAPI does.


# --- users


class UserCreate(msgspec.Struct, kw_only=True, frozen=True):
    username: Username
    password: Password
    email: Email | None = None
    permissions: list[Permission] = []


class UserUpdate(msgspec.Struct, kw_only=True, frozen=True):
    """PATCH: only the fields that are sent are applied; ``email: null`` clears the address."""

    email: Email | UnsetType | None = UNSET
    password: Password | UnsetType | None = UNSET
    permissions: list[Permission] | UnsetType | None = UNSET
    is_active: bool | UnsetType | None = UNSET


class UserPublic(msgspec.Struct, kw_only=True):
    user_id: str
    username: str
    email: str | None
    is_active: bool
    created_at: str
    permissions: list[str]
    owned_topics: list[str]


class UserStats(msgspec.Struct, kw_only=True):
    total_users: int
    active_users: int


class TokenResponse(msgspec.Struct, kw_only=True):
    """Both refresh fields are always sent (null when there is none), as the reference does."""

    access_token: str
    token_type: str = "bearer"
    expires_in: int
    refresh_token: str | None = None
    refresh_token_secondary: str | None = None  # the device flow's second chain (pair=true)


# --- sessions

RefreshToken = Annotated[str, msgspec.Meta(max_length=512)]


class RefreshRequest(msgspec.Struct, kw_only=True, frozen=True):
    refresh_token: RefreshToken


class RevokeRequest(msgspec.Struct, kw_only=True, frozen=True):
    refresh_token: RefreshToken
    revoke_chain: bool = False


class SessionInfo(msgspec.Struct, kw_only=True):
    """One sign-in session (``GET /auth/sessions``); ``jti`` is the session's id, stable across
    refreshes, which ``DELETE /auth/sessions/{jti}`` takes."""

    jti: str
    issued_at: str
    expires_at: str
    last_used_at: str | None
    client_hint: str | None


# --- topics


class TopicCreate(msgspec.Struct, kw_only=True, frozen=True):
    topic_name: str  # checked against relaycore.names.topic_problem
    is_public: bool = False
    description: Description | None = None


class TopicUpdate(msgspec.Struct, kw_only=True, frozen=True):
    """PUT: only non-null fields are applied."""

    is_public: bool | None = None
    description: Description | None = None


class TopicPublic(msgspec.Struct, kw_only=True):
    topic_id: str
    topic_name: str
    owner_id: str
    is_public: bool
    created_at: str
    description: str | None
    allowed_user_ids: list[str] | None  # null for callers who may not manage the topic


class TopicPermissionGrant(msgspec.Struct, kw_only=True, frozen=True):
    """``user_id`` wins when both are given."""

    user_id: str | None = None
    username: str | None = None


class TopicPermission(msgspec.Struct, kw_only=True):
    topic_name: str
    user_id: str
    username: str
    granted_at: str


class TopicCount(msgspec.Struct, kw_only=True):
    topic_name: str
    owner_id: str
    is_public: bool
    message_count: int


class TopicStats(msgspec.Struct, kw_only=True):
    total_topics: int
    topics: list[TopicCount]
