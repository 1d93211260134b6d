"""Summaries of what a scenario measured: percentiles of latency samples, medians over rounds."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of an already sorted sequence; None when empty."""
    if not sorted_values:
        return None
    rank = max(0, min(len(sorted_values) - 1, round(q / 100 * len(sorted_values) + 0.5) - 1))
    return float(sorted_values[rank])


def latency_summary(samples_ns: Iterable[int]) -> dict[str, float | int | None]:
    """p50/p90/p99/max in milliseconds, and the sample count."""
    values = sorted(samples_ns)
    ms = [v / 1e6 for v in values]
    return {
        "samples": len(ms),
        "p50_ms": percentile(ms, 50),
        "p90_ms": percentile(ms, 90),
        "p99_ms": percentile(ms, 99),
        "max_ms": ms[-1] if ms else None,
        "mean_ms": statistics.fmean(ms) if ms else None,
    }


def median(values: Iterable[float | int | None]) -> float | None:
    present = [float(v) for v in values if v is not None]
    return statistics.median(present) if present else None


def ratio(ours: float | None, reference: float | None) -> float | None:
    if ours is None or reference is None or reference == 0:
        return None
    return ours / reference
