"""The gateway on a Valkey Cluster over real sockets: one blocking reader per partition, WebSocket
and long-poll delivery from partitions on every node, since hand-over while publishing, and a
partition's slot moved to another node mid-stream without a lost or repeated delivery."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import pytest

from relaycore.keys import Keys
from tests.cluster.cluster import ValkeyCluster
from tests.cluster.flow import Follower, check_deliveries, publish_acked
from tests.cluster.placement import one_per_partition, slot_of
from tests.conftest import make_settings
from tests.gateway.conftest import WAIT, Relay, eventually, messages, serve

RelayFactory = Callable[..., contextlib.AbstractAsyncContextManager[Relay]]


@pytest.fixture
def relay_factory(valkey_url: str) -> RelayFactory:
    """``async with relay_factory(**settings) as relay``: gateway + ingest on the cluster."""
    return lambda **kw: serve(make_settings(valkey_url, **kw))


@pytest.fixture
async def relay(relay_factory: RelayFactory) -> AsyncIterator[Relay]:
    async with relay_factory() as r:
        yield r


async def test_one_blocking_reader_per_partition(relay: Relay) -> None:
    """A cluster refuses one read over several slots, so each partition has its own reader."""
    names = {t.get_name() for t in asyncio.all_tasks() if not t.done()}
    wanted = {f"gateway-tailer-{p}" for p in range(relay.settings.fanout_partitions)}
    assert wanted <= names
    assert relay.node.tailer.ready.is_set()


async def test_websocket_receives_from_partitions_on_every_node(relay: Relay) -> None:
    """A WebSocket subscribed to topics of all partitions gets each topic's messages in order."""
    _, token = await relay.user("alice")
    topics = one_per_partition(relay.settings.fanout_partitions)
    ws = await relay.subscribe(token, topics)
    sent: dict[str, list[str]] = {}
    for t in topics:
        sent[t] = await relay.publish(token, t, [{"n": n} for n in range(5)])
    got = await messages(ws, 5 * len(topics))
    for t in topics:
        assert [m["message_id"] for m in got if m["topic"] == t] == sent[t]


async def test_long_poll_wakes_for_a_message_on_any_node(relay: Relay) -> None:
    """A long-poll over topics of all partitions returns the message published to one of them,
    with a cursor per topic."""
    _, token = await relay.user("alice")
    topics = one_per_partition(relay.settings.fanout_partitions)
    poll = asyncio.create_task(relay.poll(token, {"topics": topics, "timeout": 30}))
    await eventually(lambda: all(relay.node.hub.counts().get(t, 0) > 0 for t in topics) or poll.done())
    [mid] = await relay.publish(token, topics[-1], [{"n": 1}])
    body = (await poll).json()
    assert [(m["topic"], m["message_id"]) for m in body["messages"]] == [(topics[-1], mid)]
    assert set(body["cursors"]) == set(topics) and body["cursors"][topics[-1]] == mid


@pytest.mark.parametrize("cached", [False, True])
async def test_since_hand_over_while_publishing(relay_factory: RelayFactory, cached: bool) -> None:
    """Subscribing with since mid-stream yields exactly the messages after it, in order, whether the
    past comes from the gateway's cache or from the cluster."""
    async with relay_factory(cache_messages_per_topic=5000 if cached else 10) as relay:
        _, token = await relay.user("alice")
        topic = one_per_partition(relay.settings.fanout_partitions)[1]
        published: list[str] = []

        async def produce() -> None:
            for i in range(0, 1000, 50):
                published.extend(await relay.publish(token, topic, [{"n": n} for n in range(i, i + 50)]))

        task = asyncio.create_task(produce())
        await eventually(lambda: len(published) >= 300)
        since = published[123]
        ws = await relay.subscribe(token, [topic], since={topic: since})
        await task
        got = await messages(ws, 1000 - 124, within=60)
        assert [m["message_id"] for m in got] == published[124:]


async def test_slot_move_mid_stream_loses_and_repeats_nothing(cluster: ValkeyCluster, relay: Relay) -> None:
    """A partition's slot is resharded to another node while messages flow (clients see ASK, then
    MOVED; the log moves with its consumer groups): the follower gets every acknowledged message
    once, in order, and publishing and delivery go on from the new node."""
    _, token = await relay.user("alice")
    keys = Keys(relay.settings.key_prefix, relay.settings.fanout_partitions)
    topics = one_per_partition(relay.settings.fanout_partitions)
    follower = Follower(relay, token, topics)
    acked: dict[str, list[str]] = {t: [] for t in topics}
    moved = slot_of(topics[0], keys)
    home = cluster.owner_of(moved)
    away = next(p for p in cluster.primaries() if p != home)
    try:
        await eventually(lambda: relay.node.hub.counts().get(topics[0], 0) > 0)

        async def produce(start: int, count: int) -> None:
            for n in range(start, start + count):
                t = topics[n % len(topics)]
                acked[t].append(await publish_acked(relay, token, t, n))

        producer = asyncio.create_task(produce(0, 400))
        await eventually(lambda: sum(map(len, acked.values())) >= 100)
        await asyncio.to_thread(cluster.move_slot, moved, away)
        await producer
        assert cluster.owner_of(moved) == away
        await produce(400, 40)
        total = sum(map(len, acked.values()))
        await eventually(lambda: follower.total() >= total, within=WAIT * 3)
        check_deliveries(follower.got, acked)
    finally:
        await follower.stop()
        await asyncio.to_thread(cluster.move_slot, moved, home)
