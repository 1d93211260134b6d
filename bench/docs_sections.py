"""This suite's sections of docs/BENCHMARKS.md, rebuilt from a run.  Each ``## `` section is
replaced in place (or appended), so sections other tools write on the same page survive."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bench.procs import REPO
from bench.stats import median
from bench.summary import METRICS

PAGE = REPO / "docs" / "BENCHMARKS.md"
METHOD_FILE = Path(__file__).with_name("METHOD.md")
SECTIONS = (
    "Side-by-side suite",
    "Results against the reference",
    "Results against the peers",
    "Latency against load",
)


def _section(lines: list[str], title: str) -> tuple[int, int] | None:
    """The line range of ``## title`` up to the next ``## `` heading, or None."""
    start = next((i for i, line in enumerate(lines) if line.strip() == f"## {title}"), None)
    if start is None:
        return None
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return start, end


def replace_section(title: str, body: str, path: Path | None = None, after: str | None = None) -> None:
    """Replace ``## title`` in place; a new section goes right after section ``after`` when the
    page has it, else at the end."""
    path = path or PAGE
    lines = path.read_text().splitlines() if path.exists() else ["# Benchmarks", ""]
    block = [f"## {title}", "", *body.strip("\n").splitlines(), ""]
    found = _section(lines, title)
    anchor = _section(lines, after) if after else None
    if found is not None:
        new = [*lines[: found[0]], *block, *lines[found[1] :]]
    elif anchor is not None:
        new = [*lines[: anchor[1]], *block, *lines[anchor[1] :]]
    else:
        new = [*lines, *([""] if lines and lines[-1] else []), *block]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(new).rstrip("\n") + "\n")


def _num(v: Any, unit: str = "") -> str:
    if v is None:
        return "-"
    v = float(v)
    if unit == "ms" or abs(v) < 10:
        return f"{v:.2f}"
    return f"{v:,.0f}"


def setup_text(info: dict[str, Any], summary: dict[str, Any]) -> str:
    m = info.get("machine", {})
    cal = info.get("calibration") or {}
    lines = [
        f"Run {info.get('started')} to {info.get('finished')}: "
        f"`python -m bench.suite {' '.join(info.get('argv', [])[1:])}`, code at commit {info.get('commit')}.",
        "",
        "| | |",
        "|---|---|",
        f"| machine | {m.get('cores')} cores, {m.get('cpu_model')}, kernel {m.get('kernel')}, "
        f"{m.get('memory_gib')} GiB, Python {m.get('python')} |",
        f"| load average (1, 5, 15 min) | before {m.get('loadavg_before')}, "
        f"after {info.get('loadavg_after')} |",
        f"| reference | pulsar-relay {info.get('reference_version')} from PyPI |",
        *_peer_rows(info),
        f"| open-file limit (hard) | {m.get('nofile_hard')} |",
        f"| load generator, HTTP (lean client / httpx, 50 conns vs a no-op server) | "
        f"{_num(cal.get('http_lean_rps'))} / {_num(cal.get('http_httpx_rps'))} req/s |",
        f"| load generator, WebSocket frames (lean client / websockets, 100 conns) | "
        f"{_num(cal.get('ws_lean_frames_per_s'))} / {_num(cal.get('ws_websockets_frames_per_s'))} frames/s |",
        "",
    ]
    if METHOD_FILE.exists():
        lines.append(METHOD_FILE.read_text().strip())
    return "\n".join(lines)


def _peer_rows(info: dict[str, Any]) -> list[str]:
    """The setup table's rows for the peers: each measured one's Debian package version, and
    each skipped one with the reason."""
    rows = [
        f"| peer {system} | Debian package {version or 'version unknown'} |"
        for system, version in (info.get("peer_versions") or {}).items()
    ]
    rows += [
        f"| peer {system} | skipped: {why} |" for system, why in (info.get("skipped_systems") or {}).items()
    ]
    return rows


