"""The reference's own benchmark scenarios (pulsar-relay ``benchmarks/run_benchmarks.py``; see
reference-wire-contract.md section 13), ported to run unchanged in protocol against any relay,
ours or the reference: the same ten scenarios with the same parameters, topic names, payloads and
latency definitions, the same metrics table.  Auth is the seed's: one form login, a Bearer header
on HTTP, ``/ws?token=<jwt>``.  Loops the reference leaves unbounded stop at ``--deadline``.

    python -m bench.reference_scenarios --base-url http://127.0.0.1:8080 --username admin --password ...
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable
from dataclasses import dataclass, fields
from datetime import datetime

import httpx
import websockets

from bench.reference_client import BenchClient, login
from bench.reference_report import Result, print_result, print_summary


@dataclass(frozen=True)
class Params:
    """The arguments ``run_all_benchmarks`` passes; ``--tiny`` shrinks them for a smoke run."""

    single_messages: int = 1000
    bulk_batches: int = 100
    bulk_size: int = 50
    concurrent_messages: int = 1000
    concurrency: int = 20
    ws_clients: int = 50
    delivery_clients: int = 20
    delivery_per_topic: int = 50
    broadcast_clients: int = 30
    broadcast_messages: int = 50
    poll_requests: int = 10
    poll_concurrent_clients: int = 20
    poll_concurrent_timeout: int = 2
    poll_delivery_clients: int = 10
    poll_delivery_per_topic: int = 20
    comparison_messages: int = 50


TINY = Params(4, 2, 5, 8, 4, 4, 4, 3, 3, 3, 2, 3, 1, 2, 3, 3)


async def timed(latencies: list[float], call: Awaitable[httpx.Response]) -> bool:
    """Await one request; its latency counts only when it succeeded (2xx), as in the reference."""
    start = time.time()
    try:
        (await call).raise_for_status()
    except Exception as exc:
        print(f"Error: {exc}")
        return False
    latencies.append(time.time() - start)
    return True


async def s1_single(b: BenchClient, p: Params) -> list[Result]:
    lat: list[float] = []
    errors = 0
    async with b.http() as client:
        start = time.time()
        for i in range(p.single_messages):
            body = {"topic": f"benchmark-topic-{i % 10}", "payload": {"index": i, "data": f"message-{i}"}}
            errors += not await timed(lat, client.post("/api/v1/messages", json=body))
        duration = time.time() - start
    return [Result("Message Ingestion (Single)", duration, p.single_messages - errors, lat, errors)]


async def s2_bulk(b: BenchClient, p: Params) -> list[Result]:
    lat: list[float] = []
    errors = 0
    async with b.http() as client:
        start = time.time()
        for batch in range(p.bulk_batches):
            messages = [
                {"topic": f"benchmark-bulk-{i % 5}", "payload": {"batch": batch, "index": i}}
                for i in range(p.bulk_size)
            ]
            errors += not await timed(lat, client.post("/api/v1/messages/bulk", json={"messages": messages}))
        duration = time.time() - start
    ops = p.bulk_batches * p.bulk_size - errors * p.bulk_size
    return [Result(f"Bulk Message Ingestion ({p.bulk_size}/batch)", duration, ops, lat, errors)]


async def s3_concurrent(b: BenchClient, p: Params) -> list[Result]:
    lat: list[float] = []
    async with b.http() as client:
        start = time.time()
        ok = 0
        for wave in range(0, p.concurrent_messages, p.concurrency):
            calls = [
                client.post(
                    "/api/v1/messages",
                    json={
                        "topic": f"concurrent-topic-{i % 20}",
                        "payload": {"index": i, "timestamp": time.time()},
                    },
                )
                for i in range(wave, min(wave + p.concurrency, p.concurrent_messages))
            ]
            ok += sum(await asyncio.gather(*(timed(lat, c) for c in calls)))
        duration = time.time() - start
    errors = p.concurrent_messages - ok
    name = f"Concurrent Ingestion (concurrency={p.concurrency})"
    return [Result(name, duration, ok, lat, errors)]


async def s4_ws_subscribe(b: BenchClient, p: Params) -> list[Result]:
    lat: list[float] = []

    async def one(i: int) -> bool:
        start = time.time()
        try:
            async with websockets.connect(b.ws_url) as ws:
                frame = {
                    "type": "subscribe",
                    "topics": [f"ws-topic-{i % 5}"],
                    "client_id": f"bench-client-{i}",
                }
                await ws.send(json.dumps(frame))
                data = json.loads(await ws.recv())
                if data.get("type") != "subscribed":
                    print(f"Unexpected response: {data}")
                    return False
                lat.append(time.time() - start)
                return True
        except Exception as exc:
            print(f"Error: {exc}")
            return False

    start = time.time()
    ok = sum(await asyncio.gather(*(one(i) for i in range(p.ws_clients))))
    duration = time.time() - start
    name = f"WebSocket Subscribe ({p.ws_clients} clients)"
    return [Result(name, duration, ok, lat, p.ws_clients - ok)]


async def s5_delivery(b: BenchClient, p: Params) -> list[Result]:
    lat: list[float] = []
    topics = [f"delivery-topic-{i}" for i in range(min(5, p.delivery_clients))]
    start = time.time()
    consumers = [
        b.ws_receive(topics[i % len(topics)], f"consumer-{i}", p.delivery_per_topic, lat)
        for i in range(p.delivery_clients)
    ]
    producers = [b.publish_paced(t, p.delivery_per_topic, 0.01) for t in topics]
    outcomes = await asyncio.gather(*consumers, *producers)
    duration = time.time() - start
    got = [o for o in outcomes if o is not None]
    name = f"Message Delivery (E2E, {p.delivery_clients} clients)"
    return [Result(name, duration, sum(r for r, _ in got), lat, sum(e for _, e in got))]


async def s6_broadcast(b: BenchClient, p: Params) -> list[Result]:
    lat: list[float] = []
    topic = "broadcast-benchmark"
    subs = [
        asyncio.create_task(b.ws_receive(topic, f"broadcast-client-{i}", p.broadcast_messages, lat))
        for i in range(p.broadcast_clients)
    ]
    await asyncio.sleep(1.5)
    start = time.time()
    async with b.http() as client:
        await asyncio.gather(
            *(
                client.post(
                    "/api/v1/messages", json={"topic": topic, "payload": {"index": i, "sent_at": time.time()}}
                )
                for i in range(p.broadcast_messages)
            ),
            return_exceptions=True,
        )
    outcomes = await asyncio.gather(*subs)
    duration = time.time() - start
    received = sum(r for r, _ in outcomes)
    expected = p.broadcast_clients * p.broadcast_messages
    name = f"Broadcast ({p.broadcast_clients} clients, {p.broadcast_messages} msgs)"
    note = f"Total messages received: {received}/{expected}"
    return [Result(name, duration, received, lat, sum(e for _, e in outcomes), note)]


async def s7_poll_basic(b: BenchClient, p: Params) -> list[Result]:
    lat: list[float] = []
    errors = 0
    async with b.http(timeout=35.0) as client:
        start = time.time()
        for i in range(p.poll_requests):
            body = {"topics": [f"poll-topic-{i % 5}"], "timeout": 1}
            errors += not await timed(lat, client.post("/messages/poll", json=body))
        duration = time.time() - start
    return [Result("Long Polling Basic (1s timeout)", duration, p.poll_requests - errors, lat, errors)]


async def s8_poll_concurrent(b: BenchClient, p: Params) -> list[Result]:
    lat: list[float] = []

    async def one(i: int) -> bool:
        async with b.http(timeout=p.poll_concurrent_timeout + 5.0) as client:
            body = {"topics": [f"concurrent-poll-{i % 10}"], "timeout": p.poll_concurrent_timeout}
            return await timed(lat, client.post("/messages/poll", json=body))

    start = time.time()
    ok = sum(await asyncio.gather(*(one(i) for i in range(p.poll_concurrent_clients))))
    duration = time.time() - start
    name = f"Long Polling Concurrent ({p.poll_concurrent_clients} clients)"
    return [Result(name, duration, ok, lat, p.poll_concurrent_clients - ok)]


async def s9_poll_delivery(b: BenchClient, p: Params) -> list[Result]:
    lat: list[float] = []
    topics = [f"poll-delivery-{i}" for i in range(min(5, p.poll_delivery_clients))]
    start = time.time()
    consumers = [
        b.poll_receive(topics[i % len(topics)], p.poll_delivery_per_topic, lat)
        for i in range(p.poll_delivery_clients)
    ]
    producers = [b.publish_paced(t, p.poll_delivery_per_topic, 0.05) for t in topics]
    outcomes = [o for o in await asyncio.gather(*consumers, *producers) if o is not None]
    duration = time.time() - start
    name = f"Long Polling Delivery (E2E, {p.poll_delivery_clients} clients)"
    return [Result(name, duration, sum(r for r, _ in outcomes), lat, sum(e for _, e in outcomes))]


async def s10_comparison(b: BenchClient, p: Params) -> list[Result]:
    n = p.comparison_messages
    ws_lat: list[float] = []
    start = time.time()
    (ws_got, ws_err), _ = await asyncio.gather(
        b.ws_receive("comparison-websocket", "comparison-ws", n, ws_lat),
        b.publish_paced("comparison-websocket", n, 0.02),
    )
    ws = Result("WebSocket Delivery (comparison)", time.time() - start, ws_got, ws_lat, ws_err)
    poll_lat: list[float] = []
    start = time.time()
    (poll_got, poll_err), _ = await asyncio.gather(
        b.poll_receive("comparison-polling", n, poll_lat), b.publish_paced("comparison-polling", n, 0.02)
    )
    poll = Result("Long Polling Delivery (comparison)", time.time() - start, poll_got, poll_lat, poll_err)
    print(f"\n   WebSocket: {len(ws_lat)} msgs, avg {ws.avg_latency * 1000:.2f}ms")
    print(f"   Polling:   {len(poll_lat)} msgs, avg {poll.avg_latency * 1000:.2f}ms")
    return [ws, poll]


SCENARIOS = [
    s1_single,
    s2_bulk,
    s3_concurrent,
    s4_ws_subscribe,
    s5_delivery,
    s6_broadcast,
    s7_poll_basic,
    s8_poll_concurrent,
    s9_poll_delivery,
    s10_comparison,
]


async def run(
    base_url: str, username: str, password: str, params: Params, only: set[int], deadline: float
) -> list[Result]:
    print("\n" + "=" * 70)
    print("PULSAR RELAY REFERENCE BENCHMARK SCENARIOS")
    print("=" * 70)
    print(f"Base URL: {base_url}")
    print(f"Started at: {datetime.now().strftime('%Y-%m-%d %H:%M:%S')}")
    bench = BenchClient(base_url, await login(base_url, username, password), deadline)
    results: list[Result] = []
    for number, scenario in enumerate(SCENARIOS, start=1):
        if only and number not in only:
            continue
        print(f"\nRunning: {number}. {scenario.__name__.split('_', 1)[1]}")
        for result in await scenario(bench, params):
            print_result(result)
            results.append(result)
    print_summary(results)
    print(f"Completed at: {datetime.now().strftime('%Y-%m-%d %H:%M:%S')}")
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bench.reference_scenarios", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--base-url", default="http://localhost:8080")
    ap.add_argument("--username", default="admin")
    ap.add_argument("--password", default="12345678", help="the reference script's default")
    ap.add_argument("--only", default="", help="comma-separated scenario numbers 1..10 (default: all)")
    ap.add_argument("--tiny", action="store_true", help="tiny parameters: a smoke run, not a benchmark")
    ap.add_argument("--deadline", type=float, default=120.0, help="seconds before a stuck poller gives up")
    ap.add_argument("--json", dest="json_path", help="also write every result's metrics to this file")
    for f in fields(Params):
        ap.add_argument(f"--{f.name.replace('_', '-')}", type=int, default=None)
    args = ap.parse_args(argv)
    base = TINY if args.tiny else Params()
    overrides = {f.name: getattr(args, f.name) for f in fields(Params) if getattr(args, f.name) is not None}
    params = Params(**(vars(base) | overrides))
    only = {int(n) for n in args.only.split(",") if n.strip()}
    results = asyncio.run(run(args.base_url, args.username, args.password, params, only, args.deadline))
    if args.json_path:
        with open(args.json_path, "w") as fh:
            json.dump([r.summary() for r in results], fh, indent=2)
    return 0 if results else 1


if __name__ == "__main__":
    sys.exit(main())
