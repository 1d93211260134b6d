"""Access that changes while a socket is open: token expiry, revoked grants, deactivated users,
and topics that someone else creates after a subscription to their free name."""

from __future__ import annotations

import asyncio
import json

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from relaycore.models import Topic
from tests.gateway.conftest import (
    WAIT,
    Relay,
    bearer,
    eventually,
    make_topic,
    messages,
    publish_direct,
    recv,
)
from tests.support.identity import token_for


async def closed_with(ws: ClientConnection) -> tuple[int, str]:
    """Read (skipping whatever still arrives) until the server closes; its code and reason."""
    try:
        async with asyncio.timeout(WAIT):
            while True:
                await ws.recv()
    except ConnectionClosed as exc:
        assert exc.rcvd is not None, "the server sent no close frame"
        return exc.rcvd.code, exc.rcvd.reason
    raise AssertionError("unreachable")


async def still_open(ws: ClientConnection) -> None:
    await ws.send(json.dumps({"type": "ping"}))
    assert (await recv(ws))["type"] == "pong"


async def test_token_expiry_closes_a_live_socket_with_4001(relay: Relay) -> None:
    """A socket whose token expires is closed at the expiry with 4001 "Token expired"."""
    user, _ = await relay.user("alice")
    try:
        ws = await relay.subscribe(token_for(user, ttl=3), ["jobs"])
    except ConnectionClosed as early:  # a loaded machine: the expiry came before `subscribed`
        assert early.rcvd is not None and (early.rcvd.code, early.rcvd.reason) == (4001, "Token expired")
        return
    assert await closed_with(ws) == (4001, "Token expired")


async def test_revoked_grant_drops_that_subscription_only(any_relay: Relay) -> None:
    """Revoking a grant sends ACCESS_REVOKED for that topic; the socket and other topics go on."""
    relay = any_relay
    owner, owner_token = await relay.user("owner")
    bob, bob_token = await relay.user("bob", ["read"])
    await make_topic(relay, owner, "secret")
    await make_topic(relay, owner, "news", public=True)
    await relay.backend.topics.grant("secret", bob.user_id)
    ws = await relay.subscribe(bob_token, ["secret", "news"])
    [first] = await relay.publish(owner_token, "secret", [{"n": 1}])
    assert (await messages(ws, 1))[0]["message_id"] == first
    await relay.backend.topics.revoke("secret", bob.user_id)  # publishes the invalidation itself
    reply = await recv(ws)
    assert reply == {
        "type": "error",
        "code": "ACCESS_REVOKED",
        "message": "Access to topic 'secret' was revoked",
        "details": None,
    }
    await still_open(ws)
    await relay.publish(owner_token, "secret", [{"n": 2}])
    [news] = await relay.publish(owner_token, "news", [{"n": 3}])
    assert (await messages(ws, 1))[0]["message_id"] == news


async def test_public_topic_made_private_is_revoked_for_non_owners(relay: Relay) -> None:
    """A reader who relied on is_public loses the subscription when the topic turns private."""
    owner, _ = await relay.user("owner")
    _, bob_token = await relay.user("bob", ["read"])
    await make_topic(relay, owner, "board", public=True)
    ws = await relay.subscribe(bob_token, ["board"])
    await relay.backend.topics.update("board", is_public=False, description=None)
    assert (await recv(ws))["code"] == "ACCESS_REVOKED"


async def test_deactivated_user_is_closed_with_4003(any_relay: Relay) -> None:
    """Deactivating a connected user closes their sockets with 4003 "Access revoked"."""
    relay = any_relay
    bob, bob_token = await relay.user("bob", ["read"])
    ws = await relay.subscribe(bob_token, ["jobs"])
    stored = await relay.backend.users.get(bob.user_id)
    assert stored is not None
    stored.is_active = False
    await relay.backend.users.save(stored)
    await relay.ctx.authorizer.notify(f"user:{bob.user_id}")
    assert await closed_with(ws) == (4003, "Access revoked")


async def test_lost_read_permission_and_deleted_user_close_with_4003(relay: Relay) -> None:
    """Losing the global read permission, or the user record, closes the socket too."""
    bob, bob_token = await relay.user("bob", ["read"])
    carol, carol_token = await relay.user("carol", ["read"])
    ws_bob = await relay.subscribe(bob_token, ["jobs"])
    ws_carol = await relay.subscribe(carol_token, ["jobs"])
    updated = msgspec.structs.replace(bob, permissions=["write"])
    await relay.backend.users.save(updated)
    await relay.backend.bus.publish(f"user:{bob.user_id}")
    await relay.backend.users.delete(carol.user_id)
    await relay.backend.bus.publish(f"user:{carol.user_id}")
    assert await closed_with(ws_bob) == (4003, "Access revoked")
    assert await closed_with(ws_carol) == (4003, "Access revoked")


