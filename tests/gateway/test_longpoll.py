"""``POST /messages/poll`` and ``GET /messages/poll/stats`` over real HTTP."""

from __future__ import annotations

import asyncio
import random
import re
from typing import Any

import msgspec
import pytest

from relaycore import eager
from relaycore import ids as ids_
from relaycore.keys import partition_of
from tests.gateway.conftest import Relay, bearer, eventually, make_topic, publish_direct

ID = re.compile(r"^\d+-\d+$")


def ids_of(body: dict[str, Any]) -> list[str]:
    return [m["message_id"] for m in body["messages"]]


async def start_poll(relay: Relay, token: str, body: dict[str, Any], topics: list[str]) -> asyncio.Task[Any]:
    """A poll in flight, returned once its waiter is registered on every topic."""
    task = asyncio.create_task(relay.poll(token, body))
    await eventually(lambda: all(relay.node.hub.counts().get(t, 0) > 0 for t in topics) or task.done())
    return task


async def test_timeout_returns_an_empty_page_with_cursors(any_relay: Relay) -> None:
    """Nothing published: after the timeout, no messages, has_more false, a cursor per topic."""
    relay = any_relay
    _, token = await relay.user("reader", ["read"])
    r = await relay.poll(token, {"topics": ["quiet", "calm"], "timeout": 1})
    assert r.status_code == 200
    body = r.json()
    assert body["messages"] == [] and body["has_more"] is False
    assert set(body["cursors"]) == {"quiet", "calm"} and all(ID.match(c) for c in body["cursors"].values())


async def test_since_returns_stored_messages_at_once(any_relay: Relay) -> None:
    """With since, the stored messages after it come back immediately, in the common shape."""
    relay = any_relay
    _, token = await relay.user("alice")
    ids = await relay.publish(token, "t", [{"n": i} for i in range(3)])
    r = await relay.poll(token, {"topics": ["t"], "since": {"t": ids[0]}, "timeout": 30})
    body = r.json()
    assert ids_of(body) == ids[1:] and body["has_more"] is False and body["cursors"] == {"t": ids[2]}
    assert body["messages"][0] == {
        "type": "message",
        "message_id": ids[1],
        "topic": "t",
        "payload": {"n": 1},
        "timestamp": body["messages"][0]["timestamp"],
        "metadata": {},
    }


async def test_catch_up_is_capped_per_topic_with_has_more(relay_factory) -> None:
    """At most poll_max_messages_per_topic per topic; has_more says there is more; the cursor
    continues exactly where the page stopped."""
    async with relay_factory(poll_max_messages_per_topic=10) as relay:
        alice, token = await relay.user("alice")
        ids = await publish_direct(relay.backend, alice, "big", 25)
        small = await publish_direct(relay.backend, alice, "small", 3)
        body = (
            await relay.poll(token, {"topics": ["big", "small"], "since": {"big": "0-0", "small": "0-0"}})
        ).json()
        assert ids_of(body) == ids[:10] + small and body["has_more"] is True
        assert body["cursors"] == {"big": ids[9], "small": small[2]}
        body = (await relay.poll(token, {"topics": ["big"], "since": body["cursors"]})).json()
        assert ids_of(body) == ids[10:20] and body["has_more"] is True


async def test_topic_missing_from_a_non_empty_since_replays_from_the_start(relay: Relay) -> None:
    """The reference's quirk, kept by the contract: a polled topic absent from since replays all."""
    alice, token = await relay.user("alice")
    a = await publish_direct(relay.backend, alice, "a", 2)
    b = await publish_direct(relay.backend, alice, "b", 2)
    body = (await relay.poll(token, {"topics": ["a", "b"], "since": {"a": a[0]}})).json()
    assert ids_of(body) == a[1:] + b
    body = (await relay.poll(token, {"topics": ["b"], "since": {"unrelated": "1-0"}})).json()
    assert ids_of(body) == b


