"""Outbox bounds and the history-to-live hand-over, driven by a fake store with no sockets."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

from gateway.outbox import Outbox
from gateway.protocol import SLOW_CONSUMER, message_frame
from gateway.subscription import Subscription, hand_over
from relaycore.ids import StreamId
from relaycore.models import StoredMessage


def stored(n: int) -> StoredMessage:
    return StoredMessage(message_id=f"{n}-0", topic="t", payload=b'{"n":%d}' % n, timestamp="t")


class FakeReplay:
    """A topic stream in a list.  ``during_read`` runs inside each read, as a tailer dispatching
    concurrently would; reads return ``page`` messages at most."""

    def __init__(self, page: int = 1000) -> None:
        self.stream: list[StoredMessage] = []
        self.during_read: Callable[[], None] = lambda: None
        self.page = page
        self.reads = 0

    async def after(
        self, topic: str, after: StreamId | None, limit: int, budget: int | None = None
    ) -> tuple[list[StoredMessage], bool]:
        self.reads += 1
        self.during_read()
        start = 0 if after is None else after[0]
        newer = [m for m in self.stream if int(m.message_id.split("-")[0]) > start]
        found = newer[: min(limit, self.page)]
        return found, len(found) == len(newer)


def make_sub(
    outbox: Outbox, after: StreamId | None, *, limit: int = 100, verified: bool = True
) -> Subscription:
    return Subscription(
        "t",
        outbox,
        after=after,
        verified=verified,
        limit=limit,
        on_unverified=lambda s: None,
    )


def publish(replay: FakeReplay, sub: Subscription, n: int) -> None:
    """What ingest + tailer do: store the message, then dispatch it."""
    m = stored(n)
    replay.stream.append(m)
    sub.offer(m, (n, 0), message_frame(m))


async def drain(outbox: Outbox) -> list[int]:
    out: list[int] = []
    while (item := outbox.pop()) is not None:
        out.append(json.loads(item[0])["payload"]["n"])
    return out


async def test_live_offer_overflow_closes_as_slow() -> None:
    """A live subscription whose outbox is full closes the connection as a slow consumer."""
    outbox = Outbox(3)
    sub = make_sub(outbox, None)
    for n in range(1, 5):
        sub.offer(stored(n), (n, 0), message_frame(stored(n)))
    assert outbox.closing == SLOW_CONSUMER
    assert outbox.pop() is None


async def test_duplicates_and_older_ids_are_dropped() -> None:
    """A message at or below the last delivered id is never delivered again."""
    outbox = Outbox(10)
    sub = make_sub(outbox, None)
    for n in (1, 2, 2, 1, 3):
        sub.offer(stored(n), (n, 0), message_frame(stored(n)))
    assert await drain(outbox) == [1, 2, 3]


async def test_hand_over_delivers_history_then_live_without_gap_or_duplicate() -> None:
    """Messages published while history is read arrive once, after the history, in order."""
    replay, outbox = FakeReplay(page=3), Outbox(1000)
    for n in range(1, 6):
        replay.stream.append(stored(n))
    sub = make_sub(outbox, (2, 0))
    counter = iter(range(6, 100))
    replay.during_read = lambda: publish(replay, sub, next(counter))
    assert await hand_over(sub, replay, _allow)  # type: ignore[arg-type]
    assert not sub.catching_up and sub.pending is None
    publish(replay, sub, 1000)
    got = await drain(outbox)
    assert got == sorted(set(got)) and got[0] == 3 and got[-1] == 1000
    assert got[:-1] == list(range(3, got[-2] + 1))


async def test_pending_overflow_during_replay_rereads_storage() -> None:
    """A flood of live messages during a replay is re-read from storage instead of closing."""
    replay, outbox = FakeReplay(page=2), Outbox(10_000)
    replay.stream = [stored(n) for n in range(1, 4)]
    sub = make_sub(outbox, (0, 0), limit=4)
    counter = iter(range(4, 1000))
    rounds = {"n": 0}

    def flood() -> None:
        rounds["n"] += 1
        if rounds["n"] <= 3:
            for _ in range(10):  # more than the pending limit
                publish(replay, sub, next(counter))

    replay.during_read = flood
    assert await hand_over(sub, replay, _allow)  # type: ignore[arg-type]
    assert sub.overflows > 0 and outbox.closing is None
    assert await drain(outbox) == list(range(1, 34))


async def test_pending_bytes_over_the_outbox_budget_during_replay_reread_storage() -> None:
    """Live messages held during a replay are bounded in bytes too (the outbox's budget): past it
    they are dropped and re-read from storage, and every message still arrives once, in order."""
    frame_size = len(message_frame(stored(10)))
    replay, outbox = FakeReplay(page=2), Outbox(10_000, max_bytes=3 * frame_size)
    replay.stream = [stored(n) for n in range(1, 4)]
    sub = make_sub(outbox, (0, 0), limit=1000)  # the count limit is far away
    counter = iter(range(4, 1000))
    rounds = {"n": 0}

    def flood() -> None:
        rounds["n"] += 1
        if rounds["n"] <= 3:
            for _ in range(10):
                publish(replay, sub, next(counter))

    replay.during_read = flood
    got: list[int] = []

    async def reader() -> None:  # a client that reads: the small outbox never stays full
        while True:
            got.extend(await drain(outbox))
            await asyncio.sleep(0)

    reading = asyncio.create_task(reader())
    try:
        async with asyncio.timeout(10):
            assert await hand_over(sub, replay, _allow)  # type: ignore[arg-type]
    finally:
        reading.cancel()
    got.extend(await drain(outbox))
    assert sub.overflows > 0 and outbox.closing is None
    assert got == list(range(1, 34))


async def test_unverified_subscription_holds_live_messages() -> None:
    """A subscription to a topic that did not exist holds messages until access is verified."""
    outbox = Outbox(10)
    held: list[Subscription] = []
    sub = Subscription(
        "t",
        outbox,
        after=None,
        verified=False,
        limit=10,
        on_unverified=held.append,
    )
    sub.offer(stored(1), (1, 0), message_frame(stored(1)))
    sub.offer(stored(2), (2, 0), message_frame(stored(2)))
    assert held == [sub] and len(outbox) == 0
    sub.verified = True
    sub.release()
    assert await drain(outbox) == [1, 2]


async def test_replay_waits_for_room_and_keeps_half_for_live() -> None:
    """Replayed messages stop at half the outbox, leaving room for live traffic."""
    outbox = Outbox(4)
    assert await outbox.put("a") and await outbox.put("b")
    assert len(outbox) == 2
    assert outbox.offer("live") and outbox.offer("live")
    assert outbox.closing is None


async def _allow() -> bool:
    return True
