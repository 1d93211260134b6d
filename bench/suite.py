"""``python -m bench.suite``: issue 8's benchmark, ours and the reference side by side.

Sets up the reference in ``.bench-venv/reference`` (latest ``pulsar-relay`` from PyPI), starts a
private Valkey, calibrates the load generator, then runs scenarios 1-8 against both systems,
alternating which goes first, for several rounds; each run gets a freshly flushed Valkey and
fresh server processes pinned to core 0 while this process (the load generator) runs on core 1.
Optionally compares servers (uvicorn/granian) and profiles ours with py-spy.  Writes
raw JSON under bench/results/raw/, a summary to bench/results/summary.json, the PNG plot, and
its sections of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from bench import calibrate, machine, reference
from bench.ours import SERVERS
from bench.peers import PEERS
from bench.procs import REPO, commit
from bench.scenarios import Params, connections, fanout, longpoll, publishing, reference13, topics
from bench.systems import SYSTEMS, deploy, missing, version

RAW_DIR = REPO / "bench" / "results" / "raw"
ROLE = {
    1: "ingest",
    2: "ingest",
    3: "ingest",
    4: "gateway",
    5: "gateway",
    6: "gateway",
    7: "gateway",
    8: "all",
}
RUNNERS: dict[int, Any] = {
    1: publishing.single_one,
    2: publishing.single_concurrent,
    3: publishing.bulk,
    4: fanout.run,
    5: topics.run,
    6: longpoll.run,
    7: connections.run,
}


# The scenarios a peer runs: delivery over WebSockets (4, 5, 7), long-poll where the peer has it
# (6, nchan), and publishing (1, 2; 3 where it has bulk publishing).  Scenario 8 is the
# reference's own API, which only ours and the reference speak.
PEER_SCENARIOS = frozenset({1, 2, 3, 4, 5, 6, 7})


def supported(system: str) -> frozenset[int]:
    return PEER_SCENARIOS if system in PEERS else frozenset(ROLE)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


async def run_one(
    scenario: int, system: str, valkey_url: str, params: Params, args: argparse.Namespace, server: str
) -> dict[str, Any]:
    if scenario not in supported(system):
        return {"skipped": f"scenario {scenario} does not apply to {system}"}
    role = args.deployment if (system == "ours" and args.deployment) else ROLE[scenario]
    workers = args.workers if system == "ours" else None
    dep = await deploy(
        system, role, valkey_url, server=server, max_clients=params.idle_target + 5000, workers=workers
    )
    started = time.monotonic()
    try:
        if scenario == 8:
            result = await reference13.run(dep, tiny=args.tiny, deadline=20.0 if args.tiny else 120.0)
        else:
            result = await RUNNERS[scenario](dep, params)
        result["deployment"] = dep.label
        result["wall_seconds"] = round(time.monotonic() - started, 1)
        return dict(result)
    except Exception as exc:
        log(f"scenario {scenario} on {dep.label} failed: {exc!r}")
        return {
            "error": repr(exc),
            "trace": traceback.format_exc()[-2000:],
            "server_log": dep.under_test.output(),
        }
    finally:
        dep.stop()


async def run_rounds(
    valkey_url: str, params: Params, args: argparse.Namespace
) -> dict[str, dict[str, list[Any]]]:
    raw: dict[str, dict[str, list[Any]]] = {}
    for rnd in range(args.rounds):
        order = list(args.systems) if rnd % 2 == 0 else list(reversed(args.systems))
        for scenario in args.scenarios:
            for system in order:
                log(f"round {rnd + 1}/{args.rounds}: scenario {scenario} on {system}")
                result = await run_one(scenario, system, valkey_url, params, args, args.server)
                result["round"] = rnd + 1
                raw.setdefault(str(scenario), {}).setdefault(system, []).append(result)
    return raw


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.suite", description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--scenarios", default="1,2,3,4,5,6,7,8", help="comma-separated numbers 1..8")
    p.add_argument(
        "--systems",
        default="ours,reference",
        help=f"comma-separated, from {','.join(SYSTEMS)} (a peer whose package is missing is skipped)",
    )
    p.add_argument("--deployment", choices=["all", "ingest", "gateway"], help="force ours into one layout")
    p.add_argument(
        "--server",
        choices=SERVERS,
        default="uvicorn",
        help="server for ours in the main rounds (uvicorn: what `pulsar-relay serve` runs by default)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="ours as `serve --workers N` on every core (load generator's included); unset: one "
        "process on the server core, as always",
    )
    p.add_argument("--servers", action="store_true", help="also compare uvicorn and granian")
    p.add_argument("--server-rounds", type=int, default=2)
    p.add_argument("--profile", action="store_true", help="also profile ours with py-spy (scenarios 2, 4)")
    p.add_argument("--tiny", action="store_true", help="tiny parameters: a smoke run, not a benchmark")
    p.add_argument("--quick", action="store_true", help="full scale, short steps: a development run")
    p.add_argument("--no-calibration", action="store_true", help="skip the load generator calibration")
    p.add_argument("--idle-target", type=int, help="scenario 7's connection target (default 20,000)")
    p.add_argument("--nice", type=int, default=-10, help="niceness of every benchmark process (0: leave)")
    p.add_argument("--no-docs", action="store_true", help="do not write docs/ or bench/results/summary.json")
    p.add_argument("--out", type=Path, default=RAW_DIR, help="directory for the raw JSON")
    args = p.parse_args(argv)
    args.scenarios = [int(s) for s in args.scenarios.split(",") if s.strip()]
    args.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = set(args.systems) - set(SYSTEMS)
    if unknown:
        p.error(f"unknown systems {sorted(unknown)}")
    return args


def runnable(systems: list[str], info: dict[str, Any]) -> list[str]:
    """``systems`` without the peers that cannot run here, each logged and recorded in ``info``
    with the reason; the version of each peer that can."""
    kept = []
    for system in systems:
        reason = missing(system)
        if reason:
            log(f"skipping {system}: {reason}")
            info.setdefault("skipped_systems", {})[system] = reason
            continue
        if system in PEERS:
            info.setdefault("peer_versions", {})[system] = version(system)
        kept.append(system)
    return kept


def prepare_process(nice: int) -> None:
    """Own session (so niceness can apply to this process's scheduling group), pinned to core 1."""
    if os.getpgrp() != os.getpid():
        try:
            os.setsid()
        except OSError:
            pass
    machine.NICE["value"] = nice
    machine.renice()
    machine.pin_self(machine.LOADGEN_CORE)
    machine.raise_nofile()


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    from tests.support.valkey import ValkeyServer

    params = Params.tiny() if args.tiny else Params.quick() if args.quick else Params()
    if args.idle_target:
        params = params.with_(idle_target=args.idle_target)
    info: dict[str, Any] = {
        "machine": machine.describe(),
        "argv": sys.argv,
        "started": time.strftime("%F %T"),
        "commit": commit(),
    }
    if "reference" in args.systems:
        log("installing the reference")
        info["reference_version"] = reference.ensure_installed()
    args.systems = runnable(args.systems, info)
    valkey = ValkeyServer().start()
    assert valkey.proc is not None
    machine.renice(valkey.proc.pid)
    info["valkey"] = {"binary": valkey.binary, "appendfsync": valkey.appendfsync}
    try:
        if not (args.tiny or args.no_calibration):
            log("calibrating the load generator")
            info["calibration"] = await calibrate.calibrate()
        info["params"] = {k: v for k, v in vars(params).items()}
        info["raw"] = await run_rounds(valkey.url, params, args)
        if args.servers and "ours" in args.systems:
            from bench import servers

            info["servers"] = await servers.compare(valkey.url, params, args.server_rounds, log)
        if args.profile and "ours" in args.systems:
            from bench import profiling

            info["profiles"] = await profiling.profile(valkey.url, params, args.out, log)
    finally:
        valkey.cleanup()
    info["finished"] = time.strftime("%F %T")
    info["loadavg_after"] = machine.loadavg()
    return info


def main(argv: list[str] | None = None) -> int:
    import uvloop

    args = parse_args(argv)
    prepare_process(args.nice)
    info = uvloop.run(main_async(args))
    args.out.mkdir(parents=True, exist_ok=True)
    raw_path = args.out / f"suite-{time.strftime('%Y%m%d-%H%M%S')}.json"
    raw_path.write_text(json.dumps(info, indent=1, default=str))
    log(f"raw results: {raw_path}")
    from bench import report

    summary = report.summarize(info)
    print(report.table_text(summary))
    if not args.no_docs:
        report.write_all(info, summary)
    failed = [r for per in info["raw"].values() for rs in per.values() for r in rs if "error" in r]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
