"""One connection's subscription to one topic, and the gap-free hand-over from history to live.

A subscription is registered with the hub *before* history is read, in held mode: live messages
collect in ``pending`` meanwhile.  ``hand_over`` then replays history after the requested
position (from the cache or Valkey), and in one synchronous step flushes the pending messages
newer than the last one replayed and goes live (mercure's ``AddSubscriber``/``Ready``).  Every
message after the position arrives exactly once, in id order, even while publishing continues.

Live messages are also held for a topic that did not exist when access was checked, until access
is verified again (someone else may have created it, private).  No I/O.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from gateway.outbox import REPLAYED, Outbox
from gateway.protocol import SLOW_CONSUMER, message_frame
from gateway.replay import Replay
from relaycore import ids
from relaycore.ids import StreamId
from relaycore.models import StoredMessage

Held = tuple[StreamId, StoredMessage, str]
REPLAY_PAGE = 500


class Subscription:
    __slots__ = (
        "_held",
        "_limit",
        "_on_unverified",
        "_outbox",
        "active",
        "catching_up",
        "last",
        "overflows",
        "pending",
        "topic",
        "verified",
    )

    def __init__(
        self,
        topic: str,
        outbox: Outbox,
        *,
        after: StreamId | None,
        verified: bool,
        limit: int,
        on_unverified: Callable[[Subscription], None],
    ) -> None:
        self.topic = topic
        self.last = after  # newest id delivered (or the position replayed after): the dedupe bound
        self.verified = verified
        self.active = True
        self.catching_up = after is not None
        self.pending: list[Held] | None = [] if self.catching_up else None
        self.overflows = 0
        self._held = 0  # bytes of the frames in ``pending``: bounded like the outbox's
        self._outbox = outbox
        self._limit = limit
        self._on_unverified = on_unverified

    def offer(self, message: StoredMessage, sid: StreamId, frame: str) -> None:
        if not self.active or (self.last is not None and sid <= self.last):
            return
        if self.pending is not None:
            if len(self.pending) >= self._limit or self._held > self._outbox.max_bytes:
                if not self.catching_up:
                    self._outbox.close(SLOW_CONSUMER)
                    return
                # The replay is still reading storage: it will find these there.
                self.pending.clear()
                self._held = 0
                self.overflows += 1
            self.pending.append((sid, message, frame))
            self._held += len(frame)
        elif not self.verified:
            self.pending = [(sid, message, frame)]
            self._held = len(frame)
            self._on_unverified(self)
        else:
            self._send(sid, message, frame)

    def _send(self, sid: StreamId, message: StoredMessage, frame: str) -> bool:
        if not self._outbox.offer(frame, sid[0]):
            return False
        self.last = sid
        return True

    async def put(self, sid: StreamId, message: StoredMessage) -> bool:
        """Deliver one replayed message, waiting for room; False once the connection is closing."""
        if not await self._outbox.put(message_frame(message), REPLAYED):
            return False
        self.last = sid
        return True

    def release(self) -> None:
        """Flush held messages newer than the last delivered, and go live.  Synchronous."""
        held, self.pending = self.pending or [], None
        self._held = 0
        self.catching_up = False
        for sid, message, frame in held:
            if (self.last is None or sid > self.last) and not self._send(sid, message, frame):
                return


async def hand_over(
    sub: Subscription, replay: Replay, verify: Callable[[], Awaitable[bool]], budget: int | None = None
) -> bool:
    """Replay everything after ``sub.last`` (read ``budget`` bytes at a time), then go live.
    False if access was refused."""
    while sub.active:
        mark = sub.overflows
        after = sub.last
        batch, complete = await replay.after(sub.topic, after, REPLAY_PAGE, budget)
        if (batch or sub.pending) and not sub.verified and not await verify():
            return False
        for m in batch:
            if not sub.active or not await sub.put(ids.require(m.message_id, ["message_id"]), m):
                return True
        # Complete and no overflow since this read began: pending holds every newer message.
        if complete and sub.overflows == mark:
            sub.release()
            return True
    return True
