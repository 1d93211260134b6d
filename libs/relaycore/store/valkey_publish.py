"""One call of the publish script (``lua/publish.lua``): its keys and arguments for a list of
messages, the call itself (followed by ``WAIT`` when publishes must reach replicas), and the
idempotency record it keeps.  ``valkey_messages`` runs it once per request; on a Valkey Cluster a
bulk over several partitions runs it once per partition (``valkey_bulk``)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import msgspec
from redis.exceptions import NoScriptError, ResponseError

from relaycore.adapters.redis import send_pinned
from relaycore.config import Settings
from relaycore.errors import Unavailable
from relaycore.keys import Keys
from relaycore.models import NewMessage, User, now_ms
from relaycore.store._scripts import load
from relaycore.store.base import PublishKind
from relaycore.store.valkey_batch import ScriptBatch
from relaycore.valkey import Client

_TOPIC_KEYS_CACHED = 16_384


class Context(msgspec.Struct, array_like=True):
    """What a repeat of an Idempotency-Key needs to rebuild the answer: the whole request's kind,
    topics and timestamps (on a cluster, every partition's record holds the whole request)."""

    kind: PublishKind
    topics: list[str]
    timestamps: list[str]
    digest: str = ""  # the request's ``fingerprint`` ("" in records older than fingerprints)


_ctx_decoder = msgspec.json.Decoder(Context)
_ctx_encoder = msgspec.json.Encoder()
_args_encoder = msgspec.msgpack.Encoder()


def denied_detail(topics: Sequence[str], kind: PublishKind) -> str:
    if kind == "single":
        return f"Access denied to topic '{topics[0]}' (requires write permission)"
    return f"Access denied to topics: {sorted(set(topics))!r}"


def encode_context(kind: PublishKind, messages: Sequence[NewMessage], digest: str) -> str:
    topics = [m.topic for m in messages]
    return _ctx_encoder.encode(Context(kind, topics, [m.timestamp for m in messages], digest)).decode()


def decode_record(stored: bytes) -> tuple[Context, list[str]]:
    """An idempotency record → (the request's context, the ids this record's script wrote)."""
    ctx, _, joined = stored.rpartition(b"|")
    return _ctx_decoder.decode(ctx), joined.decode().split(",")


class Reply(msgspec.Struct, frozen=True):
    status: str  # "ok" | "dup" | "denied"
    ids: list[str] = []  # ok: the new ids
    stored: bytes = b""  # dup: the idempotency record
    denied: list[str] = []  # denied: the topics the user may not write


class PublishScript:
    def __init__(self, client: Client, keys: Keys, settings: Settings, *, batched: bool = False) -> None:
        """``batched``: coalesce concurrent calls into one round trip (single-node Valkey only)."""
        self._r: Client = client
        self._k = keys
        self._s = settings
        self._script = load(client, "publish")
        self._maxlen = str(settings.max_messages_per_topic)
        self._log_maxlen = str(settings.fanout_log_maxlen)
        self._wait = settings.publish_wait_replicas
        self.waits = self._wait > 0
        self._batch = ScriptBatch(client, self._script) if batched and not self.waits else None
        self._wait_ms = max(1, int(settings.publish_wait_timeout * 1000))
        # What follows a write that replicas must have before it is answered.
        self.wait_command: tuple[str, int, int] = ("WAIT", self._wait, self._wait_ms)
        self.topic_keys = functools.lru_cache(maxsize=_TOPIC_KEYS_CACHED)(self._keys_of)

    def _keys_of(self, topic: str) -> tuple[str, str, str, str, int]:
        """(meta, stream, log, topic index, partition) of a topic: computed once per topic name."""
        p = self._k.partition(topic)
        return self._k.topic(topic), self._k.stream(topic), self._k.log(p), self._k.topic_index(p), p

    async def run(
        self,
        messages: Sequence[NewMessage],
        topic_ids: Sequence[str],
        *,
        user: User,
        idem_key: str | None,
        idempotency_ttl: float,
        context: str,
    ) -> Reply:
        """Run the script over ``messages`` with ``idem_key`` (a full key name) as its record."""
        order: dict[str, int] = {}
        keys: list[str] = [] if idem_key is None else [idem_key]
        new_topics: list[tuple[str, str]] = []
        rows: list[tuple[int, str, str, str, str]] = []
        for m, tid in zip(messages, topic_ids, strict=True):
            index = order.get(m.topic)
            if index is None:
                index = order[m.topic] = len(order) + 1
                meta, stream, log, topic_index, partition = self.topic_keys(m.topic)
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
        retention_ms = int(self._s.persistent_tier_retention * 1000)
        minid = f"{now_ms() - retention_ms}-0" if retention_ms > 0 else "0"
        packed = _args_encoder.encode(
            (
                idem_key is not None,
                user.user_id,
                user.is_admin,
                user.username,
                messages[0].timestamp,
                str(int(idempotency_ttl * 1000)),
                self._maxlen,
                minid,
                self._log_maxlen,
                self._k.invalidate_channel,
                context,
                new_topics,
                rows,
                *((True,) if self._wait else ()),
            )
        )
        if self._wait:
            reply = await self._call_and_wait(keys, packed)
        elif self._batch is not None:
            reply = await self._batch(keys, packed)
        else:
            reply = await self._script(keys=keys, args=[packed])
        status = reply[0]
        if status == b"ok":
            return Reply("ok", ids=[i.decode() for i in reply[1:]])
        if status == b"dup":
            return Reply("dup", stored=reply[1])
        if status == b"denied":
            return Reply("denied", denied=[t.decode() for t in reply[1:]])
        raise Unavailable(f"Unexpected reply from the publish script: {status!r}")

    async def _call_and_wait(self, keys: list[str], packed: bytes) -> Any:
        """The script, then ``WAIT`` on the same connection: the publish is acknowledged only once
        ``publish_wait_replicas`` replicas have it, so a failover cannot lose it."""
        for attempt in (1, 2):
            call: tuple[str | bytes | int, ...] = ("EVALSHA", self._script.sha, len(keys), *keys, packed)
            reply, acked = await send_pinned(self._r, keys[0], call, ("WAIT", self._wait, self._wait_ms))
            if isinstance(reply, NoScriptError) and attempt == 1:
                await self._r.script_load(self._script.script)  # the same sha: it is the source's
                continue
            if isinstance(reply, ResponseError):
                raise reply
            confirmed = acked if isinstance(acked, int) else 0
            if reply[0] in (b"ok", b"dup") and confirmed < self._wait:
                # Stored on the primary, not (yet) on enough replicas: not acknowledged.  A retry
                # with the same Idempotency-Key finds it instead of storing it twice (and answers
                # only once the replicas have it).
                raise Unavailable(
                    f"Published, but only {confirmed} of {self._wait} replicas confirmed it in time;"
                    " retry with the same Idempotency-Key"
                )
            return reply
        raise AssertionError("unreachable")
