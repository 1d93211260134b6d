"""Every request validation rule of the publish endpoints (reference §3.3), the reference's check
order (malformed JSON, then auth, then schema), and the Idempotency-Key header rule."""

from __future__ import annotations

from typing import Any

import pytest

from tests.ingest.conftest import Ingest

OK = {"topic": "t", "payload": {"a": 1}}

INVALID_SINGLE: list[tuple[str, Any, list[Any]]] = [
    ("invalid characters", {"topic": "invalid@topic!", "payload": {}}, ["body", "topic"]),
    ("empty topic", {"topic": "", "payload": {}}, ["body", "topic"]),
    ("only separators", {"topic": "---", "payload": {}}, ["body", "topic"]),
    ("colon in topic", {"topic": "a:b", "payload": {}}, ["body", "topic"]),
    ("topic too long", {"topic": "x" * 256, "payload": {}}, ["body", "topic"]),
    ("topic not a string", {"topic": 5, "payload": {}}, ["body", "topic"]),
    ("missing topic", {"payload": {}}, ["body", "topic"]),
    ("missing payload", {"topic": "t"}, ["body", "payload"]),
    ("payload array", {"topic": "t", "payload": [1, 2]}, ["body", "payload"]),
    ("payload string", {"topic": "t", "payload": "text"}, ["body", "payload"]),
    ("payload number", {"topic": "t", "payload": 5}, ["body", "payload"]),
    ("payload null", {"topic": "t", "payload": None}, ["body", "payload"]),
    ("ttl negative", {"topic": "t", "payload": {}, "ttl": -1}, ["body", "ttl"]),
    ("ttl zero", {"topic": "t", "payload": {}, "ttl": 0}, ["body", "ttl"]),
    ("ttl bool", {"topic": "t", "payload": {}, "ttl": True}, ["body", "ttl"]),
    ("ttl fraction", {"topic": "t", "payload": {}, "ttl": 1.5}, ["body", "ttl"]),
    ("ttl text", {"topic": "t", "payload": {}, "ttl": "soon"}, ["body", "ttl"]),
    ("metadata int value", {"topic": "t", "payload": {}, "metadata": {"a": 1}}, ["body", "metadata"]),
    ("metadata null value", {"topic": "t", "payload": {}, "metadata": {"a": None}}, ["body", "metadata"]),
    ("metadata list", {"topic": "t", "payload": {}, "metadata": ["a"]}, ["body", "metadata"]),
    ("body is an array", [OK], ["body"]),
]


@pytest.mark.parametrize(("case", "body", "loc"), INVALID_SINGLE, ids=[c[0] for c in INVALID_SINGLE])
async def test_invalid_single_message_is_422_naming_the_field(
    svc: Ingest, case: str, body: Any, loc: list[Any]
) -> None:
    """Each invalid message gets 422 with a FastAPI-style item whose loc names the field."""
    _, alice = await svc.user("alice")
    r = await alice.post("/api/v1/messages", json=body)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, list) and detail
    assert {"type", "loc", "msg"} <= set(detail[0])
    assert detail[0]["loc"] == loc
    assert await svc.backend.topics.all_names() == []


@pytest.mark.parametrize("case", INVALID_SINGLE[:-1], ids=[c[0] for c in INVALID_SINGLE[:-1]])
async def test_one_invalid_bulk_item_rejects_the_whole_bulk(
    svc: Ingest, case: tuple[str, Any, list[Any]]
) -> None:
    """One invalid item anywhere makes the whole bulk 422 (loc names its index); nothing is stored."""
    _, alice = await svc.user("alice")
    _, body, loc = case
    r = await alice.post("/api/v1/messages/bulk", json={"messages": [OK, OK, body]})
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["body", "messages", 2, *loc[1:]]
    assert await svc.backend.messages.length("t") == 0


