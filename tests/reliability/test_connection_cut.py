"""Promise: when a running gateway's Valkey connections are cut (``CLIENT KILL``), it reconnects
and its WebSocket and long-poll clients see no gap and no repeat, without reconnecting themselves."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
import redis.asyncio as aredis

from relaycore.keys import Keys
from relaycore.models import iso_z, utcnow
from tests.reliability.clients import (
    PollFollower,
    Producer,
    WsFollower,
    differences,
    sort_ids,
    stop_all,
    wait_caught_up,
)
from tests.reliability.harness import PARTITIONS, Services, identity, valkey_client_ports
from tests.reliability.test_gateway_kill import until
from tests.support.serve import RelayProcess
from tests.support.valkey import ValkeyServer

TOPICS = ["cut-a", "cut-b", "cut-c"]
ROUNDS = 8
BURST = 60


async def cut_connections(admin: aredis.Redis, proc: RelayProcess, valkey_port: int) -> int:
    """``CLIENT KILL ADDR`` every connection ``proc`` holds to Valkey; returns how many."""
    assert proc.proc is not None
    ports = valkey_client_ports(proc.proc.pid, valkey_port)
    for port in ports:
        await admin.execute_command("CLIENT", "KILL", "ADDR", f"127.0.0.1:{port}")
    return len(ports)


@pytest.mark.slow
async def test_gateway_survives_cut_valkey_connections_without_gaps(
    private_valkey: ValkeyServer, relay_procs: Services
) -> None:
    """Bursts of publishes, each followed by cutting every Valkey connection of the gateway
    (``CLIENT KILL ADDR``, and ``TYPE normal`` / ``TYPE pubsub`` for everyone): the WebSocket
    clients never reconnect and, like the long-poll client, end with exactly the acknowledged ids."""
    url = private_valkey.url
    _, token = await identity(url, "producer")
    ingest = await relay_procs.start("ingest")
    gw = await relay_procs.start("gateway", PULSAR_GATEWAY_ID="gw-cut")
    ws = [WsFollower(f"ws-{i}", [gw.url], token, TOPICS) for i in range(3)]
    poller = PollFollower("poll", [gw.url], token, TOPICS)
    stop = asyncio.Event()
    readers = [asyncio.create_task(f.run(stop)) for f in [*ws, poller]]
    producer = Producer(ingest.url, token)
    admin = aredis.Redis.from_url(url)
    cuts = 0
    try:
        await until(lambda: all(f.connections for f in ws) and poller.polls > 0)
        for round_ in range(ROUNDS):
            for i in range(0, BURST, 10):
                await producer.bulk([(TOPICS[(i + k) % 3], {"round": round_, "k": i + k}) for k in range(10)])
            # Cut while the readers are parked in blocking reads, not mid-reply: see the next test.
            await wait_caught_up([*ws, poller], {t: v[-1] for t, v in producer.acked.items()})
            if round_ % 4 == 3:
                await admin.execute_command("CLIENT", "KILL", "TYPE", "normal")
                await admin.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
                cuts += 1
            else:
                cuts += await cut_connections(admin, gw, private_valkey.port)
        acked = {t: sort_ids(v) for t, v in producer.acked.items()}
        await wait_caught_up([*ws, poller], {t: v[-1] for t, v in acked.items()})
    finally:
        await stop_all(stop, readers)
        await producer.aclose()
        await admin.aclose()

    problems = [d for f in [*ws, poller] for d in differences(f, acked)]
    assert not problems, "\n".join(problems) + relay_procs.logs()
    assert [f.connections for f in ws] == [1, 1, 1], "no WebSocket client had to reconnect"
    assert cuts >= ROUNDS
    print(f"\nconnection-cut: {producer.total} messages, {cuts} connections cut in {ROUNDS} rounds")


async def _raw_publish_then_cut(admin: aredis.Redis, topic: str, tailer_addr: str) -> str:
    """What the publish script writes (log entry, then the topic stream with the same id) and a
    ``CLIENT KILL`` of the gateway's blocked tailer, in one pipeline: Valkey serves the tailer's
    blocked XREADGROUP right after the XADD and kills the connection before the reply is written,
    the worst moment a connection can be lost."""
    keys = Keys("relay", PARTITIONS)
    last: Any = await admin.xinfo_stream(keys.log_for(topic))
    ms = max(int(time.time() * 1000), int(last["last-generated-id"].decode().split("-")[0]) + 1)
    mid = f"{ms}-0"
    fields = {"p": json.dumps({"raw": True}), "ts": iso_z(utcnow())}
    async with admin.pipeline(transaction=False) as pipe:
        pipe.xadd(keys.log_for(topic), {"t": topic, **fields}, id=mid)
        pipe.xadd(keys.stream(topic), fields, id=mid)
        pipe.execute_command("CLIENT", "KILL", "ADDR", tailer_addr)
        await pipe.execute()
    return mid


async def test_tailer_cut_after_delivery_leaves_no_gap(
    private_valkey: ValkeyServer, relay_procs: Services
) -> None:
    """A tailer connection cut right after Valkey handed it an entry: the subscriber still gets that
    entry, then the next one, in order (nothing stays stranded in the group's pending list)."""
    url = private_valkey.url
    _, token = await identity(url, "producer")
    ingest = await relay_procs.start("ingest")
    gw = await relay_procs.start(
        "gateway", PULSAR_GATEWAY_ID="gw-raw", PULSAR_TAIL_BLOCK="30", PULSAR_VALKEY_COMMAND_TIMEOUT="60"
    )
    producer = Producer(ingest.url, token)
    topic = TOPICS[0]
    follower = WsFollower("ws", [gw.url], token, [topic])
    stop = asyncio.Event()
    reader = asyncio.create_task(follower.run(stop))
    admin = aredis.Redis.from_url(url)
    try:
        first = await producer.single(topic, {"n": 0})
        await wait_caught_up([follower], {topic: first})
        assert gw.proc is not None
        ports = set(valkey_client_ports(gw.proc.pid, private_valkey.port))

        async def blocked_tailer() -> str | None:
            for c in await admin.client_list():
                port = int(c["addr"].rsplit(":", 1)[1])
                if port in ports and c["cmd"] == "xreadgroup" and "b" in c["flags"]:
                    return str(c["addr"])
            return None

        addr = None
        for _ in range(200):
            if addr := await blocked_tailer():
                break
            await asyncio.sleep(0.02)
        assert addr, "the gateway's tailer is parked in XREADGROUP BLOCK"
        stranded = await _raw_publish_then_cut(admin, topic, addr)
        after = await producer.single(topic, {"n": 2})
        await wait_caught_up([follower], {topic: after}, rounds=200)
        pending = await admin.xpending(Keys("relay", PARTITIONS).log_for(topic), "gw:gw-raw")
    finally:
        await stop_all(stop, [reader])
        await producer.aclose()
        await admin.aclose()
    assert follower.received[topic] == [first, stranded, after], f"pending in the group: {pending}"
