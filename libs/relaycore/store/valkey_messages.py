"""Publishing (one atomic script per request) and reading topic streams in Valkey."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import msgspec

from relaycore import ids
from relaycore.config import Settings
from relaycore.errors import Forbidden, Unavailable
from relaycore.ids import StreamId
from relaycore.keys import Keys
from relaycore.models import NewMessage, StoredMessage, User, now_ms
from relaycore.store._guard import guard_methods
from relaycore.store._scripts import load
from relaycore.store.base import PublishKind, PublishResult
from relaycore.store.entries import decode
from relaycore.valkey import Client


class _Context(msgspec.Struct, array_like=True):
    kind: PublishKind
    topics: list[str]
    timestamps: list[str]


_ctx_decoder = msgspec.json.Decoder(_Context)
_ctx_encoder = msgspec.json.Encoder()
_args_encoder = msgspec.msgpack.Encoder()
_TOPIC_KEYS_CACHED = 16_384


def denied_detail(topics: Sequence[str], kind: PublishKind) -> str:
    if kind == "single":
        return f"Access denied to topic '{topics[0]}' (requires write permission)"
    return f"Access denied to topics: {sorted(set(topics))!r}"


@guard_methods
class ValkeyMessages:
    def __init__(self, client: Client, keys: Keys, settings: Settings) -> None:
        self._r: Any = client  # redis-py's return types are loose; replies are bytes here
        self._k = keys
        self._s = settings
        self._publish = load(client, "publish")
        self._maxlen = str(settings.max_messages_per_topic)
        self._log_maxlen = str(settings.fanout_log_maxlen)
        self._topic_keys = functools.lru_cache(maxsize=_TOPIC_KEYS_CACHED)(self._keys_of)

    def _keys_of(self, topic: str) -> tuple[str, str, str, str, int]:
        """(meta, stream, log, topic index, partition) of a topic: computed once per topic name."""
        p = self._k.partition(topic)
        return self._k.topic(topic), self._k.stream(topic), self._k.log(p), self._k.topic_index(p), p

    async def publish(
        self,
        messages: Sequence[NewMessage],
        *,
        user: User,
        kind: PublishKind,
        idempotency_key: str | None,
        idempotency_ttl: float,
        topic_ids: Sequence[str],
    ) -> PublishResult:
        order: dict[str, int] = {}
        keys: list[str] = []
        if idempotency_key is not None:
            keys.append(self._k.idempotency(messages[0].topic, user.user_id, idempotency_key))
        new_topics: list[tuple[str, str]] = []
        rows: list[tuple[int, str, str, str, str]] = []
        for m, tid in zip(messages, topic_ids, strict=True):
            index = order.get(m.topic)
            if index is None:
                index = order[m.topic] = len(order) + 1
                meta, stream, log, topic_index, partition = self._topic_keys(m.topic)
                keys += [meta, stream, log, self._k.owned(partition, user.user_id), topic_index]
                new_topics.append((m.topic, tid))
            # Strings, not bytes: the script's MessagePack decoder only knows the str type (the
            # payload and metadata are UTF-8 JSON text).
            rows.append(
                (
                    index,
                    m.payload.decode(),
                    m.timestamp,
                    m.metadata.decode() if m.metadata else "",
                    "" if m.expires_at_ms is None else str(m.expires_at_ms),
                )
            )
        topics = [m.topic for m in messages]
        timestamps = [m.timestamp for m in messages]
        # What a repeat needs to rebuild the response; only kept when there is a key.
        context = (
            ""
            if idempotency_key is None
            else _ctx_encoder.encode(_Context(kind, topics, timestamps)).decode()
        )
        retention_ms = int(self._s.persistent_tier_retention * 1000)
        minid = f"{now_ms() - retention_ms}-0" if retention_ms > 0 else "0"
        packed = _args_encoder.encode(
            (
                idempotency_key is not None,
                user.user_id,
                user.is_admin,
                user.username,
                timestamps[0],
                str(int(idempotency_ttl * 1000)),
                self._maxlen,
                minid,
                self._log_maxlen,
                self._k.invalidate_channel,
                context,
                new_topics,
                rows,
            )
        )
        reply = await self._publish(keys=keys, args=[packed])
        status = reply[0]
        if status == b"ok":
            return PublishResult(
                kind=kind, message_ids=[i.decode() for i in reply[1:]], topics=topics, timestamps=timestamps
            )
        if status == b"dup":
            stored, _, joined = reply[1].rpartition(b"|")
            ctx = _ctx_decoder.decode(stored)
            return PublishResult(
                kind=ctx.kind,
                message_ids=joined.decode().split(","),
                topics=ctx.topics,
                timestamps=ctx.timestamps,
                duplicate=True,
            )
        if status == b"denied":
            raise Forbidden(denied_detail([t.decode() for t in reply[1:]], kind))
        raise Unavailable(f"Unexpected reply from the publish script: {status!r}")

    async def read_after(self, topic: str, after: StreamId | None, limit: int) -> list[StoredMessage]:
        start = "-" if after is None else f"({ids.fmt(after)}"
        out: list[StoredMessage] = []
        now = now_ms()
        while (wanted := limit - len(out)) > 0:
            rows = await self._r.xrange(self._k.stream(topic), min=start, max="+", count=wanted)
            out += [m for m in (decode(i, f, topic) for i, f in rows) if not m.expired(now)]
            if len(rows) < wanted:
                break
            start = f"({rows[-1][0].decode()}"
        return out

    async def read_before(self, topic: str, before: StreamId | None, limit: int) -> list[StoredMessage]:
        end = "+" if before is None else f"({ids.fmt(before)}"
        out: list[StoredMessage] = []
        now = now_ms()
        while (wanted := limit - len(out)) > 0:
            rows = await self._r.xrevrange(self._k.stream(topic), max=end, min="-", count=wanted)
            out += [m for m in (decode(i, f, topic) for i, f in rows) if not m.expired(now)]
            if len(rows) < wanted:
                break
            end = f"({rows[-1][0].decode()}"
        return out

    async def last_id(self, topic: str) -> str | None:
        rows = await self._r.xrevrange(self._k.stream(topic), count=1)
        return rows[0][0].decode() if rows else None

    async def length(self, topic: str) -> int:
        return int(await self._r.xlen(self._k.stream(topic)))
