"""Reading a topic's stored messages: from the hot cache when it covers the request, else from
the topic stream in Valkey (``XRANGE``/``XREVRANGE`` with exclusive bounds).  Both give the same
answer; expired messages are never returned.

A read may also be bounded in bytes (``budget``): it stops before the message that would pass it
(one message always fits, so a reader always moves on) and says it was cut.  From Valkey such a
read goes in steps sized so that no step can fetch much more than the budget: the first assumes
messages as large as a request body may be, the next ones use the sizes seen so far.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from gateway.cache import Cache
from relaycore import ids, metrics
from relaycore.ids import StreamId
from relaycore.models import StoredMessage
from relaycore.store.base import MessageStore

_cache_hit = metrics.cache_hits.labels("cache")
_cache_miss = metrics.cache_hits.labels("valkey")

Read = Callable[[str, StreamId | None, int], Awaitable[list[StoredMessage]]]


def fit(found: list[StoredMessage], budget: int | None) -> int:
    """How many of ``found`` (in order) fit in ``budget`` bytes; at least one."""
    if budget is None:
        return len(found)
    used = 0
    for i, m in enumerate(found):
        used += m.size()
        if used > budget and i:
            return i
    return len(found)


class Replay:
    def __init__(
        self,
        cache: Cache,
        store: MessageStore,
        position: Callable[[str], StreamId | None],
        *,
        largest: int = 1 << 20,
    ) -> None:
        self._cache = cache
        self._store = store
        self._position = position  # the tailer's position on a topic's partition
        self._largest = max(1, largest)  # the largest a message can be (a request body's limit)

    async def after(
        self, topic: str, after: StreamId | None, limit: int, budget: int | None = None
    ) -> tuple[list[StoredMessage], bool]:
        """Up to ``limit`` messages (and ``budget`` bytes) with id > ``after`` (all when None),
        ascending, and whether nothing more existed when they were read.  A cache answer involves
        no await, so a caller that registered for live messages just before sees no gap."""
        hit = self._cache.after(topic, after, limit)
        if hit is not None:
            _cache_hit.inc()
            found, complete = hit
            n = fit(found, budget)
            return (found, complete) if n == len(found) else (found[:n], False)
        _cache_miss.inc()
        found, cut = await self._read(self._store.read_after, topic, after, limit, budget)
        return found, not cut and len(found) < limit

    async def page(
        self, topic: str, cursor: StreamId | None, limit: int, *, ascending: bool, budget: int | None = None
    ) -> tuple[list[StoredMessage], bool]:
        """A history page (``limit`` and ``budget`` at most) and whether ``budget`` cut it, for
        readers that did not register for live messages: the cache answers only once Valkey
        confirms it has seen the topic's newest id."""
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
                    n = fit(found, budget)
                    return found[:n], n < len(found)
        _cache_miss.inc()
        read = self._store.read_after if ascending else self._store.read_before
        return await self._read(read, topic, cursor, limit, budget)

    async def _read(
        self, read: Read, topic: str, bound: StreamId | None, limit: int, budget: int | None
    ) -> tuple[list[StoredMessage], bool]:
        """``read`` (after or before ``bound``) in steps until ``limit`` messages, the end, or
        ``budget`` bytes; the messages and whether the budget cut them."""
        if budget is None:
            return await read(topic, bound, limit), False
        out: list[StoredMessage] = []
        used = 0
        want = min(limit, max(1, budget // self._largest))
        while True:
            rows = await read(topic, bound, want)
            for m in rows:
                size = m.size()
                if out and used + size > budget:
                    return out, True
                out.append(m)
                used += size
            if len(rows) < want or len(out) >= limit:
                return out, False
            bound = ids.require(out[-1].message_id, ["message_id"])
            average = max(1, used // len(out))
            want = min(limit - len(out), (budget - used) // average + 1)

    async def _fresh(self, topic: str, position: StreamId) -> bool:
        last = await self._store.last_id(topic)
        parsed = None if last is None else ids.parse(last)
        return last is None or (parsed is not None and parsed <= position)
