"""The latency-against-load PNG: publish-to-receive p50 and p99 against delivered messages/s, for
every system, from scenario 4's steady steps (1,000 subscribers, one topic) and scenario 5's rate
curve (2,000 clients on 200 topics); medians of each step over rounds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.stats import median

COLORS = {
    "ours": "tab:blue",
    "reference": "tab:orange",
    "nchan": "tab:green",
    "nchan-memory": "tab:olive",
    "pushpin": "tab:purple",
}


def _points(results: list[dict[str, Any]], key: str, by: str) -> list[tuple[float, float, float]]:
    """(deliveries/s, p50, p99) per step position, medians over rounds."""
    per_step: dict[float, list[dict[str, Any]]] = {}
    for r in results:
        for step in r.get(key) or []:
            per_step.setdefault(float(step[by]), []).append(step)
    points = []
    for _, steps in sorted(per_step.items()):
        rate = median(s["deliveries_per_s"] for s in steps)
        p50 = median(s["latency"]["p50_ms"] for s in steps)
        p99 = median(s["latency"]["p99_ms"] for s in steps)
        if rate is not None and p50 is not None and p99 is not None:
            points.append((rate, p50, p99))
    return points


def latency_plot(raw: dict[str, dict[str, list[dict[str, Any]]]], path: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("4", "steps", "fraction", "Scenario 4: 1,000 subscribers, one topic"),
        ("5", "curve", "target_publish_rate", "Scenario 5: 2,000 clients, 200 topics"),
    ]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    drew = False
    for ax, (scenario, key, by, title) in zip(axes, panels, strict=True):
        for system, results in sorted(raw.get(scenario, {}).items()):
            pts = _points([r for r in results if "error" not in r], key, by)
            if not pts:
                continue
            drew = True
            xs = [p[0] for p in pts]
            color = COLORS.get(system, "tab:gray")
            ax.plot(xs, [p[1] for p in pts], "o-", color=color, label=f"{system} p50")
            ax.plot(xs, [p[2] for p in pts], "s--", color=color, label=f"{system} p99")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("deliveries per second (steady publishing)")
        ax.set_ylabel("publish-to-receive latency (ms)")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    if drew:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
    plt.close(fig)
    return drew
