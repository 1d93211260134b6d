"""What HAProxy costs the relay, one command: ``python -m bench.haproxy_cost``.

HAProxy runs the shipped ``deploy/haproxy.cfg`` as ``pulsar-relay stack`` runs it (static
addresses, runtime socket, gateway slots pointed at each gateway), in front of one auth, one ingest
and two gateway processes on one Valkey.  Three figures, from /proc (CPU time and resident memory
of the HAProxy process, all its threads):

1. idle memory: RSS growth over N idle, subscribed WebSockets proxied to the gateways, per socket;
2. CPU per delivered WebSocket frame: the same sockets, steady single publishes sent to ingest
   directly (not through HAProxy), so HAProxy's only work is the frames;
3. CPU per proxied single publish: ``POST /api/v1/messages`` over keep-alive connections from
   several producers, through HAProxy to ingest, with the sockets closed.

Writes the "HAProxy cost" section of docs/BENCHMARKS.md (``--no-write``: print only).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import ours
from bench.docs_sections import replace_section
from bench.httpclient import login
from bench.load import closed_loop, open_connections, prepare_topics
from bench.machine import cpu_seconds, describe, raise_nofile, rss_kib
from bench.procs import REPO, Server, free_port, run_info
from bench.scaling import UNPINNED, relay_process
from bench.scenarios.common import close_all, connect_many
from bench.scenarios.driving import steady
from bench.systems import Deployment
from bench.wire import RELAY
from bench.wsclient import Deliveries
from pulsar_relay import haproxy

RAW = REPO / "bench" / "results" / "raw" / "haproxy_cost.json"
PARTITIONS = 16
TITLE = "HAProxy cost"


@dataclass(frozen=True)
class Params:
    gateways: int = 2  # pulsar-relay stack's default
    sockets: int = 4000  # idle proxied WebSockets (each costs HAProxy 2 fds)
    topics: int = 40  # socket i subscribes to topic i mod topics
    rate: float = 150.0  # messages/s in the frame step: rate x sockets / topics frames/s
    producers: int = 16  # keep-alive connections in the publish step
    seconds: float = 8.0  # length of each measured step
    connect_concurrency: int = 100


# Small, yet enough work for several of /proc's 10 ms CPU ticks in each step.
TINY = Params(sockets=200, topics=4, rate=100.0, producers=4, seconds=1.0, connect_concurrency=50)


class Frames(Deliveries):
    """Deliveries that also count frames: the client hands each text frame's stamps over once."""

    def __init__(self) -> None:
        super().__init__()
        self.frames = 0

    def add(self, stamps: Sequence[bytes | int], now: int) -> None:
        self.frames += 1
        super().add(stamps, now)

    def reset(self) -> None:
        super().reset()
        self.frames = 0


def start_haproxy(auth: Server, ingest: Server, gateways: list[Server], run_dir: Path) -> Server:
    """HAProxy on the shipped config, filled in as pulsar_relay/stack.py fills it."""
    port = free_port()
    addresses = haproxy.Addresses(
        bind=f"127.0.0.1:{port}",
        monitor=f"127.0.0.1:{free_port()}",
        auth=f"127.0.0.1:{auth.port}",
        ingest=f"127.0.0.1:{ingest.port}",
        gateways=[f"127.0.0.1:{g.port}" for g in gateways],
        runtime_socket=run_dir / "haproxy.sock",
    )
    env = {**os.environ, **haproxy.static_env(addresses)}
    argv = [haproxy.binary(), "-db", "-f", str(haproxy.find_config())]
    lb = Server("haproxy", argv, env, port, core=UNPINNED, cwd=str(run_dir), probe="tcp").start()
    runtime = haproxy.Runtime(addresses.runtime_socket)
    for k, address in enumerate(addresses.gateways[1:], start=2):
        runtime.set_server("gateway", f"gw{k}", address)
    deadline = time.monotonic() + 30
    while not runtime.all_up(["auth", "ingest", "gateway"]):
        if time.monotonic() > deadline:
            lb.stop()
            raise RuntimeError(f"HAProxy's servers did not come up:\n{lb.output()}")
        time.sleep(0.2)
    return lb