async def test_free_name_claimed_privately_by_someone_else_is_never_delivered(any_relay: Relay) -> None:
    """Subscribing to a topic nobody owns is allowed, but when another user's publish creates it
    as their private topic, the subscriber gets ACCESS_REVOKED and not the message."""
    relay = any_relay
    _, alice_token = await relay.user("alice", ["read"])
    _, bob_token = await relay.user("bob")
    ws = await relay.subscribe(alice_token, ["unclaimed", "other"], since={"other": "0-0"})
    await relay.publish(bob_token, "unclaimed", [{"secret": True}])
    reply = await recv(ws)
    assert reply["type"] == "error" and reply["code"] == "ACCESS_REVOKED", reply
    await still_open(ws)


async def test_free_name_that_becomes_readable_is_delivered(relay: Relay) -> None:
    """A subscription to a free name receives the messages once the topic exists and is readable."""
    owner, owner_token = await relay.user("owner")
    _, carol_token = await relay.user("carol", ["read"])
    ws = await relay.subscribe(carol_token, ["later"])
    await make_topic(relay, owner, "later", public=True)
    ids = await relay.publish(owner_token, "later", [{"n": 1}, {"n": 2}])
    assert [m["message_id"] for m in await messages(ws, 2)] == ids


async def test_replay_of_a_topic_claimed_after_subscribing_is_checked(relay: Relay) -> None:
    """A since-subscription to a free name does not replay another user's private messages."""
    _, alice_token = await relay.user("alice", ["read"])
    _, bob_token = await relay.user("bob")
    ws = await relay.subscribe(alice_token, ["grab"], since={"grab": "0-0"})
    await relay.publish(bob_token, "grab", [{"n": 1}])
    reply = await recv(ws)
    assert reply["code"] == "ACCESS_REVOKED"


async def test_a_polls_fresh_access_check_refreshes_the_shared_cache(relay: Relay) -> None:
    """A poll re-checks a free name that was claimed meanwhile from storage and leaves that record
    in the authorizer's cache: the same user's next subscribe is refused from the cache, without
    reading storage again (the poll's check used to bypass the cache)."""
    _, alice_token = await relay.user("alice", ["read"])
    bob, _ = await relay.user("bob")
    poll = asyncio.create_task(relay.poll(alice_token, {"topics": ["quietly"], "timeout": 30}))
    await _waiting_on(relay, "quietly", poll)
    seen = relay.node.generation
    await make_topic(relay, bob, "quietly")
    await eventually(lambda: relay.node.generation > seen)  # its creation's event has been applied
    await publish_direct(relay.backend, bob, "quietly", 1)
    assert (await poll).status_code == 403
    reads: list[str] = []
    real_get = relay.backend.topics.get

    async def counted_get(name: str) -> Topic | None:
        reads.append(name)
        return await real_get(name)

    relay.backend.topics.get = counted_get  # type: ignore[method-assign]
    ws = await relay.connect(alice_token)
    await ws.send(json.dumps({"type": "subscribe", "topics": ["quietly"]}))
    reply = await recv(ws)
    assert reply["type"] == "error" and reply["message"] == "Access denied to topics: ['quietly']", reply
    assert reads == []


async def test_stats_hide_a_topic_made_private_once_its_event_arrives(relay: Relay) -> None:
    """poll/stats decide with the same cache and invalidation: a public topic's subscriber count is
    shown to others until it turns private and its event is published, then hidden."""
    owner, owner_token = await relay.user("owner")
    _, carol_token = await relay.user("carol", ["read"])
    await make_topic(relay, owner, "open", public=True)
    await relay.subscribe(owner_token, ["open"])

    async def counts() -> dict[str, int]:
        r = await relay.http.get(relay.gateway + "/messages/poll/stats", headers=bearer(carol_token))
        assert r.status_code == 200
        result: dict[str, int] = r.json()["topic_subscriber_counts"]
        return result

    assert await counts() == {"open": 1}
    await relay.backend.topics.update("open", is_public=False, description=None)
    for _ in range(int(WAIT / 0.05)):  # the event reaches the gateway's cache within a moment
        if not await counts():
            break
        await asyncio.sleep(0.05)
    assert await counts() == {}


async def _waiting_on(relay: Relay, topic: str, task: asyncio.Task[object]) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT
    while relay.node.hub.counts().get(topic, 0) == 0 and not task.done():
        assert asyncio.get_running_loop().time() < deadline, "the poll never registered"
        await asyncio.sleep(0.01)


async def test_server_shutdown_closes_open_sockets_with_1001(relay_factory) -> None:
    """Stopping the gateway closes each open socket with 1001 "Server shutting down"."""
    async with relay_factory() as relay:
        _, token = await relay.user("alice")
        ws = await connect(f"{relay.ws_url}?token={token}", open_timeout=WAIT)
        await ws.send(json.dumps({"type": "subscribe", "topics": ["jobs"]}))
        assert (await recv(ws))["type"] == "subscribed"
    try:
        assert await closed_with(ws) == (1001, "Server shutting down")
    finally:
        await ws.close()