@pytest.mark.parametrize(
    "body",
    [{"messages": []}, {"messages": [OK] * 101}, {}, {"messages": OK}, {"messages": None}],
    ids=["empty", "101", "missing", "not a list", "null"],
)
async def test_bulk_size_and_shape_rules(svc: Ingest, body: Any) -> None:
    """A bulk needs 1..100 messages in a list: 0, 101, missing or not a list is 422."""
    _, alice = await svc.user("alice")
    r = await alice.post("/api/v1/messages/bulk", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"][:2] == ["body", "messages"]


async def test_accepted_edge_values(svc: Ingest) -> None:
    """Unicode letters, '_' and '-', 255 chars, ttl given as "5" or 5.0, empty metadata: accepted."""
    _, alice = await svc.user("alice")
    for body in [
        {"topic": "café_日本-1", "payload": {}},
        {"topic": "x" * 255, "payload": {}},
        {"topic": "t", "payload": {}, "ttl": "5"},
        {"topic": "t", "payload": {}, "ttl": 5.0},
        {"topic": "t", "payload": {}, "ttl": None, "metadata": None},
        {"topic": "t", "payload": {}, "metadata": {}},
    ]:
        r = await alice.post("/api/v1/messages", json=body)
        assert r.status_code == 201, (body, r.text)


async def test_all_topic_and_payload_problems_of_a_bulk_are_listed(svc: Ingest) -> None:
    """Topic and payload problems of every item are reported together, each with its index."""
    _, alice = await svc.user("alice")
    bad = [{"topic": "a b", "payload": {}}, OK, {"topic": "ok", "payload": []}]
    r = await alice.post("/api/v1/messages/bulk", json={"messages": bad})
    assert r.status_code == 422
    assert [d["loc"] for d in r.json()["detail"]] == [
        ["body", "messages", 0, "topic"],
        ["body", "messages", 2, "payload"],
    ]


@pytest.mark.parametrize("path", ["/api/v1/messages", "/api/v1/messages/bulk"])
async def test_malformed_json_is_422_json_invalid_even_before_auth(svc: Ingest, path: str) -> None:
    """A body that is not JSON at all fails first (422 json_invalid), with or without a token."""
    _, alice = await svc.user("alice")
    for client in (alice, svc.client()):
        for raw in (b'{"topic": "t", "payload": {', b'{"topic": 5, oops}', b"{} trailing", b"nul"):
            r = await client.post(path, content=raw, headers={"content-type": "application/json"})
            assert r.status_code == 422, (raw, r.text)
            assert r.json()["detail"][0]["type"] == "json_invalid"


async def test_absurdly_deep_json_is_422_not_a_crash(svc: Ingest) -> None:
    """JSON nested deeper than the decoder allows is rejected as invalid JSON, not a 500."""
    _, alice = await svc.user("alice")
    raw = b'{"topic": "t", "payload": {"a": ' + b"[" * 50_000 + b"]" * 50_000 + b"}}"
    r = await alice.post("/api/v1/messages", content=raw)
    assert r.status_code == 422
    assert r.json()["detail"][0]["type"] == "json_invalid"


async def test_body_that_is_not_utf8_is_400(svc: Ingest) -> None:
    """Bytes that are not UTF-8 cannot be parsed: 400, as the reference."""
    _, alice = await svc.user("alice")
    r = await alice.post("/api/v1/messages", content=b'{"topic": "t", "payload": {"a": "\xff"}}')
    assert r.status_code == 400
    assert r.json() == {"detail": "There was an error parsing the body"}


@pytest.mark.parametrize("path", ["/api/v1/messages", "/api/v1/messages/bulk"])
async def test_auth_is_checked_before_schema_validation(svc: Ingest, path: str) -> None:
    """Valid JSON with an invalid schema: 401 without a token, 403 without write, 422 only after."""
    _, reader = await svc.user("reader", ["read"])
    r = await svc.client().post(path, json={"topic": "bad topic"})
    assert r.status_code == 401
    r = await reader.post(path, json={"topic": "bad topic"})
    assert r.status_code == 403
    r = await svc.client().post(path)  # empty body: missing, but still auth first
    assert r.status_code == 401


async def test_empty_body_is_422_missing(svc: Ingest) -> None:
    """An authenticated request without a body gets 422 'missing' at loc ["body"]."""
    _, alice = await svc.user("alice")
    r = await alice.post("/api/v1/messages")
    assert r.status_code == 422
    assert r.json()["detail"][0]["type"] == "missing" and r.json()["detail"][0]["loc"] == ["body"]


async def test_json_is_accepted_whatever_the_content_type(svc: Ingest) -> None:
    """A JSON body sent without (or with another) Content-Type is still read as JSON."""
    _, alice = await svc.user("alice")
    for ct in ("text/plain", "application/x-www-form-urlencoded"):
        r = await alice.post(
            "/api/v1/messages", content=b'{"topic":"t","payload":{}}', headers={"content-type": ct}
        )
        assert r.status_code == 201, r.text


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9", "tab\there"])
async def test_bad_idempotency_key_is_422_naming_the_header(svc: Ingest, key: str) -> None:
    """Idempotency-Key must be 1..255 printable ASCII characters; otherwise 422 at the header."""
    _, alice = await svc.user("alice")
    r = await alice.post("/api/v1/messages", json=OK, headers=[(b"Idempotency-Key", key.encode("latin-1"))])
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["header", "idempotency-key"]
    assert await svc.backend.messages.length("t") == 0


async def test_a_control_character_in_a_header_is_refused_by_the_server(svc: Ingest) -> None:
    """A header value HTTP forbids (DEL) never reaches the app: the server answers 400 with a
    reason, and nothing is stored."""
    _, alice = await svc.user("alice")
    r = await alice.post("/api/v1/messages", json=OK, headers=[(b"Idempotency-Key", b"\x7f")])
    assert r.status_code == 400, r.text
    assert r.text, "no reason given"
    assert await svc.backend.messages.length("t") == 0


async def test_good_idempotency_keys_are_accepted(svc: Ingest) -> None:
    """A uuid4 hex (the real client's), 255 chars and punctuation with spaces are all valid keys."""
    _, alice = await svc.user("alice")
    for key in ("0" * 32, "k" * 255, "a b:c/d{e}"):
        r = await alice.post("/api/v1/messages", json=OK, headers={"Idempotency-Key": key})
        assert r.status_code == 201, r.text
