"""Server choice: the same service apps under uvicorn (httptools + websockets, uvloop)
and granian, on the hot path of each service: scenarios 1 and 2 for ingest, scenario 4 for the
gateway (burst saturation and latency at half of it) and scenario 5 (burst, and latency at the
reference's E2E load), and scenario 7 for the memory each idle WebSocket costs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.ours import SERVERS
from bench.scenarios import Params, connections, fanout, publishing, topics
from bench.stats import median
from bench.systems import deploy

CASES: list[tuple[str, str, Any]] = [
    ("ingest", "s1", publishing.single_one),
    ("ingest", "s2", publishing.single_concurrent),
    ("gateway", "s4", fanout.run),
    ("gateway", "s5", topics.run),
    ("gateway", "s7", connections.run),
]
# (case, label, path into the result, higher is better)
COLUMNS: list[tuple[str, str, tuple[str, ...], bool]] = [
    ("s1", "1 producer p50 ms", ("latency", "p50_ms"), False),
    ("s2", "50 producers req/s", ("rps",), True),
    ("s2", "50 producers p99 ms", ("latency", "p99_ms"), False),
    ("s4", "fan-out deliveries/s", ("saturation_deliveries_per_s",), True),
    ("s4", "fan-out p99 ms at half", ("half_load", "latency", "p99_ms"), False),
    ("s5", "200 topics deliveries/s", ("saturation_deliveries_per_s",), True),
    ("s5", "200 topics p50 ms at 500/s", ("reference_load", "latency", "p50_ms"), False),
    ("s5", "200 topics p99 ms at 500/s", ("reference_load", "latency", "p99_ms"), False),
    ("s7", "idle sockets held", ("held",), True),
    ("s7", "KiB per idle socket", ("kib_per_connection",), False),
]


async def compare(valkey_url: str, params: Params, rounds: int, log: Callable[[str], None]) -> dict[str, Any]:
    p = params.with_(fanout_fractions=(0.5,), topics_rates=())
    out: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for rnd in range(rounds):
        order = SERVERS if rnd % 2 == 0 else tuple(reversed(SERVERS))
        for role, case, runner in CASES:
            for server in order:
                log(f"servers round {rnd + 1}/{rounds}: {case} on {role} with {server}")
                try:
                    dep = await deploy("ours", role, valkey_url, server=server)
                except Exception as exc:
                    out.setdefault(case, {}).setdefault(server, []).append({"error": repr(exc)})
                    continue
                try:
                    result = await runner(dep, p)
                except Exception as exc:
                    result = {"error": repr(exc), "server_log": dep.under_test.output()}
                finally:
                    dep.stop()
                out.setdefault(case, {}).setdefault(server, []).append(result)
    return out


def _pick(result: dict[str, Any], path: tuple[str, ...]) -> float | None:
    cur: Any = result
    for key in path:
        cur = cur.get(key) if isinstance(cur, dict) else None
    return float(cur) if isinstance(cur, int | float) else None


def medians(results: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """``{column label: {server: median}}``."""
    table: dict[str, dict[str, float | None]] = {}
    for case, label, path, _ in COLUMNS:
        table[label] = {
            server: median(_pick(r, path) for r in runs if "error" not in r)
            for server, runs in results.get(case, {}).items()
        }
    return table


def best(results: dict[str, Any]) -> dict[str, str | None]:
    """The winner per service on its throughput column."""
    table = medians(results)

    def top(label: str) -> str | None:
        row = {k: v for k, v in table.get(label, {}).items() if v is not None}
        return max(row, key=lambda k: row[k]) if row else None

    return {"ingest": top("50 producers req/s"), "gateway": top("fan-out deliveries/s")}


def servers_text(results: dict[str, Any]) -> str:
    table = medians(results)
    lines = [
        "Ours only, the same app under each server (medians over rounds; the service alone on core 0).",
        "",
        "| server | " + " | ".join(label for _, label, _, _ in COLUMNS) + " |",
        "|---|" + "---:|" * len(COLUMNS),
    ]
    for server in SERVERS:
        cells = []
        for _, label, _, _ in COLUMNS:
            v = table.get(label, {}).get(server)
            cells.append("-" if v is None else (f"{v:.2f}" if "ms" in label or v < 100 else f"{v:,.0f}"))
        lines.append(f"| {server} | " + " | ".join(cells) + " |")
    errors = [
        f"{server} ({case}): {r['error'][:160]}"
        for case, per in results.items()
        for server, runs in per.items()
        for r in runs
        if "error" in r
    ]
    winners = best(results)
    lines += [
        "",
        f"Measured best: ingest **{winners['ingest']}**, gateway **{winners['gateway']}** "
        "(by requests/s and deliveries/s).",
    ]
    if errors:
        lines += ["", "Failures:", *(f"- {e}" for e in errors[:6])]
    return "\n".join(lines)
