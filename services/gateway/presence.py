"""Gateway liveness: this gateway's heartbeat (with its connection, waiter and per-topic subscriber
counts, so any gateway can report the whole deployment), and the removal of gateways that stopped
beating: their consumer groups would otherwise pin the fan-out logs forever."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from relaycore.errors import Unavailable
from relaycore.keys import Keys
from relaycore.models import now_ms
from relaycore.store.base import FanoutLog, GatewayRegistry

log = logging.getLogger(__name__)

Snapshot = Callable[[], tuple[dict[str, int], dict[str, int]]]


class Presence:
    def __init__(
        self,
        gateway_id: str,
        *,
        gateways: GatewayRegistry,
        fanout: FanoutLog,
        keys: Keys,
        snapshot: Snapshot,
        interval: float,
        expiry: float,
        on_beat: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.gateway_id = gateway_id
        self._gateways = gateways
        self._fanout = fanout
        self._keys = keys
        self._snapshot = snapshot
        self._interval = interval
        self._expiry_ms = int(expiry * 1000)
        self._on_beat = on_beat

    async def beat(self) -> None:
        counters, topics = self._snapshot()
        await self._gateways.heartbeat(self.gateway_id, counters, topics)

    async def leave(self) -> None:
        """A clean stop: remove this gateway's consumer group and its entry, so that neither the
        console nor the fan-out logs keep a gateway that is gone (a gateway that is killed is
        reaped by its peers after the expiry instead).  Starting again, under the same id or a
        new one such as a recreated container's hostname, joins afresh at the logs' ends."""
        await self._fanout.drop(self._keys.gateway_group(self.gateway_id))
        await self._gateways.forget(self.gateway_id)

    async def reap(self) -> list[str]:
        """Remove every gateway silent for longer than the expiry; returns their ids."""
        cutoff = now_ms() - self._expiry_ms
        gone = [
            g for g, seen in (await self._gateways.live()).items() if seen < cutoff and g != self.gateway_id
        ]
        for g in gone:
            log.warning("gateway %s silent since before the expiry: removing its consumer group", g)
            await self._fanout.drop(self._keys.gateway_group(g))
            await self._gateways.forget(g)
        return gone

    async def run(self) -> None:
        while True:
            try:
                await self.beat()
                await self.reap()
                if self._on_beat is not None:
                    await self._on_beat()
            except Unavailable as exc:
                log.warning("heartbeat failed: %s", exc)
            except Exception:
                log.exception("heartbeat failed")
            await asyncio.sleep(self._interval)