async def test_without_since_only_new_messages_arrive(any_relay: Relay) -> None:
    """No since: stored messages are not replayed; one published during the poll is returned."""
    relay = any_relay
    _, token = await relay.user("alice")
    await relay.publish(token, "t", [{"old": True}])
    poll = await start_poll(relay, token, {"topics": ["t"], "since": {}, "timeout": 30}, ["t"])
    [new] = await relay.publish(token, "t", [{"new": True}])
    body = (await poll).json()
    assert ids_of(body) == [new] and body["cursors"] == {"t": new}
    assert body["messages"][0]["type"] == "message" and body["messages"][0]["payload"] == {"new": True}


async def test_live_batch_over_the_cap_sets_has_more_and_loses_nothing(relay_factory) -> None:
    """More live messages than the per-topic cap: the first ones come back, has_more is true, and
    the rest follow from the cursor."""
    async with relay_factory(poll_max_messages_per_topic=5, poll_batch_window=0.2) as relay:
        alice, token = await relay.user("alice")
        poll = await start_poll(relay, token, {"topics": ["t"], "timeout": 30}, ["t"])
        ids = await publish_direct(relay.backend, alice, "t", 20, bulk=20)
        body = (await poll).json()
        assert body["has_more"] is True and ids_of(body) == ids[: len(body["messages"])]
        rest = (await relay.poll(token, {"topics": ["t"], "since": body["cursors"]})).json()
        assert ids_of(rest)[0] == ids[len(body["messages"])]


async def test_a_woken_poll_answers_at_once_when_nothing_more_was_read(relay_factory) -> None:
    """One message wakes the poll and the gateway holds nothing more: the answer does not wait
    out poll_batch_window (30 s here)."""
    async with relay_factory(poll_batch_window=30) as relay:
        _, token = await relay.user("alice")
        poll = await start_poll(relay, token, {"topics": ["t"], "timeout": 60}, ["t"])
        ids = await relay.publish(token, "t", [{"n": 1}])
        body = (await asyncio.wait_for(poll, 10)).json()
        assert ids_of(body) == ids


async def test_a_woken_poll_finds_the_gateway_caught_up_before_its_next_read(relay: Relay) -> None:
    """When a read that was not full has been offered, what it woke runs with ``caught_up`` already
    true: its answer does not wait for the tailer to acknowledge and send its next read."""
    alice, _ = await relay.user("alice")
    loop, seen = asyncio.get_running_loop(), []

    def check() -> None:
        coro = relay.node.tailer.caught_up(30)
        done, _ = eager.step(coro)
        coro.close()
        seen.append(done)

    class Sink:
        def offer(self, *_: object) -> None:
            loop.call_soon(check)  # runs when the dispatch first yields, as a woken poll does

    sink = Sink()
    relay.node.hub.add("t", sink)
    try:
        await publish_direct(relay.backend, alice, "t", 1)
        await eventually(lambda: bool(seen))
    finally:
        relay.node.hub.remove("t", sink)
    assert seen == [True]


async def test_a_woken_poll_takes_what_the_gateway_already_read(relay_factory) -> None:
    """A bulk the tailer reads five at a time is already stored when the first five wake the poll:
    the answer holds all of it, and still comes long before poll_batch_window (30 s here)."""
    async with relay_factory(poll_batch_window=30, tail_batch_size=5) as relay:
        alice, token = await relay.user("alice")
        poll = await start_poll(relay, token, {"topics": ["t"], "timeout": 60}, ["t"])
        ids = await publish_direct(relay.backend, alice, "t", 20, bulk=20)
        body = (await asyncio.wait_for(poll, 10)).json()
        assert ids_of(body) == ids and body["has_more"] is False


async def test_quiet_topic_cursor_never_skips_a_later_message(any_relay: Relay) -> None:
    """The cursor of a topic with nothing to say still covers everything published after it."""
    relay = any_relay
    alice, token = await relay.user("alice")
    await publish_direct(relay.backend, alice, "loud", 3)
    await publish_direct(relay.backend, alice, "quiet", 2)
    first = (await relay.poll(token, {"topics": ["loud", "quiet"], "timeout": 1})).json()
    assert first["messages"] == []
    later = await publish_direct(relay.backend, alice, "quiet", 1, start=2)
    body = (await relay.poll(token, {"topics": ["quiet"], "since": first["cursors"]})).json()
    assert ids_of(body) == later


