"""How a gateway should tail P partition logs on a Valkey Cluster, which refuses one XREADGROUP over
several hash slots: measured on a real 3-primary cluster with simulated gateways.

* ``blocking``: one blocking ``XREADGROUP … BLOCK`` per partition, each on its own connection
  (what the relay does);
* ``poll``: per gateway, one pipelined round of non-blocking ``XREADGROUP`` over all partitions
  (the cluster client sends one batch per node), repeated every ``interval`` while nothing comes.

Entries are appended straight to the logs (``XADD``) at a fixed rate; latency is append to read.
Valkey CPU comes from ``INFO cpu`` of every node.  Run alone: ``python -m bench.scaling_tailing``.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import redis
from redis.asyncio.cluster import ClusterNode, RedisCluster

from bench.procs import REPO
from bench.stats import latency_summary

sys.path[:0] = [str(REPO / "libs")]  # the relay's own key layout, from the source tree

from relaycore.keys import Keys  # noqa: E402

PARTITIONS = 16
GROUP_COUNT = 100


def _cpu(ports: list[int]) -> float:
    total = 0.0
    for port in ports:
        with redis.Redis(port=port) as r:
            info = r.info("cpu")
            total += float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    return total


async def _blocking(rc: Any, group: str, logs: list[str], lat: list[int], stop: asyncio.Event) -> None:
    async def one(log: str) -> None:
        while not stop.is_set():
            reply = await rc.xreadgroup(group, group, {log: ">"}, count=GROUP_COUNT, block=1000)
            for _, entries in reply or []:
                now = time.time_ns()
                lat.extend(now - int(f[b"s"]) for _, f in entries)
                await rc.xack(log, group, *(i for i, _ in entries))

    await asyncio.gather(*(one(log) for log in logs))


async def _poll(
    rc: Any, group: str, logs: list[str], lat: list[int], stop: asyncio.Event, interval: float
) -> None:
    while not stop.is_set():
        async with rc.pipeline(transaction=False) as pipe:
            for log in logs:
                pipe.xreadgroup(group, group, {log: ">"}, count=GROUP_COUNT)
            replies = await pipe.execute()
        got = False
        for reply in replies:
            for log, entries in reply or []:
                got = True
                now = time.time_ns()
                lat.extend(now - int(f[b"s"]) for _, f in entries)
                await rc.xack(log, group, *(i for i, _ in entries))
        if not got:
            await asyncio.sleep(interval)


async def run_strategy(
    seeds: list[tuple[str, int]],
    ports: list[int],
    strategy: str,
    *,
    gateways: int,
    rate: float,
    seconds: float,
    interval: float,
) -> dict[str, Any]:
    keys = Keys("tailbench", PARTITIONS)
    logs = [keys.log(p) for p in range(PARTITIONS)]
    clients = [RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in seeds]) for _ in range(gateways + 1)]
    producer, readers = clients[0], clients[1:]
    lat: list[int] = []
    stop = asyncio.Event()
    try:
        for i, rc in enumerate(readers):
            for log in logs:
                await rc.xgroup_create(log, f"g{strategy}{i}", id="$", mkstream=True)
        tasks = [
            asyncio.create_task(
                _blocking(rc, f"g{strategy}{i}", logs, lat, stop)
                if strategy == "blocking"
                else _poll(rc, f"g{strategy}{i}", logs, lat, stop, interval)
            )
            for i, rc in enumerate(readers)
        ]
        await asyncio.sleep(0.5)
        c0, t0 = _cpu(ports), time.monotonic()
        await asyncio.sleep(seconds)
        idle = (_cpu(ports) - c0) / (time.monotonic() - t0)
        lat.clear()
        c0, t0 = _cpu(ports), time.monotonic()
        for n in range(int(rate * seconds)):
            due = t0 + n / rate
            if (wait := due - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            await producer.xadd(logs[n % PARTITIONS], {"s": time.time_ns()}, maxlen=10_000, approximate=True)
        await asyncio.sleep(0.3)
        loaded = (_cpu(ports) - c0) / (time.monotonic() - t0)
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        return {
            "strategy": strategy if strategy == "blocking" else f"poll every {interval * 1000:g} ms",
            "gateways": gateways,
            "valkey_cpu_idle": round(idle, 3),
            "valkey_cpu_loaded": round(loaded, 3),
            "reads": len(lat),
            "latency": latency_summary(lat),
        }
    finally:
        for rc in clients:
            await rc.aclose()


async def measure(
    *,
    gateways: int = 8,
    rate: float = 500.0,
    seconds: float = 4.0,
    intervals: tuple[float, ...] = (0.01, 0.05),
) -> list[dict[str, Any]]:
    from tests.cluster.cluster import ValkeyCluster

    cluster = ValkeyCluster(masters=3).start()
    try:
        seeds = [("127.0.0.1", n.port) for n in cluster.nodes]
        ports = [n.port for n in cluster.nodes]
        out = [
            await run_strategy(
                seeds, ports, "blocking", gateways=gateways, rate=rate, seconds=seconds, interval=0
            )
        ]
        for interval in intervals:
            cluster.flush()
            out.append(
                await run_strategy(
                    seeds, ports, "poll", gateways=gateways, rate=rate, seconds=seconds, interval=interval
                )
            )
        return out
    finally:
        cluster.cleanup()


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| strategy | simulated gateways | Valkey CPU idle (cores, 3 nodes) | Valkey CPU at load"
        " | p50 ms | p99 ms |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lat = r["latency"]
        lines.append(
            f"| {r['strategy']} | {r['gateways']} | {r['valkey_cpu_idle']:.3f} | {r['valkey_cpu_loaded']:.3f}"
            f" | {lat['p50_ms'] or 0:.1f} | {lat['p99_ms'] or 0:.1f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(asyncio.run(measure())))
