"""A bulk publish whose topics lie in several partitions, on a Valkey Cluster.

Each partition has its own hash slot, and a cluster refuses a script whose keys span slots, so the
one atomic script of a single server becomes one script per partition:

1. a read-only pre-check over every topic (write access) and every partition's idempotency record;
2. then, in the order the partitions first appear in the request, the publish script once per
   partition group, each atomic, each with its own idempotency record (user, key, partition)
   that holds the whole request's context.

A repeat with the same Idempotency-Key skips the groups that have a record, so a bulk interrupted
half-way (a crash, a lost node) is completed exactly once by its retry; when every group has a
record the first answer is rebuilt.  What is weaker than on one server: a reader may see one
partition's messages before the next partition's are written, and a bulk interrupted without a
key stays half written.  A topic taken by someone else between the pre-check and its group's
script refuses that group and the ones after it (the earlier ones stay written).
"""

from __future__ import annotations

from collections.abc import Sequence

from relaycore.errors import Conflict, Forbidden
from relaycore.keys import Keys
from relaycore.models import NewMessage, User
from relaycore.store import fingerprint
from relaycore.store.base import PublishKind, PublishResult
from relaycore.store.valkey_publish import (
    Context,
    PublishScript,
    decode_record,
    denied_detail,
    encode_context,
)
from relaycore.valkey import Client


class PartlyWritten(Forbidden):
    """A partition refused after earlier partitions of the bulk were written."""


def assemble(topics: Sequence[str], by_partition: dict[int, list[str]], keys: Keys) -> list[str] | None:
    """Ids in request order from each partition's ids (in that partition's request order); None
    when the records do not fit the request (an Idempotency-Key reused for another body)."""
    taken = dict.fromkeys(by_partition, 0)
    out: list[str] = []
    for t in topics:
        p = keys.partition(t)
        got = by_partition.get(p)
        if got is None or taken[p] >= len(got):
            return None
        out.append(got[taken[p]])
        taken[p] += 1
    return out if all(taken[p] == len(ids) for p, ids in by_partition.items()) else None


class CrossPartitionBulk:
    def __init__(self, client: Client, keys: Keys, script: PublishScript) -> None:
        self._r: Client = client
        self._k = keys
        self._script = script

    def _idem(self, topic: str, user: User, key: str) -> str:
        return self._k.idempotency(topic, user.user_id, key)

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
        groups: dict[int, list[int]] = {}  # partition -> message indexes, in first-appearance order
        for i, m in enumerate(messages):
            groups.setdefault(self._k.partition(m.topic), []).append(i)
        first = {p: messages[idx[0]].topic for p, idx in groups.items()}
        topics = list(dict.fromkeys(m.topic for m in messages))
        async with self._r.pipeline(transaction=False) as pipe:  # split per node by the client
            if idempotency_key is not None:
                for p in groups:
                    pipe.get(self._idem(first[p], user, idempotency_key))
            for t in topics:
                pipe.hget(self._k.topic(t), "owner_id")
            replies = await pipe.execute()
        records = replies[: len(replies) - len(topics)]
        found = {p: rec for p, rec in zip(groups, records, strict=False) if rec is not None}
        repeat: tuple[Context, dict[int, list[str]]] | None = None
        digest = "" if idempotency_key is None else fingerprint.of(kind, messages)
        if found and idempotency_key is not None:
            ctx, _ = decode_record(next(iter(found.values())))
            fingerprint.require_same(ctx.digest, digest, idempotency_key)
            done = await self._records(ctx, user, idempotency_key, found)
            if done is not None:
                repeat = (ctx, done)
                if not self._script.waits:
                    return _repeat(ctx, done, self._k)
                # With WAIT, the scripts below answer 'dup' and confirm that replicas have them.

        owners = dict(zip(topics, replies[len(records) :], strict=True))
        denied = [
            t
            for t, owner in owners.items()
            if owner is not None and owner.decode() != user.user_id and not user.is_admin
            if self._k.partition(t) not in found
        ]
        if denied:
            raise Forbidden(denied_detail(denied, kind))

        context = "" if idempotency_key is None else encode_context(kind, messages, digest)
        written = {} if self._script.waits else {p: decode_record(rec)[1] for p, rec in found.items()}
        repeats: list[bytes] = []  # records a concurrent request with the same key wrote first
        for p, idx in groups.items():
            if p in written:
                continue  # written by an earlier attempt with this key
            reply = await self._script.run(
                [messages[i] for i in idx],
                [topic_ids[i] for i in idx],
                user=user,
                idem_key=None if idempotency_key is None else self._idem(first[p], user, idempotency_key),
                idempotency_ttl=idempotency_ttl,
                context=context,
            )
            if reply.status == "denied":
                if written:
                    raise PartlyWritten(denied_detail(reply.denied, kind))
                raise Forbidden(denied_detail(reply.denied, kind))
            if reply.status == "ok":
                written[p] = reply.ids
            else:
                raced, written[p] = decode_record(reply.stored)
                assert idempotency_key is not None
                fingerprint.require_same(raced.digest, digest, idempotency_key)
                repeats.append(reply.stored)
        if repeat is None and repeats and len(repeats) == len(groups):
            repeat = (decode_record(repeats[0])[0], written)  # it wrote all of it: a plain repeat
        if repeat is not None:
            return _repeat(*repeat, self._k)
        ids = assemble([m.topic for m in messages], written, self._k)
        if ids is None:
            raise Conflict("Idempotency-Key was used before for a different request")
        return PublishResult(
            kind=kind,
            message_ids=ids,
            topics=[m.topic for m in messages],
            timestamps=[m.timestamp for m in messages],
        )

    async def _records(
        self, ctx: Context, user: User, key: str, known: dict[int, bytes]
    ) -> dict[int, list[str]] | None:
        """Every partition's ids of the request ``ctx`` describes, or None if one is missing
        (that request did not complete)."""
        wanted = {self._k.partition(t): t for t in reversed(ctx.topics)}
        missing = [p for p in wanted if p not in known]
        got = dict(known)
        if missing:
            async with self._r.pipeline(transaction=False) as pipe:
                for p in missing:
                    pipe.get(self._idem(wanted[p], user, key))
                got |= {p: rec for p, rec in zip(missing, await pipe.execute(), strict=True)}
        if any(got.get(p) is None for p in wanted):
            return None
        return {p: decode_record(got[p])[1] for p in wanted}

    async def repeat(self, stored: bytes, here: int, user: User, key: str) -> PublishResult:
        """The first answer for a key whose record a one-partition publish found in partition
        ``here``: that record alone, or, for an earlier bulk over several partitions, all of its."""
        ctx, ids = decode_record(stored)
        if all(self._k.partition(t) == here for t in ctx.topics):
            return PublishResult(
                kind=ctx.kind, message_ids=ids, topics=ctx.topics, timestamps=ctx.timestamps, duplicate=True
            )
        done = await self._records(ctx, user, key, {here: stored})
        if done is None:
            raise Conflict(
                "Idempotency-Key belongs to an earlier bulk that did not complete; repeat that request"
            )
        return _repeat(ctx, done, self._k)


def _repeat(ctx: Context, by_partition: dict[int, list[str]], keys: Keys) -> PublishResult:
    ids = assemble(ctx.topics, by_partition, keys)
    if ids is None:
        raise Conflict("Idempotency-Key was used before for a different request")
    return PublishResult(
        kind=ctx.kind, message_ids=ids, topics=ctx.topics, timestamps=ctx.timestamps, duplicate=True
    )
