"""The gateway fault tests again, with two gateways behind the load balancer (HAProxy running
deploy/haproxy.cfg) and clients that know only its address: a client whose gateway dies resumes
on the other through it, and a gateway stalled on Valkey does not hold the other back."""

from __future__ import annotations

import asyncio
import itertools

import httpx
import pytest

from tests.reliability.balancer import StallingProxy, balancer
from tests.reliability.clients import (
    PollFollower,
    Producer,
    WsFollower,
    differences,
    stop_all,
    wait_caught_up,
)
from tests.reliability.harness import Services, identity
from tests.support.valkey import ValkeyServer

pytestmark = pytest.mark.slow

TOPICS = ["lb-jobs", "lb-logs"]


def target(producer: Producer) -> dict[str, str]:
    return {t: producer.acked[t][-1] for t in TOPICS}


async def publish(producer: Producer, count: int, counter: itertools.count[int]) -> None:
    for _ in range(count):
        n = next(counter)
        await producer.single(TOPICS[n % len(TOPICS)], {"n": n})


async def test_a_client_whose_gateway_dies_resumes_on_the_other_through_the_balancer(
    private_valkey: ValkeyServer, relay_procs: Services
) -> None:
    """Two gateways behind HAProxy; clients (WebSocket with since, WebSocket with client_id and
    acks, long-poll following cursors) connect through it. The gateway serving them is SIGKILLed
    mid-run: they reconnect through HAProxy, land on the other, and end with every acknowledged
    message once (the ack/resume client at least once: repeats only of what it got unacked)."""
    url = private_valkey.url
    _, token = await identity(url, "producer")
    auth = await relay_procs.start("auth")
    ingest = await relay_procs.start("ingest")
    gws = [
        await relay_procs.start("gateway", PULSAR_GATEWAY_ID="gw-lb-a"),
        await relay_procs.start("gateway", PULSAR_GATEWAY_ID="gw-lb-b"),
    ]
    async with balancer(auth, ingest, gws) as lb:
        producer = Producer(lb, token)
        followers = [
            WsFollower("ws-since", [lb], token, TOPICS),
            PollFollower("poll", [lb], token, TOPICS),
        ]
        resumer = WsFollower("ws-resume", [lb], token, TOPICS, client_id="lb-resumer")
        stop = asyncio.Event()
        tasks = [asyncio.create_task(f.run(stop)) for f in [*followers, resumer]]
        counter = itertools.count()
        try:
            await publish(producer, 60, counter)
            await wait_caught_up([*followers, resumer], target(producer))
            for i in range(len(gws)):  # every client is on one of them: kill each in turn
                gws[i].kill()
                await publish(producer, 60, counter)
                await wait_caught_up([*followers, resumer], target(producer))
                gws[i] = await relay_procs.restart(gws[i])
                await publish(producer, 30, counter)
                await wait_caught_up([*followers, resumer], target(producer))
        finally:
            await stop_all(stop, tasks)
            await producer.aclose()
    problems = [d for f in followers for d in differences(f, producer.acked)]
    assert not problems, "\n".join(problems) + "\n" + relay_procs.logs()[-4000:]
    ws_clients = [followers[0], resumer]
    assert all(f.reconnects > 0 for f in ws_clients), "every WebSocket client lived through a kill"
    deduped = {t: list(dict.fromkeys(v)) for t, v in resumer.received.items()}
    assert deduped == producer.acked, differences(resumer, producer.acked)
    repeats = sum(len(v) - len(set(v)) for v in resumer.received.values())
    reconnects = [f.reconnects for f in [*followers, resumer]]
    print(f"\nbalanced kill: {producer.total} messages, reconnects {reconnects}, resume repeats {repeats}")


async def test_a_gateway_stalled_on_valkey_does_not_hold_the_other_back(
    private_valkey: ValkeyServer, relay_procs: Services
) -> None:
    """gw-a reaches Valkey through a proxy that stalls; gw-b directly. While gw-a's Valkey
    stalls, gw-b's clients (and the clients HAProxy put on gw-b) get every message published
    meanwhile, and gw-a answers its HTTP requests with 503 within its command timeout; once the
    stall ends, gw-a's clients catch up too. Nobody loses or repeats a message."""
    url = private_valkey.url
    _, token = await identity(url, "producer")
    proxy = await StallingProxy(int(url.rsplit(":", 1)[1].split("/")[0])).start()
    try:
        auth = await relay_procs.start("auth")
        ingest = await relay_procs.start("ingest")
        gw_a = await relay_procs.start(
            "gateway",
            PULSAR_GATEWAY_ID="gw-stalled",
            PULSAR_VALKEY_URL=f"redis://127.0.0.1:{proxy.port}/0",
            PULSAR_VALKEY_COMMAND_TIMEOUT="1",
        )
        gw_b = await relay_procs.start(
            "gateway", PULSAR_GATEWAY_ID="gw-healthy", PULSAR_VALKEY_COMMAND_TIMEOUT="1"
        )
        async with balancer(auth, ingest, [gw_a, gw_b]) as lb:
            producer = Producer(ingest.url, token)
            on_a = [
                WsFollower("ws-a", [gw_a.url], token, TOPICS),
                PollFollower("poll-a", [gw_a.url], token, TOPICS),
            ]
            on_b = [
                WsFollower("ws-b", [gw_b.url], token, TOPICS),
                PollFollower("poll-b", [gw_b.url], token, TOPICS),
            ]
            via_lb = [WsFollower(f"ws-lb-{i}", [lb], token, TOPICS) for i in range(4)]
            everyone = [*on_a, *on_b, *via_lb]
            stop = asyncio.Event()
            tasks = [asyncio.create_task(f.run(stop)) for f in everyone]
            counter = itertools.count()
            try:
                await publish(producer, 40, counter)
                await wait_caught_up(everyone, target(producer))
                proxy.stall()
                try:
                    await publish(producer, 40, counter)
                    await wait_caught_up(on_b, target(producer))
                    b_kept_up = all(f.caught_up(target(producer)) for f in on_b)
                    a_held = not any(f.caught_up(target(producer)) for f in on_a[:1])
                    async with httpx.AsyncClient(timeout=30) as http:
                        r = await http.get(
                            gw_a.url + f"/api/v1/topics/{TOPICS[0]}/messages",
                            headers={"Authorization": f"Bearer {token}"},
                        )
                finally:
                    proxy.resume()
                assert b_kept_up, "the healthy gateway's clients waited for the stalled one"
                assert a_held, "control: the stalled gateway's WebSocket client got nothing meanwhile"
                assert r.status_code == 503, r.text
                await publish(producer, 20, counter)
                await wait_caught_up(everyone, target(producer))
            finally:
                await stop_all(stop, tasks)
                await producer.aclose()
    finally:
        await proxy.close()
    problems = [
        d for f in everyone for d in differences(f, producer.acked) if "Ack not recorded: Storage is" not in d
    ]
    assert not problems, "\n".join(problems) + "\n" + relay_procs.logs()[-4000:]
