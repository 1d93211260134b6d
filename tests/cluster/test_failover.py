"""A primary of the cluster is SIGKILLed mid-stream and its replica takes over.  With
``publish_wait_replicas=1`` (every acknowledged publish is on the replica before the 2xx) no
acknowledged message is lost, and a since-following WebSocket client gets every one of them once,
in order, before and after the failover."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from relaycore.keys import Keys
from tests.cluster.cluster import ValkeyCluster, cli_binary
from tests.cluster.flow import Follower, check_deliveries, publish_acked
from tests.cluster.placement import one_per_partition, slot_of
from tests.conftest import make_settings
from tests.gateway.conftest import eventually, serve
from tests.support.valkey import server_binary

pytestmark = pytest.mark.slow


@pytest.fixture
def replicated() -> Iterator[ValkeyCluster]:
    """A cluster of this test's own (it gets broken): 3 primaries with a replica each."""
    if server_binary() is None or cli_binary() is None:
        pytest.skip("a cluster needs valkey-server/redis-server and valkey-cli/redis-cli")
    c = ValkeyCluster(masters=3, replicas=1, node_timeout_ms=1000).start()
    try:
        yield c
    finally:
        c.cleanup()


async def test_primary_killed_loses_no_acknowledged_message(replicated: ValkeyCluster) -> None:
    """Kill the primary holding a partition while messages flow; the replica is promoted; every
    acknowledged message is stored and delivered once, in order; delivery goes on afterwards."""
    settings = make_settings(replicated.url, publish_wait_replicas=1, publish_wait_timeout=2.0)
    keys = Keys(settings.key_prefix, settings.fanout_partitions)
    topics = one_per_partition(settings.fanout_partitions)
    acked: dict[str, list[str]] = {t: [] for t in topics}
    async with serve(settings) as relay:
        _, token = await relay.user("alice")
        follower = Follower(relay, token, topics)
        try:
            await eventually(lambda: all(relay.node.hub.counts().get(t, 0) > 0 for t in topics))

            async def produce(start: int, count: int) -> None:
                for n in range(start, start + count):
                    t = topics[n % len(topics)]
                    acked[t].append(await publish_acked(relay, token, t, n, deadline=60))

            producer = asyncio.create_task(produce(0, 300))
            await eventually(lambda: sum(map(len, acked.values())) >= 100)
            slot = slot_of(topics[0], keys)
            victim = replicated.owner_of(slot)
            assert replicated.replica_of(victim) is not None
            replicated.kill(victim)
            successor = await asyncio.to_thread(replicated.wait_promoted, victim, slot)
            # The old primary comes back as the new one's replica, so WAIT 1 can be met again there.
            await asyncio.to_thread(replicated.restart, victim)
            await asyncio.to_thread(replicated.wait_healthy)
            await producer
            assert replicated.owner_of(slot) == successor
            await produce(300, 60)

            stored = {
                t: [m.message_id for m in await relay.backend.messages.read_after(t, None, 10_000)]
                for t in topics
            }
            for t in topics:
                lost = set(acked[t]) - set(stored[t])
                assert not lost, f"{t}: acknowledged but not stored after the failover: {sorted(lost)[:5]}"
            total = sum(map(len, acked.values()))
            await eventually(lambda: follower.total() >= total, within=60)
            check_deliveries(follower.got, acked)
        finally:
            await follower.stop()
