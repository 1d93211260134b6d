"""History-to-live hand-over on a real socket while publishing continues: every message after
the position arrives exactly once and in order, whether history comes from the cache or Valkey."""

from __future__ import annotations

import asyncio
import json

import pytest

from relaycore import metrics
from tests.gateway.conftest import WAIT, Relay, eventually, messages, publish_direct, recv

TOTAL = 3000
BULK = 100


def reads(source: str) -> float:
    return float(metrics.cache_hits.labels(source)._value.get())


async def publisher(relay: Relay, token: str, topic: str, total: int, sink: list[str]) -> None:
    """Publish ``total`` messages through ingest, a bulk at a time, recording ids as they land."""
    for i in range(0, total, BULK):
        sink += await relay.publish(token, topic, [{"n": n} for n in range(i, i + BULK)])
        await asyncio.sleep(0)


@pytest.mark.parametrize("path", ["valkey", "cache"])
@pytest.mark.parametrize("run", range(3))
async def test_since_hand_over_under_concurrent_publishing(relay_factory, path: str, run: int) -> None:
    """Subscribing with since mid-stream yields exactly the messages after it, in order."""
    per_topic = 20 if path == "valkey" else 10_000
    async with relay_factory(cache_messages_per_topic=per_topic, ws_send_queue=1024) as relay:
        _, token = await relay.user("alice")
        published: list[str] = []
        task = asyncio.create_task(publisher(relay, token, "flow", TOTAL, published))
        await eventually(lambda: len(published) >= 1000)
        before = reads(path)
        since = published[99 + run * 300]
        ws = await relay.subscribe(token, ["flow"], since={"flow": since})
        await task
        expected = published[published.index(since) + 1 :]
        got = await messages(ws, len(expected), within=60)
        assert [m["message_id"] for m in got] == expected
        assert [m["payload"]["n"] for m in got] == list(range(TOTAL - len(expected), TOTAL))
        assert reads(path) > before  # the replay really came from where this case says


async def test_hand_over_survives_a_flood_that_overflows_the_held_buffer(relay_factory) -> None:
    """Live messages overflowing the held buffer during a long replay are re-read, not lost."""
    async with relay_factory(cache_messages_per_topic=10, ws_send_queue=200) as relay:
        alice, token = await relay.user("alice")
        first = await publish_direct(relay.backend, alice, "flood", 2000)
        producer = asyncio.create_task(publish_direct(relay.backend, alice, "flood", 4000, start=2000))
        ws = await relay.subscribe(token, ["flood"], since={"flood": first[0]})
        got = [m["payload"]["n"] for m in await messages(ws, 5999, within=90)]
        await producer
        assert got == list(range(1, 6000))
        [session] = relay.node.sessions
        assert session.subs["flood"].overflows > 0  # the case this test is about did happen


async def test_since_on_several_topics_at_once(any_relay: Relay) -> None:
    """Each topic replays after its own position; a topic without one is live only."""
    relay = any_relay
    alice, token = await relay.user("alice")
    a = await publish_direct(relay.backend, alice, "ta", 5)
    b = await publish_direct(relay.backend, alice, "tb", 5)
    await publish_direct(relay.backend, alice, "tc", 5)
    ws = await relay.subscribe(token, ["ta", "tb", "tc"], since={"ta": a[1], "tb": b[3]})
    got = await messages(ws, 4)
    assert sorted((m["topic"], m["payload"]["n"]) for m in got) == [
        ("ta", 2),
        ("ta", 3),
        ("ta", 4),
        ("tb", 4),
    ]
    [c] = await publish_direct(relay.backend, alice, "tc", 1, start=5)
    assert (await messages(ws, 1))[0]["message_id"] == c


async def test_since_at_the_newest_id_delivers_only_new_messages(any_relay: Relay) -> None:
    """A position equal to the newest message replays nothing and then continues live."""
    relay = any_relay
    alice, token = await relay.user("alice")
    ids = await publish_direct(relay.backend, alice, "t", 3)
    ws = await relay.subscribe(token, ["t"], since={"t": ids[-1]})
    [nxt] = await publish_direct(relay.backend, alice, "t", 1, start=3)
    assert (await messages(ws, 1))[0]["message_id"] == nxt


@pytest.mark.parametrize("run", range(2))
async def test_resume_replays_after_the_acknowledged_position(relay_factory, run: int) -> None:
    """A client that acked, disconnected and resumes with its client_id misses nothing and repeats
    nothing, while publishing never stops."""
    async with relay_factory(cache_messages_per_topic=50 if run else 10_000) as relay:
        _, token = await relay.user("alice")
        published: list[str] = []
        task = asyncio.create_task(publisher(relay, token, "jobs", 2000, published))
        first = await relay.subscribe(token, ["jobs"], client_id="w1")
        await eventually(lambda: len(published) >= 300)
        seen = await messages(first, 150)
        acked = seen[-1]["message_id"]
        await first.send(json.dumps({"type": "ack", "message_id": acked}))
        await first.send(json.dumps({"type": "ping"}))
        while (await recv(first))["type"] != "pong":  # the ack is stored once the pong comes
            pass
        await first.close()
        second = await relay.subscribe(token, ["jobs"], client_id="w1", resume=True)
        await task
        start = published.index(acked) + 1
        got = await messages(second, len(published) - start, within=60)
        assert [m["message_id"] for m in got] == published[start:]


async def test_explicit_since_wins_over_the_acknowledged_position(relay: Relay) -> None:
    """With resume, a topic named in since replays from there, not from the ack."""
    alice, token = await relay.user("alice")
    ids = await publish_direct(relay.backend, alice, "t", 6)
    await relay.backend.acks.record(alice.user_id, "w", "t", ids[4])
    ws = await relay.subscribe(token, ["t"], client_id="w", resume=True, since={"t": ids[1]})
    assert [m["payload"]["n"] for m in await messages(ws, 4)] == [2, 3, 4, 5]


async def test_subscribing_again_with_since_replays_from_there(relay: Relay) -> None:
    """A repeated subscribe naming a live topic with a position replays after it, then goes on live."""
    alice, token = await relay.user("alice")
    ws = await relay.subscribe(token, ["t"])
    ids = await publish_direct(relay.backend, alice, "t", 3)
    assert [m["message_id"] for m in await messages(ws, 3)] == ids
    await ws.send(json.dumps({"type": "subscribe", "topics": ["t"], "since": {"t": ids[0]}}))
    assert (await recv(ws))["type"] == "subscribed"
    assert [m["message_id"] for m in await messages(ws, 2)] == ids[1:]
    [live] = await publish_direct(relay.backend, alice, "t", 1, start=3)
    assert (await messages(ws, 1))[0]["message_id"] == live


async def test_unsubscribe_during_a_replay_stops_it(relay_factory) -> None:
    """Unsubscribing while history is still being replayed ends the replay; the socket goes on."""
    async with relay_factory(ws_send_queue=16) as relay:
        alice, token = await relay.user("alice")
        await publish_direct(relay.backend, alice, "long", 3000)
        ws = await relay.subscribe(token, ["long", "other"], since={"long": "0-0"})
        await ws.send(json.dumps({"type": "unsubscribe", "topics": ["long"]}))
        [session] = relay.node.sessions
        await eventually(lambda: "long" not in session.subs and not session._handovers)
        [mid] = await publish_direct(relay.backend, alice, "other", 1)
        async with asyncio.timeout(WAIT):
            while (frame := await recv(ws))["type"] != "message" or frame["topic"] != "other":
                assert frame["type"] in ("message", "unsubscribed", "ping")
        assert frame["message_id"] == mid