def peers_text(summary: dict[str, Any]) -> str:
    """Ours beside each peer measured, with ours/peer, and who was busy; empty without peers."""
    peers: list[str] = summary.get("peers") or []
    if not peers:
        return ""
    lines = [
        "Medians over rounds from the same run as the reference's table; ours/peer above 1 favours ours",
        "where higher is better (deliveries/s, requests/s, sockets held) and the peer where lower is",
        "better (latency, memory). How each peer is configured: bench/METHOD.md, quoted above.",
        "",
        "| scenario | metric | ours | " + " | ".join(f"{p} | ours/{p}" for p in peers) + " |",
        "|---|---|---:|" + "---:|---:|" * len(peers),
    ]
    for m in METRICS:
        row = summary["medians"].get(m.key, {})
        if not any(row.get(p) is not None for p in peers):
            continue
        unit = f" ({m.unit})" if m.unit else ""
        cells = " | ".join(f"{_num(row.get(p), m.unit)} | {_num(row.get('ratio_' + p))}" for p in peers)
        lines.append(f"| {m.scenario} | {m.label}{unit} | {_num(row.get('ours'), m.unit)} | {cells} |")
    lines += [
        "",
        "CPU busy during each scenario's measured phase (1.00 = one core; medians; a peer's server is",
        "all its processes: nginx's master and worker, Pushpin's runner and services).",
        "",
        "| scenario | " + " | ".join(f"{p}: server | {p}: load generator" for p in peers) + " |",
        "|---|" + "---:|---:|" * len(peers),
    ]
    for scenario, per in sorted((summary.get("busy") or {}).items()):
        if not any(p in per for p in peers):
            continue
        cells = " | ".join(
            f"{_num(per.get(p, {}).get('server'))} | {_num(per.get(p, {}).get('loadgen'))}" for p in peers
        )
        lines.append(f"| {scenario} | {cells} |")
    lines += [
        "",
        "### Targets (issue 20, against nchan with Redis storage)",
        "",
        "| | target | result |",
        "|---|---|---|",
    ]
    for t in summary.get("targets_20") or []:
        state = {True: "**met**", False: "not met", None: "not measured"}[t["met"]]
        lines.append(f"| {t['scenario']} | {t['target']} | {state} |")
    return "\n".join(lines)


def results_text(summary: dict[str, Any]) -> str:
    lines = [
        "Medians over rounds; every round's value in the last column (ours / reference).",
        "",
        "| scenario | metric | ours | reference | ours/ref | rounds (ours; reference) |",
        "|---|---|---:|---:|---:|---|",
    ]
    for m in METRICS:
        row = summary["medians"].get(m.key, {})
        if not any(row.get(s) is not None for s in ("ours", "reference")):
            continue
        rounds = summary["per_round"].get(m.key, {})
        per = "; ".join(", ".join(_num(v, m.unit) for v in rounds.get(s, [])) for s in ("ours", "reference"))
        unit = f" ({m.unit})" if m.unit else ""
        lines.append(
            f"| {m.scenario} | {m.label}{unit} | {_num(row.get('ours'), m.unit)} | "
            f"{_num(row.get('reference'), m.unit)} | {_num(row.get('ratio'))} | {per} |"
        )
    lines += [
        "",
        "CPU busy during each scenario's measured phase (1.00 = one core; medians): a load generator",
        "near 1.00 would mean the figure measures the load generator, not the relay.",
        "",
        "| scenario | ours: server | ours: load generator | reference: server | reference: load generator |",
        "|---|---:|---:|---:|---:|",
    ]
    for scenario, per in sorted((summary.get("busy") or {}).items()):
        o, r = per.get("ours", {}), per.get("reference", {})
        lines.append(
            f"| {scenario} | {_num(o.get('server'))} | {_num(o.get('loadgen'))} "
            f"| {_num(r.get('server'))} | {_num(r.get('loadgen'))} |"
        )
    lines += ["", "### Targets (issue 8)", "", "| scenario | target | result |", "|---|---|---|"]
    for t in summary["targets"]:
        state = {True: "**met**", False: "not met", None: "not measured"}[t["met"]]
        lines.append(f"| {t['scenario']} | {t['target']} | {state} |")
    return "\n".join(lines)