async def follow(
    relay: Relay, token: str, topics: list[str], producing: asyncio.Task[None]
) -> list[dict[str, Any]]:
    """A client following cursors, as the real client does, until the producer is done and a poll
    that started after that finds nothing more."""
    cursors = dict.fromkeys(topics, "0-0")
    got: list[dict[str, Any]] = []
    while True:
        finished = producing.done()
        r = await relay.poll(token, {"topics": topics, "since": cursors, "timeout": 1})
        assert r.status_code == 200, r.text
        body = r.json()
        got += body["messages"]
        for t in topics:  # cursors never go backwards
            assert tuple(map(int, body["cursors"][t].split("-"))) >= tuple(map(int, cursors[t].split("-")))
        cursors = body["cursors"]
        if finished and not body["messages"]:
            return got


@pytest.mark.parametrize("run", range(6))
async def test_poll_racing_publishes_never_loses_or_repeats_a_message(relay_factory, run: int) -> None:
    """A poller following cursors while a publisher writes in random bursts receives exactly the
    published sequence per topic: no gap, no duplicate."""
    cache = [5, 10_000][run % 2]
    async with relay_factory(poll_max_messages_per_topic=17, cache_messages_per_topic=cache) as relay:
        _, token = await relay.user("alice")
        rng = random.Random(run)
        topics = ["ra", "rb"]
        published: dict[str, list[str]] = {t: [] for t in topics}

        async def publisher() -> None:
            for _ in range(40):
                t = rng.choice(topics)
                published[t] += await relay.publish(token, t, [{"r": run}] * rng.randint(1, 20))
                await asyncio.sleep(rng.choice([0, 0, 0.001, 0.01]))

        producing = asyncio.create_task(publisher())
        got = await follow(relay, token, topics, producing)
        await producing
        for t in topics:
            assert [m["message_id"] for m in got if m["topic"] == t] == published[t]


async def test_poll_racing_publishes_on_both_backends(any_relay: Relay) -> None:
    """The same no-loss property holds in single-process (memory) mode."""
    relay = any_relay
    _, token = await relay.user("alice")
    published: list[str] = []

    async def publisher() -> None:
        for i in range(30):
            published.extend(await relay.publish(token, "m", [{"i": i}] * (1 + i % 7)))

    producing = asyncio.create_task(publisher())
    got = await follow(relay, token, ["m"], producing)
    assert [m["message_id"] for m in got] == published


async def test_poll_checks_permissions(any_relay: Relay) -> None:
    """read is required; every topic must be readable (403 names them); grants and public work."""
    relay = any_relay
    owner, _ = await relay.user("owner")
    bob, bob_token = await relay.user("bob", ["read"])
    _, writer = await relay.user("writer", ["write"])
    for name, public in (("p1", False), ("p2", False), ("pub", True)):
        await make_topic(relay, owner, name, public=public)
    r = await relay.poll(bob_token, {"topics": ["pub", "p2", "p1"], "timeout": 1})
    assert r.status_code == 403 and r.json() == {"detail": "Access denied to topics: ['p2', 'p1']"}
    assert (await relay.poll(writer, {"topics": ["pub"], "timeout": 1})).json() == {
        "detail": "Permission 'read' required"
    }
    r = await relay.http.post(relay.gateway + "/messages/poll", json={"topics": ["pub"]})
    assert r.status_code == 401
    await relay.backend.topics.grant("p1", bob.user_id)
    await relay.ctx.authorizer.notify("topic:p1")
    r = await relay.poll(bob_token, {"topics": ["pub", "p1", "unknown"], "timeout": 1})
    assert r.status_code == 200


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"topics": []}, ["body", "topics"]),
        ({"topics": ["ok", "bad name!"]}, ["body", "topics", 1]),
        ({"topics": ["t"], "since": {"t": "yesterday"}}, ["body", "since", "t"]),
        ({"topics": ["t"], "timeout": "soon"}, ["body", "timeout"]),
        ({"topics": "t"}, ["body", "topics"]),
        ({}, ["body", "topics"]),
    ],
)
async def test_invalid_bodies_are_422_naming_the_field(
    relay: Relay, body: dict[str, Any], loc: list[Any]
) -> None:
    """Validation errors are FastAPI-style 422 items whose loc names the field."""
    _, token = await relay.user("reader", ["read"])
    r = await relay.poll(token, body)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == loc


