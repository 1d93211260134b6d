"""Promise: an ingest process SIGKILLed mid-bulk leaves every bulk whole or absent: each 100-message
bulk's messages are all in the topic streams and the fan-out logs, or none of them are."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import Counter

import httpx
import pytest
import redis.asyncio as aredis

from relaycore.keys import Keys
from tests.reliability.harness import PARTITIONS, Services, bearer, identity
from tests.reliability.test_gateway_kill import until
from tests.support.valkey import ValkeyServer

TOPICS = [f"bulk-{i}" for i in range(6)]
SIZE = 100
PAD = "x" * 1000  # ~100 KiB bulks: a kill often lands while one is on the wire or in the script
KILLS = 3
BULKS_BETWEEN_KILLS = 25
PRODUCERS = 4


@pytest.mark.slow
async def test_ingest_sigkill_mid_bulk_is_all_or_nothing(
    private_valkey: ValkeyServer, relay_procs: Services
) -> None:
    """Four producers stream 100-message bulks over six topics while ingest is SIGKILLed three
    times: every acknowledged bulk is complete, every cut one complete or absent, in the topic
    streams and in the fan-out logs alike."""
    url = private_valkey.url
    _, token = await identity(url, "producer")
    ingest = await relay_procs.start("ingest")
    serial = itertools.count()
    acked: set[int] = set()
    cut: set[int] = set()  # bulks whose request died with the process: outcome unknown
    kills = 0

    async def produce(stop: asyncio.Event) -> None:
        async with httpx.AsyncClient(headers=bearer(token), timeout=30) as c:
            while not stop.is_set():
                b = next(serial)
                body = {
                    "messages": [
                        {"topic": TOPICS[(b + i) % len(TOPICS)], "payload": {"bulk": b, "i": i, "pad": PAD}}
                        for i in range(SIZE)
                    ]
                }
                try:
                    r = await c.post(ingest.url + "/api/v1/messages/bulk", json=body)
                except httpx.ConnectError:  # ingest is down: this bulk never left the client
                    await asyncio.sleep(0.05)
                    continue
                except httpx.TransportError:
                    cut.add(b)
                    await asyncio.sleep(0.05)
                    continue
                if r.status_code == 207:
                    acked.add(b)
                else:
                    assert r.status_code == 503, r.text
                    cut.add(b)

    stop = asyncio.Event()
    tasks = [asyncio.create_task(produce(stop)) for _ in range(PRODUCERS)]
    try:
        for _ in range(KILLS):
            mark = len(acked)
            await until(lambda m=mark: len(acked) >= m + BULKS_BETWEEN_KILLS)
            ingest.kill()
            kills += 1
            ingest = await relay_procs.restart(ingest)
        mark = len(acked)
        await until(lambda: len(acked) >= mark + BULKS_BETWEEN_KILLS)
    finally:
        stop.set()
        await asyncio.gather(*tasks)

    r = aredis.Redis.from_url(url)
    keys = Keys("relay", PARTITIONS)
    in_streams: Counter[int] = Counter()
    in_logs: Counter[int] = Counter()
    for t in TOPICS:
        for _, fields in await r.xrange(keys.stream(t)):
            in_streams[json.loads(fields[b"p"])["bulk"]] += 1
    for p in range(PARTITIONS):
        for _, fields in await r.xrange(keys.log(p)):
            in_logs[json.loads(fields[b"p"])["bulk"]] += 1
    await r.aclose()

    partial = {b: n for b, n in in_streams.items() if n != SIZE}
    assert not partial, f"bulks only partly in the topic streams: {partial}"
    assert in_logs == in_streams, "the fan-out logs hold exactly the bulks the streams hold"
    assert acked <= set(in_streams), f"acknowledged bulks missing: {sorted(acked - set(in_streams))}"
    assert set(in_streams) <= acked | cut, "nothing stored that was never sent"
    assert kills == KILLS and cut, "the kills cut bulks in flight"
    print(
        f"\ningest-kill: {len(acked)} bulks acknowledged, {KILLS} SIGKILLs, {len(cut)} bulks cut in flight"
        f" ({len(cut & set(in_streams))} stored whole, {len(cut - set(in_streams))} absent)"
    )
