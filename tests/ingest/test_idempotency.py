"""Idempotency-Key (CONTRACT decision 5): a repeat from the same user returns the first response
and writes nothing, also when repeats race each other and when they hit different ingest processes."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx

from relaycore.store.valkey_backend import ValkeyBackend
from tests.conftest import make_settings
from tests.ingest.conftest import Ingest, IngestFactory, process_env
from tests.support.identity import make_user
from tests.support.serve import RelayProcess


def key() -> dict[str, str]:
    return {"Idempotency-Key": uuid.uuid4().hex}


async def test_repeat_returns_first_response_and_writes_nothing(any_svc: Ingest) -> None:
    """Same key, same user, same body: same status and body; one message stored."""
    _, alice = await any_svc.user("alice")
    k = key()
    first = await alice.post("/api/v1/messages", json={"topic": "t", "payload": {"n": 1}}, headers=k)
    assert first.status_code == 201
    assert "idempotent-replayed" not in first.headers
    for _ in range(2):
        again = await alice.post("/api/v1/messages", json={"topic": "t", "payload": {"n": 1}}, headers=k)
        assert again.status_code == 201
        assert again.content == first.content
        assert again.headers["idempotent-replayed"] == "true"
    assert await any_svc.backend.messages.length("t") == 1


async def test_key_reused_with_another_body_is_422_and_writes_nothing(any_svc: Ingest) -> None:
    """A key reused with another payload, metadata or topic (CONTRACT decision 5, the IETF draft)
    is a 422 naming the header; nothing is written and the first answer still repeats."""
    _, alice = await any_svc.user("alice")
    k = key()
    first = await alice.post("/api/v1/messages", json={"topic": "t", "payload": {"n": 1}}, headers=k)
    assert first.status_code == 201
    for body in (
        {"topic": "t", "payload": {"n": 2}},
        {"topic": "t", "payload": {"n": 1}, "metadata": {"k": "v"}},
        {"topic": "elsewhere", "payload": {"n": 1}},
    ):
        r = await alice.post("/api/v1/messages", json=body, headers=k)
        assert r.status_code == 422, r.text
        detail = r.json()["detail"][0]
        assert detail["loc"] == ["header", "idempotency-key"] and "different request" in detail["msg"]
    assert await any_svc.backend.messages.length("t") == 1
    assert await any_svc.backend.messages.length("elsewhere") == 0
    again = await alice.post("/api/v1/messages", json={"topic": "t", "payload": {"n": 1}}, headers=k)
    assert (again.status_code, again.content) == (201, first.content)


async def test_bulk_repeat_returns_first_207_body(any_svc: Ingest) -> None:
    """A repeated bulk returns the first 207 body byte for byte and stores nothing more."""
    _, alice = await any_svc.user("alice")
    k = key()
    body: dict[str, object] = {"messages": [{"topic": t, "payload": {}} for t in ("a", "b", "a")]}
    first = await alice.post("/api/v1/messages/bulk", json=body, headers=k)
    again = await alice.post("/api/v1/messages/bulk", json=body, headers=k)
    assert first.status_code == again.status_code == 207
    assert again.content == first.content
    assert await any_svc.backend.messages.length("a") == 2
    assert await any_svc.backend.messages.length("b") == 1


async def test_key_reused_on_the_other_endpoint_is_422(any_svc: Ingest) -> None:
    """A single-publish key sent again to bulk (the same message) is another request: 422, and
    nothing more is stored."""
    _, alice = await any_svc.user("alice")
    k = key()
    first = await alice.post("/api/v1/messages", json={"topic": "t", "payload": {}}, headers=k)
    assert first.status_code == 201
    again = await alice.post(
        "/api/v1/messages/bulk", json={"messages": [{"topic": "t", "payload": {}}]}, headers=k
    )
    assert again.status_code == 422, again.text
    assert again.json()["detail"][0]["loc"] == ["header", "idempotency-key"]
    assert await any_svc.backend.messages.length("t") == 1


async def test_same_key_from_another_user_is_a_new_publish(any_svc: Ingest) -> None:
    """Keys are per user: bob reusing alice's key publishes his own message."""
    _, alice = await any_svc.user("alice")
    _, bob = await any_svc.user("bob")
    k = key()
    a = await alice.post("/api/v1/messages", json={"topic": "ta", "payload": {}}, headers=k)
    b = await bob.post("/api/v1/messages", json={"topic": "tb", "payload": {}}, headers=k)
    assert a.status_code == b.status_code == 201
    assert "idempotent-replayed" not in b.headers
    assert b.json()["topic"] == "tb"
    assert await any_svc.backend.messages.length("tb") == 1


