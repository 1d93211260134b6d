"""Driving deliveries: a saturation burst (bulk publishes as fast as the relay takes them, then
deliveries/s as the receivers see them) and a steady step (single publishes at a fixed rate,
then achieved deliveries/s and publish-to-receive latency).  Shared by scenarios 4, 5 and 6."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench import load
from bench.httpclient import HttpConnection
from bench.scenarios.common import drain
from bench.stats import latency_summary
from bench.systems import Deployment
from bench.wsclient import Deliveries

BULK = 100
SINGLE_PUBLISHERS = 50


async def burst(
    dep: Deployment,
    conns: list[HttpConnection],
    sink: Deliveries,
    topics: list[str],
    messages: int,
    fanout: int,
    drain_limit: float,
    owner: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Publish ``messages`` (round-robin over ``topics``) in bulk requests spread over ``conns``,
    each request as the owner of its topics; each message should reach ``fanout`` receivers.  A
    system without bulk publishing gets single publishes from ``SINGLE_PUBLISHERS`` connections
    (``conns`` and more), so that many messages are in flight, as in scenario 2."""
    wire = dep.wire
    chunk = min(BULK, wire.bulk_max)
    groups: dict[str, list[str]] = {}
    for t in topics:
        groups.setdefault((owner or {}).get(t, dep.token), []).append(t)
    queue: asyncio.Queue[tuple[str, list[str], int, int]] = asyncio.Queue()
    share = max(1, messages // len(groups))
    for token, mine in groups.items():
        for first in range(0, share, chunk):
            queue.put_nowait((token, mine, first, min(chunk, share - first)))
    messages = share * len(groups)
    extra: list[HttpConnection] = []
    if chunk == 1 and len(conns) < SINGLE_PUBLISHERS:
        extra = await load.open_connections(dep.host, dep.publish_port, SINGLE_PUBLISHERS - len(conns))
    sink.reset()
    sink.record_latency = False
    expected = messages * fanout
    t0 = time.time_ns()
    requests = bad = 0

    async def sender(conn: HttpConnection) -> None:
        nonlocal requests, bad
        while not queue.empty():
            token, mine, first, size = queue.get_nowait()
            if size > 1:
                request, accepted = wire.bulk(conn, mine, first, size, token), wire.bulk_ok
            else:
                request, accepted = wire.publish(conn, mine[first % len(mine)], first, token), wire.publish_ok
            status, _ = await conn.send_raw(request)
            requests += 1
            bad += status not in accepted

    try:
        await asyncio.gather(*(sender(c) for c in conns + extra))
    finally:
        for c in extra:
            c.close()
    published_ns = time.time_ns()
    await drain(sink, expected, drain_limit)
    sink.record_latency = True
    elapsed = max(sink.last_ns - t0, 1) / 1e9
    return {
        "messages": messages,
        "expected": expected,
        "delivered": sink.count,
        "publish_requests": requests,
        "publish_connections": len(conns) + len(extra),
        "bad_requests": bad,
        "publish_seconds": round((published_ns - t0) / 1e9, 3),
        "seconds": round(elapsed, 3),
        "deliveries_per_s": sink.count / elapsed,
    }


async def steady(
    dep: Deployment,
    conns: list[HttpConnection],
    sink: Deliveries,
    topics: list[str],
    rate: float,
    duration: float,
    fanout: int,
    drain_limit: float,
    owner: dict[str, str] | None = None,
    batch: int = 1,
) -> dict[str, Any]:
    """``rate`` messages/s for ``duration`` s, round-robin over ``topics``: single publishes, or
    bulk requests of ``batch`` messages (one owner's topics only) at ``rate / batch`` requests/s."""
    tokens = [(owner or {}).get(t, dep.token) for t in topics]
    conn0, wire = conns[0], dep.wire
    n = len(topics)
    # A system without bulk publishing gets the same messages as single publishes.
    batch = min(batch, wire.bulk_max)

    def request(seq: int) -> bytes:
        return wire.publish(conn0, topics[seq % n], seq, tokens[seq % n])

    def bulk_request(seq: int) -> bytes:
        return wire.bulk(conn0, topics, seq * batch, batch, tokens[0])

    sink.reset()
    if batch > 1:
        assert owner is None, "bulk steady steps publish as one user"
        sent = await load.open_loop(
            conns, bulk_request, rate=rate / batch, duration=duration, ok_status=tuple(wire.bulk_ok)
        )
    else:
        sent = await load.open_loop(
            conns, request, rate=rate, duration=duration, ok_status=tuple(wire.publish_ok)
        )
    expected = sent["ok"] * batch * fanout
    await drain(sink, expected, drain_limit)
    return {
        "target_publish_rate": rate,
        "achieved_publish_rate": sent["achieved_rate"] * batch,
        "batch": batch,
        "publish_errors": sent["errors"],
        "expected": expected,
        "delivered": sink.count,
        "deliveries_per_s": sink.count / duration,
        "latency": latency_summary(sink.latencies),
    }


def burst_size(rate: float, seconds: float, fanout: int, smallest: int, largest: int) -> int:
    """How many messages make a burst of about ``seconds`` at ``rate`` deliveries/s."""
    return max(smallest, min(largest, int(rate * seconds / max(fanout, 1))))
