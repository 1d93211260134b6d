"""Message storage contract, run against the memory and the Valkey backend alike."""

from __future__ import annotations

import uuid

import pytest

from relaycore import ids, metrics
from relaycore.errors import Forbidden, InvalidInput
from relaycore.models import NewMessage, User, iso_z, utcnow
from relaycore.store.base import Backend

ALICE = User(user_id="u-alice", username="alice", permissions=["read", "write"])
BOB = User(user_id="u-bob", username="bob", permissions=["read", "write"])
ADMIN = User(user_id="u-admin", username="admin", permissions=["admin", "read", "write"])


def msg(topic: str, n: int, **kw: object) -> NewMessage:
    return NewMessage(topic=topic, payload=b'{"n":%d}' % n, timestamp=iso_z(utcnow()), **kw)  # type: ignore[arg-type]


async def publish(
    backend: Backend, user: User, *messages: NewMessage, key: str | None = None, kind: str = "bulk"
):
    return await backend.messages.publish(
        list(messages),
        user=user,
        kind=kind,
        idempotency_key=key,
        idempotency_ttl=600,  # type: ignore[arg-type]
        topic_ids=[uuid.uuid4().hex for _ in messages],
    )


async def test_publish_assigns_increasing_stream_ids(backend: Backend) -> None:
    """Ids are '<ms>-<seq>' and strictly increase within a topic."""
    result = await publish(backend, ALICE, *(msg("jobs", i) for i in range(5)))
    parsed = [ids.parse(i) for i in result.message_ids]
    assert all(p is not None for p in parsed)
    assert parsed == sorted(parsed) and len(set(parsed)) == 5  # type: ignore[type-var]


async def test_publish_auto_creates_topic_owned_by_publisher(backend: Backend) -> None:
    """A publish to a missing topic creates it, private, owned by the publisher."""
    await publish(backend, ALICE, msg("fresh", 1))
    topic = await backend.topics.get("fresh")
    assert topic is not None and topic.owner_id == ALICE.user_id and not topic.is_public
    assert topic.description == "Auto-created topic by alice"
    assert (await backend.topics.names_for(ALICE.user_id))[0] == ["fresh"]


async def test_publish_to_foreign_topic_is_denied_and_writes_nothing(backend: Backend) -> None:
    """Only owner or admin may publish; a bulk touching a foreign topic writes nothing at all."""
    await publish(backend, ALICE, msg("a-topic", 1))
    with pytest.raises(Forbidden) as exc:
        await publish(backend, BOB, msg("b-topic", 1), msg("a-topic", 2))
    assert "a-topic" in exc.value.detail
    assert await backend.topics.get("b-topic") is None
    assert await backend.messages.length("a-topic") == 1
    await publish(backend, ADMIN, msg("a-topic", 3))
    assert await backend.messages.length("a-topic") == 2


async def test_idempotency_key_repeat_returns_first_result(backend: Backend) -> None:
    """A repeated key with the same request returns the original ids and stores nothing new; with
    another request it raises InvalidInput and stores nothing; another user's key is their own."""
    first = await publish(backend, ALICE, msg("idem", 1), key="k1")
    again = await publish(backend, ALICE, msg("idem", 1), key="k1")
    assert again.duplicate and again.message_ids == first.message_ids
    for other in (msg("idem", 2), msg("idem-elsewhere", 1)):
        with pytest.raises(InvalidInput):
            await publish(backend, ALICE, other, key="k1")
    assert await backend.messages.length("idem") == 1
    assert await backend.messages.length("idem-elsewhere") == 0
    other_user = await publish(backend, ADMIN, msg("idem", 3), key="k1")
    assert not other_user.duplicate


async def test_read_after_and_before_are_exclusive_and_ordered(backend: Backend) -> None:
    """read_after is ascending after an exclusive bound; read_before descending before one."""
    r = await publish(backend, ALICE, *(msg("pages", i) for i in range(10)))
    mid = ids.parse(r.message_ids[4])
    after = await backend.messages.read_after("pages", mid, 3)
    assert [m.message_id for m in after] == r.message_ids[5:8]
    before = await backend.messages.read_before("pages", mid, 3)
    assert [m.message_id for m in before] == list(reversed(r.message_ids[1:4]))
    assert [m.message_id for m in await backend.messages.read_after("pages", None, 100)] == r.message_ids
    assert await backend.messages.read_after("pages", ids.parse(r.message_ids[-1]), 5) == []


def expired() -> float:
    return metrics.REGISTRY.get_sample_value("relay_messages_expired_total") or 0.0


async def test_expired_messages_are_not_returned(backend: Backend) -> None:
    """A message past its ttl is never read back, and each read that skips it counts it in
    relay_messages_expired_total (as the cache and live dispatch do)."""
    await publish(backend, ALICE, msg("ttl", 1, expires_at_ms=1), msg("ttl", 2))
    before = expired()
    got = await backend.messages.read_after("ttl", None, 10)
    assert [m.payload for m in got] == [b'{"n":2}']
    assert [m.payload for m in await backend.messages.read_before("ttl", None, 10)] == [b'{"n":2}']
    assert expired() == before + 2


async def test_delete_topic_removes_its_messages(backend: Backend) -> None:
    """Deleting a topic deletes its messages; re-creating the name starts empty."""
    await publish(backend, ALICE, msg("gone", 1))
    assert await backend.topics.delete("gone")
    assert await backend.messages.read_after("gone", None, 10) == []
    await publish(backend, BOB, msg("gone", 2))
    topic = await backend.topics.get("gone")
    assert topic is not None and topic.owner_id == BOB.user_id


async def test_fanout_group_reads_every_message_once_then_acks(backend: Backend) -> None:
    """A consumer group sees each published message once, in order per topic; pending until acked."""
    await backend.fanout.join("gw:test")
    r = await publish(backend, ALICE, *(msg("fan", i) for i in range(7)))
    batches = await backend.fanout.read("gw:test", count=100, block=0.5)
    got = [m for _, ms in batches for m in ms]
    assert [m.message_id for m in got] == r.message_ids
    assert all(m.topic == "fan" for m in got)
    assert await backend.fanout.read("gw:test", count=100, block=0.05) == []
    pending = await backend.fanout.read("gw:test", count=100, block=0, pending=True)
    assert sum(len(ms) for _, ms in pending) == 7
    await backend.fanout.ack("gw:test", {p: [m.message_id for m in ms] for p, ms in batches})
    assert await backend.fanout.read("gw:test", count=100, block=0, pending=True) == []
