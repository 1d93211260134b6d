"""The one loop per gateway that reads the fan-out logs: through this gateway's own consumer group
(so a restart with the same identity resumes where it stopped), in batches, handing each batch to
the cache and the hub in one synchronous step and acknowledging it while the next read waits.

``positions[p]`` is the id of the last message dispatched from partition p.  Everything in the
partition up to it has been handed to the hub; everything after it will be.  Long-poll cursors and
cache coverage rest on that.  A lost Valkey connection is retried with backoff; the group's state
in Valkey means nothing is lost.

The storage says how its partitions are read (``FanoutLog.read_sets``): one blocking read over all
of them on a single server, one blocking reader per partition on a Valkey Cluster.  Each set has
its own loop, so a failing cluster node stalls only the partitions it serves.

A read's COUNT is set from the sizes of the messages seen lately (``ReadSize``), so one reply holds
about ``read_max_bytes`` whatever the messages' size, and never less than one entry per partition.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable, Iterator

from gateway.cache import Cache
from gateway.hub import Hub
from relaycore import ids, metrics
from relaycore.errors import Unavailable
from relaycore.ids import StreamId
from relaycore.keys import partition_of
from relaycore.models import StoredMessage
from relaycore.store.base import FanoutLog

log = logging.getLogger(__name__)

FIRST_BACKOFF = 0.05
# Acknowledgements wait this long for company: at a steady few hundred messages a second that is
# one XACK per partition every 50 ms rather than one per read.  Entries not yet acknowledged when
# a gateway dies are handed over again at its next join, as with any unacknowledged entry.
ACK_DELAY = 0.05
MAX_BACKOFF = 2.0


class Tailer:
    def __init__(
        self,
        fanout: FanoutLog,
        group: str,
        *,
        cache: Cache,
        hub: Hub,
        batch_size: int,
        block: float,
        chunk_bytes: int = 1 << 62,
        read_max_bytes: int = 1 << 62,
        largest: int = 1,
    ) -> None:
        self._fanout = fanout
        self._group = group
        self._cache = cache
        self._hub = hub
        self._batch = batch_size
        self._block = block
        self._chunk_bytes = chunk_bytes  # a dispatch offers about this much at most
        self._read_max_bytes = read_max_bytes  # one read's reply aims at this
        self._largest = largest  # the largest a message can be (a request body's limit)
        self.partitions = fanout.partitions
        self.positions: list[StreamId | None] = [None] * self.partitions
        self.ready = asyncio.Event()  # set once the group is joined and its backlog re-dispatched
        # Acknowledged beside the next read, not before it: a message that arrives meanwhile is not
        # held up by the round trip.  An entry whose ack is lost stays pending in the group and is
        # handed over again on the next join, where positions and subscriptions drop repeats.
        self._unacked: dict[int, list[str]] = {}
        self._acking: asyncio.Task[None] | None = None
        # Read sets with entries in hand: a reply being dispatched, or a full one (COUNT reached,
        # so more is already waiting in Valkey).  When none has, everything read has been
        # dispatched and a woken long-poll can answer at once (``caught_up``).
        self._behind: set[int] = set()
        self._caught_up = asyncio.Event()
        self._caught_up.set()

    def position(self, topic: str) -> StreamId | None:
        return self.positions[partition_of(topic, self.partitions)]

    async def caught_up(self, limit: float) -> None:
        """Return once this gateway has dispatched everything its reads found and no read came
        back full (which says more is already stored), or after ``limit`` seconds.  A woken
        long-poll waits here: it takes what was already there, not what comes later."""
        if self._caught_up.is_set():
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(limit):
                await self._caught_up.wait()

    def _behind_on(self, key: int, behind: bool) -> None:
        if behind:
            self._behind.add(key)
            self._caught_up.clear()
        else:
            self._behind.discard(key)
            if not self._behind:
                self._caught_up.set()

    async def run(self) -> None:
        sets = self._fanout.read_sets()
        if len(sets) == 1:
            await self._run(None, on_join=self.ready.set)
            return
        unjoined = set(range(len(sets)))

        def joined(i: int) -> None:
            unjoined.discard(i)
            if not unjoined:
                self.ready.set()

        async with asyncio.TaskGroup() as tasks:
            for i, parts in enumerate(sets):
                name = f"gateway-tailer-{'-'.join(map(str, parts))}"
                tasks.create_task(self._run(parts, on_join=functools.partial(joined, i)), name=name)

    async def _run(self, parts: list[int] | None, *, on_join: Callable[[], None]) -> None:
        """Read ``parts`` (None: every partition, one command) until cancelled."""
        delay = FIRST_BACKOFF
        joined = False
        streams = self.partitions if parts is None else len(parts)
        size = ReadSize(self._read_max_bytes, self._largest, self._batch, streams)
        key = -1 if parts is None else parts[0]
        while True:
            try:
                if not joined:
                    await self._join(parts, size)
                    joined = True
                    on_join()
                await self._read(parts, size, key)
                delay = FIRST_BACKOFF
            except Unavailable as exc:
                log.warning("fan-out log unavailable (%s); retrying in %.2fs", exc, delay)
                joined = False
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF)
            except Exception:
                log.exception("tailer failed; retrying in %.2fs", delay)
                joined = False
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF)

    async def _read(self, parts: list[int] | None, size: ReadSize, key: int) -> None:
        """One read of the set ``key`` and the dispatch of what it found."""
        full = False
        try:
            batches = await self._fanout.read(
                self._group, count=size.count, block=self._block, partitions=parts
            )
            asked = size.count
            full = any(len(messages) >= asked for _, messages in batches)
            self._behind_on(key, bool(batches))
            size.saw(batches)
            chunks = [(p, chunk) for p, messages in batches for chunk in _chunks(messages, self._chunk_bytes)]
            for i, (p, chunk) in enumerate(chunks):
                self._deliver(p, chunk)
                if i == len(chunks) - 1:
                    # All of it is offered: a long-poll it woke answers as soon as it runs, before
                    # this task acknowledges and issues the next read (caught_up).
                    self._behind_on(key, full)
                # Let writers drain between partitions (and between chunks of large messages): one
                # step then offers at most one chunk per topic, which ws_send_queue and
                # ws_send_queue_bytes must (and by default do) exceed.
                await asyncio.sleep(0)
            if batches:
                for p, messages in batches:
                    self._unacked.setdefault(p, []).extend(m.message_id for m in messages)
                if self._acking is None or self._acking.done():
                    self._acking = asyncio.get_running_loop().create_task(self._ack_soon())
                metrics.tail_batches.inc(len(batches))
        finally:
            self._behind_on(key, full)

    async def _ack_soon(self) -> None:
        await asyncio.sleep(ACK_DELAY)  # one command per partition for every read meanwhile
        await self.flush_acks()

    async def flush_acks(self) -> None:
        """Acknowledge what was dispatched, one command per partition, all in flight at once; on
        failure keep the ids for the next flush."""
        while self._unacked:
            batch, self._unacked = self._unacked, {}
            try:
                await self._fanout.ack(self._group, batch)
            except Exception as exc:
                for p, ids in batch.items():
                    self._unacked.setdefault(p, [])[:0] = ids
                log.warning("acknowledging the fan-out log failed (%s); retrying with the next batch", exc)
                return

    async def settle(self) -> None:
        """Wait for the acknowledgement in flight, then send what is left (at shutdown)."""
        if self._acking is not None:
            await asyncio.gather(self._acking, return_exceptions=True)
        await self.flush_acks()

    async def _join(self, parts: list[int] | None, size: ReadSize) -> None:
        joined = await self._fanout.join(self._group, parts)
        # Entries handed to this group but never acknowledged: lost replies, or a previous run of
        # this gateway that died between read and ack.
        while batches := await self._fanout.read(
            self._group, count=size.count, block=0, pending=True, partitions=parts
        ):
            size.saw(batches)
            for p, messages in batches:
                self._deliver(p, messages, contiguous=self.positions[p] is not None)
                await self._fanout.ack(self._group, {p: [m.message_id for m in messages]})
        for p, value in joined.items():
            at = ids.parse(value)
            if at is None or at == ids.ZERO:
                continue
            current = self.positions[p]
            if current is None or current < at:
                if current is not None:
                    # The group moved past entries this process never saw (it was re-created):
                    # the cache can no longer vouch for that partition's topics.
                    log.warning("partition %d skipped from %s to %s", p, ids.fmt(current), value)
                    self._cache.drop_partition(p)
                self.positions[p] = at

    def _deliver(self, p: int, messages: list[StoredMessage], *, contiguous: bool = True) -> None:
        before = self.positions[p]
        batch: list[tuple[StreamId, StoredMessage]] = []
        for m in messages:
            sid = ids.parse(m.message_id)
            if sid is not None and (before is None or sid > before):
                batch.append((sid, m))
        if not batch:
            return
        if contiguous:
            self._cache.add(p, before, batch)
            self.positions[p] = batch[-1][0]
        self._hub.dispatch(batch)

    async def lag(self) -> int:
        """Entries of this gateway's group not yet read or acknowledged, exported as a metric."""
        lag = await self._fanout.lag(self._group)
        metrics.consumer_lag.set(lag)
        return lag


