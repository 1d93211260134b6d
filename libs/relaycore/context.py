"""What a running service holds: settings, the storage backend and the authorizer, with the
background task that keeps the authorizer's caches honest.  Shared when services are co-mounted."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from relaycore import metrics
from relaycore.access import Authorizer
from relaycore.config import Settings
from relaycore.store import open_backend
from relaycore.store.base import Backend
from relaycore.tokens import Verifier

log = logging.getLogger(__name__)


class Context:
    def __init__(self, settings: Settings, backend: Backend | None = None) -> None:
        self.settings = settings
        self.backend = backend or open_backend(settings)
        self.verifier = Verifier(settings)
        self.authorizer = Authorizer(self.backend, self.verifier, cache_ttl=settings.access_cache_ttl)
        self._task: asyncio.Task[None] | None = None
        self._users = 0
        self._stop_metrics: Callable[[], None] | None = None

    async def start(self) -> None:
        """Idempotent: co-mounted services each call it; the first one starts the listeners."""
        self._users += 1
        if self._task is None:
            self._task = asyncio.create_task(self.authorizer.run(), name="invalidation-listener")
        if self.settings.metrics_port and self._stop_metrics is None:
            self._stop_metrics = metrics.serve_separately(self.settings.host, self.settings.metrics_port)

    async def stop(self) -> None:
        self._users -= 1
        if self._users > 0 or self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        if self._stop_metrics is not None:
            await asyncio.to_thread(self._stop_metrics)
            self._stop_metrics = None
        await self.backend.close()
