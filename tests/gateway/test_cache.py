"""The hot cache's coverage rule: it answers only when it holds every message asked for."""

from __future__ import annotations

from gateway.cache import Cache
from relaycore.ids import StreamId
from relaycore.models import StoredMessage, now_ms


def msg(topic: str, sid: StreamId, *, expires: int | None = None) -> tuple[StreamId, StoredMessage]:
    return sid, StoredMessage(
        message_id=f"{sid[0]}-{sid[1]}", topic=topic, payload=b"{}", timestamp="t", expires_at_ms=expires
    )


def ids_of(found: list[StoredMessage] | None) -> list[str] | None:
    return None if found is None else [m.message_id for m in found]


def make(**kw: float) -> Cache:
    args = {"per_topic": 100, "max_topics": 100, "max_age": 0.0, "max_bytes": 1 << 30} | kw
    return Cache(
        per_topic=int(args["per_topic"]),
        max_topics=int(args["max_topics"]),
        max_age=args["max_age"],
        max_bytes=int(args["max_bytes"]),
    )


NOW = now_ms()


def test_new_topic_floor_is_the_partition_position_before_it() -> None:
    """A topic first seen after a known position covers everything after that position."""
    c = make()
    c.add(0, (NOW, 0), [msg("a", (NOW + 1, 0)), msg("b", (NOW + 2, 0)), msg("a", (NOW + 3, 0))])
    hit = c.after("a", (NOW, 0), 10)
    assert hit is not None and ids_of(hit[0]) == [f"{NOW + 1}-0", f"{NOW + 3}-0"] and hit[1]
    # b was created after a's first message: its floor is a's id, so (NOW, 0) is below it.
    assert c.after("b", (NOW, 0), 10) is None
    hit = c.after("b", (NOW + 1, 0), 10)
    assert hit is not None and ids_of(hit[0]) == [f"{NOW + 2}-0"]


def test_unknown_position_makes_the_first_message_the_floor() -> None:
    """With no known partition position, only reads at or after the first cached id are answered."""
    c = make()
    c.add(0, None, [msg("a", (NOW + 5, 0)), msg("a", (NOW + 6, 0))])
    assert c.after("a", (NOW + 4, 0), 10) is None
    hit = c.after("a", (NOW + 5, 0), 10)
    assert hit is not None and ids_of(hit[0]) == [f"{NOW + 6}-0"]


def test_eviction_raises_the_floor() -> None:
    """Once a topic's oldest message is evicted, reads from before it fall back to Valkey."""
    c = make(per_topic=2)
    c.add(0, (NOW, 0), [msg("a", (NOW + i, 0)) for i in range(1, 5)])
    assert c.after("a", (NOW + 1, 0), 10) is None
    hit = c.after("a", (NOW + 2, 0), 10)
    assert hit is not None and ids_of(hit[0]) == [f"{NOW + 3}-0", f"{NOW + 4}-0"]


def test_bytes_are_bounded_least_recently_used_topic_first() -> None:
    """Past max_bytes the least recently used topic's oldest messages go (its floor rises, so
    reads below it fall back to Valkey), then whole topics; the byte count follows every change."""
    one = msg("x", (NOW, 0))[1].size()
    c = make(max_bytes=5 * one)
    c.add(0, (NOW, 0), [msg("a", (NOW + i, 0)) for i in range(1, 4)])
    c.add(0, (NOW + 3, 0), [msg("b", (NOW + i, 0)) for i in range(4, 6)])
    assert c.bytes == 5 * one
    c.add(0, (NOW + 5, 0), [msg("b", (NOW + 6, 0)), msg("b", (NOW + 7, 0))])
    assert c.bytes == 5 * one
    assert c.after("a", (NOW + 1, 0), 10) is None  # a's two oldest went
    hit = c.after("a", (NOW + 2, 0), 10)
    assert hit is not None and ids_of(hit[0]) == [f"{NOW + 3}-0"]
    c.add(0, (NOW + 7, 0), [msg("c", (NOW + 8, 0))])
    assert c.bytes <= 5 * one and c.after("b", (NOW + 3, 0), 10) is None  # b used least recently now
    c.drop("c")
    c.clear()
    assert c.bytes == 0 and len(c) == 0


