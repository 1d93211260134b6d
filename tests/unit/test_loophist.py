"""The lock-free delivery latency histogram, read back through the Prometheus exposition."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from relaycore.loophist import LoopHistogram


def test_buckets_are_cumulative_and_a_value_on_a_bound_counts_in_it() -> None:
    """``le`` buckets hold values up to and including their bound; +Inf, count and sum see all."""
    registry = CollectorRegistry()
    hist = LoopHistogram("t_seconds", "test", "transport", (0.1, 1.0), registry=registry)
    child = hist.labels("ws")
    for value in (0.05, 0.1, 0.5, 1.0, 7.0):
        child.observe(value)
    hist.labels("poll")  # a child never observed exposes zeros
    lines = set(generate_latest(registry).decode().splitlines())
    assert {
        't_seconds_bucket{le="0.1",transport="ws"} 2.0',
        't_seconds_bucket{le="1.0",transport="ws"} 4.0',
        't_seconds_bucket{le="+Inf",transport="ws"} 5.0',
        't_seconds_count{transport="ws"} 5.0',
        't_seconds_sum{transport="ws"} 8.65',
        't_seconds_count{transport="poll"} 0.0',
    } <= lines
