"""/api/v1/topics*: create, list, get, update, delete, grants and stats, with the reference's
status codes and bodies (409 for duplicates, CONTRACT decision 2)."""

from __future__ import annotations

import uuid

import pytest

from relaycore.models import NewMessage, iso_z, utcnow
from relaycore.store.valkey_backend import ValkeyBackend
from tests.auth.conftest import Auth, bearer

TOPIC_FIELDS = {
    "topic_id",
    "topic_name",
    "owner_id",
    "is_public",
    "created_at",
    "description",
    "allowed_user_ids",
}


async def test_create_topic(auth: Auth) -> None:
    """201 TopicPublic: caller owns it, private by default, grants shown (empty)."""
    user_id, token = await auth.user("alice")
    r = await auth.client.post(
        "/api/v1/topics", json={"topic_name": "jobs", "description": "d"}, headers=bearer(token)
    )
    assert r.status_code == 201
    body = r.json()
    assert set(body) == TOPIC_FIELDS
    assert body["topic_name"] == "jobs"
    assert body["owner_id"] == user_id
    assert body["is_public"] is False
    assert body["description"] == "d"
    assert body["allowed_user_ids"] == []
    assert body["created_at"].endswith("Z")
    uuid.UUID(body["topic_id"])


async def test_create_duplicate_topic_is_409(auth: Auth) -> None:
    """A taken name: 409 "Topic '<t>' already exists", whoever asks."""
    _, alice = await auth.user("alice")
    _, bob = await auth.user("bob")
    await auth.client.post("/api/v1/topics", json={"topic_name": "jobs"}, headers=bearer(alice))
    for token in (alice, bob):
        r = await auth.client.post("/api/v1/topics", json={"topic_name": "jobs"}, headers=bearer(token))
        assert r.status_code == 409
        assert r.json() == {"detail": "Topic 'jobs' already exists"}


async def test_create_topic_requires_write(auth: Auth) -> None:
    """A read-only user gets 403 "Permission 'write' required", before the body is looked at."""
    _, token = await auth.user("reader", ["read"])
    r = await auth.client.post("/api/v1/topics", json={"topic_name": "?"}, headers=bearer(token))
    assert r.status_code == 403
    assert r.json() == {"detail": "Permission 'write' required"}


@pytest.mark.parametrize(
    "body",
    [
        {"topic_name": ""},
        {"topic_name": "a:b"},
        {"topic_name": "has space"},
        {"topic_name": "{tag}"},
        {"topic_name": "---"},
        {"topic_name": "t" * 256},
        {"topic_name": 5},
        {"topic_name": "ok", "is_public": "yes"},
        {"topic_name": "ok", "description": "d" * 501},
        {},
        [],
    ],
)
async def test_create_topic_validation(auth: Auth, body: object) -> None:
    """The topic-name rule and the field limits give 422 with a FastAPI-style detail list."""
    _, token = await auth.user("alice")
    r = await auth.client.post("/api/v1/topics", json=body, headers=bearer(token))
    assert r.status_code == 422, r.text
    assert isinstance(r.json()["detail"], list)


async def test_unicode_topic_names_are_allowed(auth: Auth) -> None:
    """The rule is Unicode-aware like the reference's: "café" and "日本" are valid names."""
    _, token = await auth.user("alice")
    for name in ("café", "日本", "a_b-c"):
        r = await auth.client.post("/api/v1/topics", json={"topic_name": name}, headers=bearer(token))
        assert r.status_code == 201, name
        r = await auth.client.get(f"/api/v1/topics/{name}", headers=bearer(token))
        assert r.status_code == 200
        assert r.json()["topic_name"] == name


async def test_get_topic_not_found(auth: Auth) -> None:
    """An unknown or impossible name is 404 "Topic '<t>' not found"."""
    _, token = await auth.user("alice")
    for name, shown in (("nope", "nope"), ("a:b", "a:b"), ("x" * 300, "x" * 300), ("%7Bx%7D", "{x}")):
        r = await auth.client.get(f"/api/v1/topics/{name}", headers=bearer(token))
        assert r.status_code == 404
        assert r.json() == {"detail": f"Topic '{shown}' not found"}


async def test_update_topic(auth: Auth) -> None:
    """PUT applies the non-null fields and answers with the grants shown."""
    _, token = await auth.user("alice")
    h = bearer(token)
    await auth.client.post("/api/v1/topics", json={"topic_name": "jobs", "description": "old"}, headers=h)
    r = await auth.client.put("/api/v1/topics/jobs", json={"is_public": True}, headers=h)
    assert r.status_code == 200
    assert r.json()["is_public"] is True
    assert r.json()["description"] == "old"
    assert r.json()["allowed_user_ids"] == []
    r = await auth.client.put(
        "/api/v1/topics/jobs", json={"description": "new", "is_public": None}, headers=h
    )
    assert r.json()["description"] == "new"
    assert r.json()["is_public"] is True
    r = await auth.client.put("/api/v1/topics/jobs", json={"description": "d" * 501}, headers=h)
    assert r.status_code == 422
    r = await auth.client.put("/api/v1/topics/nope", json={"is_public": True}, headers=h)
    assert r.status_code == 404


