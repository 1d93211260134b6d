"""The lock-free delivery latency histogram, read back through the Prometheus exposition."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from relaycore.loophist import LoopHistogram


def exposition(registry: CollectorRegistry) -> set[str]:
    """The registry's text exposition, as a set of lines."""
    return set(generate_latest(registry).decode().splitlines())


def test_buckets_are_cumulative_and_a_value_on_a_bound_counts_in_it() -> None:
    """``le`` buckets hold values up to and including their bound; +Inf, count and sum see all."""
    registry = CollectorRegistry()
    hist = LoopHistogram("t_seconds", "test", ["transport"], (0.1, 1.0), registry=registry)
    child = hist.labels("ws")
    for value in (0.05, 0.1, 0.5, 1.0, 7.0):
        child.observe(value)
    hist.labels("poll")  # a child never observed exposes zeros
    lines = exposition(registry)
    assert {
        't_seconds_bucket{le="0.1",transport="ws"} 2.0',
        't_seconds_bucket{le="1.0",transport="ws"} 4.0',
        't_seconds_bucket{le="+Inf",transport="ws"} 5.0',
        't_seconds_count{transport="ws"} 5.0',
        't_seconds_sum{transport="ws"} 8.65',
        't_seconds_count{transport="poll"} 0.0',
    } <= lines


def test_label_less_and_two_label_histograms_expose_like_prometheus_client() -> None:
    """Without labels the histogram is observed directly and exposed (as zeros) before any
    observation; with two labels each pair of values is its own series; a wrong label count fails."""
    registry = CollectorRegistry()
    plain = LoopHistogram("p_seconds", "test", [], (1.0,), registry=registry)
    assert "p_seconds_count 0.0" in generate_latest(registry).decode()
    plain.observe(0.5)
    pair = LoopHistogram("q_seconds", "test", ["service", "route"], (1.0,), registry=registry)
    pair.labels("ingest", "/a").observe(2.0)
    lines = exposition(registry)
    assert {
        'p_seconds_bucket{le="1.0"} 1.0',
        "p_seconds_count 1.0",
        'q_seconds_bucket{le="1.0",route="/a",service="ingest"} 0.0',
        'q_seconds_count{route="/a",service="ingest"} 1.0',
    } <= lines
    with pytest.raises(ValueError):
        pair.labels("ingest")


def test_observe_many_is_that_many_observations_of_one_value() -> None:
    """observe_many(v, n) exposes exactly as n calls of observe(v) do."""
    one, many = CollectorRegistry(), CollectorRegistry()
    single = LoopHistogram("t_seconds", "test", [], (0.1, 1.0), registry=one)
    for _ in range(3):
        single.observe(0.5)
    LoopHistogram("t_seconds", "test", [], (0.1, 1.0), registry=many).observe_many(0.5, 3)
    assert exposition(one) == exposition(many)