def haproxy_version() -> str:
    argv = [haproxy.binary(), "-v"]
    return subprocess.run(argv, capture_output=True, text=True, check=False).stdout.split("\n")[0]


class Cpu:
    """CPU seconds of some processes over a block: ``with Cpu(pids) as c: ...; c.used[pid]``."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.used: dict[int, float] = {}
        self.wall = 0.0

    def __enter__(self) -> Cpu:
        self._t0 = time.monotonic()
        self._before = {p: cpu_seconds(p) for p in self.pids}
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.monotonic() - self._t0
        self.used = {p: cpu_seconds(p) - self._before[p] for p in self.pids}


async def measure(p: Params, log: Any) -> dict[str, Any]:
    from tests.support.valkey import ValkeyServer

    valkey = ValkeyServer().start()
    run_dir = Path(tempfile.mkdtemp(prefix="bench-haproxy-"))
    auth = relay_process("auth", valkey.url, PARTITIONS)
    ingest = relay_process("ingest", valkey.url, PARTITIONS)
    gws = [
        relay_process("gateway", valkey.url, PARTITIONS, PULSAR_GATEWAY_ID=f"haproxy-gw{i}")
        for i in range(p.gateways)
    ]
    procs: list[Server] = [auth, ingest, *gws]
    out: dict[str, Any] = {}
    try:
        await asyncio.gather(*(asyncio.to_thread(s.start) for s in procs))
        lb = await asyncio.to_thread(start_haproxy, auth, ingest, gws, run_dir)
        procs.append(lb)
        out["haproxy_version"] = await asyncio.to_thread(haproxy_version)
        token = await login("127.0.0.1", lb.port, *ours.ADMIN)
        topics = [f"haproxy-{i}" for i in range(p.topics)]
        await prepare_topics("127.0.0.1", ingest.port, token, topics)
        # Subscribers connect through HAProxy; the frame step publishes to ingest directly.
        dep = Deployment("ours", "haproxy", "uvicorn", ingest.port, lb.port, token, lb, procs)
        sink = Frames()

        # 1. Memory per idle proxied socket, after a few connections warmed HAProxy's pools.
        warm, _ = await connect_many(dep, [topics[:1]] * 20, sink, concurrency=20)
        close_all(warm)
        await asyncio.sleep(1.5)
        rss0 = rss_kib(lb.pid)
        log(f"  {p.sockets} idle WebSockets through HAProxy")
        wanted = [[topics[i % p.topics]] for i in range(p.sockets)]
        subs, errors = await connect_many(dep, wanted, sink, concurrency=p.connect_concurrency)
        try:
            await asyncio.sleep(2.0)
            rss1 = rss_kib(lb.pid)
            held = len(subs)
            out["idle"] = {
                "sockets": held,
                "connect_errors": errors,
                "rss_before_kib": rss0,
                "rss_after_kib": rss1,
                "kib_per_socket": (rss1 - rss0) / held if held else None,
            }
            with Cpu([lb.pid]) as idle_cpu:
                await asyncio.sleep(min(p.seconds, 3.0))
            out["idle"]["cpu_per_s"] = idle_cpu.used[lb.pid] / idle_cpu.wall

            # 2. CPU per delivered frame: publishes go to ingest, frames come through HAProxy.
            fanout = held // p.topics if held == p.sockets else 0
            log(f"  {p.rate:g} msg/s for {p.seconds:g} s to {held} proxied sockets")
            pubs = await open_connections("127.0.0.1", ingest.port, 4)
            try:
                with Cpu([lb.pid, *[g.pid for g in gws]]) as c:
                    step = await steady(dep, pubs, sink, topics, p.rate, p.seconds, fanout, 30.0)
            finally:
                for conn in pubs:
                    conn.close()
            frames = sink.frames
            out["frames"] = {
                "target_rate": p.rate,
                "achieved_publish_rate": step["achieved_publish_rate"],
                "expected": step["expected"],
                "delivered": step["delivered"],
                "frames": frames,
                "frames_per_s": frames / c.wall,
                "haproxy_cpu_s": c.used[lb.pid],
                "gateways_cpu_s": sum(c.used[g.pid] for g in gws),
                "wall_s": c.wall,
                "latency": step["latency"],
                "haproxy_us_per_frame": c.used[lb.pid] / max(frames, 1) * 1e6,
            }
        finally:
            close_all(subs)
        await asyncio.sleep(2.0)

        # 3. CPU per proxied single publish (to topics nobody subscribes to).
        ptopics = [f"haproxy-pub-{i}" for i in range(10)]
        await prepare_topics("127.0.0.1", ingest.port, token, ptopics)
        log(f"  single publishes through HAProxy from {p.producers} producers for {p.seconds:g} s")
        conns = await open_connections("127.0.0.1", lb.port, p.producers)

        def publish(seq: int) -> bytes:
            return RELAY.publish(conns[0], ptopics[seq % len(ptopics)], seq, token)

        try:
            await closed_loop(conns, publish, duration=min(1.0, p.seconds), warmup=0)
            with Cpu([lb.pid, ingest.pid]) as c:
                run = await closed_loop(conns, publish, duration=p.seconds, warmup=0)
        finally:
            for conn in conns:
                conn.close()
        n = max(run["requests"], 1)
        out["publish"] = {
            "producers": p.producers,
            "requests": run["requests"],
            "errors": run["errors"],
            "rps": run["requests"] / c.wall,
            "latency": run["latency"],
            "haproxy_cpu_s": c.used[lb.pid],
            "ingest_cpu_s": c.used[ingest.pid],
            "wall_s": c.wall,
            "haproxy_us_per_request": c.used[lb.pid] / n * 1e6,
            "ingest_us_per_request": c.used[ingest.pid] / n * 1e6,
        }
    finally:
        for s in reversed(procs):
            s.stop()
        valkey.cleanup()
        shutil.rmtree(run_dir, ignore_errors=True)
    return out


def section(info: dict[str, Any], r: dict[str, Any], p: Params) -> str:
    m = info["machine"]
    idle, fr, pub = r["idle"], r["frames"], r["publish"]
    per_topic = idle["sockets"] // p.topics
    rows = [
        (
            "HAProxy memory per idle proxied WebSocket",
            f"{_f(idle['kib_per_socket'])} KiB",
            f"RSS {idle['rss_before_kib']:,} -> {idle['rss_after_kib']:,} KiB over {idle['sockets']:,}"
            " subscribed sockets (2 fds each), after 20 warm-up sockets",
        ),
        (
            "HAProxy CPU per delivered WebSocket frame",
            f"{_f(fr['haproxy_us_per_frame'])} µs",
            f"{fr['frames']:,} frames ({fr['frames_per_s']:,.0f}/s, one message each;"
            f" {fr['delivered']:,} of {fr['expected']:,} messages delivered) from"
            f" {fr['achieved_publish_rate']:,.0f} msg/s single publishes sent to ingest directly,"
            f" {per_topic} sockets per topic; CPU s: HAProxy {fr['haproxy_cpu_s']:.2f},"
            f" gateways {fr['gateways_cpu_s']:.2f}",
        ),
        (
            "HAProxy CPU per proxied single publish",
            f"{_f(pub['haproxy_us_per_request'])} µs",
            f"{pub['requests']:,} `POST /api/v1/messages` ({pub['rps']:,.0f}/s, {pub['errors']} errors)"
            f" over {pub['producers']} keep-alive connections through HAProxy; ingest used"
            f" {_f(pub['ingest_us_per_request'])} µs per publish in the same run",
        ),
        (
            "HAProxy CPU while idle",
            f"{idle['cpu_per_s'] * 1000:.1f} ms/s",
            f"{idle['sockets']:,} sockets held, no traffic (health checks, timers; 10 ms ticks)",
        ),
    ]
    table = ["| figure | value | how |", "|---|---:|---|"] + [f"| {a} | {b} | {c} |" for a, b, c in rows]
    lat, plat = fr["latency"], pub["latency"]
    return "\n".join(
        [
            f"Run {info['started']} to {info['finished']}: `{info['command']}`,"
            f" code at commit {info['commit']}.",
            f"Machine: **{m['cores']} cores** ({m['cpu_model']}), {m['memory_gib']} GiB,"
            f" kernel {m['kernel']}, Python {m['python']}, {r['haproxy_version']};"
            f" load average before {m['loadavg_before']}, after {info['loadavg_after']}.",
            "",
            "HAProxy runs the shipped `deploy/haproxy.cfg` as `pulsar-relay stack` does (static addresses,",
            "`RELAY_MAXCONN` from the open-file limit, health checks every 2 s, one log line per request",
            f"or closed tunnel, written to a file), in front of one auth, one ingest and {p.gateways}",
            f"gateway processes on one Valkey ({PARTITIONS} partitions). CPU and resident memory are read",
            "from /proc for the HAProxy process (all its threads), so CPU time does not grow while it waits",
            f"for a core. **Everything shares the {m['cores']} cores with the load generator** (one",
            "Python process holding every client socket), so these are CPU time and memory per unit of",
            "work, not what HAProxy could sustain on cores of its own.",
            "",
            *table,
            "",
            f"Publish-to-receive p50 / p99 in the frame step: {lat.get('p50_ms') or 0:.2f} /"
            f" {lat.get('p99_ms') or 0:.2f} ms; proxied publish p50 / p99:"
            f" {plat.get('p50_ms') or 0:.2f} / {plat.get('p99_ms') or 0:.2f} ms.",
            "docs/SCALING.md uses the first three figures as the model's HAProxy inputs.",
        ]
    )


def _f(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.1f}" if abs(v) >= 1 else f"{v:.2f}"


def main(argv: list[str] | None = None) -> int:
    doc = __doc__ or ""
    ap = argparse.ArgumentParser(prog="python -m bench.haproxy_cost", description=doc.split("\n\n")[0])
    ap.add_argument("--sockets", type=int, default=Params.sockets, help="idle proxied WebSockets")
    ap.add_argument("--topics", type=int, default=Params.topics)
    ap.add_argument("--rate", type=float, default=Params.rate, help="msg/s in the frame step")
    ap.add_argument("--producers", type=int, default=Params.producers)
    ap.add_argument("--seconds", type=float, default=Params.seconds)
    ap.add_argument("--tiny", action="store_true", help="a few sockets and one-second steps (smoke test)")
    ap.add_argument("--no-write", action="store_true", help="print, do not touch docs/BENCHMARKS.md")
    ap.add_argument("--json", type=Path, help="also write the raw results here")
    args = ap.parse_args(argv)
    if args.tiny:
        p = TINY
    else:
        p = Params(
            sockets=args.sockets,
            topics=args.topics,
            rate=args.rate,
            producers=args.producers,
            seconds=args.seconds,
        )
    raise_nofile()
    machine = describe()
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    log("starting Valkey, auth, ingest, gateways and HAProxy")
    results = asyncio.run(measure(p, log))
    info = run_info("bench.haproxy_cost", sys.argv[1:] if argv is None else argv, started, machine, asdict(p))
    text = section(info, results, p)
    raw = json.dumps({"info": info, "results": results}, indent=1)
    if args.json:
        args.json.write_text(raw)
    if args.no_write:
        print(text)
    else:
        RAW.parent.mkdir(parents=True, exist_ok=True)
        RAW.write_text(raw)
        replace_section(TITLE, text, after="Scaling")
        print(text)
        log(f"wrote the {TITLE} section of docs/BENCHMARKS.md; raw numbers in {os.path.relpath(RAW)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