async def test_update_and_delete_by_others_are_403(auth: Auth) -> None:
    """Non-owners get 403 "Only the topic owner can update it" / "... delete it"."""
    _, alice = await auth.user("alice")
    _, bob = await auth.user("bob")
    await auth.client.post(
        "/api/v1/topics", json={"topic_name": "jobs", "is_public": True}, headers=bearer(alice)
    )
    r = await auth.client.put("/api/v1/topics/jobs", json={"is_public": False}, headers=bearer(bob))
    assert r.status_code == 403
    assert r.json() == {"detail": "Only the topic owner can update it"}
    r = await auth.client.delete("/api/v1/topics/jobs", headers=bearer(bob))
    assert r.status_code == 403
    assert r.json() == {"detail": "Only the topic owner can delete it"}


async def test_delete_topic_deletes_its_messages(auth: Auth) -> None:
    """204; the topic is gone, and a topic re-created under the name starts empty."""
    user_id, token = await auth.user("alice")
    h = bearer(token)
    await auth.client.post("/api/v1/topics", json={"topic_name": "jobs"}, headers=h)
    backend = ValkeyBackend(auth.settings)
    try:
        user = await backend.users.get(user_id)
        assert user is not None
        msg = NewMessage(topic="jobs", payload=b'{"n":1}', timestamp=iso_z(utcnow()))
        await backend.messages.publish(
            [msg], user=user, kind="single", idempotency_key=None, idempotency_ttl=600, topic_ids=["x"]
        )
        assert await backend.messages.length("jobs") == 1
        r = await auth.client.delete("/api/v1/topics/jobs", headers=h)
        assert r.status_code == 204
        assert (await auth.client.get("/api/v1/topics/jobs", headers=h)).status_code == 404
        assert await backend.messages.length("jobs") == 0
        assert (await auth.client.delete("/api/v1/topics/jobs", headers=h)).status_code == 404
        await auth.client.post("/api/v1/topics", json={"topic_name": "jobs"}, headers=h)
        assert await backend.messages.length("jobs") == 0
    finally:
        await backend.close()


async def test_grant_list_and_revoke(auth: Auth) -> None:
    """Grant by user_id or username (201 TopicPermission), list them, revoke (204)."""
    _, owner = await auth.user("owner")
    alice_id, _ = await auth.user("alice")
    bob_id, _ = await auth.user("bob")
    h = bearer(owner)
    await auth.client.post("/api/v1/topics", json={"topic_name": "jobs"}, headers=h)
    r = await auth.client.post("/api/v1/topics/jobs/permissions", json={"user_id": alice_id}, headers=h)
    assert r.status_code == 201
    body = r.json()
    assert set(body) == {"topic_name", "user_id", "username", "granted_at"}
    assert (body["topic_name"], body["user_id"], body["username"]) == ("jobs", alice_id, "alice")
    r = await auth.client.post("/api/v1/topics/jobs/permissions", json={"username": "bob"}, headers=h)
    assert r.status_code == 201
    assert r.json()["user_id"] == bob_id
    r = await auth.client.get("/api/v1/topics/jobs/permissions", headers=h)
    assert r.status_code == 200
    assert sorted(p["username"] for p in r.json()) == ["alice", "bob"]
    r = await auth.client.get("/api/v1/topics/jobs", headers=h)
    assert sorted(r.json()["allowed_user_ids"]) == sorted([alice_id, bob_id])
    r = await auth.client.delete(f"/api/v1/topics/jobs/permissions/{alice_id}", headers=h)
    assert r.status_code == 204
    r = await auth.client.get("/api/v1/topics/jobs/permissions", headers=h)
    assert [p["username"] for p in r.json()] == ["bob"]


