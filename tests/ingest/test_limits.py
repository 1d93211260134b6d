"""Body size limit (413), Valkey outage (503 with a JSON detail, then recovery without a restart)
and the publish metrics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import msgspec

from relaycore.store.valkey_backend import ValkeyBackend
from tests.conftest import make_settings
from tests.ingest.conftest import IngestFactory, process_env
from tests.support.identity import make_user
from tests.support.serve import RelayProcess
from tests.support.valkey import ValkeyServer


def big_body(size: int) -> bytes:
    return msgspec.json.encode({"topic": "t", "payload": {"pad": "x" * size}})


async def test_body_over_the_limit_is_413(start_ingest: IngestFactory) -> None:
    """A body longer than max_body_bytes (declared by Content-Length) is 413, also when it is
    megabytes long and the client sends all of it before reading; at the limit it is fine."""
    svc = await start_ingest(max_body_bytes=1000)
    _, alice = await svc.user("alice")
    for path in ("/api/v1/messages", "/api/v1/messages/bulk"):
        for size in (2000, 3_000_000):
            r = await alice.post(path, content=big_body(size))
            assert r.status_code == 413
            assert r.json() == {"detail": "Request body exceeds 1000 bytes"}
    ok = big_body(1000 - len(big_body(0)))
    assert len(ok) == 1000
    assert (await alice.post("/api/v1/messages", content=ok)).status_code == 201
    assert await svc.backend.messages.length("t") == 1


async def test_chunked_body_over_the_limit_is_413(start_ingest: IngestFactory) -> None:
    """Without a Content-Length (chunked upload) the limit still applies while reading: 413, which
    the client receives even though it keeps sending a multi-megabyte body."""
    svc = await start_ingest(max_body_bytes=1000)
    _, alice = await svc.user("alice")
    body = big_body(3_000_000)

    async def chunks() -> AsyncIterator[bytes]:
        yield body[:500]  # under the limit at first, then over it while still sending
        for i in range(500, len(body), 65536):
            yield body[i : i + 65536]

    r = await alice.post("/api/v1/messages", content=chunks())
    assert "content-length" not in r.request.headers
    assert r.status_code == 413
    assert await svc.backend.messages.length("t") == 0

    async def small() -> AsyncIterator[bytes]:
        yield b'{"topic": "t", '
        yield b'"payload": {}}'

    assert (await alice.post("/api/v1/messages", content=small())).status_code == 201


async def test_valkey_outage_is_503_and_publishing_resumes_when_it_returns() -> None:
    """With Valkey killed the service answers 503 {"detail": ...}; once Valkey is back on the same
    port the same service process publishes again (201), without being restarted."""
    # appendfsync always: with everysec a busy disk can postpone the AOF write of the first publish
    # past the SIGKILL (Valkey does so while a background fsync runs, up to 2 s), and this test is
    # about the outage, not about that trade (docs/OPERATIONS.md, "Durability").
    server = ValkeyServer(appendfsync="always").start()
    settings = make_settings(server.url)
    backend = ValkeyBackend(settings)
    proc = RelayProcess("ingest", process_env(server.url, settings))
    try:
        _, token = await make_user(backend, "alice")
        await asyncio.to_thread(proc.start)
        auth = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=proc.url, headers=auth, timeout=30) as c:
            msg = {"topic": "t", "payload": {}}
            assert (await c.post("/api/v1/messages", json=msg)).status_code == 201
            server.kill()
            for _ in range(3):
                r = await c.post("/api/v1/messages", json=msg)
                assert r.status_code == 503, r.text
                assert isinstance(r.json()["detail"], str) and r.json()["detail"]
            r = await c.post(
                "/api/v1/messages/bulk", json={"messages": [msg]}, headers={"Idempotency-Key": "k"}
            )
            assert r.status_code == 503
            assert (await c.get("/ready")).status_code == 503
            await asyncio.to_thread(server.start)
            deadline = time.monotonic() + 60
            while (r := await c.post("/api/v1/messages", json=msg)).status_code != 201:
                assert r.status_code == 503, r.text
                assert time.monotonic() < deadline, "publishing did not recover"
                await asyncio.sleep(0.1)
            r = await c.post(
                "/api/v1/messages/bulk", json={"messages": [msg]}, headers={"Idempotency-Key": "k"}
            )
            assert r.status_code == 207
        assert await backend.messages.length("t") == 3
    finally:
        proc.stop()
        await backend.close()
        server.cleanup()


async def test_publish_metrics_count_messages_latency_and_repeats(start_ingest: IngestFactory) -> None:
    """/metrics counts published messages per endpoint, publish latency and idempotent repeats."""
    svc = await start_ingest()
    _, alice = await svc.user("alice")

    async def sample(name: str, label: str = "") -> float:
        text = (await alice.get("/metrics")).text
        for line in text.splitlines():
            if line.startswith(name + label + " ") or (not label and line.startswith(name + " ")):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    single = await sample("relay_messages_published_total", '{endpoint="single"}')
    bulk = await sample("relay_messages_published_total", '{endpoint="bulk"}')
    repeats = await sample("relay_publish_idempotent_repeats_total")
    count = await sample("relay_publish_duration_seconds_count")
    await alice.post(
        "/api/v1/messages", json={"topic": "m", "payload": {}}, headers={"Idempotency-Key": "m1"}
    )
    await alice.post(
        "/api/v1/messages", json={"topic": "m", "payload": {}}, headers={"Idempotency-Key": "m1"}
    )
    await alice.post("/api/v1/messages/bulk", json={"messages": [{"topic": "m", "payload": {}}] * 3})
    assert await sample("relay_messages_published_total", '{endpoint="single"}') == single + 1
    assert await sample("relay_messages_published_total", '{endpoint="bulk"}') == bulk + 3
    assert await sample("relay_publish_idempotent_repeats_total") == repeats + 1
    assert await sample("relay_publish_duration_seconds_count") == count + 3
