"""The shared vocabulary: users, topics, stored messages and the message wire shape.

Payloads stay raw JSON bytes (``msgspec.Raw``) from ingest to the WebSocket frame, so a gateway
splices them into outgoing frames without decoding them.  Pure: no I/O.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Literal

import msgspec

Permission = Literal["admin", "read", "write"]
PERMISSIONS: tuple[Permission, ...] = ("admin", "read", "write")


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso_z(dt: datetime) -> str:
    """``2025-10-09T12:00:00.123456Z`` (fraction omitted when zero), as the reference emits."""
    text = dt.astimezone(UTC).replace(tzinfo=None).isoformat()
    return text + "Z"


def iso_z_from_ms(ms: int) -> str:
    return iso_z(datetime.fromtimestamp(ms / 1000, UTC))


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class User(msgspec.Struct, kw_only=True):
    user_id: str
    username: str
    email: str | None = None
    hashed_password: str = ""
    permissions: list[Permission] = msgspec.field(default_factory=list)
    is_active: bool = True
    created_at: str = ""

    @property
    def is_admin(self) -> bool:
        return "admin" in self.permissions

    def has(self, permission: Permission) -> bool:
        return permission in self.permissions


class Topic(msgspec.Struct, kw_only=True):
    topic_id: str
    topic_name: str
    owner_id: str
    is_public: bool = False
    description: str | None = None
    created_at: str = ""
    allowed_user_ids: list[str] = msgspec.field(default_factory=list)

    def can_read(self, user: User) -> bool:
        return (
            user.is_admin
            or self.owner_id == user.user_id
            or self.is_public
            or user.user_id in self.allowed_user_ids
        )

    def can_read_messages(self, user: User) -> bool:
        """Messages of a public topic need the global ``read`` permission (CONTRACT decision 3);
        owners, grantees and admins read without it, as in the reference."""
        if user.is_admin or self.owner_id == user.user_id or user.user_id in self.allowed_user_ids:
            return True
        return self.is_public and user.has("read")

    def can_write(self, user: User) -> bool:
        return user.is_admin or self.owner_id == user.user_id

    def can_manage(self, user: User) -> bool:
        return user.is_admin or self.owner_id == user.user_id


class NewMessage(msgspec.Struct, frozen=True, kw_only=True):
    """A validated message on its way into storage."""

    topic: str
    payload: bytes  # compact JSON object text
    timestamp: str  # ISO 8601 UTC ending in Z, stamped on receipt
    metadata: bytes | None = None  # compact JSON object text (string values)
    expires_at_ms: int | None = None  # from ttl; readers drop the message afterwards


# What a message costs beyond its payload and metadata: ids, topic, timestamp, the object itself.
MESSAGE_OVERHEAD = 200


class StoredMessage(msgspec.Struct, frozen=True, kw_only=True):
    """A message as read back from a topic stream or a fan-out log."""

    message_id: str
    topic: str
    payload: bytes
    timestamp: str
    metadata: bytes | None = None
    expires_at_ms: int | None = None

    def expired(self, at_ms: int) -> bool:
        return self.expires_at_ms is not None and self.expires_at_ms <= at_ms

    def size(self) -> int:
        """Roughly the bytes it takes in memory or in an answer: its JSON texts plus the rest."""
        return len(self.payload) + len(self.metadata or b"") + MESSAGE_OVERHEAD


class MessageOut(msgspec.Struct, kw_only=True, omit_defaults=False):
    """The message shape on every read path (CONTRACT decision 8)."""

    message_id: str
    topic: str
    payload: msgspec.Raw
    timestamp: str
    metadata: msgspec.Raw


class MessageFrame(msgspec.Struct, kw_only=True, tag_field="type", tag="message"):
    """The same message as a live WebSocket / long-poll frame: ``type: "message"`` added."""

    message_id: str
    topic: str
    payload: msgspec.Raw
    timestamp: str
    metadata: msgspec.Raw


_EMPTY_OBJECT = msgspec.Raw(b"{}")


def to_out(m: StoredMessage) -> MessageOut:
    return MessageOut(
        message_id=m.message_id,
        topic=m.topic,
        payload=msgspec.Raw(m.payload),
        timestamp=m.timestamp,
        metadata=msgspec.Raw(m.metadata) if m.metadata else _EMPTY_OBJECT,
    )


def to_frame(m: StoredMessage) -> MessageFrame:
    return MessageFrame(
        message_id=m.message_id,
        topic=m.topic,
        payload=msgspec.Raw(m.payload),
        timestamp=m.timestamp,
        metadata=msgspec.Raw(m.metadata) if m.metadata else _EMPTY_OBJECT,
    )