async def test_grant_errors(auth: Auth) -> None:
    """400 neither field; 404 unknown user; 409 already granted; 404 unknown topic; user_id wins."""
    _, owner = await auth.user("owner")
    alice_id, _ = await auth.user("alice")
    h = bearer(owner)
    await auth.client.post("/api/v1/topics", json={"topic_name": "jobs"}, headers=h)
    url = "/api/v1/topics/jobs/permissions"
    r = await auth.client.post(url, json={}, headers=h)
    assert r.status_code == 400
    assert r.json() == {"detail": "Either user_id or username must be provided"}
    for body in ({"user_id": "nope"}, {"username": "nope"}, {"user_id": "nope", "username": "alice"}):
        r = await auth.client.post(url, json=body, headers=h)
        assert r.status_code == 404, body
        assert r.json() == {"detail": "User not found"}
    assert (await auth.client.post(url, json={"user_id": alice_id}, headers=h)).status_code == 201
    r = await auth.client.post(url, json={"username": "alice"}, headers=h)
    assert r.status_code == 409
    assert r.json() == {"detail": f"User {alice_id} already has access to topic jobs"}
    r = await auth.client.post("/api/v1/topics/nope/permissions", json={"username": "alice"}, headers=h)
    assert r.status_code == 404
    assert r.json() == {"detail": "Topic 'nope' not found"}
    r = await auth.client.post(url, json={"user_id": 5}, headers=h)
    assert r.status_code == 422


async def test_revoke_errors(auth: Auth) -> None:
    """Revoking a user without access is 404 "User does not have access to this topic"."""
    _, owner = await auth.user("owner")
    alice_id, _ = await auth.user("alice")
    h = bearer(owner)
    await auth.client.post("/api/v1/topics", json={"topic_name": "jobs"}, headers=h)
    r = await auth.client.delete(f"/api/v1/topics/jobs/permissions/{alice_id}", headers=h)
    assert r.status_code == 404
    assert r.json() == {"detail": "User does not have access to this topic"}
    r = await auth.client.delete(f"/api/v1/topics/nope/permissions/{alice_id}", headers=h)
    assert r.status_code == 404
    assert r.json() == {"detail": "Topic 'nope' not found"}


async def test_grant_routes_are_owner_or_admin(auth: Auth) -> None:
    """Others get 403 with the reference's texts; the admin may manage anyone's grants."""
    _, owner = await auth.user("owner")
    alice_id, alice = await auth.user("alice")
    await auth.client.post(
        "/api/v1/topics", json={"topic_name": "jobs", "is_public": True}, headers=bearer(owner)
    )
    url = "/api/v1/topics/jobs/permissions"
    r = await auth.client.post(url, json={"user_id": alice_id}, headers=bearer(alice))
    assert (r.status_code, r.json()) == (403, {"detail": "Only the topic owner can grant access"})
    r = await auth.client.get(url, headers=bearer(alice))
    assert (r.status_code, r.json()) == (403, {"detail": "Only the topic owner can list permissions"})
    r = await auth.client.delete(f"{url}/{alice_id}", headers=bearer(alice))
    assert r.status_code == 403
    admin = bearer(auth.admin_token)
    assert (await auth.client.post(url, json={"user_id": alice_id}, headers=admin)).status_code == 201
    assert (await auth.client.get(url, headers=admin)).status_code == 200
    assert (await auth.client.delete(f"{url}/{alice_id}", headers=admin)).status_code == 204


async def test_topic_stats(auth: Auth) -> None:
    """Admin only; declared before /{name}; totals and per-topic message counts."""
    user_id, token = await auth.user("alice")
    await auth.client.post("/api/v1/topics", json={"topic_name": "stats"}, headers=bearer(token))
    await auth.client.post(
        "/api/v1/topics", json={"topic_name": "b", "is_public": True}, headers=bearer(token)
    )
    r = await auth.client.get("/api/v1/topics/stats", headers=bearer(token))
    assert r.status_code == 403
    assert r.json() == {"detail": "Permission 'admin' required"}
    r = await auth.client.get("/api/v1/topics/stats", headers=bearer(auth.admin_token))
    assert r.status_code == 200
    assert r.json() == {
        "total_topics": 2,
        "topics": [
            {"topic_name": "b", "owner_id": user_id, "is_public": True, "message_count": 0},
            {"topic_name": "stats", "owner_id": user_id, "is_public": False, "message_count": 0},
        ],
    }
    # A topic named "stats" is still managed through its other routes.
    r = await auth.client.put("/api/v1/topics/stats", json={"description": "x"}, headers=bearer(token))
    assert r.status_code == 200


async def test_topic_routes_require_a_token(auth: Auth) -> None:
    """Every topic route answers 401 without a token."""
    calls = [
        ("POST", "/api/v1/topics", {"topic_name": "x"}),
        ("GET", "/api/v1/topics", None),
        ("GET", "/api/v1/topics/stats", None),
        ("GET", "/api/v1/topics/x", None),
        ("PUT", "/api/v1/topics/x", {}),
        ("DELETE", "/api/v1/topics/x", None),
        ("POST", "/api/v1/topics/x/permissions", {"username": "a"}),
        ("GET", "/api/v1/topics/x/permissions", None),
        ("DELETE", "/api/v1/topics/x/permissions/u", None),
    ]
    for method, path, body in calls:
        r = await auth.client.request(method, path, json=body)
        assert r.status_code == 401, (method, path)