async def test_not_json_is_422_even_without_a_token(relay: Relay) -> None:
    """A body that is not JSON fails before authentication, as in the reference."""
    r = await relay.http.post(relay.gateway + "/messages/poll", content=b"{nope")
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid"


@pytest.mark.parametrize("seconds", [0, 0.2, 1.5, 30.0, 61, 1e9])
async def test_timeout_accepts_int_or_float_and_is_clamped(relay: Relay, seconds: float) -> None:
    """Any number is accepted (Pulsar sends 30.0) and clamped to 1..60 rather than refused."""
    alice, token = await relay.user("alice")
    await publish_direct(relay.backend, alice, "t", 1)
    r = await relay.poll(token, {"topics": ["t"], "since": {"t": "0-0"}, "timeout": seconds})
    assert r.status_code == 200 and len(r.json()["messages"]) == 1


async def test_access_revoked_during_a_poll_is_403(relay: Relay) -> None:
    """A grant revoked while the poll waits: the poll answers 403 instead of delivering."""
    owner, owner_token = await relay.user("owner")
    bob, bob_token = await relay.user("bob", ["read"])
    await make_topic(relay, owner, "g")
    await relay.backend.topics.grant("g", bob.user_id)
    poll = await start_poll(relay, bob_token, {"topics": ["g"], "timeout": 30}, ["g"])
    await relay.backend.topics.revoke("g", bob.user_id)
    await eventually(lambda: any("g" in w.stale for w in relay.node.waiters))
    await relay.publish(owner_token, "g", [{"n": 1}])
    r = await poll
    assert r.status_code == 403 and r.json() == {"detail": "Access denied to topics: ['g']"}


async def test_read_permission_lost_during_a_poll_is_403_and_hands_out_nothing(relay: Relay) -> None:
    """A user whose read permission is taken while their poll waits gets 403 for the message that
    wakes it, not the message (the poll looks at its user again before answering)."""
    alice, alice_token = await relay.user("alice")
    bob, bob_token = await relay.user("bob", ["read"])
    await make_topic(relay, alice, "jobs")
    await relay.backend.topics.grant("jobs", bob.user_id)
    poll = await start_poll(relay, bob_token, {"topics": ["jobs"], "timeout": 30}, ["jobs"])
    await relay.backend.users.save(msgspec.structs.replace(bob, permissions=["write"]))
    await relay.backend.bus.publish(f"user:{bob.user_id}")
    async with asyncio.timeout(10):  # the gateway has taken the event: its cache says "write" only
        while (user := await relay.ctx.authorizer.user(bob.user_id)) is None or user.has("read"):  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    await relay.publish(alice_token, "jobs", [{"secret": True}])
    response = await poll
    assert response.status_code == 403 and "secret" not in response.text
    assert response.json()["detail"] == "Permission 'read' required"


async def test_free_name_claimed_privately_during_a_poll_is_403(relay: Relay) -> None:
    """Polling a topic nobody owns, then another user's publish creates it privately: 403."""
    _, alice_token = await relay.user("alice", ["read"])
    _, bob_token = await relay.user("bob")
    poll = await start_poll(relay, alice_token, {"topics": ["fresh"], "timeout": 30}, ["fresh"])
    await relay.publish(bob_token, "fresh", [{"private": True}])
    assert (await poll).status_code == 403


async def test_stats_report_waiters_and_subscribers(any_relay: Relay) -> None:
    """poll/stats counts waiters, topics, per-topic subscribers and sockets; any user may ask."""
    relay = any_relay
    _, token = await relay.user("alice", ["read"])
    ws = await relay.subscribe(token, ["jobs"])
    poll = await start_poll(relay, token, {"topics": ["jobs", "job_setup"], "timeout": 1}, ["job_setup"])
    r = await relay.http.get(relay.gateway + "/messages/poll/stats", headers=bearer(token))
    assert r.status_code == 200
    assert r.json() == {
        "active_waiters": 1,
        "subscribed_topics": 2,
        "topic_subscriber_counts": {"job_setup": 1, "jobs": 2},
        "websocket_connections": 1,
        "gateways": 1,
    }
    assert (await relay.http.get(relay.gateway + "/messages/poll/stats")).status_code == 401
    assert (await poll).status_code == 200
    await ws.close()
    await eventually(lambda: not relay.node.sessions)
    r = await relay.http.get(relay.gateway + "/messages/poll/stats", headers=bearer(token))
    assert r.json()["active_waiters"] == 0 and r.json()["topic_subscriber_counts"] == {}


