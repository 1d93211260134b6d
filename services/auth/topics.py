"""Topic management with the seed's owner-or-admin rules (reference §6, CONTRACT decisions 1-3):
create, list, read, update, delete, and read grants.  Reads go straight to the store, so the
service that makes a change always answers with it.  Transport-neutral: raises ``relaycore.errors``."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from auth.schemas import (
    TopicCount,
    TopicCreate,
    TopicPermission,
    TopicPermissionGrant,
    TopicPublic,
    TopicStats,
    TopicUpdate,
)
from relaycore.errors import BadRequest, Conflict, Forbidden, InvalidInput, NotFound
from relaycore.models import Topic, User, iso_z, utcnow
from relaycore.names import normal_username, topic_problem
from relaycore.store.base import Backend

A = TypeVar("A")
R = TypeVar("R")
# Lookups run in parallel, but no more at once than the Valkey connection pool comfortably serves.
_PARALLEL = 32


async def _each(fn: Callable[[A], Awaitable[R]], items: Sequence[A]) -> list[R]:
    results: list[R] = []
    for start in range(0, len(items), _PARALLEL):
        results += await asyncio.gather(*(fn(x) for x in items[start : start + _PARALLEL]))
    return results


def public(topic: Topic, *, show_grants: bool) -> TopicPublic:
    return TopicPublic(
        topic_id=topic.topic_id,
        topic_name=topic.topic_name,
        owner_id=topic.owner_id,
        is_public=topic.is_public,
        created_at=topic.created_at,
        description=topic.description,
        allowed_user_ids=list(topic.allowed_user_ids) if show_grants else None,
    )


def viewed_by(topic: Topic, viewer: User) -> TopicPublic:
    """The GET/list view: only those who may manage the topic see who else may read it."""
    return public(topic, show_grants=topic.can_manage(viewer))


class Topics:
    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    async def _find(self, name: str) -> Topic:
        # A name that breaks the topic rule cannot exist: no need to ask the store.
        topic = None if topic_problem(name) else await self._backend.topics.get(name)
        if topic is None:
            raise NotFound(f"Topic '{name}' not found")
        return topic

    async def readable(self, user: User, name: str) -> Topic:
        topic = await self._find(name)
        if not topic.can_read(user):
            raise Forbidden(f"Access denied to topic '{name}'")
        return topic

    async def managed(self, user: User, name: str, action: str) -> Topic:
        topic = await self._find(name)
        if not topic.can_manage(user):
            raise Forbidden(f"Only the topic owner can {action}")
        return topic

    async def create(self, user: User, data: TopicCreate) -> Topic:
        problem = topic_problem(data.topic_name)
        if problem:
            raise InvalidInput.single(["body", "topic_name"], problem, data.topic_name)
        topic = Topic(
            topic_id=str(uuid.uuid4()),
            topic_name=data.topic_name,
            owner_id=user.user_id,
            is_public=data.is_public,
            description=data.description or None,  # the stores read "" back as null
            created_at=iso_z(utcnow()),
        )
        await self._backend.topics.create(topic)
        return topic

    async def visible(self, user: User) -> list[Topic]:
        """Topics the user owns or was granted; others' public topics are not listed (reference)."""
        owned, granted = await self._backend.topics.names_for(user.user_id)
        names = sorted(set(owned) | set(granted))
        found = await _each(self._backend.topics.get, names)
        return [t for t in found if t is not None]

    async def update(self, user: User, name: str, data: TopicUpdate) -> Topic:
        await self.managed(user, name, "update it")
        topic = await self._backend.topics.update(
            name, is_public=data.is_public, description=data.description
        )
        if topic is None:
            raise NotFound(f"Topic '{name}' not found")
        return topic

    async def delete(self, user: User, name: str) -> None:
        await self.managed(user, name, "delete it")
        if not await self._backend.topics.delete(name):
            raise NotFound(f"Topic '{name}' not found")

    async def grant(self, user: User, name: str, data: TopicPermissionGrant) -> TopicPermission:
        await self.managed(user, name, "grant access")
        if data.user_id:
            grantee = await self._backend.users.get(data.user_id)
        elif data.username:
            grantee = await self._backend.users.get_by_name(normal_username(data.username))
        else:
            raise BadRequest("Either user_id or username must be provided")
        if grantee is None:
            raise NotFound("User not found")
        if not await self._backend.topics.grant(name, grantee.user_id):
            if await self._backend.topics.get(name) is None:
                raise NotFound(f"Topic '{name}' not found")
            raise Conflict(f"User {grantee.user_id} already has access to topic {name}")
        return _permission(name, grantee)

    async def grants(self, user: User, name: str) -> list[TopicPermission]:
        topic = await self.managed(user, name, "list permissions")
        users = await _each(self._backend.users.get, topic.allowed_user_ids)
        return [_permission(name, u) for u in users if u is not None]

    async def revoke(self, user: User, name: str, user_id: str) -> None:
        await self.managed(user, name, "revoke access")
        if not await self._backend.topics.revoke(name, user_id):
            raise NotFound("User does not have access to this topic")

    async def stats(self) -> TopicStats:
        names = await self._backend.topics.all_names()
        present = [t for t in await _each(self._backend.topics.get, names) if t is not None]
        counts = await _each(self._backend.messages.length, [t.topic_name for t in present])
        rows = [
            TopicCount(
                topic_name=t.topic_name, owner_id=t.owner_id, is_public=t.is_public, message_count=count
            )
            for t, count in zip(present, counts, strict=True)
        ]
        return TopicStats(total_topics=len(rows), topics=rows)


def _permission(name: str, grantee: User) -> TopicPermission:
    # The reference stores no grant time: it reports "now", in the POST and the list alike.
    return TopicPermission(
        topic_name=name, user_id=grantee.user_id, username=grantee.username, granted_at=iso_z(utcnow())
    )
