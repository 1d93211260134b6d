"""``GET /api/v1/topics/{name}/messages``: pages both ways, cursor edges, errors, and the cache
giving exactly the answers Valkey gives."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from relaycore import ids as ids_
from relaycore.models import NewMessage, User, iso_z, now_ms, utcnow
from tests.gateway.conftest import Relay, bearer, eventually, make_topic, publish_direct
from tests.gateway.test_handover import reads


async def page(relay: Relay, token: str, topic: str, **params: Any) -> dict[str, Any]:
    r = await relay.http.get(
        f"{relay.gateway}/api/v1/topics/{topic}/messages", params=params, headers=bearer(token)
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def ns(body: dict[str, Any]) -> list[int]:
    return [m["payload"]["n"] for m in body["messages"]]


async def test_empty_topic_page_shape(any_relay: Relay) -> None:
    """An existing topic without messages: the reference's empty page, next_cursor null."""
    relay = any_relay
    alice, token = await relay.user("alice")
    await make_topic(relay, alice, "empty")
    assert await page(relay, token, "empty") == {
        "messages": [],
        "total": 0,
        "limit": 10,
        "order": "desc",
        "cursor": None,
        "next_cursor": None,
    }


async def test_newest_first_by_default_with_metadata(any_relay: Relay) -> None:
    """Default order is desc; messages have the common shape; no more -> next_cursor null."""
    relay = any_relay
    _, token = await relay.user("alice")
    r = await relay.http.post(
        relay.ingest + "/api/v1/messages",
        json={"topic": "t", "payload": {"n": 0}, "metadata": {"k": "v"}},
        headers=bearer(token),
    )
    ids = [r.json()["message_id"], *await relay.publish(token, "t", [{"n": i} for i in range(1, 5)])]
    body = await page(relay, token, "t")
    assert ns(body) == [4, 3, 2, 1, 0] and body["total"] == 5 and body["next_cursor"] is None
    oldest = body["messages"][-1]
    assert oldest == {
        "message_id": ids[0],
        "topic": "t",
        "payload": {"n": 0},
        "timestamp": oldest["timestamp"],
        "metadata": {"k": "v"},
    }
    assert body["messages"][0]["metadata"] == {}


async def test_paging_desc_and_asc_until_next_cursor_is_null(any_relay: Relay) -> None:
    """Following next_cursor walks the whole topic in either direction, then stops with null."""
    relay = any_relay
    alice, token = await relay.user("alice")
    await publish_direct(relay.backend, alice, "p", 10)
    for order, expected in (("desc", list(range(9, -1, -1))), ("asc", list(range(10)))):
        seen: list[int] = []
        cursor = None
        while True:
            params = {"limit": 3, "order": order} | ({"cursor": cursor} if cursor else {})
            body = await page(relay, token, "p", **params)
            assert body["cursor"] == cursor and body["order"] == order and body["limit"] == 3
            seen += ns(body)
            cursor = body["next_cursor"]
            if cursor is None:
                break
            assert cursor == body["messages"][-1]["message_id"]
        assert seen == expected


async def test_cursor_boundaries(any_relay: Relay) -> None:
    """Cursors are exclusive: after the newest (asc) or before the oldest (desc) is an empty page;
    a cursor need not be an existing id."""
    relay = any_relay
    alice, token = await relay.user("alice")
    ids = await publish_direct(relay.backend, alice, "b", 5)
    assert (await page(relay, token, "b", order="asc", cursor=ids[-1]))["messages"] == []
    assert (await page(relay, token, "b", order="desc", cursor=ids[0]))["messages"] == []
    assert ns(await page(relay, token, "b", order="desc", limit=2)) == [4, 3]
    body = await page(relay, token, "b", order="asc", cursor=ids[2], limit=2)
    assert ns(body) == [3, 4] and body["next_cursor"] is None
    body = await page(relay, token, "b", order="asc", cursor=ids[1], limit=2)
    assert ns(body) == [2, 3] and body["next_cursor"] == ids[3]
    assert ns(await page(relay, token, "b", order="asc", cursor="0-0", limit=1)) == [0]
    ms, _ = ids_.require(ids[0], [])
    assert ns(await page(relay, token, "b", order="asc", cursor=f"{ms - 1}-99")) == [0, 1, 2, 3, 4]


async def test_limit_rules(relay: Relay) -> None:
    """limit < 1 is 400, not a number is 422, over 100 is capped to 100."""
    alice, token = await relay.user("alice")
    await publish_direct(relay.backend, alice, "l", 150)
    url = f"{relay.gateway}/api/v1/topics/l/messages"
    for bad in ("0", "-1"):
        r = await relay.http.get(url, params={"limit": bad}, headers=bearer(token))
        assert (r.status_code, r.json()) == (400, {"detail": "Limit must be at least 1"})
    r = await relay.http.get(url, params={"limit": "ten"}, headers=bearer(token))
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "limit"]
    body = await page(relay, token, "l", limit=150)
    assert body["limit"] == 100 and len(body["messages"]) == 100 and body["next_cursor"] is not None
    assert len((await page(relay, token, "l"))["messages"]) == 10


