"""The hot tier: each topic's recent messages in memory, fed by the tailer, answering catch-up and
history reads only when it provably holds every message the read asks for.  No I/O.

Coverage invariant, per cached topic: the cache holds every message with an id in
``(floor, P]``, where P is the tailer's position on the topic's partition.  It holds because the
tailer hands over each partition's messages contiguously and in id order:

* when a topic's entry is created by message m, ``floor`` is the partition position just before
  m (no message of that topic can lie between the two, the tailer would have seen it first), or
  m's own id when that position is unknown;
* evicting a message (per-topic bound, age, the byte bound of the whole cache) raises ``floor``
  to its id.

A read "after X" is answered iff X >= floor.  Expired (ttl) messages are skipped on every read.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from collections.abc import Sequence

from relaycore import metrics
from relaycore.ids import StreamId
from relaycore.models import StoredMessage, now_ms

_bytes_gauge = metrics.cache_bytes


class _Entry:
    __slots__ = ("bytes", "floor", "ids", "items", "partition")

    def __init__(self, partition: int, floor: StreamId) -> None:
        self.partition = partition
        self.floor = floor
        self.ids: list[StreamId] = []
        self.items: list[StoredMessage] = []
        self.bytes = 0  # the items' sizes, summed

    def evict(self, count: int) -> int:
        """Drop the ``count`` oldest messages; the bytes that freed."""
        if count <= 0:
            return 0
        freed = sum(m.size() for m in self.items[:count])
        self.floor = self.ids[count - 1]
        del self.ids[:count]
        del self.items[:count]
        self.bytes -= freed
        return freed


class Cache:
    def __init__(self, *, per_topic: int, max_topics: int, max_age: float, max_bytes: int) -> None:
        self._per_topic = per_topic
        self._max_topics = max_topics
        self._max_age_ms = int(max_age * 1000)
        self._max_bytes = max_bytes
        self.bytes = 0  # every entry's bytes, summed (``relay_cache_bytes``)
        self._topics: OrderedDict[str, _Entry] = OrderedDict()  # least recently used first

    def __len__(self) -> int:
        return len(self._topics)

    def _forget(self, topic: str) -> None:
        entry = self._topics.pop(topic, None)
        if entry is not None:
            self.bytes -= entry.bytes

    def _shrink(self) -> None:
        """Back under ``max_bytes``: the least recently used topics' oldest messages go first (a
        topic left empty goes entirely, so its floor stops vouching for anything)."""
        while self.bytes > self._max_bytes and self._topics:
            topic, entry = next(iter(self._topics.items()))
            over = self.bytes - self._max_bytes
            count = 0
            freed = 0
            while count < len(entry.items) and freed < over:
                freed += entry.items[count].size()
                count += 1
            if count >= len(entry.items):
                self._forget(topic)
            else:
                self.bytes -= entry.evict(count)
        _bytes_gauge.set(self.bytes)

    # --- writes (tailer only) ------------------------------------------------------------------
    def add(
        self, partition: int, before: StreamId | None, batch: Sequence[tuple[StreamId, StoredMessage]]
    ) -> None:
        """Append one partition's next messages; ``before`` is the partition position preceding
        the batch (None when unknown)."""
        for sid, m in batch:
            entry = self._topics.get(m.topic)
            if entry is None:
                entry = self._topics[m.topic] = _Entry(partition, sid if before is None else before)
                if len(self._topics) > self._max_topics:
                    self._forget(next(iter(self._topics)))
            elif entry.ids and sid <= entry.ids[-1]:
                before = sid
                continue  # already held (a re-delivered entry)
            else:
                self._topics.move_to_end(m.topic)
            entry.ids.append(sid)
            entry.items.append(m)
            size = m.size()
            entry.bytes += size
            self.bytes += size - entry.evict(len(entry.ids) - self._per_topic)
            before = sid
        self._shrink()

    def drop(self, topic: str) -> None:
        self._forget(topic)
        _bytes_gauge.set(self.bytes)

    def drop_partition(self, partition: int) -> None:
        """Forget every topic of a partition whose contiguity was lost (the tailer skipped ahead)."""
        for topic in [t for t, e in self._topics.items() if e.partition == partition]:
            self._forget(topic)
        _bytes_gauge.set(self.bytes)

    def clear(self) -> None:
        self._topics.clear()
        self.bytes = 0
        _bytes_gauge.set(0)

    # --- reads ---------------------------------------------------------------------------------
    def holds(self, topic: str, sid: StreamId) -> bool:
        """Whether ``topic``'s cached messages include ``sid`` (a lookup, not a use: no recency)."""
        entry = self._topics.get(topic)
        if entry is None:
            return False
        i = bisect.bisect_left(entry.ids, sid)
        return i < len(entry.ids) and entry.ids[i] == sid

    def _entry(self, topic: str) -> _Entry | None:
        entry = self._topics.get(topic)
        if entry is None:
            return None
        self._topics.move_to_end(topic)
        if self._max_age_ms > 0 and entry.ids:
            oldest_kept = (now_ms() - self._max_age_ms, 0)
            self.bytes -= entry.evict(bisect.bisect_left(entry.ids, oldest_kept))
        return entry

    def after(
        self, topic: str, after: StreamId | None, limit: int
    ) -> tuple[list[StoredMessage], bool] | None:
        """Up to ``limit`` unexpired messages with id > ``after``, ascending, and whether that is
        everything the partition position covers; None when the cache cannot answer."""
        entry = self._entry(topic)
        if entry is None or after is None or after < entry.floor:
            return None
        now = now_ms()
        out: list[StoredMessage] = []
        i = bisect.bisect_right(entry.ids, after)
        while i < len(entry.items) and len(out) < limit:
            m = entry.items[i]
            i += 1
            if m.expired(now):
                metrics.messages_expired.inc()
            else:
                out.append(m)
        return out, i >= len(entry.items)

    def before(self, topic: str, before: StreamId | None, limit: int) -> list[StoredMessage] | None:
        """Exactly ``limit`` unexpired messages with id < ``before`` (newest first), or None when
        the cache does not hold that many above its floor (older ones may exist in Valkey)."""
        entry = self._entry(topic)
        if entry is None:
            return None
        now = now_ms()
        out: list[StoredMessage] = []
        i = len(entry.ids) if before is None else bisect.bisect_left(entry.ids, before)
        while i > 0 and len(out) < limit:
            i -= 1
            m = entry.items[i]
            if not m.expired(now):
                out.append(m)
        return out if len(out) == limit else None
