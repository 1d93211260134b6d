"""Publishes issued in one event-loop iteration share one Valkey round trip (single node), yet each
caller gets its own ids or its own error, and a flushed script cache is reloaded."""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
import redis.asyncio as aredis
from redis.exceptions import ResponseError

from relaycore.errors import Forbidden
from relaycore.models import NewMessage, Topic, User, iso_z, utcnow
from relaycore.store.base import PublishResult
from relaycore.store.valkey_backend import ValkeyBackend
from relaycore.store.valkey_batch import MAX_BATCH
from tests.conftest import make_settings
from tests.support.identity import make_user


@pytest.fixture
async def backend(valkey_url: str) -> AsyncIterator[ValkeyBackend]:
    b = ValkeyBackend(make_settings(valkey_url))
    try:
        yield b
    finally:
        await b.close()


@pytest.fixture
async def raw(valkey_url: str) -> AsyncIterator[aredis.Redis]:
    r = aredis.Redis.from_url(valkey_url)
    try:
        yield r
    finally:
        await r.aclose()


def message(topic: str, n: int) -> NewMessage:
    return NewMessage(topic=topic, payload=b'{"n":%d}' % n, timestamp=iso_z(utcnow()))


async def publish(backend: ValkeyBackend, user: User, topic: str, n: int) -> PublishResult:
    return await backend.messages.publish(
        [message(topic, n)],
        user=user,
        kind="single",
        idempotency_key=None,
        idempotency_ttl=60,
        topic_ids=[uuid.uuid4().hex],
    )


async def gather(*calls: Any) -> Sequence[Any]:
    """Start every call in the same loop iteration; results or exceptions, in order."""
    return await asyncio.gather(*calls, return_exceptions=True)


async def test_concurrent_publishes_each_get_their_own_ids(backend: ValkeyBackend) -> None:
    """40 publishes started together over 4 topics: each id is the one its topic's stream holds
    for it (ids are unique per topic; topics on different partitions may share one)."""
    alice, _ = await make_user(backend, "alice", ["read", "write"])
    topics = [f"t{i % 4}" for i in range(40)]
    results = await gather(*(publish(backend, alice, t, i) for i, t in enumerate(topics)))
    ids = [r.message_ids[0] for r in results]
    for t in set(topics):
        stored = await backend.messages.read_after(t, None, 100)
        assert [m.message_id for m in stored] == [i for i, tt in zip(ids, topics, strict=True) if tt == t]


async def test_a_denied_publish_does_not_fail_the_others_in_its_batch(backend: ValkeyBackend) -> None:
    """Among publishes started together, the one to a topic the user may not write is Forbidden
    (403 text as before); the others are stored."""
    alice, _ = await make_user(backend, "alice", ["read", "write"])
    bob, _ = await make_user(backend, "bob", ["read", "write"])
    topic = Topic(
        topic_id=uuid.uuid4().hex,
        topic_name="alices",
        owner_id=alice.user_id,
        is_public=False,
        created_at=iso_z(utcnow()),
    )
    await backend.topics.create(topic)
    results = await gather(
        publish(backend, bob, "bobs", 1), publish(backend, bob, "alices", 2), publish(backend, bob, "bobs", 3)
    )
    assert isinstance(results[1], Forbidden)
    assert results[1].detail == "Access denied to topic 'alices' (requires write permission)"
    assert [r.message_ids for r in (results[0], results[2])] == [
        [m.message_id] for m in await backend.messages.read_after("bobs", None, 10)
    ]
    assert await backend.messages.length("alices") == 0


async def test_a_failing_script_does_not_fail_the_others_in_its_batch(
    backend: ValkeyBackend, raw: aredis.Redis
) -> None:
    """A publish whose script fails (its topic stream key holds a string) raises that error; the
    publishes started with it are stored."""
    alice, _ = await make_user(backend, "alice", ["read", "write"])
    await raw.set(backend.keys.stream("broken"), "not a stream")
    results = await gather(*(publish(backend, alice, t, i) for i, t in enumerate(["ok", "broken", "ok"])))
    assert isinstance(results[1], ResponseError) and "WRONGTYPE" in str(results[1])
    assert [r.message_ids[0] for r in (results[0], results[2])] == [
        m.message_id for m in await backend.messages.read_after("ok", None, 10)
    ]


async def test_a_flushed_script_cache_is_reloaded_for_the_whole_batch(
    backend: ValkeyBackend, raw: aredis.Redis
) -> None:
    """After SCRIPT FLUSH (as after a Valkey restart), publishes started together all succeed."""
    alice, _ = await make_user(backend, "alice", ["read", "write"])
    await publish(backend, alice, "t", 0)
    await raw.script_flush()
    results = await gather(*(publish(backend, alice, "t", i) for i in range(1, 11)))
    assert all(isinstance(r, PublishResult) for r in results), results
    assert await backend.messages.length("t") == 11


async def test_publishes_started_together_share_one_connection(valkey_url: str, raw: aredis.Redis) -> None:
    """50 publishes started together on a fresh client open one Valkey connection per batch of at
    most MAX_BATCH (2 with 25), not 50: each batch went out as one pipelined round trip."""
    setup = ValkeyBackend(make_settings(valkey_url))
    try:
        alice, _ = await make_user(setup, "alice", ["read", "write"])
    finally:
        await setup.close()
    fresh = ValkeyBackend(make_settings(valkey_url))
    try:
        before = (await raw.info("stats"))["total_connections_received"]
        results = await gather(*(publish(fresh, alice, f"t{i % 5}", i) for i in range(50)))
        after = (await raw.info("stats"))["total_connections_received"]
    finally:
        await fresh.close()
    assert all(isinstance(r, PublishResult) for r in results), results
    assert after - before == math.ceil(50 / MAX_BATCH) < 50
