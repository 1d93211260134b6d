"""Promise: Valkey SIGKILLed and restarted from its AOF (``appendfsync always``) during a publish
run keeps every publish that got a 2xx; publishes during the outage get 503 and, retried with the
same ``Idempotency-Key``, are stored exactly once."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import Counter

import httpx
import pytest
import redis.asyncio as aredis

from relaycore.keys import Keys
from tests.reliability.clients import Producer, sort_ids
from tests.reliability.harness import PARTITIONS, Services, bearer, identity
from tests.reliability.test_gateway_kill import until
from tests.support.valkey import ValkeyServer

TOPICS = ["aof-a", "aof-b", "aof-c", "aof-d"]
AT_LEAST = 1500
KILLS = 2


@pytest.mark.slow
async def test_valkey_sigkill_keeps_every_acknowledged_publish(
    private_valkey: ValkeyServer, relay_procs: Services
) -> None:
    """Three producers (singles and bulks, each with its own key) through two Valkey SIGKILLs:
    afterwards the streams hold exactly the acknowledged messages, each logical message once."""
    url = private_valkey.url
    _, token = await identity(url, "producer")
    ingest = await relay_procs.start("ingest", PULSAR_VALKEY_TIMEOUT="1")
    producers = [Producer(ingest.url, token) for _ in range(3)]
    sent: Counter[str] = Counter()  # logical message -> acknowledged how many times
    counter = itertools.count()
    done = asyncio.Event()
    outage_statuses: list[int] = []

    def total() -> int:
        return sum(p.total for p in producers)

    async def produce(p: Producer) -> None:
        for request in itertools.count():
            if done.is_set():
                return
            n = next(counter)
            if request % 4 == 0:
                batch = [(TOPICS[(n + k) % len(TOPICS)], {"uid": f"{n}.{k}"}) for k in range(10)]
                await p.bulk(batch)
                sent.update(item["uid"] for _, item in batch)
            else:
                await p.single(TOPICS[n % len(TOPICS)], {"uid": str(n)})
                sent[str(n)] += 1

    async def chaos() -> None:
        async with httpx.AsyncClient(base_url=ingest.url, headers=bearer(token), timeout=30) as c:
            for kill in range(KILLS):
                mark = total()
                await until(lambda m=mark: total() >= m + AT_LEAST // (KILLS + 1))
                private_valkey.kill()
                # A publish while Valkey is down: 503, and the same key later succeeds once.
                key = f"outage-{kill}"
                body = {"topic": TOPICS[0], "payload": {"uid": key}}
                r = await c.post("/api/v1/messages", json=body, headers={"Idempotency-Key": key})
                outage_statuses.append(r.status_code)
                assert r.json() == {"detail": "Storage is unavailable, retry later"}
                await asyncio.to_thread(private_valkey.start)
                retried = await producers[0].single(TOPICS[0], {"uid": key}, key=key)
                again = await c.post("/api/v1/messages", json=body, headers={"Idempotency-Key": key})
                assert again.status_code == 201 and again.json()["message_id"] == retried
                assert again.headers.get("idempotent-replayed") == "true"
                sent[key] += 1
            mark = total()
            await until(lambda: total() >= max(AT_LEAST, mark + 100))
        done.set()

    try:
        await asyncio.gather(chaos(), *(produce(p) for p in producers))
    finally:
        for p in producers:
            await p.aclose()

    assert outage_statuses == [503] * KILLS
    acked = {t: sort_ids([m for p in producers for m in p.acked.get(t, [])]) for t in TOPICS}
    r = aredis.Redis.from_url(url)
    keys = Keys("relay", PARTITIONS)
    stored: dict[str, list[str]] = {}
    uids: Counter[str] = Counter()
    for t in TOPICS:
        rows = await r.xrange(keys.stream(t))
        stored[t] = [i.decode() for i, _ in rows]
        uids.update(json.loads(f[b"p"])["uid"] for _, f in rows)
    await r.aclose()
    lost = {t: sorted(set(acked[t]) - set(stored[t])) for t in TOPICS}
    assert not any(lost.values()), f"acknowledged but gone after the restart: {lost}"
    assert stored == acked, "nothing stored that was not acknowledged"
    assert uids == Counter(dict.fromkeys(sent, 1)), "every logical message stored exactly once"
    assert all(n == 1 for n in sent.values()), "each logical message acknowledged once"
    retried = sum(p.unavailable + p.transport_errors for p in producers)
    assert retried > 0, "producers were caught by the outages"
    print(
        f"\nvalkey-kill: {total()} messages acknowledged, {KILLS} SIGKILLs,"
        f" {retried} retried requests, {sum(p.replayed for p in producers)} replayed answers"
    )


async def test_durability_setting_is_documented() -> None:
    """docs/OPERATIONS.md names the Valkey setting this promise needs and its trade-off."""
    from tests.reliability.harness import ROOT

    text = (ROOT / "docs" / "OPERATIONS.md").read_text()
    assert "appendfsync always" in text and "everysec" in text