async def test_errors_in_reference_order(relay: Relay) -> None:
    """401 without a token; 404 unknown topic; 403 someone's private topic; 400 bad order; 422 bad cursor."""
    owner, owner_token = await relay.user("owner")
    _, bob = await relay.user("bob", ["read"])
    await make_topic(relay, owner, "private")
    await make_topic(relay, owner, "public", public=True)
    base = f"{relay.gateway}/api/v1/topics"
    assert (await relay.http.get(f"{base}/private/messages")).status_code == 401
    r = await relay.http.get(f"{base}/nope/messages", params={"order": "sideways"}, headers=bearer(bob))
    assert (r.status_code, r.json()) == (404, {"detail": "Topic 'nope' not found"})
    r = await relay.http.get(f"{base}/private/messages", params={"order": "sideways"}, headers=bearer(bob))
    assert (r.status_code, r.json()) == (403, {"detail": "Access denied to topic 'private'"})
    r = await relay.http.get(
        f"{base}/public/messages", params={"order": "sideways", "limit": 0}, headers=bearer(bob)
    )
    assert (r.status_code, r.json()) == (400, {"detail": "Order must be 'asc' or 'desc'"})
    r = await relay.http.get(f"{base}/public/messages", params={"cursor": "last"}, headers=bearer(bob))
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "cursor"]
    assert (await page(relay, bob, "public"))["messages"] == []
    assert (await page(relay, owner_token, "private"))["messages"] == []


async def test_grant_opens_history_to_the_grantee(any_relay: Relay) -> None:
    """A read grant lets another user page the topic."""
    relay = any_relay
    owner, _ = await relay.user("owner")
    bob, bob_token = await relay.user("bob", ["read"])
    await publish_direct(relay.backend, owner, "shared", 2)
    url = f"{relay.gateway}/api/v1/topics/shared/messages"
    assert (await relay.http.get(url, headers=bearer(bob_token))).status_code == 403
    await relay.backend.topics.grant("shared", bob.user_id)
    await relay.ctx.authorizer.notify("topic:shared")
    assert ns(await page(relay, bob_token, "shared")) == [1, 0]


async def test_public_history_needs_the_read_permission(any_relay: Relay) -> None:
    """A public topic's messages are readable by any user with ``read``, not by one without it
    (CONTRACT decision 3); the owner needs no global ``read`` for its own topic."""
    relay = any_relay
    owner, owner_token = await relay.user("owner", ["write"])
    _, reader = await relay.user("reader", ["read"])
    _, writer = await relay.user("writer", ["write"])
    await make_topic(relay, owner, "open", public=True)
    await publish_direct(relay.backend, owner, "open", 1)
    url = f"{relay.gateway}/api/v1/topics/open/messages"
    assert (await relay.http.get(url, headers=bearer(writer))).status_code == 403
    assert ns(await page(relay, reader, "open")) == [0]
    assert ns(await page(relay, owner_token, "open")) == [0]


async def publish_expired(relay: Relay, user: User, topic: str) -> str:
    result = await relay.backend.messages.publish(
        [NewMessage(topic=topic, payload=b'{"n":-1}', timestamp=iso_z(utcnow()), expires_at_ms=now_ms() - 1)],
        user=user,
        kind="single",
        idempotency_key=None,
        idempotency_ttl=600,
        topic_ids=[uuid.uuid4().hex],
    )
    return result.message_ids[0]


async def test_expired_messages_are_never_returned(any_relay: Relay) -> None:
    """A message past its ttl is missing from history pages, poll catch-up and WebSocket replay."""
    relay = any_relay
    alice, token = await relay.user("alice")
    before = await publish_direct(relay.backend, alice, "ttl", 2)
    await publish_expired(relay, alice, "ttl")
    await publish_direct(relay.backend, alice, "ttl", 1, start=2)
    assert ns(await page(relay, token, "ttl", order="asc")) == [0, 1, 2]
    assert ns(await page(relay, token, "ttl")) == [2, 1, 0]
    poll = (await relay.poll(token, {"topics": ["ttl"], "since": {"ttl": before[0]}})).json()
    assert [m["payload"]["n"] for m in poll["messages"]] == [1, 2]


@pytest.mark.parametrize("order", ["asc", "desc"])
async def test_cache_and_valkey_give_the_same_answers(relay_factory, order: str) -> None:
    """Every page is the same whether the cache answers it or Valkey does."""
    async with relay_factory(cache_messages_per_topic=1000) as relay:
        alice, token = await relay.user("alice")
        ids = await publish_direct(relay.backend, alice, "same", 40)
        await publish_expired(relay, alice, "same")
        ids += await publish_direct(relay.backend, alice, "same", 10, start=40)
        last = ids_.require(ids[-1], [])
        await eventually(lambda: (relay.node.tailer.position("same") or (0, 0)) >= last)
        queries: list[dict[str, Any]] = [
            {"order": order, "limit": limit} | ({"cursor": c} if c else {})
            for limit in (1, 7, 100)
            for c in (None, ids[0], ids[20], ids[39], ids[40], ids[-1])
        ]
        hits = reads("cache")
        from_cache = [await page(relay, token, "same", **q) for q in queries]
        assert reads("cache") > hits
        relay.node.cache.clear()
        misses = reads("valkey")
        from_valkey = [await page(relay, token, "same", **q) for q in queries]
        assert reads("valkey") - misses == len(queries)
        assert from_cache == from_valkey


async def test_cursor_at_or_below_the_first_entry_is_a_normal_page(any_relay: Relay) -> None:
    """A desc cursor of 0-0 (or the first id) and an asc cursor of the largest id are empty pages,
    never a 503 or a counted storage error."""
    relay = any_relay
    alice, token = await relay.user("alice")
    ids = await publish_direct(relay.backend, alice, "edge", 3)
    relay.node.cache.clear()  # Valkey answers, not the hot cache
    for cursor in ("0-0", ids[0]):
        body = await page(relay, token, "edge", cursor=cursor)
        assert body["messages"] == [] and body["next_cursor"] is None
    top = f"{2**64 - 1}-{2**64 - 1}"
    assert (await page(relay, token, "edge", order="asc", cursor=top))["messages"] == []
    assert ns(await page(relay, token, "edge", order="asc", cursor="0-0")) == [0, 1, 2]
