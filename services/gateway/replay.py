"""Reading a topic's stored messages: from the hot cache when it covers the request, else from
the topic stream in Valkey (``XRANGE``/``XREVRANGE`` with exclusive bounds).  Both give the same
answer; expired messages are never returned."""

from __future__ import annotations

from collections.abc import Callable

from gateway.cache import Cache
from relaycore import ids, metrics
from relaycore.ids import StreamId
from relaycore.models import StoredMessage
from relaycore.store.base import MessageStore

_cache_hit = metrics.cache_hits.labels("cache")
_cache_miss = metrics.cache_hits.labels("valkey")


class Replay:
    def __init__(self, cache: Cache, store: MessageStore, position: Callable[[str], StreamId | None]) -> None:
        self._cache = cache
        self._store = store
        self._position = position  # the tailer's position on a topic's partition

    async def after(self, topic: str, after: StreamId | None, limit: int) -> tuple[list[StoredMessage], bool]:
        """Up to ``limit`` messages with id > ``after`` (all when None), ascending, and whether
        nothing more existed when they were read.  A cache answer involves no await, so a caller
        that registered for live messages just before sees no gap between the two."""
        hit = self._cache.after(topic, after, limit)
        if hit is not None:
            _cache_hit.inc()
            return hit
        _cache_miss.inc()
        found = await self._store.read_after(topic, after, limit)
        return found, len(found) < limit

    async def page(
        self, topic: str, cursor: StreamId | None, limit: int, *, ascending: bool
    ) -> list[StoredMessage]:
        """A history page (``limit`` at most), for readers that did not register for live
        messages: the cache answers only once Valkey confirms it has seen the topic's newest id."""
        if (ascending and cursor is not None) or not ascending:
            position = self._position(topic)
            if position is not None and await self._fresh(topic, position):
                if ascending:
                    hit = self._cache.after(topic, cursor, limit)
                    found = None if hit is None else hit[0]
                else:
                    found = self._cache.before(topic, cursor, limit)
                if found is not None:
                    _cache_hit.inc()
                    return found
        _cache_miss.inc()
        if ascending:
            return await self._store.read_after(topic, cursor, limit)
        return await self._store.read_before(topic, cursor, limit)

    async def _fresh(self, topic: str, position: StreamId) -> bool:
        last = await self._store.last_id(topic)
        parsed = None if last is None else ids.parse(last)
        return last is None or (parsed is not None and parsed <= position)
