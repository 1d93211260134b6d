"""Load patterns over the lean HTTP client: closed loops (N workers, each send-wait-send) for
saturation, and an open loop (a fixed request rate) for latency under a given load.

Every message body carries ``sent_at`` (``time.time_ns()`` at send time) so a receiver in any
process can compute publish-to-receive latency.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bench.httpclient import HttpConnection, HttpError
from bench.stats import latency_summary

if TYPE_CHECKING:
    from bench.wire import Wire

PAD = b"x" * 64

RequestFactory = Callable[[int], bytes]


def payload_json(seq: int) -> bytes:
    """One message's payload, the bytes every system hands its subscribers; ``sent_at`` is stamped now."""
    return b'{"sent_at":%d,"i":%d,"data":"%s"}' % (time.time_ns(), seq, PAD)


def message_json(topic: str, seq: int) -> bytes:
    """One message object of our (and the reference's) publish API around ``payload_json``."""
    return b'{"topic":"%s","payload":%s}' % (topic.encode(), payload_json(seq))


def bulk_json(topics: list[str], first_seq: int, size: int) -> bytes:
    items = [message_json(topics[(first_seq + k) % len(topics)], first_seq + k) for k in range(size)]
    return b'{"messages":[' + b",".join(items) + b"]}"


async def prepare_topics(
    host: str,
    port: int,
    token: str,
    topics: list[str],
    owner: dict[str, str] | None = None,
    wire: Wire | None = None,
) -> None:
    """Publish one message to each topic (as its owner), one at a time, so no measured request
    creates a topic (the reference fails concurrent first publishes to a new topic with a 500)."""
    from bench.wire import RELAY

    wire = wire or RELAY
    conn = await HttpConnection.open(host, port)
    try:
        for i, topic in enumerate(topics):
            request = wire.publish(conn, topic, i, (owner or {}).get(topic, token))
            status, body = await conn.send_raw(request)
            if status not in wire.publish_ok:
                raise HttpError(f"creating topic {topic}: {status} {body[:200]!r}")
    finally:
        conn.close()


async def open_connections(host: str, port: int, n: int) -> list[HttpConnection]:
    return list(await asyncio.gather(*(HttpConnection.open(host, port) for _ in range(n))))


async def closed_loop(
    conns: list[HttpConnection],
    make_request: RequestFactory,
    *,
    duration: float,
    warmup: float = 0.5,
    ok_status: tuple[int, ...] = (200, 201, 207),
) -> dict[str, Any]:
    """Each connection sends, waits, sends again until ``warmup + duration``; only the last
    ``duration`` seconds count."""
    seq = 0
    lat: list[int] = []
    counted = errors = 0
    statuses: dict[int, int] = {}
    failures: list[str] = []
    loop = asyncio.get_running_loop()
    start = loop.time()
    measure_from = start + warmup
    stop_at = measure_from + duration

    async def worker(conn: HttpConnection) -> None:
        nonlocal seq, counted, errors
        while True:
            seq += 1
            request = make_request(seq)
            t0 = time.perf_counter_ns()
            try:
                status, _ = await conn.send_raw(request)
            except HttpError as exc:
                errors += 1
                failures.append(str(exc)[:200])
                return
            t1 = time.perf_counter_ns()
            now = loop.time()
            if now >= stop_at:
                return
            if now >= measure_from:
                if status in ok_status:
                    counted += 1
                    lat.append(t1 - t0)
                else:
                    errors += 1
                    statuses[status] = statuses.get(status, 0) + 1

    reconnects = HttpConnection.reconnects
    await asyncio.gather(*(worker(c) for c in conns))
    return {
        "reconnects": HttpConnection.reconnects - reconnects,
        "requests": counted,
        "errors": errors,
        "bad_statuses": statuses,
        "failures": failures[:3],
        "seconds": duration,
        "rps": counted / duration,
        "latency": latency_summary(lat),
    }


async def open_loop(
    conns: list[HttpConnection],
    make_request: RequestFactory,
    *,
    rate: float,
    duration: float,
    ok_status: tuple[int, ...] = (200, 201, 207),
) -> dict[str, Any]:
    """Send ``rate`` requests per second for ``duration`` seconds over a pool of connections (a
    request waits for a free connection when all are busy, which shows as a lower achieved rate)."""
    loop = asyncio.get_running_loop()
    free: asyncio.Queue[HttpConnection] = asyncio.Queue()
    for c in conns:
        free.put_nowait(c)
    total = max(1, round(rate * duration))
    sent = ok = errors = 0
    pending: set[asyncio.Task[None]] = set()

    async def one(conn: HttpConnection, seq: int) -> None:
        nonlocal ok, errors
        try:
            status, _ = await conn.send_raw(make_request(seq))
            if status in ok_status:
                ok += 1
            else:
                errors += 1
        except HttpError:
            errors += 1
            return
        free.put_nowait(conn)

    start = loop.time()
    for seq in range(total):
        due = start + seq / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        conn = await free.get()
        sent += 1
        task = loop.create_task(one(conn, seq))
        pending.add(task)
        task.add_done_callback(pending.discard)
    elapsed = loop.time() - start
    if pending:
        await asyncio.wait(pending, timeout=30)
    return {"sent": sent, "ok": ok, "errors": errors, "achieved_rate": sent / max(elapsed, 1e-9)}
