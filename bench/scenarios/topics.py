"""Scenario 5: 2,000 WebSocket clients spread over 200 topics (10 each).  A burst of bulk
publishes measures deliveries/s at saturation; steady single publishes at the reference's own
E2E load (500 publishes/s: its five producers at one message per 10 ms) give latency; more steady
rates (small bulk requests above 500/s) trace latency against load until the relay falls behind."""

from __future__ import annotations

import asyncio
import math
from typing import Any

from bench import load
from bench.scenarios import Params
from bench.scenarios.common import close_all, connect_many, cpu_usage
from bench.scenarios.driving import burst, burst_size, steady
from bench.systems import Deployment
from bench.wsclient import Deliveries

BULK_RATE = 250  # requests/s at most for curve steps above the reference load


def _behind(step: dict[str, Any]) -> bool:
    """The relay no longer keeps up: publishes or deliveries lag, or latency is past a second."""
    p50 = step["latency"]["p50_ms"]
    return (
        step["achieved_publish_rate"] < 0.8 * step["target_publish_rate"]
        or step["delivered"] < 0.95 * step["expected"]
        or (p50 is not None and p50 > 1000)
    )


async def run(dep: Deployment, params: Params) -> dict[str, Any]:
    topics = [f"bench-many-{i}" for i in range(params.topics_count)]
    per_topic = max(1, params.topics_clients // params.topics_count)
    await load.prepare_topics(dep.host, dep.publish_port, dep.token, topics, wire=dep.wire)
    sink = Deliveries()
    wanted = [[topics[i % len(topics)]] for i in range(params.topics_clients)]
    subs, errors = await connect_many(dep, wanted, sink, concurrency=params.connect_concurrency)
    out: dict[str, Any] = {"clients": len(subs), "topics": len(topics), "connect_errors": errors}
    # Bursts publish over 4; steady steps take what they need of 50, enough for single publishes at
    # 8,000/s from a system without bulk publishing that answers in a few milliseconds.
    pubs = await load.open_connections(dep.host, dep.publish_port, 50)
    try:
        await asyncio.sleep(0.5)
        probe = await burst(dep, pubs[:4], sink, topics, 200, per_topic, params.drain_timeout)
        size = burst_size(probe["deliveries_per_s"], params.burst_seconds, per_topic, 200, 50_000)
        with cpu_usage(dep, out):
            out["burst"] = await burst(dep, pubs[:4], sink, topics, size, per_topic, params.drain_timeout)
        out["saturation_deliveries_per_s"] = out["burst"]["deliveries_per_s"]
        step: dict[str, Any] = {}
        with cpu_usage(dep, step):
            step |= await steady(
                dep, pubs, sink, topics, params.topics_rate, params.duration, per_topic, params.drain_timeout
            )
        out["reference_load"] = step
        curve = []
        for rate in params.topics_rates:
            point: dict[str, Any] = {}
            # Above the reference load, small bulk requests keep ours' publishing helper (on the
            # load generator's core) from becoming the limit; both systems get the same requests.
            batch = 1 if rate <= params.topics_rate else math.ceil(rate / BULK_RATE)
            with cpu_usage(dep, point):
                point |= await steady(
                    dep,
                    pubs,
                    sink,
                    topics,
                    rate,
                    params.duration,
                    per_topic,
                    params.drain_timeout,
                    batch=batch,
                )
            curve.append(point)
            if _behind(point):
                break
        out["curve"] = curve
    finally:
        close_all(subs)
        for p in pubs:
            p.close()
    return out
