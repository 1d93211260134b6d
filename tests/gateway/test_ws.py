"""The WebSocket protocol on a real socket: handshake, every frame type, every error frame."""

from __future__ import annotations

import asyncio
import json
import re

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

import gateway.ws as ws_module
import pulsar_relay.serve_uvicorn as uv_adapter
from relaycore.models import User
from tests.gateway.conftest import WAIT, Relay, make_topic, messages, recv
from tests.support.identity import make_user, token_for

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


async def send(ws, frame: object) -> None:
    await ws.send(json.dumps(frame))


async def test_subscribe_with_query_token_and_receive_messages(any_relay: Relay) -> None:
    """?token= works; subscribed echoes topics with a session id; messages have the common shape."""
    relay = any_relay
    _, token = await relay.user("alice")
    ws = await relay.connect(token)
    await send(ws, {"type": "subscribe", "topics": ["jobs", "alerts"]})
    reply = await recv(ws)
    assert reply["type"] == "subscribed" and reply["topics"] == ["jobs", "alerts"]
    assert re.match(r"^sess_[0-9a-f]{12}$", reply["session_id"]) and ISO_Z.match(reply["timestamp"])
    [mid] = await relay.publish(token, "jobs", [{"k": "v"}])
    [frame] = await messages(ws, 1)
    assert frame == {
        "type": "message",
        "message_id": mid,
        "topic": "jobs",
        "payload": {"k": "v"},
        "timestamp": frame["timestamp"],
        "metadata": {},
    }
    assert ISO_Z.match(frame["timestamp"])


