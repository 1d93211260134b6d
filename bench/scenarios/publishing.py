"""Scenarios 1-3: publishing over HTTP as fast as closed-loop producers can (no subscribers).

1. one producer, sequential single publishes: requests/s and latency p50/p99;
2. 50 concurrent producers: requests/s at saturation;
3. bulk publishes of 100 messages from a few producers: messages/s.
"""

from __future__ import annotations

from typing import Any

from bench import load
from bench.scenarios import Params
from bench.scenarios.common import cpu_usage
from bench.systems import Deployment


async def _single(dep: Deployment, params: Params, producers: int, prefix: str) -> dict[str, Any]:
    conns = await load.open_connections(dep.host, dep.publish_port, producers)
    topics = [f"{prefix}-{i}" for i in range(10)]
    await load.prepare_topics(dep.host, dep.publish_port, dep.token, topics, wire=dep.wire)
    conn0, wire = conns[0], dep.wire

    def request(seq: int) -> bytes:
        return wire.publish(conn0, topics[seq % 10], seq, dep.token)

    out: dict[str, Any] = {"producers": producers}
    try:
        with cpu_usage(dep, out):
            out |= await load.closed_loop(
                conns,
                request,
                duration=params.duration,
                warmup=params.warmup,
                ok_status=tuple(wire.publish_ok),
            )
    finally:
        for c in conns:
            c.close()
    return out


async def single_one(dep: Deployment, params: Params) -> dict[str, Any]:
    return await _single(dep, params, 1, "bench-s1")


async def single_concurrent(dep: Deployment, params: Params) -> dict[str, Any]:
    return await _single(dep, params, params.concurrency, "bench-s2")


async def bulk(dep: Deployment, params: Params) -> dict[str, Any]:
    wire = dep.wire
    if wire.bulk_max < params.bulk_size:
        return {"skipped": f"{wire.name} has no bulk publishing"}
    conns = await load.open_connections(dep.host, dep.publish_port, params.bulk_concurrency)
    topics = [f"bench-s3-{i}" for i in range(5)]
    await load.prepare_topics(dep.host, dep.publish_port, dep.token, topics, wire=wire)
    size = params.bulk_size
    conn0 = conns[0]

    def request(seq: int) -> bytes:
        return wire.bulk(conn0, topics, seq * size, size, dep.token)

    out: dict[str, Any] = {"bulk_size": size, "producers": params.bulk_concurrency}
    try:
        with cpu_usage(dep, out):
            out |= await load.closed_loop(
                conns, request, duration=params.duration, warmup=params.warmup, ok_status=tuple(wire.bulk_ok)
            )
    finally:
        for c in conns:
            c.close()
    out["messages_per_s"] = out["rps"] * size
    return out