def latency_text(info: dict[str, Any], plot: Path | None) -> str:
    lines = []
    if plot is not None:
        lines += [f"![latency against load]({Path(os.path.relpath(plot, PAGE.parent)).as_posix()})", ""]
    lines += ["| system | scenario | step | deliveries/s | p50 ms | p99 ms |", "|---|---|---|---:|---:|---:|"]
    raw = info.get("raw", {})
    for scenario, key, by in (("4", "steps", "fraction"), ("5", "curve", "target_publish_rate")):
        for system, results in sorted(raw.get(scenario, {}).items()):
            steps: dict[float, list[dict[str, Any]]] = {}
            for r in results:
                for s in r.get(key) or []:
                    steps.setdefault(float(s[by]), []).append(s)
            for step, ss in sorted(steps.items()):
                name = f"{step:.0%} of burst rate" if by == "fraction" else f"{step:,.0f} publishes/s"
                lines.append(
                    f"| {system} | {scenario} | {name} | {_num(median(s['deliveries_per_s'] for s in ss))} | "
                    f"{_num(median(s['latency']['p50_ms'] for s in ss), 'ms')} | "
                    f"{_num(median(s['latency']['p99_ms'] for s in ss), 'ms')} |"
                )
    return "\n".join(lines)


def reference13_medians(raw: dict[str, dict[str, list[dict[str, Any]]]]) -> dict[str, dict[str, Any]]:
    """Scenario 8: per reference scenario name and system, median throughput and p50 (ms)."""
    table: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for system, results in raw.get("8", {}).items():
        for r in results:
            for row in r.get("results") or []:
                table.setdefault(row["name"], {}).setdefault(system, []).append(row)
    out: dict[str, dict[str, Any]] = {}
    for name, per in table.items():
        out[name] = {
            system: {
                "throughput": median(x.get("throughput") for x in rows),
                "p50_ms": median((x.get("p50_latency") or 0) * 1000 for x in rows),
                "errors": median(x.get("errors") for x in rows),
            }
            for system, rows in per.items()
        }
    return out


def reference13_text(summary: dict[str, Any]) -> str:
    rows = summary.get("reference_scenarios") or {}
    lines = [
        "`bench.reference_scenarios` run against our all-in-one process and the reference; "
        "medians over rounds (throughput in the reference's ops/s; p50 in ms).",
        "",
        "| reference scenario | ours ops/s | ours p50 | ours errors "
        "| reference ops/s | reference p50 | reference errors |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, per in rows.items():
        o, r = per.get("ours", {}), per.get("reference", {})
        lines.append(
            f"| {name} | {_num(o.get('throughput'))} | {_num(o.get('p50_ms'), 'ms')} "
            f"| {_num(o.get('errors'))} | {_num(r.get('throughput'))} | {_num(r.get('p50_ms'), 'ms')} "
            f"| {_num(r.get('errors'))} |"
        )
    return "\n".join(lines)


def write(info: dict[str, Any], summary: dict[str, Any], plot: Path | None) -> None:
    replace_section("Side-by-side suite", setup_text(info, summary))
    replace_section("Results against the reference", results_text(summary))
    if summary.get("peers"):
        replace_section(
            "Results against the peers", peers_text(summary), after="Results against the reference"
        )
    replace_section("Latency against load", latency_text(info, plot))
    if summary.get("reference_scenarios"):
        replace_section("The reference's own scenarios", reference13_text(summary))
    if info.get("servers"):
        from bench.servers import servers_text

        text = servers_text(info["servers"])
        run = info.get("servers_run")
        if run:
            text = (
                f"From a separate run, {run.get('started')} to {run.get('finished')}, "
                f"commit {run.get('commit')}: "
                f"`python -m bench.suite {' '.join((run.get('argv') or [])[1:])}`.\n\n{text}"
            )
        replace_section("Server choice", text)
    if info.get("profiles"):
        from bench.profiling import profiles_text

        replace_section("Where the time goes", profiles_text(info["profiles"]))
