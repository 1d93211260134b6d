"""A Prometheus histogram for hot paths: an observation is one C ``bisect`` and two additions, with
no lock, because the relay observes from its one event-loop thread.  A gateway observes every frame
it writes (tens of thousands a second), ingest every request; ``prometheus_client.Histogram``
takes a lock and scans the buckets in Python on each, which measured about a tenth of a fan-out's
CPU.  Exposed through a collector, so scrapes see an ordinary ``histogram``."""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence

from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry


class Child:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: list[float]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1  # bucket ``le`` holds value <= le
        self.sum += value

    def observe_many(self, value: float, times: int) -> None:
        """``times`` observations of the same ``value``."""
        self.counts[bisect.bisect_left(self.bounds, value)] += times
        self.sum += value * times


class LoopHistogram(Collector):
    def __init__(
        self,
        name: str,
        documentation: str,
        labels: Sequence[str],
        buckets: Sequence[float],
        registry: CollectorRegistry,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.label_names = list(labels)
        self.bounds = sorted(float(b) for b in buckets)
        self._children: dict[tuple[str, ...], Child] = {}
        if not self.label_names:  # exposed from the start, as prometheus_client does
            self.observe = self.labels().observe
            self.observe_many = self.labels().observe_many
        registry.register(self)

    def labels(self, *values: str) -> Child:
        if len(values) != len(self.label_names):
            raise ValueError(f"{self.name} takes labels {self.label_names}, got {values}")
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = Child(self.bounds)
        return child

    def describe(self) -> Iterator[HistogramMetricFamily]:
        yield HistogramMetricFamily(self.name, self.documentation, labels=self.label_names)

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.label_names)
        for values, child in list(self._children.items()):
            cumulative, buckets = 0, []
            for bound, count in zip([*self.bounds, float("inf")], child.counts, strict=True):
                cumulative += count
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), float(cumulative)))
            family.add_metric(list(values), buckets, child.sum)
        yield family
