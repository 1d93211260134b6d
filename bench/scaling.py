"""The scaling curve, one command: ``python -m bench.scaling``.

For 1, 2 and 4 gateway processes, on one Valkey and on a 3-primary Valkey Cluster, with a fixed
number of WebSocket clients (spread evenly over the gateways) and topics: delivered messages per
second at saturation (a burst of bulk publishes) and publish-to-receive latency p50/p99 at a fixed
publish rate.  The CPU each process group used during the burst calibrates the model of
``bench/scaling_model.py`` (100 gateways, 1M connections).  Writes the "Scaling" section of
docs/BENCHMARKS.md and the raw numbers to bench/results/raw/scaling.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import redis

from bench import ours, scaling_tailing
from bench.docs_sections import replace_section
from bench.httpclient import login
from bench.load import open_connections, prepare_topics
from bench.machine import cpu_seconds, describe, raise_nofile, rss_kib
from bench.procs import REPO, Server, free_port, run_info
from bench.scaling_report import costs_from, section
from bench.scenarios.common import close_all
from bench.scenarios.driving import burst, steady
from bench.systems import Deployment, flush
from bench.wsclient import Deliveries, WsProtocol, subscribe

# bench.procs pins a process to its core only where the machine has that core: a core number no
# machine has leaves the relay's processes to the kernel scheduler, which is the point here (the
# gateways should spread over whatever cores exist).
UNPINNED = 1 << 16
RAW = REPO / "bench" / "results" / "raw" / "scaling.json"


@dataclass(frozen=True)
class Params:
    gateways: tuple[int, ...] = (1, 2, 4)
    backends: tuple[str, ...] = ("single", "cluster")
    clients: int = 400
    topics: int = 40
    burst: int = 5000  # messages, in bulks of 100
    rate: float = 100.0  # messages/s during the latency step
    seconds: float = 8.0
    partitions: int = 16


class Valkey:
    """One server or a 3-primary cluster, with the pids whose CPU counts as Valkey's."""

    def __init__(self, kind: str) -> None:
        from tests.cluster.cluster import ValkeyCluster
        from tests.support.valkey import ValkeyServer

        self.kind = kind
        self._single = ValkeyServer().start() if kind == "single" else None
        self._cluster = ValkeyCluster(masters=3).start() if kind == "cluster" else None

    @property
    def url(self) -> str:
        return self._single.url if self._single else self._cluster.url  # type: ignore[union-attr]

    @property
    def ports(self) -> list[int]:
        if self._single is not None:
            return [self._single.port]
        return [n.port for n in self._cluster.nodes]  # type: ignore[union-attr]

    def reset_stats(self) -> None:
        for port in self.ports:
            with redis.Redis(port=port) as r:
                r.config_resetstat()

    def command_usec(self) -> dict[str, dict[str, int]]:
        """Calls and server-side microseconds per command since ``reset_stats``, all nodes summed."""
        total: dict[str, dict[str, int]] = {}
        for port in self.ports:
            with redis.Redis(port=port) as r:
                for name, st in r.info("commandstats").items():
                    row = total.setdefault(name.removeprefix("cmdstat_"), {"calls": 0, "usec": 0})
                    row["calls"] += int(st["calls"])
                    row["usec"] += int(st["usec"])
        return total

    @property
    def pids(self) -> list[int]:
        if self._single is not None:
            return [self._single.proc.pid]  # type: ignore[union-attr]
        return [n.proc.pid for n in self._cluster.nodes if n.proc]  # type: ignore[union-attr]

    def flush(self) -> None:
        if self._cluster is not None:
            self._cluster.flush()
        else:
            flush(self.url)

    def stop(self) -> None:
        for server in (self._single, self._cluster):
            if server is not None:
                server.cleanup()


def relay_process(service: str, valkey_url: str, partitions: int, **env: str) -> Server:
    port = free_port()
    environ = ours.environment(valkey_url) | {"PULSAR_FANOUT_PARTITIONS": str(partitions), **env}
    name = f"scaling-{service}-{env.get('PULSAR_GATEWAY_ID', '')}".rstrip("-")
    return Server(name, ours.argv(service, "uvicorn", port), environ, port, core=UNPINNED)


@contextmanager
def cpu_of(groups: dict[str, list[int]], into: dict[str, Any]) -> Iterator[None]:
    """CPU seconds each group of processes used over the block, into ``into['cpu_seconds']``."""
    before = {g: sum(cpu_seconds(p) for p in pids) for g, pids in groups.items()}
    t0 = time.monotonic()
    yield
    into["wall_seconds"] = round(time.monotonic() - t0, 3)
    into["cpu_seconds"] = {
        g: round(sum(cpu_seconds(p) for p in pids) - before[g], 3) for g, pids in groups.items()
    }


