"""One connection's bounded queue of outgoing frames, and the signals its writer needs.

Live traffic is ``offer``-ed without ever waiting: when the queue is full (in frames or in bytes)
the connection is marked slow and closed (mercure's ``handleFullChan``), so nobody else waits for
it, and what it held is let go at once.  Catch-up traffic is
``put`` with back-pressure, and only while the queue is at most half full (both ways), so a long replay never
leaves live traffic without room.  The first frame offered to an idle outbox calls the writer's
``on_ready`` at once (and again when the queue is half full), so a delivery is written in the
dispatching step, with no task switch; the writer then ``pop``s until the queue is empty.  No I/O.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from gateway.protocol import SLOW_CONSUMER, Close

Item = tuple[str, int]  # frame text, and the id's milliseconds for a live message, else:
CONTROL = 0  # a reply or notice, not a message
REPLAYED = -1  # a message replayed from history (its age says nothing about delivery latency)


def _ignore() -> None:
    return None


class Outbox:
    __slots__ = (
        "_busy",
        "_items",
        "_room",
        "active",
        "bytes",
        "closing",
        "direct",
        "half",
        "half_bytes",
        "limit",
        "max_bytes",
        "on_close",
        "on_ready",
    )

    def __init__(self, limit: int, max_bytes: int = 1 << 62) -> None:
        self.limit = limit
        self.half = max(1, limit // 2)  # where replays wait and a deferring writer writes anyway
        self.max_bytes = max_bytes
        self.half_bytes = max_bytes // 2
        self.bytes = 0  # the queued frames' lengths, summed (characters: JSON text is mostly ASCII)
        self.closing: Close | None = None
        self.active = False  # a frame was taken since the node's ping sweep last looked
        self.on_ready: Callable[[], None] = _ignore  # the writer: frames wait and it is idle
        # The writer's way to put a frame offered to an idle outbox on the socket at once (True),
        # with no queueing; None, or False from it, and the frame is queued as usual.
        self.direct: Callable[[str, int], bool] | None = None
        self.on_close: Callable[[Close], None] = lambda reason: None
        # A list, not a deque: the writers take everything at once (``take``), and an empty deque
        # is 760 bytes of every idle socket against a list's 56.
        self._items: list[Item] = []
        self._busy = False  # the writer was told and has not yet found the queue empty
        self._room: asyncio.Future[None] | None = None  # a ``put`` waiting for room

    def __len__(self) -> int:
        """Frames not yet handed to the socket."""
        return len(self._items)

    def offer(self, frame: str, born_ms: int = CONTROL) -> bool:
        """Queue without waiting; on overflow the connection is closed as a slow consumer."""
        if self.closing is not None:
            return False
        if not self._busy and self.direct is not None and self.direct(frame, born_ms):
            self.active = True  # nothing queued (the writer is idle) and the socket took it
            return True
        size = len(frame)
        if len(self._items) >= self.limit or (self.bytes + size > self.max_bytes and self._items):
            self.close(SLOW_CONSUMER)
            return False
        self.bytes += size
        self._items.append((frame, born_ms))
        if not self._busy:
            self._busy = True
            self.on_ready()
        elif len(self._items) == self.half or self.bytes >= self.half_bytes > self.bytes - size:
            self.on_ready()  # half full: a writer that defers (a dispatch in progress) writes now
        return True

    async def put(self, frame: str, born_ms: int = CONTROL) -> bool:
        """Queue once the queue is at most half full; False if the connection is closing."""
        while (len(self._items) >= self.half or self.bytes >= self.half_bytes) and self.closing is None:
            if self._room is None:
                self._room = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._room)
        return self.offer(frame, born_ms)

    def pop(self) -> Item | None:
        """The writer's next frame; None when there is none (the writer is then idle) or the
        connection is closing (what is still queued is dropped: the close frame goes next)."""
        if self.closing is not None or not self._items:
            self._busy = False
            self._wake_put()
            return None
        item = self._items.pop(0)  # a writer without relay.frames: one frame per send
        self.bytes -= len(item[0])
        self.active = True
        if self._room is not None and len(self._items) < self.half and self.bytes < self.half_bytes:
            self._wake_put()
        return item

    def take(self) -> list[Item] | None:
        """Every queued frame at once (a writer that sends them in one write), after which the
        writer is idle again (the next offer tells it); None as ``pop``: nothing queued or the
        connection is closing."""
        queued = self._items
        if self.closing is not None or not queued:
            self._busy = False
            if self._room is not None:
                self._wake_put()
            return None
        items, self._items = queued, []
        self.bytes = 0
        self.active = True
        self._busy = False
        if self._room is not None:
            self._wake_put()
        return items

    def close(self, reason: Close) -> None:
        """Ask the connection to close; the first reason wins."""
        if self.closing is None:
            self.closing = reason
            self._items.clear()  # never sent now: the close frame goes next; give the memory back
            self.bytes = 0
            self._wake_put()
            self.on_close(reason)

    def _wake_put(self) -> None:
        room, self._room = self._room, None
        if room is not None and not room.done():
            room.set_result(None)
