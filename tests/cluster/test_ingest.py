"""Ingest on a Valkey Cluster over real HTTP: single and bulk publish inside one partition (one
atomic script, as on one server) and across partitions (one script per partition after a
read-only access check), idempotent repeats, a partial bulk completed by its retry exactly once,
and the replica-acknowledged publish setting."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from relaycore.keys import Keys
from relaycore.models import NewMessage, iso_z, utcnow
from relaycore.store import fingerprint
from relaycore.store.valkey_publish import PublishScript, encode_context
from relaycore.valkey import connect
from tests.cluster.placement import one_per_partition
from tests.ingest.conftest import Ingest, IngestFactory, start_ingest, svc

__all__ = ["start_ingest", "svc"]  # the ingest suite's fixtures, here over the cluster's valkey_url


def key() -> dict[str, str]:
    return {"Idempotency-Key": uuid.uuid4().hex}


async def stored(svc: Ingest, topic: str) -> list[tuple[str, int]]:
    return [
        (m.message_id, int(m.payload[5:-1])) for m in await svc.backend.messages.read_after(topic, None, 1000)
    ]


async def test_single_publish_and_one_partition_bulk(svc: Ingest) -> None:
    """Inside one partition nothing changes: 201 for a single message, 207 for a bulk, all stored."""
    _, alice = await svc.user("alice")
    r = await alice.post("/api/v1/messages", json={"topic": "solo", "payload": {"n": 0}})
    assert r.status_code == 201, r.text
    body = {"messages": [{"topic": "solo", "payload": {"n": n}} for n in range(1, 4)]}
    b = await alice.post("/api/v1/messages/bulk", json=body)
    assert b.status_code == 207, b.text
    ids = [r.json()["message_id"]] + [x["message_id"] for x in b.json()["results"]]
    assert await stored(svc, "solo") == list(zip(ids, range(4), strict=True))


async def test_bulk_across_every_partition_stores_each_message_once_in_order(svc: Ingest) -> None:
    """A bulk over topics of all partitions (all three nodes) answers ids in request order, and
    each topic holds exactly its messages, in order, under those ids."""
    _, alice = await svc.user("alice")
    topics = one_per_partition(svc.settings.fanout_partitions)
    plan = [topics[n % len(topics)] for n in range(20)]
    r = await alice.post(
        "/api/v1/messages/bulk",
        json={"messages": [{"topic": t, "payload": {"n": n}} for n, t in enumerate(plan)]},
    )
    assert r.status_code == 207, r.text
    results = r.json()["results"]
    assert [x["topic"] for x in results] == plan
    for t in topics:
        want = [(x["message_id"], n) for n, x in enumerate(results) if x["topic"] == t]
        assert await stored(svc, t) == want


async def test_cross_partition_bulk_with_a_foreign_topic_writes_nothing(svc: Ingest) -> None:
    """The access pre-check covers every partition: one foreign topic refuses the whole bulk and
    nothing is written anywhere (no topic created, no message stored)."""
    _, alice = await svc.user("alice")
    _, bob = await svc.user("bob")
    mine, theirs = one_per_partition(svc.settings.fanout_partitions)[:2]
    assert (
        await bob.post("/api/v1/messages", json={"topic": theirs, "payload": {"n": 0}})
    ).status_code == 201
    body = {"messages": [{"topic": mine, "payload": {"n": 1}}, {"topic": theirs, "payload": {"n": 2}}]}
    r = await alice.post("/api/v1/messages/bulk", json=body, headers=key())
    assert r.status_code == 403 and theirs in r.text
    assert await svc.backend.topics.get(mine) is None
    assert await svc.backend.messages.length(theirs) == 1


async def test_cross_partition_repeat_returns_the_first_body(svc: Ingest) -> None:
    """Repeating a cross-partition bulk's Idempotency-Key returns the first 207 body byte for byte and
    stores nothing more; the same key on the single-message endpoint is another request: 422."""
    _, alice = await svc.user("alice")
    topics = one_per_partition(svc.settings.fanout_partitions)
    k = key()
    body = {"messages": [{"topic": t, "payload": {"n": n}} for n, t in enumerate(topics * 2)]}
    first = await alice.post("/api/v1/messages/bulk", json=body, headers=k)
    again = await alice.post("/api/v1/messages/bulk", json=body, headers=k)
    single = await alice.post("/api/v1/messages", json={"topic": topics[1], "payload": {"n": 9}}, headers=k)
    assert first.status_code == again.status_code == 207
    assert again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"
    assert single.status_code == 422, single.text
    assert single.json()["detail"][0]["loc"] == ["header", "idempotency-key"]
    for t in topics:
        assert await svc.backend.messages.length(t) == 2


async def test_concurrent_cross_partition_repeats_store_once(svc: Ingest) -> None:
    """Ten simultaneous cross-partition bulks with one key: every answer carries the same ids,
    and each message is stored once."""
    _, alice = await svc.user("alice")
    topics = one_per_partition(svc.settings.fanout_partitions)
    k = key()
    body = {"messages": [{"topic": t, "payload": {"n": n}} for n, t in enumerate(topics * 3)]}
    replies = await asyncio.gather(
        *(alice.post("/api/v1/messages/bulk", json=body, headers=k) for _ in range(10))
    )
    assert {r.status_code for r in replies} == {207}
    assert len({tuple(x["message_id"] for x in r.json()["results"]) for r in replies}) == 1
    for t in topics:
        assert await svc.backend.messages.length(t) == 3


async def test_retry_completes_a_partially_written_bulk_exactly_once(svc: Ingest) -> None:
    """A bulk that died after its first partition's script (as a crashed ingest would leave it) is
    completed by a retry with the same key: the written part is not written again, the rest is
    written once, and the answer carries the ids of both."""
    alice, client = await svc.user("alice")
    topics = one_per_partition(svc.settings.fanout_partitions)
    plan = [topics[n % len(topics)] for n in range(8)]
    k = uuid.uuid4().hex
    now = iso_z(utcnow())
    messages = [NewMessage(topic=t, payload=b'{"n":%d}' % n, timestamp=now) for n, t in enumerate(plan)]
    first_group = [m for m in messages if m.topic == topics[0]]
    keys = Keys(svc.settings.key_prefix, svc.settings.fanout_partitions)
    client_ = connect(svc.settings)
    try:
        script = PublishScript(client_, keys, svc.settings)
        done = await script.run(
            first_group,
            [uuid.uuid4().hex] * len(first_group),
            user=alice,
            idem_key=keys.idempotency(topics[0], alice.user_id, k),
            idempotency_ttl=600,
            context=encode_context("bulk", messages, fingerprint.of("bulk", messages)),
        )
    finally:
        await client_.aclose()
    assert done.status == "ok"
    body = {"messages": [{"topic": t, "payload": {"n": n}} for n, t in enumerate(plan)]}
    r = await client.post("/api/v1/messages/bulk", json=body, headers={"Idempotency-Key": k})
    assert r.status_code == 207, r.text
    results = r.json()["results"]
    assert [x["message_id"] for x in results if x["topic"] == topics[0]] == done.ids
    for t in topics:
        want = [(x["message_id"], n) for n, x in enumerate(results) if x["topic"] == t]
        assert await stored(svc, t) == want
    again = await client.post("/api/v1/messages/bulk", json=body, headers={"Idempotency-Key": k})
    assert again.content == r.content and again.headers["idempotent-replayed"] == "true"


@pytest.mark.parametrize("bulk", [False, True])
async def test_publish_waiting_for_a_missing_replica_is_not_acknowledged(
    start_ingest: IngestFactory, bulk: bool
) -> None:
    """With publish_wait_replicas=1 and no replica to confirm, the answer is 503, and so is a
    retry with the same key (it is stored once, but never acknowledged)."""
    svc = await start_ingest(publish_wait_replicas=1, publish_wait_timeout=0.05)
    _, alice = await svc.user("alice")
    topics = one_per_partition(svc.settings.fanout_partitions)
    k = key()
    for _ in range(2):
        if bulk:
            body = {"messages": [{"topic": t, "payload": {"n": n}} for n, t in enumerate(topics)]}
            r = await alice.post("/api/v1/messages/bulk", json=body, headers=k)
        else:
            r = await alice.post(
                "/api/v1/messages", json={"topic": topics[0], "payload": {"n": 0}}, headers=k
            )
        assert r.status_code == 503 and "replicas" in r.text
    assert await svc.backend.messages.length(topics[0]) == 1


async def test_key_reused_on_another_partition_is_422_and_writes_nothing(svc: Ingest) -> None:
    """A key is the user's whatever the topic, as on one server: reused for a single publish, or a
    bulk, to a topic of another partition it is a 422 and nothing is written there."""
    _, alice = await svc.user("alice")
    a, b, c = one_per_partition(svc.settings.fanout_partitions)[:3]
    k = key()
    first = await alice.post("/api/v1/messages", json={"topic": a, "payload": {"n": 0}}, headers=k)
    other = await alice.post("/api/v1/messages", json={"topic": b, "payload": {"n": 0}}, headers=k)
    bulk = await alice.post(
        "/api/v1/messages/bulk",
        json={"messages": [{"topic": b, "payload": {"n": 1}}, {"topic": c, "payload": {"n": 2}}]},
        headers=k,
    )
    again = await alice.post("/api/v1/messages", json={"topic": a, "payload": {"n": 0}}, headers=k)
    assert first.status_code == 201, first.text
    for r in (other, bulk):
        assert r.status_code == 422, r.text
        assert r.json()["detail"][0]["loc"] == ["header", "idempotency-key"]
    assert again.status_code == 201 and again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"
    assert [await svc.backend.messages.length(t) for t in (a, b, c)] == [1, 0, 0]
    assert await svc.backend.topics.get(b) is None


async def test_another_users_key_is_their_own(svc: Ingest) -> None:
    """Keys are per user: bob's publish with alice's key on another partition is his own 201."""
    _, alice = await svc.user("alice")
    _, bob = await svc.user("bob")
    a, b = one_per_partition(svc.settings.fanout_partitions)[:2]
    k = key()
    assert (
        await alice.post("/api/v1/messages", json={"topic": a, "payload": {}}, headers=k)
    ).status_code == 201
    assert (
        await bob.post("/api/v1/messages", json={"topic": b, "payload": {}}, headers=k)
    ).status_code == 201


async def test_concurrent_publishes_with_one_key_over_partitions_accept_exactly_one(svc: Ingest) -> None:
    """Twelve simultaneous publishes with one key, each to another partition's topic (singles and
    bulks): exactly one is accepted, the rest are 422, and exactly its messages are stored."""
    _, alice = await svc.user("alice")
    topics = one_per_partition(svc.settings.fanout_partitions)
    k = key()
    requests = []
    for n in range(12):
        t, u = topics[n % len(topics)], topics[(n + 1) % len(topics)]
        if n % 2:
            requests.append(alice.post("/api/v1/messages", json={"topic": t, "payload": {"n": n}}, headers=k))
        else:
            bulk = {"messages": [{"topic": t, "payload": {"n": n}}, {"topic": u, "payload": {"n": n}}]}
            requests.append(alice.post("/api/v1/messages/bulk", json=bulk, headers=k))
    replies = await asyncio.gather(*requests)
    codes = [r.status_code for r in replies]
    assert codes.count(422) == 11 and len({201, 207} & set(codes)) == 1, codes
    won = next(r for r in replies if r.status_code != 422).json()
    want = len(won["results"]) if "results" in won else 1
    assert sum([await svc.backend.messages.length(t) for t in topics]) == want


async def test_retry_after_a_crash_between_claim_and_publish_stores_once(svc: Ingest) -> None:
    """An ingest that died after claiming the key and before publishing (the claim alone in
    Valkey): the retry with the same request stores it once, a later repeat gets that answer, and
    another request with the key is still a 422."""
    alice, client = await svc.user("alice")
    a, b = one_per_partition(svc.settings.fanout_partitions)[:2]
    k = uuid.uuid4().hex
    body = {"messages": [{"topic": a, "payload": {"n": 0}}, {"topic": b, "payload": {"n": 1}}]}
    now = iso_z(utcnow())
    messages = [
        NewMessage(topic=a, payload=b'{"n":0}', timestamp=now),
        NewMessage(topic=b, payload=b'{"n":1}', timestamp=now),
    ]
    keys = Keys(svc.settings.key_prefix, svc.settings.fanout_partitions)
    raw = connect(svc.settings)
    try:
        await raw.set(keys.user_idempotency(alice.user_id, k), fingerprint.of("bulk", messages), px=600_000)
    finally:
        await raw.aclose()
    h = {"Idempotency-Key": k}
    retry = await client.post("/api/v1/messages/bulk", json=body, headers=h)
    again = await client.post("/api/v1/messages/bulk", json=body, headers=h)
    other = await client.post("/api/v1/messages", json={"topic": a, "payload": {"n": 5}}, headers=h)
    assert retry.status_code == 207, retry.text
    assert again.content == retry.content and again.headers["idempotent-replayed"] == "true"
    assert other.status_code == 422, other.text
    assert [await svc.backend.messages.length(t) for t in (a, b)] == [1, 1]


async def test_key_of_a_refused_publish_can_be_used_again(svc: Ingest) -> None:
    """A publish refused (403) writes nothing, so its key is free again, as on one server: the
    same key then publishes another request to a topic of another partition (201)."""
    _, alice = await svc.user("alice")
    _, bob = await svc.user("bob")
    theirs, mine = one_per_partition(svc.settings.fanout_partitions)[:2]
    assert (await bob.post("/api/v1/messages", json={"topic": theirs, "payload": {}})).status_code == 201
    k = key()
    refused = await alice.post("/api/v1/messages", json={"topic": theirs, "payload": {"n": 1}}, headers=k)
    bulk = {"messages": [{"topic": mine, "payload": {"n": 1}}, {"topic": theirs, "payload": {"n": 2}}]}
    refused_bulk = await alice.post("/api/v1/messages/bulk", json=bulk, headers=k)
    ok = await alice.post("/api/v1/messages", json={"topic": mine, "payload": {"n": 3}}, headers=k)
    assert refused.status_code == refused_bulk.status_code == 403
    assert ok.status_code == 201, ok.text
    assert [await svc.backend.messages.length(t) for t in (theirs, mine)] == [1, 1]