async def test_zero_timeout_waits_the_minimum_and_returns_empty(relay: Relay) -> None:
    """timeout 0 is clamped up to 1 second: a quiet poll still answers 200 with an empty page."""
    _, token = await relay.user("reader", ["read"])
    r = await relay.poll(token, {"topics": ["quiet"], "timeout": 0})
    assert r.status_code == 200 and r.json()["messages"] == []


async def test_a_recreated_topic_does_not_hand_out_the_old_topics_last_id(any_relay: Relay) -> None:
    """alice's topic is deleted and bob creates one of the same name: bob's polls (plain, and
    with since naming another topic) give a cursor of his empty topic, not alice's last id; his
    first message then arrives after it."""
    relay = any_relay
    alice, _ = await relay.user("alice")
    bob, token = await relay.user("bob", ["read", "write"])
    old = await publish_direct(relay.backend, alice, "reborn", 3)
    await eventually(lambda: (relay.node.tailer.position("reborn") or (0, 0)) >= ids_.require(old[-1], []))
    assert await relay.backend.topics.delete("reborn")
    await relay.ctx.authorizer.notify("topic:reborn")
    await make_topic(relay, bob, "reborn")
    for body in (
        {"topics": ["reborn"], "timeout": 1},
        {"topics": ["reborn"], "since": {"x": "0-0"}, "timeout": 1},
    ):
        r = await relay.poll(token, body)
        assert r.status_code == 200 and r.json()["messages"] == []
        assert r.json()["cursors"] == {"reborn": "0-0"}
    new = await publish_direct(relay.backend, bob, "reborn", 1)
    body = (await relay.poll(token, {"topics": ["reborn"], "since": {"reborn": "0-0"}})).json()
    assert ids_of(body) == new and body["cursors"] == {"reborn": new[0]}


async def test_a_quiet_topics_cursor_is_its_own_newest_id(any_relay: Relay) -> None:
    """A poll without since on a topic with history: the cursor is that topic's newest id (not a
    later message of another topic in its partition), and following it misses nothing."""
    relay = any_relay
    alice, token = await relay.user("alice")
    mine = await publish_direct(relay.backend, alice, "own", 2)
    parts = relay.settings.fanout_partitions
    sharing = [
        t for t in (f"other{i}" for i in range(200)) if partition_of(t, parts) == partition_of("own", parts)
    ]
    theirs = await publish_direct(relay.backend, alice, sharing[0], 1)
    assert ids_.require(theirs[0], []) > ids_.require(mine[-1], [])
    await eventually(lambda: (relay.node.tailer.position("own") or (0, 0)) >= ids_.require(theirs[0], []))
    body = (await relay.poll(token, {"topics": ["own"], "timeout": 1})).json()
    assert body["cursors"] == {"own": mine[-1]}
    later = await publish_direct(relay.backend, alice, "own", 1, start=2)
    body = (await relay.poll(token, {"topics": ["own"], "since": body["cursors"]})).json()
    assert ids_of(body) == later


async def test_a_poll_whose_since_is_up_to_date_waits_for_the_next_message(any_relay: Relay) -> None:
    """since at every topic's newest id: nothing to catch up, so the poll waits and answers with
    the next message published (not at once with an empty page)."""
    relay = any_relay
    _, token = await relay.user("alice")
    ids = await relay.publish(token, "uptodate", [{"n": 0}])
    body = {"topics": ["uptodate"], "since": {"uptodate": ids[0]}, "timeout": 30}
    task = await start_poll(relay, token, body, ["uptodate"])
    assert not task.done()
    later = await relay.publish(token, "uptodate", [{"n": 1}])
    answer = (await task).json()
    assert ids_of(answer) == later and answer["cursors"] == {"uptodate": later[0]}
