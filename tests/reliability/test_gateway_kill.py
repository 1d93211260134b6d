"""Promise: a gateway SIGKILLed while thousands of messages are published and read loses and
duplicates nothing for clients that resume with their position (WebSocket ``since`` and
``resume``, long-poll cursors), whether they come back on the other gateway or the restarted one."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable

import pytest
import redis.asyncio as aredis

from relaycore.keys import Keys
from tests.reliability.clients import (
    PollFollower,
    Producer,
    WsFollower,
    differences,
    sort_ids,
    stop_all,
    wait_caught_up,
)
from tests.reliability.harness import PARTITIONS, Services, identity
from tests.support.valkey import ValkeyServer

TOPICS = ["kill-jobs", "kill-logs", "kill-metrics"]
AT_LEAST = 3000  # messages published in the run (more are, while gateways restart)
STEP = 400  # messages acknowledged between two chaos actions
BULK = 10


async def until(condition: Callable[[], bool], rounds: int = 2400) -> None:
    for _ in range(rounds):
        if condition():
            return
        await asyncio.sleep(0.025)
    raise AssertionError("condition never became true")


@pytest.mark.slow
async def test_gateway_sigkill_loses_and_duplicates_nothing(
    private_valkey: ValkeyServer, relay_procs: Services
) -> None:
    """Two gateways, each SIGKILLed once mid-run and restarted: every follower ends with exactly
    the acknowledged ids per topic, in order, once each."""
    url = private_valkey.url
    _, token = await identity(url, "producer")
    ingest = await relay_procs.start("ingest")
    gw_a = await relay_procs.start("gateway", PULSAR_GATEWAY_ID="gw-a")
    gw_b = await relay_procs.start("gateway", PULSAR_GATEWAY_ID="gw-b")
    urls = [gw_a.url, gw_b.url]

    followers = [
        WsFollower("ws-since-a", urls, token, TOPICS, start=0),
        WsFollower("ws-since-b", urls, token, TOPICS, start=1),
        WsFollower("ws-since-a2", urls, token, TOPICS, start=2),
        PollFollower("poll-a", urls, token, TOPICS, start=0),
        PollFollower("poll-b", urls, token, TOPICS, start=1),
    ]
    resumer = WsFollower("ws-resume", urls, token, TOPICS, start=1, client_id="resumer")
    stop = asyncio.Event()
    readers = [asyncio.create_task(f.run(stop)) for f in [*followers, resumer]]
    await until(lambda: all(getattr(f, "connections", 1) or getattr(f, "polls", 0) for f in followers))

    producers = [Producer(ingest.url, token), Producer(ingest.url, token)]
    chaos_done = asyncio.Event()
    counter = itertools.count()

    def total() -> int:
        return sum(p.total for p in producers)

    async def produce(p: Producer, index: int) -> None:
        for request in itertools.count():
            if chaos_done.is_set() and total() >= AT_LEAST:
                return
            batch = [
                (TOPICS[n % len(TOPICS)], {"producer": index, "n": n})
                for n in itertools.islice(counter, BULK)
            ]
            if request % 7 == 3:
                await p.single(*batch[0])
            else:
                await p.bulk(batch)
            await asyncio.sleep(0.005)

    async def chaos() -> None:
        nonlocal gw_a, gw_b
        await until(lambda: total() >= STEP)
        gw_a.kill()  # clients move to gw-b
        mark = total()
        await until(lambda: total() >= mark + STEP)
        gw_a = await relay_procs.restart(gw_a)  # same identity and port
        mark = total()
        await until(lambda: total() >= mark + STEP)
        gw_b.kill()  # clients move to the restarted gw-a
        mark = total()
        await until(lambda: total() >= mark + STEP)
        gw_b = await relay_procs.restart(gw_b)
        chaos_done.set()

    try:
        await asyncio.gather(chaos(), *(produce(p, i) for i, p in enumerate(producers)))
        acked = {t: sort_ids([m for p in producers for m in p.acked.get(t, [])]) for t in TOPICS}
        await wait_caught_up([*followers, resumer], {t: ids[-1] for t, ids in acked.items()})
    finally:
        await stop_all(stop, readers)
        for p in producers:
            await p.aclose()

    r = aredis.Redis.from_url(url)
    keys = Keys("relay", PARTITIONS)
    stored = {t: [i.decode() for i, _ in await r.xrange(keys.stream(t))] for t in TOPICS}
    await r.aclose()
    assert stored == acked, "the topic streams hold exactly the acknowledged messages"
    assert sum(map(len, acked.values())) >= AT_LEAST

    problems = [d for f in followers for d in differences(f, acked)]
    assert not problems, "\n".join(problems) + "\n" + relay_procs.logs()
    assert all(f.reconnects > 0 for f in followers), "every follower lived through a kill"

    # At-least-once for ack/resume clients: after removing repeats, exactly the acknowledged ids.
    deduped = {t: list(dict.fromkeys(v)) for t, v in resumer.received.items()}
    assert deduped == acked, differences(resumer, acked)
    assert not resumer.problems, resumer.problems
    print(
        f"\ngateway-kill: {sum(map(len, acked.values()))} messages, 2 SIGKILLs,"
        f" reconnects {[f.reconnects for f in [*followers, resumer]]},"
        f" resume repeats {sum(len(v) - len(set(v)) for v in resumer.received.values())}"
    )
