"""The tailer's fan-out log reads are bounded in bytes, not only in entries: each read's COUNT comes
from the sizes seen, so large messages are read a few at a time (500 entries of 1 MiB were one
500 MB reply held in memory), and a message larger than the budget is still read, alone.  Real
Valkey; each read's reply is recorded at the store's return."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from relaycore import ids
from relaycore.config import KiB, MiB
from relaycore.models import StoredMessage, User
from tests.gateway.conftest import Relay, eventually, publish_direct

Batches = list[tuple[int, list[StoredMessage]]]


@contextlib.asynccontextmanager
async def recorded(relay: Relay, user: User) -> AsyncIterator[list[Batches]]:
    """Every reply the tailer's fan-out reads return, while the block runs (from the first read
    that began after it started: a marker message published then is waited for)."""
    fanout: Any = relay.backend.fanout
    read: Callable[..., Any] = fanout.read
    replies: list[Batches] = []

    async def recording(*args: Any, **kw: Any) -> Batches:
        got: Batches = await read(*args, **kw)
        if got:
            replies.append(got)
        return got

    fanout.read = recording
    try:
        marker = await publish_direct(relay.backend, user, "marker", 1)
        await read_all(relay, replies, "marker", marker)
        replies.clear()
        yield replies
    finally:
        del fanout.read


def sizes(replies: list[Batches]) -> list[int]:
    return [sum(m.size() for _, ms in reply for m in ms) for reply in replies]


async def read_all(relay: Relay, replies: list[Batches], topic: str, published: list[str]) -> list[str]:
    last = ids.require(published[-1], [])
    await eventually(lambda: (relay.node.tailer.position(topic) or (0, 0)) >= last)
    return [m.message_id for reply in replies for _, ms in reply for m in ms if m.topic == topic]


async def test_reads_of_large_messages_stay_within_the_byte_budget(
    relay_factory: Callable[..., contextlib.AbstractAsyncContextManager[Relay]],
) -> None:
    """60 messages of 200 KiB appended at once are read in replies of at most 1 MiB (the budget),
    every message once and in order; small messages afterwards go back to large counts."""
    async with relay_factory(tail_read_max_bytes=1 * MiB) as relay:
        user, _ = await relay.user("alice")
        async with recorded(relay, user) as replies:
            big = await publish_direct(relay.backend, user, "big", 60, pad=200 * KiB, bulk=60)
            assert await read_all(relay, replies, "big", big) == big
            read_big = sizes(replies)
            print(f"reads of 200 KiB messages: {len(read_big)}, largest {max(read_big) / MiB:.2f} MiB")
            assert max(read_big) <= 1 * MiB, read_big
            replies.clear()
            small = await publish_direct(relay.backend, user, "small", 2000, bulk=1000)
            assert await read_all(relay, replies, "small", small) == small
            counts = [sum(len(ms) for _, ms in reply) for reply in replies]
            assert max(counts) >= 100, counts  # the budget no longer limits once sizes shrank


async def test_a_message_larger_than_the_budget_is_read_alone(
    relay_factory: Callable[..., contextlib.AbstractAsyncContextManager[Relay]],
) -> None:
    """With a 64 KiB budget, 5 messages of 300 KiB are each read alone, and all are read."""
    async with relay_factory(tail_read_max_bytes=64 * KiB) as relay:
        user, _ = await relay.user("alice")
        async with recorded(relay, user) as replies:
            big = await publish_direct(relay.backend, user, "huge", 5, pad=300 * KiB, bulk=5)
            assert await read_all(relay, replies, "huge", big) == big
            assert [sum(len(ms) for _, ms in reply) for reply in replies] == [1] * 5
