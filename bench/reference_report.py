"""Results of the reference's benchmark scenarios, computed and printed as the reference's
``benchmarks/run_benchmarks.py`` does: throughput = ops / duration, mean and p50/p95/p99 latency
(index ``int(n * p / 100)`` into the sorted samples), and the same summary table."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any


def percentile(latencies: list[float], pct: float) -> float:
    """The reference's definition (not nearest-rank): sorted[min(int(n * pct / 100), n - 1)]."""
    if not latencies:
        return 0.0
    ordered = sorted(latencies)
    return ordered[min(int(len(ordered) * pct / 100), len(ordered) - 1)]


@dataclass
class Result:
    name: str
    duration: float
    operations: int
    latencies: list[float] = field(repr=False)
    errors: int = 0
    note: str = ""

    @property
    def throughput(self) -> float:
        return self.operations / self.duration if self.duration > 0 else 0.0

    @property
    def avg_latency(self) -> float:
        return statistics.mean(self.latencies) if self.latencies else 0.0

    def summary(self) -> dict[str, Any]:
        out = asdict(self)
        del out["latencies"]
        return out | {
            "throughput": self.throughput,
            "avg_latency": self.avg_latency,
            "p50_latency": percentile(self.latencies, 50),
            "p95_latency": percentile(self.latencies, 95),
            "p99_latency": percentile(self.latencies, 99),
        }


def print_result(r: Result) -> None:
    print(f"\n{'=' * 70}")
    print(r.name)
    print("=" * 70)
    print(f"Duration:       {r.duration:.2f}s")
    print(f"Operations:     {r.operations:,}")
    print(f"Throughput:     {r.throughput:,.0f} ops/sec")
    print(f"Avg Latency:    {r.avg_latency * 1000:.2f}ms")
    for pct in (50, 95, 99):
        print(f"P{pct} Latency:    {percentile(r.latencies, pct) * 1000:.2f}ms")
    if r.errors:
        print(f"Errors:         {r.errors}")
    if r.note:
        print(f"   {r.note}")


def print_summary(results: list[Result]) -> None:
    print(f"\n{'=' * 70}")
    print("BENCHMARK SUMMARY")
    print(f"{'=' * 70}\n")
    print(f"{'Benchmark':<45} {'Throughput':>12} {'Avg Latency':>12}")
    print(f"{'-' * 45} {'-' * 12} {'-' * 12}")
    for r in results:
        print(f"{r.name:<45} {f'{r.throughput:,.0f} ops/s':>12} {f'{r.avg_latency * 1000:.2f}ms':>12}")
    print()