async def test_metadata_is_delivered(relay: Relay) -> None:
    """Metadata sent with a message reaches the subscriber as an object."""
    _, token = await relay.user("alice")
    ws = await relay.subscribe(token, ["jobs"])
    r = await relay.http.post(
        relay.ingest + "/api/v1/messages",
        json={"topic": "jobs", "payload": {"a": 1}, "metadata": {"source": "test"}},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 201
    [frame] = await messages(ws, 1)
    assert frame["metadata"] == {"source": "test"}


async def test_bearer_subprotocol_pair_is_accepted_without_echoing_the_jwt(relay: Relay) -> None:
    """Offering `bearer` and `bearer.<jwt>` authenticates; the server picks plain `bearer`."""
    _, token = await relay.user("alice")
    async with connect(relay.ws_url, subprotocols=["bearer", f"bearer.{token}"], open_timeout=WAIT) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "bearer"
        await send(ws, {"type": "subscribe", "topics": ["jobs"]})
        assert (await recv(ws))["type"] == "subscribed"


async def _rejected(relay: Relay, url: str, **kw: object) -> int:
    with pytest.raises(InvalidStatus) as exc:
        async with connect(url, open_timeout=WAIT, **kw):  # type: ignore[arg-type]
            pass
    return exc.value.response.status_code


async def test_handshake_rejections_are_http_403(relay: Relay) -> None:
    """No token, a bad or expired token, an unknown or inactive user, or no `read` -> 403."""
    _, ok = await relay.user("alice")
    _, inactive = await make_user(relay.backend, "sleepy", ["read"], active=False)
    _, writer_only = await make_user(relay.backend, "writer", ["write"])
    ghost = token_for(User(user_id="nobody", username="ghost", permissions=["read"]))
    expired = token_for(User(user_id="x", username="x", permissions=["read"]), ttl=-60)
    for token in (None, "garbage", expired, ghost, inactive, writer_only):
        url = relay.ws_url + (f"?token={token}" if token else "")
        assert await _rejected(relay, url) == 403, token
    assert await _rejected(relay, relay.ws_url, subprotocols=["bearer", "bearer.garbage"]) == 403
    async with connect(f"{relay.ws_url}?token={ok}", open_timeout=WAIT):
        pass


async def test_ping_gets_pong(relay: Relay) -> None:
    """An application ping is answered with a pong carrying a timestamp."""
    _, token = await relay.user("alice")
    ws = await relay.connect(token)
    await send(ws, {"type": "ping"})
    reply = await recv(ws)
    assert reply["type"] == "pong" and ISO_Z.match(reply["timestamp"])


async def test_idle_socket_gets_server_pings(relay_factory) -> None:
    """A socket with nothing to send for ws_ping_interval receives an application-level ping."""
    async with relay_factory(ws_ping_interval=0.2) as relay:
        _, token = await relay.user("alice")
        ws = await relay.connect(token)
        frame = await recv(ws)
        assert frame["type"] == "ping" and ISO_Z.match(frame["timestamp"])


async def test_unsubscribe_stops_delivery_of_that_topic_only(relay: Relay) -> None:
    """After unsubscribe (answered with unsubscribed) only the remaining topics are delivered."""
    _, token = await relay.user("alice")
    ws = await relay.subscribe(token, ["a", "b"])
    await send(ws, {"type": "unsubscribe", "topics": ["a"]})
    reply = await recv(ws)
    assert reply["type"] == "unsubscribed" and reply["topics"] == ["a"]
    await relay.publish(token, "a", [{"n": 1}])
    [mid] = await relay.publish(token, "b", [{"n": 2}])
    [frame] = await messages(ws, 1)
    assert frame["topic"] == "b" and frame["message_id"] == mid


async def test_subscribe_is_repeatable_and_adds_topics(relay: Relay) -> None:
    """A second subscribe frame adds its topics to the first one's."""
    _, token = await relay.user("alice")
    ws = await relay.subscribe(token, ["a"])
    await send(ws, {"type": "subscribe", "topics": ["b"], "client_id": "c"})
    assert (await recv(ws))["topics"] == ["b"]
    await relay.publish(token, "a", [{"n": 1}])
    await relay.publish(token, "b", [{"n": 2}])
    got = await messages(ws, 2)
    assert [f["topic"] for f in got] == ["a", "b"]


async def test_only_subscribed_topics_are_delivered(relay: Relay) -> None:
    """A message on a topic the socket did not subscribe to never arrives."""
    _, token = await relay.user("alice")
    ws = await relay.subscribe(token, ["mine"])
    await relay.publish(token, "other", [{"n": 1}])
    [mid] = await relay.publish(token, "mine", [{"n": 2}])
    assert (await messages(ws, 1))[0]["message_id"] == mid


async def test_two_sockets_receive_the_same_message(relay: Relay) -> None:
    """Every subscriber of a topic gets the message, with the same id."""
    _, token = await relay.user("alice")
    one = await relay.subscribe(token, ["jobs"])
    two = await relay.subscribe(token, ["jobs"])
    [mid] = await relay.publish(token, "jobs", [{"n": 1}])
    assert (await messages(one, 1))[0]["message_id"] == (await messages(two, 1))[0]["message_id"] == mid


@pytest.mark.parametrize(
    ("frame", "code", "text"),
    [
        ("not json", "PROCESSING_ERROR", "Invalid frame"),
        ({"type": "launch"}, "UNKNOWN_MESSAGE_TYPE", "Unknown message type: launch"),
        ({"type": "ack"}, "PROCESSING_ERROR", "message_id"),
        ({"type": "ack", "message_id": "nope"}, "PROCESSING_ERROR", "nope"),
        ({"type": "unsubscribe", "topics": []}, "PROCESSING_ERROR", "At least one topic"),
        ({"type": "subscribe", "topics": []}, "SUBSCRIPTION_ERROR", "At least one topic"),
        ({"topics": ["ok", "bad topic!"]}, "SUBSCRIPTION_ERROR", "bad topic!"),
        ({"topics": [f"t{i}" for i in range(4)]}, "SUBSCRIPTION_ERROR", "Too many topics"),
        ({"topics": ["a"], "since": {"a": "12-x"}}, "SUBSCRIPTION_ERROR", "since for topic 'a'"),
        ({"topics": ["a"], "resume": True}, "SUBSCRIPTION_ERROR", "resume requires a client_id"),
        ({"topics": ["a"], "client_id": ""}, "SUBSCRIPTION_ERROR", "client_id"),
    ],
)
async def test_bad_frames_get_error_frames_and_the_socket_stays_open(
    relay_factory, frame: object, code: str, text: str
) -> None:
    """Each bad frame is answered with an error frame of a stable code; pings still work after."""
    async with relay_factory(ws_max_topics=3) as relay:
        _, token = await relay.user("alice")
        ws = await relay.connect(token)
        await ws.send(frame if isinstance(frame, str) else json.dumps(frame))
        reply = await recv(ws)
        assert reply["type"] == "error" and reply["code"] == code and reply["details"] is None
        assert text in reply["message"]
        await send(ws, {"type": "ping"})
        assert (await recv(ws))["type"] == "pong"


async def test_subscribe_checks_read_access_to_every_topic(any_relay: Relay) -> None:
    """Another user's private topic is refused (naming it, nothing subscribed); a grant, a public
    topic, an unknown topic and admin rights all allow it."""
    relay = any_relay
    owner, owner_token = await relay.user("owner")
    bob, bob_token = await relay.user("bob", ["read"])
    _, admin_token = await relay.user("root", ["admin", "read"])
    for name, public in (("secret", False), ("open", True)):
        await make_topic(relay, owner, name, public=public)
    ws = await relay.connect(bob_token)
    await send(ws, {"type": "subscribe", "topics": ["open", "secret"]})
    reply = await recv(ws)
    assert reply == {
        "type": "error",
        "code": "SUBSCRIPTION_ERROR",
        "message": "Access denied to topics: ['secret']",
        "details": None,
    }
    await send(ws, {"type": "subscribe", "topics": ["open", "nobody-owns-this"]})
    assert (await recv(ws))["type"] == "subscribed"
    [mid] = await relay.publish(owner_token, "open", [{"n": 1}])
    assert (await messages(ws, 1))[0]["message_id"] == mid  # "secret" was never subscribed

    await relay.backend.topics.grant("secret", bob.user_id)
    await relay.ctx.authorizer.notify("topic:secret")
    ws2 = await relay.subscribe(bob_token, ["secret"])
    admin = await relay.subscribe(admin_token, ["secret"])
    [mid] = await relay.publish(owner_token, "secret", [{"n": 2}])
    assert (await messages(ws2, 1))[0]["message_id"] == (await messages(admin, 1))[0]["message_id"] == mid


async def test_ack_records_the_newest_position_per_client_and_topic(any_relay: Relay) -> None:
    """ack (topic looked up from delivery, or given) stores the newest id; older acks do not regress it."""
    relay = any_relay
    alice, token = await relay.user("alice")
    ws = await relay.subscribe(token, ["a", "b"], client_id="worker-1")
    ids_a = await relay.publish(token, "a", [{"n": i} for i in range(3)])
    await messages(ws, 3)
    await send(ws, {"type": "ack", "message_id": ids_a[2]})
    await send(ws, {"type": "ack", "message_id": ids_a[0]})
    await send(ws, {"type": "ack", "message_id": "1-0", "topic": "b"})
    await send(ws, {"type": "ping"})  # frames are handled in order: the acks are stored by now
    assert (await recv(ws))["type"] == "pong"
    assert await relay.backend.acks.positions(alice.user_id, "worker-1") == {"a": ids_a[2], "b": "1-0"}


async def test_ack_without_client_id_is_accepted_silently(relay: Relay) -> None:
    """The seed README's client acks without a client_id: no error, nothing recorded."""
    _, token = await relay.user("alice")
    ws = await relay.subscribe(token, ["a"])
    [mid] = await relay.publish(token, "a", [{"n": 1}])
    await messages(ws, 1)
    await send(ws, {"type": "ack", "message_id": mid})
    await send(ws, {"type": "ping"})
    assert (await recv(ws))["type"] == "pong"


async def test_a_client_id_given_later_covers_topicless_acks_on_earlier_subscriptions(relay: Relay) -> None:
    """An ack without topic, for a message of a subscription made before the client_id was named,
    is recorded against that topic (found among the connection's subscriptions)."""
    alice, token = await relay.user("alice")
    ws = await relay.subscribe(token, ["a"])
    await relay.publish(token, "a", [{"n": 0}])
    await messages(ws, 1)
    await send(ws, {"type": "subscribe", "topics": ["b"], "client_id": "late"})
    assert (await recv(ws))["type"] == "subscribed"
    [mid] = await relay.publish(token, "a", [{"n": 1}])
    await messages(ws, 1)
    await send(ws, {"type": "ack", "message_id": mid})
    await send(ws, {"type": "ping"})
    assert (await recv(ws))["type"] == "pong"
    assert await relay.backend.acks.positions(alice.user_id, "late") == {"a": mid}


async def test_a_topicless_ack_on_several_subscriptions_goes_to_the_topic_holding_the_id(
    relay: Relay,
) -> None:
    """Subscribed to two topics that both delivered past the id, an ack without topic is recorded
    for the one whose messages include it (the gateway's hot cache tells; a topic's creation
    empties its cache entry, hence the retries until the creations have been seen)."""
    alice, token = await relay.user("alice")
    ws = await relay.subscribe(token, ["a", "b"], client_id="multi")
    async with asyncio.timeout(WAIT):
        while True:
            [in_a] = await relay.publish(token, "a", [{"n": 0}])
            await relay.publish(token, "b", [{"n": 1}])
            await messages(ws, 2)
            await send(ws, {"type": "ack", "message_id": in_a})
            await send(ws, {"type": "ping"})
            assert (await recv(ws))["type"] == "pong"
            positions = await relay.backend.acks.positions(alice.user_id, "multi")
            assert positions in ({}, {"a": positions.get("a")})  # never b
            if positions == {"a": in_a}:
                return


async def test_a_server_without_detach_still_serves_the_socket_from_its_task(
    relay_factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the server offers relay.frames without detach, /ws reads and writes from the socket's
    ASGI task: subscribe, delivery, replies, and a close the session asks for (4001 at expiry)."""
    monkeypatch.setattr(uv_adapter, "FRAMES_DETACH", "not-offered")

    def detached(*_: object, **__: object) -> None:
        raise AssertionError("the socket was detached: the task path was not exercised")

    monkeypatch.setattr(ws_module, "Connection", detached)
    async with relay_factory() as relay:
        user, token = await relay.user("alice")
        ws = await relay.subscribe(token, ["jobs"])
        [mid] = await relay.publish(token, "jobs", [{"n": 1}])
        [frame] = await messages(ws, 1)
        assert frame["message_id"] == mid
        await send(ws, {"type": "ping"})
        assert (await recv(ws))["type"] == "pong"
        short = token_for(user, ttl=1)
        ws2 = await relay.connect(short)
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws2.recv(), WAIT)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001
