"""Scenario 4: 1,000 WebSocket subscribers on one topic.  A burst measures deliveries/s at
saturation; steady single publishes at fractions of that rate give publish-to-receive latency
against load (the 50 % step is the headline latency)."""

from __future__ import annotations

import asyncio
from typing import Any

from bench import load
from bench.scenarios import Params
from bench.scenarios.common import close_all, connect_many, cpu_usage
from bench.scenarios.driving import burst, burst_size, steady
from bench.systems import Deployment
from bench.wsclient import Deliveries

TOPIC = "bench-fanout"
# Issue 8's target 4: p99 at half of 100,000 deliveries/s, measured at exactly that rate too (the
# steps above are fractions of the system's own saturation, which may be far from it).
TARGET_RATE = 50_000


async def run(dep: Deployment, params: Params) -> dict[str, Any]:
    n = params.fanout_subscribers
    topics = [TOPIC]
    await load.prepare_topics(dep.host, dep.publish_port, dep.token, topics, wire=dep.wire)
    sink = Deliveries()
    subs, errors = await connect_many(dep, [topics] * n, sink, concurrency=params.connect_concurrency)
    out: dict[str, Any] = {"subscribers": len(subs), "connect_errors": errors}
    # Bursts publish over 4 of them; steady steps may use all 16 when a publish answers slowly
    # (nchan answers once it has handed the message on), so the rate asked is the rate sent.
    pubs = await load.open_connections(dep.host, dep.publish_port, 16)
    try:
        await asyncio.sleep(0.5)
        probe = await burst(dep, pubs[:4], sink, topics, 20, len(subs), params.drain_timeout)
        size = burst_size(probe["deliveries_per_s"], params.burst_seconds, len(subs), 20, 3000)
        with cpu_usage(dep, out):
            out["burst"] = await burst(dep, pubs[:4], sink, topics, size, len(subs), params.drain_timeout)
        saturation = out["burst"]["deliveries_per_s"]
        out["saturation_deliveries_per_s"] = saturation
        steps = []
        for fraction in params.fanout_fractions:
            rate = max(1.0, fraction * saturation / max(len(subs), 1))
            step: dict[str, Any] = {"fraction": fraction}
            with cpu_usage(dep, step):
                step |= await steady(
                    dep, pubs, sink, topics, rate, params.duration, len(subs), params.drain_timeout
                )
            steps.append(step)
        out["steps"] = steps
        half = min(steps, key=lambda s: abs(s["fraction"] - 0.5))
        out["half_load"] = half
        if saturation >= TARGET_RATE and subs:
            target: dict[str, Any] = {"deliveries_per_s_target": TARGET_RATE}
            with cpu_usage(dep, target):
                target |= await steady(
                    dep, pubs, sink, topics, TARGET_RATE / len(subs), params.duration, len(subs),
                    params.drain_timeout,
                )  # fmt: skip
            out["target_load"] = target
    finally:
        close_all(subs)
        for p in pubs:
            p.close()
    return out
