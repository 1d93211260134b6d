"""Single and bulk publish over real HTTP: response shapes, what is stored, auto-created topics;
on the Valkey and the memory backend alike."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import msgspec

from relaycore import ids
from tests.ingest.conftest import Ingest

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z$")


async def test_publish_returns_201_with_id_topic_and_timestamp(any_svc: Ingest) -> None:
    """A full publish (ttl, metadata) answers 201 {message_id, topic, timestamp...Z}."""
    _, alice = await any_svc.user("alice")
    r = await alice.post(
        "/api/v1/messages",
        json={"topic": "jobs", "payload": {"a": 1}, "ttl": 60, "metadata": {"k": "v"}},
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == {"message_id", "topic", "timestamp"}
    assert ids.parse(body["message_id"]) is not None
    assert body["topic"] == "jobs"
    assert TIMESTAMP.match(body["timestamp"])


async def test_minimal_publish_is_stored_compactly_with_same_id(any_svc: Ingest) -> None:
    """Only topic + payload: stored under the returned id, payload re-encoded compactly, no metadata."""
    _, alice = await any_svc.user("alice")
    raw = b'{ "topic" : "jobs",\n  "payload" : { "b" : [1, 2.50, "x y"],  "a" : {} } }'
    r = await alice.post("/api/v1/messages", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 201, r.text
    stored = await any_svc.backend.messages.read_after("jobs", None, 10)
    assert [m.message_id for m in stored] == [r.json()["message_id"]]
    assert stored[0].payload == b'{"b":[1,2.50,"x y"],"a":{}}'
    assert stored[0].metadata is None and stored[0].expires_at_ms is None
    assert stored[0].timestamp == r.json()["timestamp"]


async def test_metadata_and_unicode_payload_round_trip(any_svc: Ingest) -> None:
    """Metadata is kept as a compact string map; non-ASCII payload text is stored byte for byte."""
    _, alice = await any_svc.user("alice")
    payload = {"name": "café ☕", "nested": {"list": [None, True, 1.5]}}
    r = await alice.post(
        "/api/v1/messages", json={"topic": "日本", "payload": payload, "metadata": {"a": "1", "b": ""}}
    )
    assert r.status_code == 201, r.text
    [m] = await any_svc.backend.messages.read_after("日本", None, 10)
    assert msgspec.json.decode(m.payload) == payload
    assert m.metadata == b'{"a":"1","b":""}'


async def test_extra_fields_are_ignored(any_svc: Ingest) -> None:
    """Unknown fields in a message are ignored, as the reference's model does."""
    _, alice = await any_svc.user("alice")
    r = await alice.post("/api/v1/messages", json={"topic": "t", "payload": {}, "priority": 5, "x": None})
    assert r.status_code == 201, r.text


async def test_publish_auto_creates_private_topic_owned_by_publisher(any_svc: Ingest) -> None:
    """Publishing to a missing topic creates it, private, owned by the publisher."""
    alice_user, alice = await any_svc.user("alice")
    assert (await alice.post("/api/v1/messages", json={"topic": "fresh", "payload": {}})).status_code == 201
    topic = await any_svc.backend.topics.get("fresh")
    assert topic is not None and topic.owner_id == alice_user.user_id and not topic.is_public
    assert topic.description == "Auto-created topic by alice"


async def test_ids_increase_per_topic_across_requests(any_svc: Ingest) -> None:
    """Successive publishes to one topic get strictly increasing ids, in the order stored."""
    _, alice = await any_svc.user("alice")
    got = []
    for i in range(20):
        r = await alice.post("/api/v1/messages", json={"topic": "seq", "payload": {"i": i}})
        got.append(ids.parse(r.json()["message_id"]))
    assert got == sorted(got) and len(set(got)) == 20  # type: ignore[type-var]
    stored = await any_svc.backend.messages.read_after("seq", None, 100)
    assert [msgspec.json.decode(m.payload)["i"] for m in stored] == list(range(20))


async def test_bulk_returns_207_results_in_input_order(any_svc: Ingest) -> None:
    """Bulk: 207, one accepted result per input in input order, summary totals."""
    _, alice = await any_svc.user("alice")
    topics = ["b1", "b2", "b1", "b3", "b2"]
    r = await alice.post(
        "/api/v1/messages/bulk",
        json={"messages": [{"topic": t, "payload": {"i": i}} for i, t in enumerate(topics)]},
    )
    assert r.status_code == 207, r.text
    body = r.json()
    assert [x["topic"] for x in body["results"]] == topics
    assert all(x["status"] == "accepted" and x["error"] is None for x in body["results"])
    assert body["summary"] == {"total": 5, "accepted": 5, "rejected": 0}
    for t in ("b1", "b2", "b3"):
        stored = await any_svc.backend.messages.read_after(t, None, 10)
        expected = [x["message_id"] for x in body["results"] if x["topic"] == t]
        assert [m.message_id for m in stored] == expected
        assert [msgspec.json.decode(m.payload)["i"] for m in stored] == [
            i for i, x in enumerate(topics) if x == t
        ]


async def test_bulk_of_100_is_accepted(any_svc: Ingest) -> None:
    """The largest bulk (100 messages) is accepted and stored in order."""
    _, alice = await any_svc.user("alice")
    r = await alice.post(
        "/api/v1/messages/bulk",
        json={"messages": [{"topic": "big", "payload": {"i": i}} for i in range(100)]},
    )
    assert r.status_code == 207, r.text
    assert await any_svc.backend.messages.length("big") == 100


async def test_ttl_is_stored_as_expiry_from_receipt(any_svc: Ingest) -> None:
    """ttl becomes an absolute expiry: receipt time (the response timestamp) + ttl seconds."""
    _, alice = await any_svc.user("alice")
    r = await alice.post("/api/v1/messages", json={"topic": "ttl", "payload": {}, "ttl": 30})
    [m] = await any_svc.backend.messages.read_after("ttl", None, 10)
    received = datetime.fromisoformat(r.json()["timestamp"])
    assert m.expires_at_ms == (received - EPOCH) // timedelta(milliseconds=1) + 30_000


async def test_large_payload_is_stored_byte_for_byte(any_svc: Ingest) -> None:
    """A payload of several hundred KiB (long strings, many keys) is stored exactly, compacted."""
    _, alice = await any_svc.user("alice")
    payload = {"blob": "é" * 100_000, **{f"k{i}": i for i in range(5000)}}
    r = await alice.post("/api/v1/messages", json={"topic": "large", "payload": payload})
    assert r.status_code == 201, r.text
    [m] = await any_svc.backend.messages.read_after("large", None, 10)
    assert m.payload == msgspec.json.encode(payload)
