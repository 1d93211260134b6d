"""What scenarios share: CPU accounting for the server and the load generator, connecting many
WebSocket subscribers, and waiting for deliveries to drain."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from bench import wsclient
from bench.machine import cpu_times
from bench.systems import Deployment


@contextmanager
def cpu_usage(dep: Deployment, into: dict[str, Any]) -> Iterator[None]:
    """Adds ``server_cpu`` and ``loadgen_cpu`` (cores busy, 1.0 = one core) over the block, and
    ``server_cpu_system``: the part of ``server_cpu`` spent in the kernel (system calls, and on
    loopback the TCP work of delivering what the server writes)."""
    (u0, k0), l0, t0 = cpu_times(dep.under_test.pid), time.process_time(), time.monotonic()
    yield
    wall = max(time.monotonic() - t0, 1e-9)
    u1, k1 = cpu_times(dep.under_test.pid)
    into["server_cpu"] = round((u1 - u0 + k1 - k0) / wall, 3)
    into["server_cpu_system"] = round((k1 - k0) / wall, 3)
    into["loadgen_cpu"] = round((time.process_time() - l0) / wall, 3)


async def connect_many(
    dep: Deployment,
    topics_for: list[list[str]],
    sink: wsclient.Deliveries,
    *,
    concurrency: int,
    deadline: float | None = None,
) -> tuple[list[wsclient.WsProtocol], list[str]]:
    """One subscriber per entry of ``topics_for``; stops early at ``deadline`` (monotonic) or after
    repeated failures.  Returns the open connections and the first errors seen."""
    conns: list[wsclient.WsProtocol] = []
    errors: list[str] = []
    gate = asyncio.Semaphore(concurrency)
    stop = False

    async def one(i: int) -> None:
        nonlocal stop
        if stop:
            return
        async with gate:
            if stop or (deadline is not None and time.monotonic() > deadline):
                stop = True
                return
            target = dep.wire.ws_target(topics_for[i])
            try:
                conn = await wsclient.subscribe(
                    dep.host, dep.gateway_port, dep.token, topics_for[i], sink,
                    auth=dep.ws_auth, client_id=f"bench-{i}", path=target.path,
                    send_subscribe=target.send_subscribe, await_confirm=target.await_confirm,
                )  # fmt: skip
                conns.append(conn)
            except (OSError, TimeoutError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}"[:200])
                if len(errors) > 50:
                    stop = True

    await asyncio.gather(*(one(i) for i in range(len(topics_for))))
    return conns, errors[:5]


def close_all(conns: list[wsclient.WsProtocol]) -> None:
    for c in conns:
        c.close()


async def drain(sink: wsclient.Deliveries, expected: int, limit: float, stall: float = 2.0) -> None:
    """Wait until ``expected`` deliveries arrived, or nothing arrived for ``stall`` s, or ``limit`` s."""
    loop = asyncio.get_running_loop()
    end = loop.time() + limit
    last_count, last_change = sink.count, loop.time()
    while sink.count < expected and loop.time() < end:
        await asyncio.sleep(0.02)
        if sink.count != last_count:
            last_count, last_change = sink.count, loop.time()
        elif loop.time() - last_change > stall:
            return
