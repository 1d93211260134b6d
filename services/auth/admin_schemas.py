"""Wire shapes of the read-only admin endpoints the operator console reads
(``/api/v1/admin/*``, docs/CONSOLE.md says where each number comes from).  Pure: no I/O."""

from __future__ import annotations

import msgspec

from auth.schemas import UserPublic


class TopicRow(msgspec.Struct, kw_only=True, omit_defaults=False):
    topic_name: str
    owner_id: str
    owner_username: str | None  # None when the owner's record is gone
    is_public: bool
    description: str | None
    created_at: str
    message_count: int  # entries in the topic stream (retention and max length already applied)
    newest_message_id: str | None
    newest_message_at: str | None  # the time part of the newest id (when Valkey appended it)
    subscribers: int  # WebSocket subscriptions + waiting long-polls, summed over live gateways
    # Per transport ({"websocket": n, "longpoll": n}) once gateways report the split; None until then.
    subscribers_by_transport: dict[str, int] | None
    allowed_user_ids: list[str]


class GatewayRow(msgspec.Struct, kw_only=True, omit_defaults=False):
    gateway_id: str
    last_heartbeat_at: str
    heartbeat_age_seconds: float
    websocket_connections: int
    active_waiters: int  # long-polls waiting right now
    subscribed_topics: int
    subscriptions: int  # sum of the per-topic counts
    consumer_group: str
    lag: int | None  # fan-out entries not yet read or acknowledged; None if Valkey did not answer
    counters: dict[str, int]  # everything the heartbeat carried, as sent
    topic_subscribers: dict[str, int]


class Totals(msgspec.Struct, kw_only=True, omit_defaults=False):
    topics: int
    messages: int
    users: int
    active_users: int
    gateways: int
    websocket_connections: int
    active_waiters: int
    subscriptions: int
    lag: int
    published_total: int  # fan-out log entries ever appended (every publish, deployment-wide)


class Overview(msgspec.Struct, kw_only=True, omit_defaults=False):
    generated_at: str
    totals: Totals
    topics: list[TopicRow]
    gateways: list[GatewayRow]


class AdminUser(UserPublic, kw_only=True):
    """A user as the auth API shows it (``UserPublic``), plus the topics granted to it."""

    granted_topics: list[str]  # topics this user was given read access to


class RateSample(msgspec.Struct, kw_only=True, array_like=True):
    """One interval ending at ``at_ms``: messages published and delivered during its ``seconds``,
    sent as ``[at_ms, seconds, published, delivered]`` to keep the series small."""

    at_ms: int
    seconds: float
    published: int
    delivered: int


class Rates(msgspec.Struct, kw_only=True, omit_defaults=False):
    interval_seconds: float
    window_seconds: float
    # "gateways": the heartbeats' messages_delivered counters (whole deployment);
    # "process": this process's relay_messages_delivered_total (exact in `serve all`).
    delivered_source: str
    samples: list[RateSample]
