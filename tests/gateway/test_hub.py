"""The hub with a recording sink: encode once, offer to every sink of the topic, nothing else."""

from __future__ import annotations

import contextlib
import json

from gateway.hub import Hub
from relaycore.ids import StreamId
from relaycore.models import StoredMessage, now_ms


class RecordingSink:
    def __init__(self) -> None:
        self.got: list[tuple[str, StreamId, str]] = []

    def offer(self, message: StoredMessage, sid: StreamId, frame: str) -> None:
        self.got.append((message.message_id, sid, frame))


class BrokenSink:
    def offer(self, message: StoredMessage, sid: StreamId, frame: str) -> None:
        raise RuntimeError("boom")


def stored(topic: str, n: int, expires_at_ms: int | None = None) -> tuple[StreamId, StoredMessage]:
    return (n, 0), StoredMessage(
        message_id=f"{n}-0", topic=topic, payload=b'{"n":%d}' % n, timestamp="t", expires_at_ms=expires_at_ms
    )


def test_dispatch_offers_one_encoded_frame_to_every_sink_of_the_topic() -> None:
    """Two sinks on a topic get the very same frame object; a sink elsewhere gets nothing."""
    hub, a, b, other = Hub(contextlib.nullcontext()), RecordingSink(), RecordingSink(), RecordingSink()
    hub.add("t", a)
    hub.add("t", b)
    hub.add("u", other)
    hub.dispatch([stored("t", 1)])
    assert len(a.got) == len(b.got) == 1 and not other.got
    assert a.got[0][2] is b.got[0][2]
    assert json.loads(a.got[0][2])["payload"] == {"n": 1}


def test_topics_without_sinks_cost_nothing_and_removal_works() -> None:
    """After the last sink leaves, the topic disappears from the hub's counts."""
    hub, a = Hub(contextlib.nullcontext()), RecordingSink()
    hub.add("t", a)
    assert hub.counts() == {"t": 1}
    hub.remove("t", a)
    hub.dispatch([stored("t", 1)])
    assert hub.counts() == {} and not a.got


def test_expired_messages_are_not_offered() -> None:
    """A message past its ttl is dropped at dispatch."""
    hub, a = Hub(contextlib.nullcontext()), RecordingSink()
    hub.add("t", a)
    hub.dispatch([stored("t", 1, expires_at_ms=now_ms() - 1), stored("t", 2)])
    assert [g[0] for g in a.got] == ["2-0"]


def test_a_failing_sink_does_not_stop_the_others() -> None:
    """One sink raising does not keep the message from the rest (nor stop the tailer)."""
    hub, good = Hub(contextlib.nullcontext()), RecordingSink()
    hub.add("t", BrokenSink())
    hub.add("t", good)
    hub.dispatch([stored("t", 1), stored("t", 2)])
    assert [g[0] for g in good.got] == ["1-0", "2-0"]


def test_a_dispatch_of_one_message_runs_in_the_single_scope() -> None:
    """One message is dispatched inside the hub's single-message scope, several inside the other."""
    entered: list[str] = []

    class Named(contextlib.AbstractContextManager[None]):
        def __init__(self, name: str) -> None:
            self.name = name

        def __enter__(self) -> None:
            entered.append(self.name)

        def __exit__(self, *_: object) -> None:
            return None

    hub = Hub(Named("batch"), Named("single"))
    hub.add("t", RecordingSink())
    hub.dispatch([stored("t", 1)])
    hub.dispatch([stored("t", 2), stored("t", 3)])
    assert entered == ["single", "batch"]
