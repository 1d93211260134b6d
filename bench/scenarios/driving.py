"""Driving deliveries: a saturation burst (bulk publishes as fast as the relay takes them, then
deliveries/s as the receivers see them) and a steady step (single publishes at a fixed rate,
then achieved deliveries/s and publish-to-receive latency).  Shared by scenarios 4, 5 and 6."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench import load
from bench.httpclient import HttpConnection, json_headers
from bench.scenarios.common import drain
from bench.stats import latency_summary
from bench.systems import Deployment
from bench.wsclient import Deliveries

BULK = 100


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
    each request as the owner of its topics; each message should reach ``fanout`` receivers."""
    groups: dict[str, list[str]] = {}
    for t in topics:
        groups.setdefault((owner or {}).get(t, dep.token), []).append(t)
    queue: asyncio.Queue[tuple[dict[str, str], list[str], int, int]] = asyncio.Queue()
    share = max(1, messages // len(groups))
    for token, mine in groups.items():
        headers = json_headers(token)
        for first in range(0, share, BULK):
            queue.put_nowait((headers, mine, first, min(BULK, share - first)))
    messages = share * len(groups)
    sink.reset()
    sink.record_latency = False
    expected = messages * fanout
    t0 = time.time_ns()
    statuses: list[int] = []

    async def sender(conn: HttpConnection) -> None:
        while not queue.empty():
            headers, mine, first, size = queue.get_nowait()
            body = load.bulk_json(mine, first, size)
            status, _ = await conn.request("POST", "/api/v1/messages/bulk", body, headers)
            statuses.append(status)

    await asyncio.gather(*(sender(c) for c in conns))
    published_ns = time.time_ns()
    await drain(sink, expected, drain_limit)
    sink.record_latency = True
    elapsed = max(sink.last_ns - t0, 1) / 1e9
    return {
        "messages": messages,
        "expected": expected,
        "delivered": sink.count,
        "bad_requests": sum(1 for s in statuses if s != 207),
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
    headers = [json_headers((owner or {}).get(t, dep.token)) for t in topics]
    conn0 = conns[0]
    n = len(topics)

    def request(seq: int) -> bytes:
        topic = topics[seq % n]
        return conn0.build("POST", "/api/v1/messages", load.message_json(topic, seq), headers[seq % n])

    def bulk_request(seq: int) -> bytes:
        body = load.bulk_json(topics, seq * batch, batch)
        return conn0.build("POST", "/api/v1/messages/bulk", body, headers[0])

    sink.reset()
    if batch > 1:
        assert owner is None, "bulk steady steps publish as one user"
        sent = await load.open_loop(conns, bulk_request, rate=rate / batch, duration=duration)
    else:
        sent = await load.open_loop(conns, request, rate=rate, duration=duration)
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
