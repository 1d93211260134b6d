"""Turns a suite run into bench/results/summary.json, the latency PNG and this suite's sections of
docs/BENCHMARKS.md.  Every figure is read from the run; nothing here is typed in."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench import docs_sections
from bench.plot import latency_plot
from bench.procs import REPO
from bench.summary import METRICS, TARGETS_20, busy, medians, peers_in, targets

SUMMARY_JSON = REPO / "bench" / "results" / "summary.json"
PLOT = REPO / "docs" / "benchmarks-latency.png"


def fmt(v: float | None, unit: str = "") -> str:
    if v is None:
        return "-"
    if unit == "ms" or abs(v) < 10:
        return f"{v:.2f}"
    return f"{v:,.0f}"


def summarize(info: dict[str, Any]) -> dict[str, Any]:
    raw = info.get("raw", {})
    figs = medians(raw)
    per_round = {
        m.key: {
            system: [m.pick(r) if "error" not in r else None for r in results]
            for system, results in raw.get(str(m.scenario), {}).items()
        }
        for m in METRICS
    }
    return {
        "machine": info.get("machine"),
        "reference_version": info.get("reference_version"),
        "peers": peers_in(raw),
        "peer_versions": info.get("peer_versions"),
        "skipped_systems": info.get("skipped_systems"),
        "commit": info.get("commit"),
        "started": info.get("started"),
        "finished": info.get("finished"),
        "loadavg_after": info.get("loadavg_after"),
        "argv": info.get("argv"),
        "calibration": info.get("calibration"),
        "medians": figs,
        "per_round": per_round,
        "targets": targets(figs),
        "targets_20": targets(figs, TARGETS_20),
        "busy": busy(raw),
        "servers": info.get("servers"),
        "profiles": {k: v.get("top") for k, v in (info.get("profiles") or {}).items()},
        "reference_scenarios": docs_sections.reference13_medians(raw),
    }


def table_text(summary: dict[str, Any]) -> str:
    """The console table: ours, the reference and ours/reference, then each peer measured and
    ours/peer."""
    peers = summary.get("peers") or []
    head = f"{'metric':52} {'ours':>12} {'reference':>12} {'ratio':>8}"
    lines = [head + "".join(f" {p:>12} {'ours/' + p:>18}" for p in peers)]
    for m in METRICS:
        row = summary["medians"].get(m.key, {})
        if not any(row.get(s) is not None for s in ("ours", "reference", *peers)):
            continue
        label = f"{m.scenario}. {m.label} ({m.unit})" if m.unit else f"{m.scenario}. {m.label}"
        lines.append(
            f"{label:52} {fmt(row.get('ours'), m.unit):>12} {fmt(row.get('reference'), m.unit):>12}"
            f" {fmt(row.get('ratio')):>8}"
            + "".join(f" {fmt(row.get(p), m.unit):>12} {fmt(row.get('ratio_' + p)):>18}" for p in peers)
        )
    for t in summary["targets"]:
        state = {True: "met", False: "NOT met", None: "not measured"}[t["met"]]
        lines.append(f"target {t['scenario']}: {t['target']}: {state}")
    return "\n".join(lines)


def write_all(info: dict[str, Any], summary: dict[str, Any], plot: Path = PLOT) -> None:
    SUMMARY_JSON.parent.mkdir(parents=True, exist_ok=True)
    SUMMARY_JSON.write_text(json.dumps(summary, indent=1, default=str) + "\n")
    has_plot = latency_plot(info.get("raw", {}), plot)
    docs_sections.write(info, summary, plot if has_plot else None)


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.report RAW.json``: rebuild the summary, plot and docs from a raw run."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m bench.report", description=main.__doc__)
    p.add_argument("raw", type=Path)
    p.add_argument("--servers-from", type=Path, help="take the server comparison from another raw run")
    args = p.parse_args(argv)
    info = json.loads(args.raw.read_text())
    if args.servers_from:
        other = json.loads(args.servers_from.read_text())
        info["servers"] = other.get("servers")
        info["servers_run"] = {k: other.get(k) for k in ("started", "finished", "commit", "argv")}
    summary = summarize(info)
    print(table_text(summary))
    write_all(info, summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
