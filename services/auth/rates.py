"""Publish and delivery rates over the last minutes, for the console's chart: a short ring of
samples this process takes every few seconds once the console first asks for them.

Published counts come from the fan-out logs (every publish appends one entry, whichever ingest
took it).  Delivered counts come from the gateways' heartbeats when they carry a
``messages_delivered`` counter, and otherwise from this process's own
``relay_messages_delivered_total``, which sees every delivery when the gateway runs in the same
process (``pulsar-relay serve all``).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections import deque

from auth.admin_schemas import Rates, RateSample
from relaycore import metrics
from relaycore.errors import Unavailable
from relaycore.models import now_ms
from relaycore.store.base import Backend

log = logging.getLogger(__name__)

INTERVAL = 2.0  # seconds between samples
WINDOW = 600.0  # seconds of history kept
_DELIVERED = "messages_delivered"


def _increase(before: int | None, after: int) -> int:
    # A counter that went down was reset (a restarted gateway, a flushed Valkey): count from zero.
    if before is None:
        return 0
    return after - before if after >= before else after


class RateRing:
    def __init__(self, backend: Backend, *, interval: float = INTERVAL, window: float = WINDOW) -> None:
        self._backend = backend
        self.interval = interval
        self.window = window
        self.samples: deque[RateSample] = deque(maxlen=max(1, int(window / interval)))
        self.source = "process"
        self._published: int | None = None
        self._delivered: dict[str, int] = {}
        # Per gateway: its counter and heartbeat time at its last new heartbeat, the rate
        # (deliveries/s) between its last two heartbeats, and the deliveries reported but not yet
        # counted in a sample (paid out at that rate, so the samples still add up exactly).
        self._beats: dict[str, tuple[int, int]] = {}
        self._beat_rates: dict[str, float] = {}
        self._owed: dict[str, int] = {}
        self._at: int | None = None
        self._task: asyncio.Task[None] | None = None

    def ensure_running(self) -> None:
        """Start sampling (once); the console calls this, so idle relays do no extra work."""
        if self._task is None or self._task.done():
            # A fresh context: the sampler outlives the request that started it (and its log id).
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="console-rates", context=contextvars.Context()
            )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def view(self) -> Rates:
        return Rates(
            interval_seconds=self.interval,
            window_seconds=self.window,
            delivered_source=self.source,
            samples=list(self.samples),
        )

    async def _run(self) -> None:
        while True:
            try:
                await self.sample()
            except Unavailable as exc:
                log.info("rate sample skipped: %s", exc)
                self._at = None  # the next sample starts a new baseline, not a huge interval
            except Exception:
                log.exception("rate sample failed")
                self._at = None
            await asyncio.sleep(self.interval)

    async def sample(self) -> None:
        """Read the counters now; from the second reading on, append the increase since the last."""
        published = await self._backend.fanout.appended()
        beats = {g: c[_DELIVERED] for g, c, _ in await self._backend.gateways.stats() if _DELIVERED in c}
        source = "gateways" if beats else "process"
        delivered_now = beats if beats else {"": metrics.delivered_total()}
        at = now_ms()
        if source == "gateways":
            self._follow_beats(beats, await self._backend.gateways.live())
        if self._at is not None and source == self.source:
            seconds = (at - self._at) / 1000
            if source == "gateways":
                # Heartbeats refresh the counters every few seconds, more slowly than samples are
                # taken: spread each gateway's increase over the time between its heartbeats, or
                # steady traffic reads as 0, then a burst, then 0 again.
                delivered = sum(self._pay(g, seconds) for g in beats)
            else:
                delivered = sum(_increase(self._delivered.get(g), n) for g, n in delivered_now.items())
            self.samples.append(
                RateSample(
                    at_ms=at,
                    seconds=seconds,
                    published=_increase(self._published, published),
                    delivered=delivered,
                )
            )
        self.source = source
        self._at, self._published, self._delivered = at, published, delivered_now

    def _follow_beats(self, counts: dict[str, int], seen: dict[str, int]) -> None:
        for gateway, count in counts.items():
            beat = seen.get(gateway)
            if beat is None:
                continue
            before = self._beats.get(gateway)
            if before is not None and beat > before[1]:
                increase = _increase(before[0], count)
                self._beat_rates[gateway] = increase / ((beat - before[1]) / 1000)
                self._owed[gateway] = self._owed.get(gateway, 0) + increase
            if before is None or beat > before[1]:
                self._beats[gateway] = (count, beat)
        for gone in set(self._beats) - set(counts):
            self._beats.pop(gone, None)
            self._beat_rates.pop(gone, None)
            self._owed.pop(gone, None)

    def _pay(self, gateway: str, seconds: float) -> int:
        """This sample's share of the gateway's reported deliveries: its rate over the sample, or
        all that is left once the rate has dropped to 0."""
        owed = self._owed.get(gateway, 0)
        rate = self._beat_rates.get(gateway, 0.0)
        paid = min(owed, max(1, round(rate * seconds))) if rate > 0 else owed
        self._owed[gateway] = owed - paid
        return paid