def test_limit_reports_incomplete() -> None:
    """A read cut short by its limit says there is more."""
    c = make()
    c.add(0, (NOW, 0), [msg("a", (NOW + i, 0)) for i in range(1, 5)])
    hit = c.after("a", (NOW, 0), 2)
    assert hit is not None and len(hit[0]) == 2 and not hit[1]


def test_expired_messages_are_never_returned() -> None:
    """A message past its ttl is skipped by every read."""
    c = make()
    c.add(0, (NOW, 0), [msg("a", (NOW + 1, 0), expires=NOW - 1), msg("a", (NOW + 2, 0))])
    hit = c.after("a", (NOW, 0), 10)
    assert hit is not None and ids_of(hit[0]) == [f"{NOW + 2}-0"]
    assert c.before("a", None, 2) is None  # only one live message: not enough to answer
    assert ids_of(c.before("a", None, 1)) == [f"{NOW + 2}-0"]


def test_old_messages_age_out() -> None:
    """Messages older than the cache's max age are dropped and the floor moves up."""
    c = make(max_age=60.0)
    now = now_ms()  # not the module's NOW: the suite may reach this test minutes after import
    old = now - 120_000
    c.add(0, (old - 1, 0), [msg("a", (old, 0)), msg("a", (now, 0))])
    assert c.after("a", (old - 1, 0), 10) is None
    hit = c.after("a", (old, 0), 10)
    assert hit is not None and ids_of(hit[0]) == [f"{now}-0"]


def test_lru_evicts_whole_topics() -> None:
    """Beyond max_topics the least recently used topic is forgotten entirely."""
    c = make(max_topics=2)
    c.add(0, (NOW, 0), [msg("a", (NOW + 1, 0)), msg("b", (NOW + 2, 0))])
    assert c.after("a", (NOW, 0), 1) is not None  # touch a: b is now least recent
    c.add(0, (NOW + 2, 0), [msg("c", (NOW + 3, 0))])
    assert c.after("b", (NOW + 1, 0), 1) is None
    assert c.after("a", (NOW, 0), 1) is not None and len(c) == 2


def test_before_needs_a_full_page_above_the_floor() -> None:
    """Descending reads are answered only when the cache holds a whole page below the bound."""
    c = make()
    c.add(0, (NOW, 0), [msg("a", (NOW + i, 0)) for i in range(1, 6)])
    assert ids_of(c.before("a", (NOW + 5, 0), 3)) == [f"{NOW + i}-0" for i in (4, 3, 2)]
    assert c.before("a", (NOW + 3, 0), 3) is None


def test_redelivered_entries_are_ignored_and_partitions_drop() -> None:
    """An id at or below a topic's head is not added twice; drop_partition forgets its topics."""
    c = make()
    c.add(0, (NOW, 0), [msg("a", (NOW + 1, 0))])
    c.add(0, (NOW + 1, 0), [msg("a", (NOW + 1, 0))])
    hit = c.after("a", (NOW, 0), 10)
    assert hit is not None and len(hit[0]) == 1
    c.add(1, (NOW, 0), [msg("z", (NOW + 2, 0))])
    c.drop_partition(0)
    assert c.after("a", (NOW, 0), 10) is None and c.after("z", (NOW, 0), 10) is not None


def test_holds_finds_a_cached_id_per_topic_only_and_forgets_evicted_ones() -> None:
    """``holds`` answers for the exact id in that topic; an evicted id is no longer held."""
    c = make(per_topic=2)
    c.add(0, None, [msg("a", (NOW + 1, 0)), msg("b", (NOW + 2, 0)), msg("a", (NOW + 3, 0))])
    assert c.holds("a", (NOW + 1, 0)) and c.holds("b", (NOW + 2, 0))
    assert not c.holds("a", (NOW + 2, 0)) and not c.holds("c", (NOW + 1, 0))
    c.add(0, (NOW + 3, 0), [msg("a", (NOW + 4, 0))])  # a keeps its newest two
    assert not c.holds("a", (NOW + 1, 0)) and c.holds("a", (NOW + 4, 0))
