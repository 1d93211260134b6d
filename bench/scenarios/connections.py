"""Scenario 7: how many idle, subscribed WebSocket clients one gateway process holds, and its
memory per connection (resident-set growth / connections).  Opening stops at the target, at the
time limit, or when connections start failing (usually the open-file limit of one side); then one
message per topic checks that every held connection still receives."""

from __future__ import annotations

import asyncio
import gc
import resource
import time
from typing import Any

from bench import load
from bench.machine import rss_kib
from bench.scenarios import Params
from bench.scenarios.common import close_all, connect_many, drain
from bench.systems import Deployment
from bench.wsclient import Deliveries

TOPICS = 100
RESERVED_FDS = 100


async def run(dep: Deployment, params: Params) -> dict[str, Any]:
    topics = [f"bench-idle-{i}" for i in range(TOPICS)]
    await load.prepare_topics(dep.host, dep.publish_port, dep.token, topics, wire=dep.wire)
    sink = Deliveries()
    # A few connections first, so code paths and caches are warm before the baseline.
    warm, _ = await connect_many(dep, [topics[:1]] * 10, sink, concurrency=10)
    close_all(warm)
    await asyncio.sleep(1.0)
    pid = dep.under_test.pid
    before = rss_kib(pid)
    started = time.monotonic()
    # Both sides are bound by the same per-process open-file limit; stop short of it so the
    # relay can still accept the connection that publishes the liveness check.
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    target = min(params.idle_target, nofile - RESERVED_FDS)
    wanted = [[topics[i % TOPICS]] for i in range(target)]
    subs, errors = await connect_many(
        dep, wanted, sink, concurrency=params.connect_concurrency, deadline=started + params.idle_seconds
    )
    connect_seconds = time.monotonic() - started
    gc.collect()
    await asyncio.sleep(2.0)
    after = rss_kib(pid)
    held = len(subs)
    out: dict[str, Any] = {
        "target": params.idle_target,
        "attempted": target,
        "held": held,
        "connect_seconds": round(connect_seconds, 1),
        "connects_per_s": held / max(connect_seconds, 1e-9),
        "connect_errors": errors,
        "rss_before_kib": before,
        "rss_after_kib": after,
        "kib_per_connection": (after - before) / held if held else None,
        "nofile_limit": nofile,
    }
    pubs = await load.open_connections(dep.host, dep.publish_port, 1)
    try:
        sink.reset()
        t0 = time.monotonic()
        for i, topic in enumerate(topics):
            await pubs[0].send_raw(dep.wire.publish(pubs[0], topic, i, dep.token))
        # Slow but steady progress is fine here: a full GC pass over 20,000 sessions may pause.
        await drain(sink, held, max(30.0, params.drain_timeout), stall=5.0)
        out["alive"] = sink.count
        out["alive_seconds"] = round(time.monotonic() - t0, 2)
        closed = [c for c in subs if c.closed.done()]
        out["closed_by_then"] = len(closed)
        out["close_codes"] = sorted({str(c.close_code) for c in closed})
        out["alive_latency_p50_ms"] = (
            sorted(sink.latencies)[len(sink.latencies) // 2] / 1e6 if sink.latencies else None
        )
    finally:
        pubs[0].close()
        close_all(subs)
    return out
