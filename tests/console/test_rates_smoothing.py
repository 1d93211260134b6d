"""The console's delivered rate under steady traffic is steady: gateways refresh their delivery
counters only with each heartbeat (every few seconds), more slowly than the console samples, so
each gateway's increase is spread over the time between its heartbeats rather than landing in one
sample with zeros around it."""

from __future__ import annotations

import asyncio
import time

from auth.rates import RateRing
from relaycore.store.valkey_backend import ValkeyBackend
from tests.conftest import make_settings

BEAT = 0.5  # seconds between a gateway's heartbeats
SAMPLE = 0.1  # seconds between the console's samples
RATE = 100  # deliveries per second, steady


async def test_steady_deliveries_read_as_a_steady_rate(valkey_url: str) -> None:
    """100 deliveries/s reported every 0.5 s, sampled every 0.1 s: every sample after the first two
    heartbeats reads ~100/s, none 0 (it alternated 0 and bursts)."""
    backend = ValkeyBackend(make_settings(valkey_url))
    ring = RateRing(backend, interval=SAMPLE)
    try:
        delivered = 0
        await backend.gateways.heartbeat("gw-1", {"messages_delivered": delivered}, {})
        started = next_beat = time.monotonic()
        beats = 0
        while time.monotonic() - started < 3.0:
            if time.monotonic() >= next_beat + BEAT:
                next_beat += BEAT
                delivered += int(RATE * BEAT)
                beats += 1
                await backend.gateways.heartbeat("gw-1", {"messages_delivered": delivered}, {})
                if beats == 2:
                    ring.samples.clear()  # the rate is known from the second heartbeat on
            await ring.sample()
            await asyncio.sleep(SAMPLE)
        rates = [s.delivered / s.seconds for s in ring.samples if s.seconds > 0]
        assert len(rates) >= 10, rates
        assert all(0.5 * RATE <= r <= 1.5 * RATE for r in rates), [round(r) for r in rates]
    finally:
        await backend.close()
