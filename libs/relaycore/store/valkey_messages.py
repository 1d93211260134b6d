"""Publishing (one atomic script per request) and reading topic streams in Valkey."""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio.cluster import RedisCluster

from relaycore import ids
from relaycore.adapters.redis import send_pinned
from relaycore.config import Settings
from relaycore.errors import Forbidden
from relaycore.ids import StreamId
from relaycore.keys import Keys
from relaycore.models import NewMessage, StoredMessage, User, now_ms
from relaycore.store import fingerprint
from relaycore.store._guard import guard_methods
from relaycore.store.base import PublishKind, PublishResult
from relaycore.store.entries import decode, unexpired
from relaycore.store.replies import entries
from relaycore.store.valkey_bulk import CrossPartitionBulk, PartlyWritten
from relaycore.store.valkey_publish import PublishScript, decode_record, denied_detail, encode_context
from relaycore.valkey import Client

__all__ = ["ValkeyMessages", "denied_detail"]

# A cluster's claim of an Idempotency-Key outlives the records its publish writes (made a moment
# later, each with ``idempotency_ttl``), so while any of them exists the claim does too.
CLAIM_MARGIN_MS = 60_000


@guard_methods
class ValkeyMessages:
    def __init__(self, client: Client, keys: Keys, settings: Settings) -> None:
        self._r: Client = client
        self._k = keys
        cluster = isinstance(client, RedisCluster)
        # One node: concurrent publishes share a round trip.  A cluster spreads them over nodes.
        self._script = PublishScript(client, keys, settings, batched=not cluster)
        # On a cluster a bulk over several partitions (several hash slots) cannot be one script.
        self._across = CrossPartitionBulk(client, keys, self._script) if cluster else None

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
        claimed = None
        if self._across is not None and idempotency_key is not None:
            claimed = await self._claim(
                user.user_id, idempotency_key, fingerprint.of(kind, messages), idempotency_ttl
            )
        try:
            return await self._publish(
                messages,
                user=user,
                kind=kind,
                idempotency_key=idempotency_key,
                idempotency_ttl=idempotency_ttl,
                topic_ids=topic_ids,
            )
        except PartlyWritten:
            raise  # the key stays bound: its retry completes the request
        except Forbidden:
            if claimed is not None:
                # Refused with nothing written, so a single server keeps no record: neither does
                # the claim (the key may be used again for another request, as there).
                await self._r.delete(claimed)
            raise

    async def _publish(
        self,
        messages: Sequence[NewMessage],
        *,
        user: User,
        kind: PublishKind,
        idempotency_key: str | None,
        idempotency_ttl: float,
        topic_ids: Sequence[str],
    ) -> PublishResult:
        if self._across is not None and len({self._script.topic_keys(m.topic)[4] for m in messages}) > 1:
            return await self._across.publish(
                messages,
                user=user,
                kind=kind,
                idempotency_key=idempotency_key,
                idempotency_ttl=idempotency_ttl,
                topic_ids=topic_ids,
            )
        topics = [m.topic for m in messages]
        timestamps = [m.timestamp for m in messages]
        # What a repeat needs to rebuild the response (and to tell another request with the same
        # key); only kept when there is a key.
        idem = None
        digest = context = ""
        if idempotency_key is not None:
            digest = fingerprint.of(kind, messages)
            context = encode_context(kind, messages, digest)
            idem = self._idem_key(messages[0].topic, user.user_id, idempotency_key)
        reply = await self._script.run(
            messages, topic_ids, user=user, idem_key=idem, idempotency_ttl=idempotency_ttl, context=context
        )
        if reply.status == "ok":
            return PublishResult(kind=kind, message_ids=reply.ids, topics=topics, timestamps=timestamps)
        if reply.status == "dup":
            assert idempotency_key is not None
            ctx, stored_ids = decode_record(reply.stored)
            fingerprint.require_same(ctx.digest, digest, idempotency_key)
            if self._across is not None:
                here = self._k.partition(messages[0].topic)
                return await self._across.repeat(reply.stored, here, user, idempotency_key)
            return PublishResult(
                kind=ctx.kind,
                message_ids=stored_ids,
                topics=ctx.topics,
                timestamps=ctx.timestamps,
                duplicate=True,
            )
        raise Forbidden(denied_detail(reply.denied, kind))

    async def _claim(self, user_id: str, key: str, digest: str, ttl: float) -> str | None:
        """On a cluster, bind ``key`` to this request's fingerprint before anything is written, in
        the key's own slot (the name a single server keeps its record under), so a key reused for
        another request is a 422 whichever partitions the two requests touch.  ``SET NX GET`` is
        atomic: of two concurrent requests with one key exactly one binds it, the other sees its
        fingerprint.  The partition records written next still make the same request's repeats
        exactly once; a crash after the claim leaves the key bound to this request, whose retry
        then publishes it (nothing was written) or finds what was."""
        name = self._k.user_idempotency(user_id, key)
        px = int(ttl * 1000) + CLAIM_MARGIN_MS
        if self._script.waits:
            # Like the publish itself: acknowledged by replicas, so a failover keeps the binding.
            command = ("SET", name, digest, "NX", "GET", "PX", px)
            prev, _ = await send_pinned(self._r, name, command, self._script.wait_command)
        else:
            prev = await self._r.set(name, digest, nx=True, get=True, px=px)
        if isinstance(prev, Exception):
            raise prev
        if prev is not None:
            fingerprint.require_same(prev.decode(), digest, key)
            return None
        return name  # made by this request

    def _idem_key(self, topic: str, user_id: str, key: str) -> str:
        """One node: the user's record whatever the topic, so a key reused on another topic is
        seen.  A cluster keeps it in the topic's partition (a script's keys share one slot)."""
        if self._across is None:
            return self._k.user_idempotency(user_id, key)
        return self._k.idempotency(topic, user_id, key)

    async def read_after(self, topic: str, after: StreamId | None, limit: int) -> list[StoredMessage]:
        if after == ids.MAX:
            return []  # nothing lies after the largest id (and Valkey refuses the exclusive bound)
        start = "-" if after is None else f"({ids.fmt(after)}"
        out: list[StoredMessage] = []
        now = now_ms()
        while (wanted := limit - len(out)) > 0:
            rows = entries(await self._r.xrange(self._k.stream(topic), min=start, max="+", count=wanted))
            out += unexpired((decode(i, f, topic) for i, f in rows), now)
            if len(rows) < wanted:
                break
            start = f"({rows[-1][0].decode()}"
        return out

    async def read_before(self, topic: str, before: StreamId | None, limit: int) -> list[StoredMessage]:
        if before == ids.ZERO:
            return []  # nothing lies before 0-0 (and Valkey refuses the exclusive bound)
        end = "+" if before is None else f"({ids.fmt(before)}"
        out: list[StoredMessage] = []
        now = now_ms()
        while (wanted := limit - len(out)) > 0:
            rows = entries(await self._r.xrevrange(self._k.stream(topic), max=end, min="-", count=wanted))
            out += unexpired((decode(i, f, topic) for i, f in rows), now)
            if len(rows) < wanted:
                break
            end = f"({rows[-1][0].decode()}"
        return out

    async def last_id(self, topic: str, upto: StreamId | None = None) -> str | None:
        top = "+" if upto is None else ids.fmt(upto)
        rows = entries(await self._r.xrevrange(self._k.stream(topic), max=top, min="-", count=1))
        return rows[0][0].decode() if rows else None

    async def length(self, topic: str) -> int:
        return int(await self._r.xlen(self._k.stream(topic)))
