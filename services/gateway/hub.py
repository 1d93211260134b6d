"""The local fan-out: topic -> the sinks (WebSocket subscriptions, long-poll waiters) of this
process.  ``dispatch`` encodes each message once into its frame text and offers that same text to
every sink of the topic.  It never awaits a client and does nothing for topics nobody here follows.
The hub knows nothing of WebSockets: whoever builds it hands it the ``Scope`` a dispatch runs in
(the node gives it the writers' ``WriteBatch``, so socket writes wait for the end of a dispatch),
and the one a dispatch of a single message runs in.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from gateway.protocol import message_frame
from relaycore import metrics
from relaycore.ids import StreamId
from relaycore.models import StoredMessage, now_ms

log = logging.getLogger(__name__)


class Sink(Protocol):
    def offer(self, message: StoredMessage, sid: StreamId, frame: str) -> None:
        """Take the message now, without waiting (buffer it or drop it; never block)."""


class Scope(Protocol):
    """What a dispatch runs inside: entered before the first offer, left after the last."""

    def __enter__(self) -> None: ...

    def __exit__(self, *_: object) -> None: ...


class Hub:
    def __init__(self, scope: Scope, single: Scope | None = None) -> None:
        self._sinks: dict[str, set[Sink]] = {}
        self._scope = scope
        self._single = scope if single is None else single  # the scope of a one-message dispatch

    def add(self, topic: str, sink: Sink) -> None:
        self._sinks.setdefault(topic, set()).add(sink)

    def remove(self, topic: str, sink: Sink) -> None:
        sinks = self._sinks.get(topic)
        if sinks is not None:
            sinks.discard(sink)
            if not sinks:
                del self._sinks[topic]

    def sinks(self, topic: str) -> list[Sink]:
        return list(self._sinks.get(topic, ()))

    def counts(self) -> dict[str, int]:
        return {topic: len(sinks) for topic, sinks in self._sinks.items()}

    def dispatch(self, batch: Sequence[tuple[StreamId, StoredMessage]]) -> None:
        with self._scope if len(batch) > 1 else self._single:
            self._dispatch(batch)

    def _dispatch(self, batch: Sequence[tuple[StreamId, StoredMessage]]) -> None:
        now = 0
        for sid, m in batch:
            sinks = self._sinks.get(m.topic)
            if not sinks:
                continue
            now = now or now_ms()
            if m.expired(now):
                metrics.messages_expired.inc()
                continue
            frame = message_frame(m)
            for sink in tuple(sinks):
                try:
                    sink.offer(m, sid, frame)
                except Exception:  # one broken sink must not stop the tailer
                    log.exception("sink failed on %s", m.message_id)
