"""One connection's bounded queue of outgoing frames, drained by that connection's own writer task.

Live traffic is ``offer``-ed without ever waiting: when the queue is full the connection is marked
slow and closed (mercure's ``handleFullChan``), so nobody else waits for it.  Catch-up traffic is
``put`` with back-pressure, and only while the queue is at most half full, so a long replay never
leaves live traffic without room.  No I/O.
"""

from __future__ import annotations

import asyncio
from collections import deque

from gateway.protocol import SLOW_CONSUMER, Close

Item = tuple[str, int]  # frame text, and the id's milliseconds for a live message, else:
CONTROL = 0  # a reply or notice, not a message
REPLAYED = -1  # a message replayed from history (its age says nothing about delivery latency)
_BATCH = 256


class Outbox:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: deque[Item] = deque()
        self._in_flight = 0  # frames the writer took and is still writing
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._closed = asyncio.Event()
        self.closing: Close | None = None

    def __len__(self) -> int:
        """Frames not yet written: queued, plus the batch the writer is writing."""
        return len(self._items) + self._in_flight

    def offer(self, frame: str, born_ms: int = CONTROL) -> bool:
        """Queue without waiting; on overflow the connection is closed as a slow consumer."""
        if self.closing is not None:
            return False
        if len(self) >= self.limit:
            self.close(SLOW_CONSUMER)
            return False
        self._items.append((frame, born_ms))
        self._wake.set()
        return True

    async def put(self, frame: str, born_ms: int = CONTROL) -> bool:
        """Queue once the queue is at most half full; False if the connection is closing."""
        while len(self) >= max(1, self.limit // 2) and self.closing is None:
            self._room.clear()
            await self._room.wait()
        return self.offer(frame, born_ms)

    def close(self, reason: Close) -> None:
        """Ask the connection to close; the first reason wins."""
        if self.closing is None:
            self.closing = reason
            self._closed.set()
            self._wake.set()
            self._room.set()

    async def closed(self) -> Close:
        await self._closed.wait()
        assert self.closing is not None
        return self.closing

    async def take(self, idle: float) -> list[Item] | None:
        """The next frames in order, once the previous batch is written; [] after ``idle`` seconds
        with nothing to send; None once closing."""
        self._in_flight = 0
        if not self._items and self.closing is None:
            self._room.set()
            self._wake.clear()
            try:
                async with asyncio.timeout(idle):
                    await self._wake.wait()
            except TimeoutError:
                return []
        if self.closing is not None:
            return None
        batch = [self._items.popleft() for _ in range(min(_BATCH, len(self._items)))]
        self._in_flight = len(batch)
        if len(self) < max(1, self.limit // 2):
            self._room.set()
        return batch
