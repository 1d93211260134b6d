"""The issue-8 scenarios.  Each is ``async def run(dep, params) -> dict`` over a fresh deployment;
``Params`` holds every size and duration, ``Params.tiny()`` the smoke-test version."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Params:
    duration: float = 5.0  # seconds measured per closed-loop or steady-rate step
    warmup: float = 1.0
    concurrency: int = 50  # scenario 2
    bulk_size: int = 100  # scenario 3
    bulk_concurrency: int = 4
    fanout_subscribers: int = 1000  # scenario 4
    fanout_fractions: tuple[float, ...] = (0.1, 0.25, 0.5, 0.75, 0.9)
    burst_seconds: float = 3.0  # a saturation burst is sized to last about this long
    topics_clients: int = 2000  # scenario 5
    topics_count: int = 200
    topics_rate: float = 500.0  # publishes/s: the reference's own E2E load (5 producers x 100/s)
    # Up to 8,000/s so the curve finds the fastest peer's limit (nchan's p99 passed 50 ms near 4,000/s
    # in issue 20's first measurement); it stops at the first step a system falls behind on.
    topics_rates: tuple[float, ...] = (100.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0)
    pollers: int = 500  # scenario 6
    poll_topics: int = 50
    poll_rate: float = 100.0
    poll_timeout: int = 5
    idle_target: int = 20_000  # scenario 7
    idle_seconds: float = 150.0  # at most this long to open them
    connect_concurrency: int = 100
    drain_timeout: float = 10.0

    @classmethod
    def quick(cls) -> Params:
        """Full scale, shorter steps: for development runs on a busy machine."""
        return cls(
            duration=2.0,
            warmup=0.5,
            fanout_fractions=(0.25, 0.5),
            burst_seconds=1.5,
            topics_rates=(500.0, 1000.0),
            idle_target=5000,
            idle_seconds=60.0,
        )

    @classmethod
    def tiny(cls) -> Params:
        return cls(
            duration=0.5,
            warmup=0.1,
            concurrency=4,
            bulk_size=10,
            bulk_concurrency=2,
            fanout_subscribers=10,
            fanout_fractions=(0.5,),
            burst_seconds=0.3,
            topics_clients=20,
            topics_count=5,
            topics_rate=20.0,
            topics_rates=(20.0,),
            pollers=10,
            poll_topics=5,
            poll_rate=20.0,
            poll_timeout=2,
            idle_target=50,
            idle_seconds=20.0,
            connect_concurrency=20,
            drain_timeout=5.0,
        )

    def with_(self, **changes: object) -> Params:
        return replace(self, **changes)  # type: ignore[arg-type]