def _chunks(messages: list[StoredMessage], max_bytes: int) -> Iterator[list[StoredMessage]]:
    """``messages`` in runs of at most ``max_bytes`` (at least one message each); usually one run."""
    start = size = 0
    for i, m in enumerate(messages):
        size += m.size()
        if size > max_bytes and i > start:
            yield messages[start:i]
            start, size = i, m.size()
    yield messages[start:] if start else messages


class ReadSize:
    """The COUNT of one read set's fan-out reads, so that a reply holds about ``budget`` bytes.

    COUNT applies per partition, so it is the budget over (the largest message seen lately x the
    partitions that had entries in the last read), between 1 and ``most``.  Until it has seen a
    message it assumes the largest possible one; a larger message raises the size at once, and it
    halves back with each read of smaller ones.  A reply can exceed the budget when messages grow
    suddenly (by at most the previous COUNT's worth) and when one entry per partition does."""

    def __init__(self, budget: int, largest: int, most: int, streams: int) -> None:
        self._budget = max(1, budget)
        self._most = max(1, most)
        self._size = max(1, largest)
        self._spread = max(1, streams)
        self.count = self._fit()

    def _fit(self) -> int:
        return max(1, min(self._most, self._budget // (self._size * self._spread)))

    def saw(self, batches: list[tuple[int, list[StoredMessage]]]) -> None:
        """Take the sizes of a read's reply into account for the next read."""
        if not batches:
            return
        biggest = max(m.size() for _, messages in batches for m in messages)
        self._size = max(biggest, self._size // 2, 1)
        self._spread = len(batches)
        self.count = self._fit()