async def test_concurrent_repeats_all_get_the_same_answer(any_svc: Ingest) -> None:
    """20 simultaneous identical requests with one key: all 201 with identical bodies, one
    message stored."""
    _, alice = await any_svc.user("alice")
    k = key()
    replies = await asyncio.gather(
        *(
            alice.post("/api/v1/messages", json={"topic": "race", "payload": {"i": 1}}, headers=k)
            for _ in range(20)
        )
    )
    assert {r.status_code for r in replies} == {201}
    assert len({r.content for r in replies}) == 1
    assert sum("idempotent-replayed" not in r.headers for r in replies) == 1
    assert await any_svc.backend.messages.length("race") == 1


async def test_requests_without_key_are_never_deduplicated(svc: Ingest) -> None:
    """Identical requests without a key are separate publishes."""
    _, alice = await svc.user("alice")
    for _ in range(3):
        assert (await alice.post("/api/v1/messages", json={"topic": "t", "payload": {}})).status_code == 201
    assert await svc.backend.messages.length("t") == 3


async def test_a_key_is_forgotten_after_idempotency_ttl(start_ingest: IngestFactory) -> None:
    """Once settings.idempotency_ttl has passed, the same key publishes again."""
    svc = await start_ingest(idempotency_ttl=0.3)
    _, alice = await svc.user("alice")
    k = key()
    first = await alice.post("/api/v1/messages", json={"topic": "t", "payload": {}}, headers=k)
    deadline = time.monotonic() + 10
    while True:
        again = await alice.post("/api/v1/messages", json={"topic": "t", "payload": {}}, headers=k)
        if "idempotent-replayed" not in again.headers:
            break
        assert time.monotonic() < deadline, "the idempotency record never expired"
        await asyncio.sleep(0.05)
    assert again.json()["message_id"] != first.json()["message_id"]
    assert await svc.backend.messages.length("t") == 2


async def test_denied_or_invalid_requests_do_not_consume_the_key(svc: Ingest) -> None:
    """A 422 or 403 is not recorded: the same key then publishes normally."""
    _, owner = await svc.user("owner")
    _, alice = await svc.user("alice")
    await owner.post("/api/v1/messages", json={"topic": "theirs", "payload": {}})
    k = key()
    r = await alice.post("/api/v1/messages", json={"topic": "bad topic", "payload": {}}, headers=k)
    assert r.status_code == 422
    r = await alice.post("/api/v1/messages", json={"topic": "theirs", "payload": {}}, headers=k)
    assert r.status_code == 403
    r = await alice.post("/api/v1/messages", json={"topic": "mine", "payload": {}}, headers=k)
    assert r.status_code == 201 and "idempotent-replayed" not in r.headers


async def test_same_key_on_two_ingest_processes_stores_one_message(valkey_url: str) -> None:
    """Two ingest processes on one Valkey, the same key sent to both at once (several times):
    one message stored, every answer identical."""
    settings = make_settings(valkey_url)
    backend = ValkeyBackend(settings)
    env = process_env(valkey_url, settings)
    procs = [RelayProcess("ingest", env), RelayProcess("ingest", env)]
    try:
        _, token = await make_user(backend, "alice")
        await asyncio.gather(*(asyncio.to_thread(p.start) for p in procs))
        headers = {"Authorization": f"Bearer {token}", **key()}
        async with httpx.AsyncClient(headers=headers, timeout=30) as client:
            replies = await asyncio.gather(
                *(
                    client.post(f"{p.url}/api/v1/messages", json={"topic": "multi", "payload": {"i": 1}})
                    for _ in range(10)
                    for p in procs
                )
            )
        assert {r.status_code for r in replies} == {201}, [r.text for r in replies]
        assert len({r.content for r in replies}) == 1
        assert await backend.messages.length("multi") == 1
    finally:
        for p in procs:
            p.stop()
        await backend.close()
