"""Who may publish where: token and user checks (reference texts and codes), the global `write`
permission, and the per-topic rule (owner or admin only; grants and public do not give write)."""

from __future__ import annotations

import uuid

import pytest

from relaycore.models import Topic, User, iso_z, utcnow
from tests.ingest.conftest import Ingest, IngestFactory
from tests.support.identity import token_for

MSG = {"topic": "t", "payload": {}}
PATHS = ["/api/v1/messages", "/api/v1/messages/bulk"]


def body_for(path: str, *topics: str) -> dict[str, object]:
    msgs: list[dict[str, object]] = [{"topic": t, "payload": {"n": i}} for i, t in enumerate(topics)]
    return msgs[0] if path.endswith("messages") else {"messages": msgs}


async def own_topic(svc: Ingest, owner: User, name: str, *, public: bool = False) -> None:
    topic = Topic(
        topic_id=uuid.uuid4().hex,
        topic_name=name,
        owner_id=owner.user_id,
        is_public=public,
        created_at=iso_z(utcnow()),
    )
    await svc.backend.topics.create(topic)


@pytest.mark.parametrize("path", PATHS)
async def test_missing_or_bad_credentials_are_401(svc: Ingest, path: str) -> None:
    """No header, a non-bearer scheme, garbage, a wrong signature or an expired token: 401."""
    user, _ = await svc.user("alice")
    body = body_for(path, "t")
    anon = svc.client()
    cases = [
        ({}, "Not authenticated"),
        ({"Authorization": "Basic YWxpY2U6cHc="}, "Not authenticated"),
        ({"Authorization": "Bearer not-a-jwt"}, "Invalid or expired token"),
        (
            {"Authorization": f"Bearer {token_for(user, secret='another-secret-' + 'y' * 40)}"},
            "Invalid or expired token",
        ),
        ({"Authorization": f"Bearer {token_for(user, ttl=-60)}"}, "Invalid or expired token"),
    ]
    for headers, detail in cases:
        r = await anon.post(path, json=body, headers=headers)
        assert r.status_code == 401, (headers, r.text)
        assert r.json() == {"detail": detail}
        assert r.headers["www-authenticate"] == "Bearer"


async def test_token_of_a_deleted_user_is_401_user_not_found(svc: Ingest) -> None:
    """A valid token whose user no longer exists: 401 'User not found'."""
    ghost = User(user_id=uuid.uuid4().hex, username="ghost", permissions=["read", "write"])
    r = await svc.client(token_for(ghost)).post("/api/v1/messages", json=MSG)
    assert r.status_code == 401 and r.json() == {"detail": "User not found"}


async def test_inactive_user_is_403(svc: Ingest) -> None:
    """An inactive user's token: 403 'User is inactive'."""
    _, client = await svc.user("sleepy", active=False)
    r = await client.post("/api/v1/messages", json=MSG)
    assert r.status_code == 403 and r.json() == {"detail": "User is inactive"}


@pytest.mark.parametrize("path", PATHS)
async def test_read_only_user_is_403_write_required(svc: Ingest, path: str) -> None:
    """A user without the global `write` permission: 403 "Permission 'write' required"."""
    _, reader = await svc.user("reader", ["read"])
    r = await reader.post(path, json=body_for(path, "t"))
    assert r.status_code == 403 and r.json() == {"detail": "Permission 'write' required"}
    assert await svc.backend.topics.get("t") is None


async def test_owner_and_admin_may_publish_others_may_not(svc: Ingest) -> None:
    """An existing topic takes publishes from its owner and admins only: a grantee, a public
    topic's readers and other writers get 403 with the reference text."""
    owner, owner_c = await svc.user("owner")
    _, admin_c = await svc.user("admin", ["admin", "read", "write"])
    grantee, grantee_c = await svc.user("grantee")
    _, other_c = await svc.user("other")
    await own_topic(svc, owner, "private")
    await own_topic(svc, owner, "open", public=True)
    assert await svc.backend.topics.grant("private", grantee.user_id)
    assert await svc.backend.topics.grant("open", grantee.user_id)
    for topic in ("private", "open"):
        for client in (owner_c, admin_c):
            r = await client.post("/api/v1/messages", json={"topic": topic, "payload": {}})
            assert r.status_code == 201, r.text
        for client in (grantee_c, other_c):
            r = await client.post("/api/v1/messages", json={"topic": topic, "payload": {}})
            assert r.status_code == 403
            assert r.json() == {"detail": f"Access denied to topic '{topic}' (requires write permission)"}
        assert await svc.backend.messages.length(topic) == 2


async def test_auto_created_topic_belongs_to_its_first_publisher(svc: Ingest) -> None:
    """After alice auto-creates a topic, bob (a plain writer) can no longer publish to it."""
    _, alice = await svc.user("alice")
    _, bob = await svc.user("bob")
    assert (await alice.post("/api/v1/messages", json=MSG)).status_code == 201
    r = await bob.post("/api/v1/messages", json=MSG)
    assert r.status_code == 403


async def test_bulk_denied_topics_are_all_named_and_nothing_is_written(svc: Ingest) -> None:
    """A bulk touching foreign topics is 403 naming every denied topic; no message and no
    auto-created topic is left behind, even for the items before the denied ones."""
    owner, _ = await svc.user("owner")
    _, bob = await svc.user("bob")
    await own_topic(svc, owner, "b-topic")
    await own_topic(svc, owner, "a-topic")
    r = await bob.post(
        "/api/v1/messages/bulk", json=body_for("bulk", "mine", "b-topic", "mine", "a-topic", "b-topic")
    )
    assert r.status_code == 403
    assert r.json() == {"detail": "Access denied to topics: ['a-topic', 'b-topic']"}
    assert await svc.backend.topics.get("mine") is None
    for t in ("mine", "a-topic", "b-topic"):
        assert await svc.backend.messages.length(t) == 0


async def test_publisher_needs_no_read_access(svc: Ingest) -> None:
    """Publishing does not check read access: a write-only user can publish to its own topic."""
    _, writer = await svc.user("writer", ["write"])
    assert (await writer.post("/api/v1/messages", json=MSG)).status_code == 201


async def test_access_rules_hold_on_the_memory_backend(start_ingest: IngestFactory) -> None:
    """The memory backend applies the same owner/admin rule and reference texts."""
    svc = await start_ingest(memory=True)
    owner, _ = await svc.user("owner")
    _, bob = await svc.user("bob")
    _, admin = await svc.user("admin", ["admin", "write"])
    await own_topic(svc, owner, "x")
    r = await bob.post("/api/v1/messages", json={"topic": "x", "payload": {}})
    assert r.status_code == 403 and "requires write permission" in r.json()["detail"]
    r = await bob.post("/api/v1/messages/bulk", json=body_for("bulk", "y", "x"))
    assert r.json() == {"detail": "Access denied to topics: ['x']"}
    assert await svc.backend.topics.get("y") is None
    assert (await admin.post("/api/v1/messages", json={"topic": "x", "payload": {}})).status_code == 201
