"""A long-poll's sink in the hub: what arrived for the poll while it waited."""

from __future__ import annotations

import asyncio

from relaycore.ids import StreamId
from relaycore.models import StoredMessage


class Waiter:
    """A long-poll's sink: the first ``cap`` live messages per topic, and ``budget`` bytes of
    them in all (the message that passes it is the last), deduplicated by id."""

    def __init__(self, topics: list[str], since: dict[str, StreamId], cap: int, budget: int) -> None:
        self.topics = topics
        self.got: dict[str, list[tuple[StreamId, str]]] = {t: [] for t in topics}
        self.full: set[str] = set()
        self.stale: set[str] = set()  # topics whose access changed during the poll
        self.arrived = asyncio.Event()
        self._bound = dict(since)
        self._cap = cap
        self._left = budget

    def offer(self, message: StoredMessage, sid: StreamId, frame: str) -> None:
        got = self.got.get(message.topic)
        bound = self._bound.get(message.topic)
        if got is None or (bound is not None and sid <= bound):
            return
        if len(got) >= self._cap or self._left <= 0:
            self.full.add(message.topic)  # the rest stays after this topic's cursor
            return
        self._left -= len(frame)
        got.append((sid, frame))
        self._bound[message.topic] = sid
        self.arrived.set()
