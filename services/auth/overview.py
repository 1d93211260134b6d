"""What the operator console shows, read from storage: every topic with its size, newest message,
owner and live subscribers; every live gateway with its heartbeat counters and consumer-group lag;
every user with permissions and grants.  Read-only and transport-neutral."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from auth.admin_schemas import AdminUser, GatewayRow, Overview, TopicRow, Totals
from relaycore import ids
from relaycore.errors import Unavailable
from relaycore.keys import Keys
from relaycore.models import Topic, User, iso_z_from_ms, now_ms
from relaycore.store.base import Backend

log = logging.getLogger(__name__)
A = TypeVar("A")
R = TypeVar("R")
# Lookups run in parallel, but no more at once than the Valkey connection pool comfortably serves.
_PARALLEL = 32
# Heartbeat counters (gateway/node.py snapshot) with a meaning of their own in the rows.
_CONNECTIONS = "websocket_connections"
_WAITERS = "active_waiters"
# Per-topic long-poll waiter counts, should a gateway report them as heartbeat counters
# "longpoll:<topic>" (today's heartbeat carries only the per-topic total of both transports).
_LONGPOLL_PREFIX = "longpoll:"


async def _each(fn: Callable[[A], Awaitable[R]], items: Sequence[A]) -> list[R]:
    results: list[R] = []
    for start in range(0, len(items), _PARALLEL):
        results += await asyncio.gather(*(fn(x) for x in items[start : start + _PARALLEL]))
    return results


def _newest_at(message_id: str | None) -> str | None:
    # A message id is the Valkey time of the append: exact enough, and no payload is read.
    sid = None if message_id is None else ids.parse(message_id)
    return None if sid is None else iso_z_from_ms(sid[0])


class AdminViews:
    def __init__(self, backend: Backend, keys: Keys) -> None:
        self._backend = backend
        self._keys = keys

    async def overview(self) -> Overview:
        b = self._backend
        names = await b.topics.all_names()
        topics = [t for t in await _each(b.topics.get, names) if t is not None]
        topic_names = [t.topic_name for t in topics]
        counts = await _each(b.messages.length, topic_names)
        newest = await _each(b.messages.last_id, topic_names)
        users = {u.user_id: u for u in await b.users.list()}
        gateways = await self._gateways()
        subscribers: dict[str, int] = {}
        longpoll: dict[str, int] = {}
        # A gateway's subscribers are all WebSockets when no long-poll waits there; otherwise the
        # split is known only if it reports per-topic long-poll counts.
        split = all(
            g.active_waiters == 0 or any(k.startswith(_LONGPOLL_PREFIX) for k in g.counters) for g in gateways
        )
        for g in gateways:
            for name, n in g.topic_subscribers.items():
                subscribers[name] = subscribers.get(name, 0) + n
            for key, n in g.counters.items():
                if key.startswith(_LONGPOLL_PREFIX):
                    name = key[len(_LONGPOLL_PREFIX) :]
                    longpoll[name] = longpoll.get(name, 0) + n
        rows = [
            _topic_row(t, users.get(t.owner_id), n, last, subscribers.get(t.topic_name, 0), longpoll, split)
            for t, n, last in zip(topics, counts, newest, strict=True)
        ]
        totals = Totals(
            topics=len(rows),
            messages=sum(counts),
            users=len(users),
            active_users=sum(u.is_active for u in users.values()),
            gateways=len(gateways),
            websocket_connections=sum(g.websocket_connections for g in gateways),
            active_waiters=sum(g.active_waiters for g in gateways),
            subscriptions=sum(g.subscriptions for g in gateways),
            lag=sum(g.lag or 0 for g in gateways),
            published_total=await b.fanout.appended(),
        )
        return Overview(generated_at=iso_z_from_ms(now_ms()), totals=totals, topics=rows, gateways=gateways)

    async def _gateways(self) -> list[GatewayRow]:
        b = self._backend
        seen = await b.gateways.live()
        stats = sorted(await b.gateways.stats(), key=lambda row: row[0])
        lags = await _each(self._lag, [g for g, _, _ in stats])
        now = now_ms()
        rows = []
        for (gateway_id, counters, topics), lag in zip(stats, lags, strict=True):
            beat = seen.get(gateway_id, now)
            rows.append(
                GatewayRow(
                    gateway_id=gateway_id,
                    last_heartbeat_at=iso_z_from_ms(beat),
                    heartbeat_age_seconds=max(0, now - beat) / 1000,
                    websocket_connections=counters.get(_CONNECTIONS, 0),
                    active_waiters=counters.get(_WAITERS, 0),
                    subscribed_topics=sum(1 for n in topics.values() if n > 0),
                    subscriptions=sum(topics.values()),
                    consumer_group=self._keys.gateway_group(gateway_id),
                    lag=lag,
                    counters=dict(sorted(counters.items())),
                    topic_subscribers=dict(sorted((t, n) for t, n in topics.items() if n > 0)),
                )
            )
        return rows

    async def _lag(self, gateway_id: str) -> int | None:
        try:
            return await self._backend.fanout.lag(self._keys.gateway_group(gateway_id))
        except Unavailable as exc:  # one gateway's lag is not worth failing the whole page for
            log.warning("lag of gateway %s unavailable: %s", gateway_id, exc)
            return None

    async def users(self) -> list[AdminUser]:
        users = sorted(await self._backend.users.list(), key=lambda u: u.username)
        names = await _each(self._backend.topics.names_for, [u.user_id for u in users])
        return [_admin_user(u, owned, granted) for u, (owned, granted) in zip(users, names, strict=True)]


def _topic_row(
    t: Topic,
    owner: User | None,
    count: int,
    newest: str | None,
    subscribers: int,
    longpoll: dict[str, int],
    split: bool,
) -> TopicRow:
    by_transport = None
    if split:
        polls = longpoll.get(t.topic_name, 0)
        by_transport = {"websocket": max(0, subscribers - polls), "longpoll": polls}
    return TopicRow(
        topic_name=t.topic_name,
        owner_id=t.owner_id,
        owner_username=owner.username if owner else None,
        is_public=t.is_public,
        description=t.description,
        created_at=t.created_at,
        message_count=count,
        newest_message_id=newest,
        newest_message_at=_newest_at(newest),
        subscribers=subscribers,
        subscribers_by_transport=by_transport,
        allowed_user_ids=sorted(t.allowed_user_ids),
    )


def _admin_user(u: User, owned: list[str], granted: list[str]) -> AdminUser:
    return AdminUser(
        user_id=u.user_id,
        username=u.username,
        email=u.email,
        is_active=u.is_active,
        created_at=u.created_at,
        permissions=sorted(u.permissions),
        owned_topics=owned,
        granted_topics=granted,
    )