async def run_config(
    valkey: Valkey, gateways: int, p: Params, log: Any, *, observers: int = 0
) -> dict[str, Any]:
    """One point of the curve.  ``observers`` are extra gateways without clients: their CPU is
    what reading every log entry costs a gateway, with nothing to deliver."""
    valkey.flush()
    auth = relay_process("auth", valkey.url, p.partitions)
    ingest = relay_process("ingest", valkey.url, p.partitions)
    gws = [
        relay_process("gateway", valkey.url, p.partitions, PULSAR_GATEWAY_ID=f"scaling-gw{i}")
        for i in range(gateways)
    ]
    idle = [
        relay_process("gateway", valkey.url, p.partitions, PULSAR_GATEWAY_ID=f"scaling-idle{i}")
        for i in range(observers)
    ]
    procs = [auth, ingest, *gws, *idle]
    subs: list[WsProtocol] = []
    out: dict[str, Any] = {"backend": valkey.kind, "gateways": gateways, "observers": observers}
    try:
        await asyncio.gather(*(asyncio.to_thread(s.start) for s in procs))
        token = await login("127.0.0.1", auth.port, *ours.ADMIN)
        topics = [f"scale-{i}" for i in range(p.topics)]
        await prepare_topics("127.0.0.1", ingest.port, token, topics)
        rss0 = sum(rss_kib(g.pid) for g in gws)
        sink = Deliveries()
        for i in range(p.clients):  # client i -> gateway i % G, topic i % T
            gw = gws[i % gateways]
            subs.append(await subscribe("127.0.0.1", gw.port, token, [topics[i % p.topics]], sink))
        await asyncio.sleep(1.0)
        out["kib_per_connection"] = round((sum(rss_kib(g.pid) for g in gws) - rss0) / p.clients, 2)
        dep = Deployment("ours", "gateway", "uvicorn", ingest.port, gws[0].port, token, gws[0], procs)
        fanout = p.clients // p.topics
        pubs = await open_connections("127.0.0.1", ingest.port, 4)
        groups = {
            "gateways": [g.pid for g in gws],
            "observers": [g.pid for g in idle],
            "valkey": valkey.pids,
            "ingest": [ingest.pid],
        }
        try:
            what = f"{valkey.kind}, {gateways} gateway(s)" + (
                f" + {observers} without clients" if observers else ""
            )
            log(f"  {what}: burst of {p.burst} messages")
            valkey.reset_stats()
            with cpu_of(groups, out):
                out["burst"] = await burst(dep, pubs, sink, topics, p.burst, fanout, 60.0)
            out["commands"] = {
                k: v
                for k, v in valkey.command_usec().items()
                if k in ("evalsha", "xreadgroup", "xack", "get", "hget")
            }
            log(f"  {what}: {p.rate:g} msg/s for {p.seconds:g} s")
            # The same unit costs at a low rate, where each read carries a few entries at most.
            valkey.reset_stats()
            low: dict[str, Any] = {}
            with cpu_of(groups, low):
                out["steady"] = await steady(dep, pubs, sink, topics, p.rate, p.seconds, fanout, 30.0)
            out["steady"]["cpu_seconds"] = low["cpu_seconds"]
            out["steady"]["commands"] = {
                k: v for k, v in valkey.command_usec().items() if k in ("xreadgroup", "xack")
            }
        finally:
            for c in pubs:
                c.close()
    finally:
        close_all(subs)
        for s in reversed(procs):
            s.stop()
    return out


async def measure(p: Params, log: Any) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    for kind in p.backends:
        log(f"starting {kind} Valkey")
        valkey = Valkey(kind)
        try:
            for g in p.gateways:
                results.append(await run_config(valkey, g, p, log))
            if kind == "single":  # calibration: the cost of reading without delivering
                results.append(await run_config(valkey, 1, p, log, observers=1))
        finally:
            valkey.stop()
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.scaling", description=__doc__.split("\n\n")[0])
    ap.add_argument("--gateways", default="1,2,4", help="gateway process counts (default 1,2,4)")
    ap.add_argument("--backends", default="single,cluster", help="single and/or cluster")
    ap.add_argument("--clients", type=int, default=Params.clients)
    ap.add_argument("--topics", type=int, default=Params.topics)
    ap.add_argument("--burst", type=int, default=Params.burst)
    ap.add_argument("--rate", type=float, default=Params.rate)
    ap.add_argument("--seconds", type=float, default=Params.seconds)
    ap.add_argument("--no-write", action="store_true", help="print, do not touch docs/BENCHMARKS.md")
    args = ap.parse_args(argv)
    p = Params(
        gateways=tuple(int(x) for x in args.gateways.split(",")),
        backends=tuple(args.backends.split(",")),
        clients=args.clients,
        topics=args.topics,
        burst=args.burst,
        rate=args.rate,
        seconds=args.seconds,
    )
    raise_nofile()
    machine = describe()
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    results = asyncio.run(measure(p, log))
    log("tailing strategies on a cluster (bench/scaling_tailing.py)")
    tailing = asyncio.run(scaling_tailing.measure())
    info = run_info("bench.scaling", sys.argv[1:] if argv is None else argv, started, machine, p.__dict__)
    costs = costs_from(results, p.burst)
    text = section(info, results, costs, p, tailing)
    RAW.parent.mkdir(parents=True, exist_ok=True)
    raw = {"info": info, "results": results, "costs": costs.__dict__, "tailing": tailing}
    RAW.write_text(json.dumps(raw, indent=1))
    if args.no_write:
        print(text)
    else:
        replace_section("Scaling", text)
        log(f"wrote the Scaling section of docs/BENCHMARKS.md; raw numbers in {os.path.relpath(RAW)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
