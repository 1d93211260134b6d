"""/auth/register, /auth/me, /auth/users[/stats|/{id}]: reference status codes and bodies,
admin-only rules, PATCH semantics and deletion."""

from __future__ import annotations

import pytest

from tests.auth.conftest import ADMIN, Auth, bearer

PUBLIC_FIELDS = {"user_id", "username", "email", "is_active", "created_at", "permissions", "owned_topics"}


async def test_register_as_admin(auth: Auth) -> None:
    """201 with the UserPublic view; no password hash anywhere."""
    r = await auth.client.post(
        "/auth/register",
        json={"username": "alice", "password": "password123", "email": "a@x.org", "permissions": ["read"]},
        headers=bearer(auth.admin_token),
    )
    assert r.status_code == 201
    body = r.json()
    assert set(body) == PUBLIC_FIELDS
    assert body["username"] == "alice"
    assert body["email"] == "a@x.org"
    assert body["permissions"] == ["read"]
    assert body["is_active"] is True
    assert body["owned_topics"] == []
    assert body["created_at"].endswith("Z")


async def test_register_defaults_and_duplicate_permissions(auth: Auth) -> None:
    """Permissions default to none; duplicates are dropped; email defaults to null."""
    h = bearer(auth.admin_token)
    r = await auth.client.post(
        "/auth/register", json={"username": "bob", "password": "password123"}, headers=h
    )
    assert r.status_code == 201
    assert r.json()["permissions"] == []
    assert r.json()["email"] is None
    r = await auth.client.post(
        "/auth/register",
        json={"username": "carol", "password": "password123", "permissions": ["read", "read", "write"]},
        headers=h,
    )
    assert r.json()["permissions"] == ["read", "write"]


async def test_register_duplicate_is_409(auth: Auth) -> None:
    """A taken username: 409 "Username '<u>' already exists" (CONTRACT decision 2)."""
    await auth.user("alice")
    r = await auth.client.post(
        "/auth/register",
        json={"username": "alice", "password": "password123"},
        headers=bearer(auth.admin_token),
    )
    assert r.status_code == 409
    assert r.json() == {"detail": "Username 'alice' already exists"}


@pytest.mark.parametrize(
    "name",
    [
        "rootadmin ",
        " rootadmin",
        "root\u0000admin",
        "root\nadmin",
        "root\u200badmin",
        "root\u202eadmin",
        "ab",
    ],
)
async def test_lookalike_usernames_are_422(auth: Auth, name: str) -> None:
    """Control and invisible format characters, a space at either end, or under 3 characters: 422
    naming the field, so nobody registers a name that looks like another's."""
    await auth.user("rootadmin")
    r = await auth.client.post(
        "/auth/register", json={"username": name, "password": "password123"}, headers=bearer(auth.admin_token)
    )
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["body", "username"]


async def test_usernames_are_stored_nfkc_and_log_in_in_any_spelling(auth: Auth) -> None:
    """A full-width spelling is the same name (NFKC): it is stored normalized, a second
    registration in the other spelling is a 409, and either spelling logs in."""
    h = bearer(auth.admin_token)
    wide = "\uff52\uff4f\uff4f\uff54\uff49\uff45"  # full-width "rootie"
    r = await auth.client.post(
        "/auth/register", json={"username": wide, "password": "password123"}, headers=h
    )
    assert (r.status_code, r.json()["username"]) == (201, "rootie")
    r = await auth.client.post(
        "/auth/register", json={"username": "rootie", "password": "password123"}, headers=h
    )
    assert r.status_code == 409
    for spelling in ("rootie", wide):
        assert (await auth.login(spelling, "password123")).status_code == 200


async def test_register_requires_admin(auth: Auth) -> None:
    """No token: 401 with WWW-Authenticate; a non-admin: 403 "Permission 'admin' required"."""
    _, token = await auth.user("alice")
    body = {"username": "bob", "password": "password123"}
    r = await auth.client.post("/auth/register", json=body)
    assert r.status_code == 401
    assert r.json() == {"detail": "Not authenticated"}
    assert r.headers["www-authenticate"] == "Bearer"
    r = await auth.client.post("/auth/register", json=body, headers=bearer(token))
    assert r.status_code == 403
    assert r.json() == {"detail": "Permission 'admin' required"}


async def test_auth_is_checked_before_the_body(auth: Auth) -> None:
    """An invalid body without a token is a 401; a body that is not JSON at all is a 422 first."""
    r = await auth.client.post("/auth/register", json={"username": 1})
    assert r.status_code == 401
    r = await auth.client.post("/auth/register", content=b"{not json")
    assert r.status_code == 422
    assert r.json()["detail"][0]["type"] == "json_invalid"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"username": "ab", "password": "password123"}, "username"),
        ({"username": "a" * 51, "password": "password123"}, "username"),
        ({"username": "alice", "password": "short"}, "password"),
        ({"username": "alice", "password": "p" * 1025}, "password"),
        ({"username": "alice", "password": "password123", "email": "e" * 255}, "email"),
        ({"username": "alice", "password": "password123", "permissions": ["root"]}, "permissions"),
        ({"username": "alice", "password": "password123", "permissions": "admin"}, "permissions"),
        ({"username": 5, "password": "password123"}, "username"),
        ({"password": "password123"}, "username"),
    ],
)
async def test_register_validation(auth: Auth, body: dict[str, object], field: str) -> None:
    """UserCreate rules: username 3..50, password 8..1024, email <= 254, known permissions only."""
    r = await auth.client.post("/auth/register", json=body, headers=bearer(auth.admin_token))
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"][:2] == ["body", field]


async def test_me(auth: Auth) -> None:
    """/auth/me is the caller's UserPublic, owned topics included."""
    user_id, token = await auth.user("alice", ["read", "write"])
    await auth.client.post("/api/v1/topics", json={"topic_name": "jobs"}, headers=bearer(token))
    r = await auth.client.get("/auth/me", headers=bearer(token))
    assert r.status_code == 200
    assert r.json()["user_id"] == user_id
    assert r.json()["permissions"] == ["read", "write"]
    assert r.json()["owned_topics"] == ["jobs"]


@pytest.mark.parametrize("header", [None, "Bearer garbage", "Basic YWRtaW46YWRtaW4=", "Bearer"])
async def test_me_without_a_valid_token(auth: Auth, header: str | None) -> None:
    """No token, a garbage token or another scheme: 401."""
    headers = {"Authorization": header} if header else {}
    r = await auth.client.get("/auth/me", headers=headers)
    assert r.status_code == 401
    assert r.json()["detail"] in ("Not authenticated", "Invalid or expired token")


async def test_list_users(auth: Auth) -> None:
    """Admin lists every user with the public fields and never a password hash."""
    await auth.user("alice")
    await auth.user("bob", ["read"])
    r = await auth.client.get("/auth/users", headers=bearer(auth.admin_token))
    assert r.status_code == 200
    users = r.json()
    assert {u["username"] for u in users} == {ADMIN[0], "alice", "bob"}
    assert all(set(u) == PUBLIC_FIELDS for u in users)
    assert "hashed_password" not in r.text and "argon2" not in r.text


async def test_user_admin_routes_require_admin(auth: Auth) -> None:
    """Listing, stats, PATCH and DELETE: 401 without a token, 403 for a non-admin."""
    victim, token = await auth.user("alice")
    calls = [
        ("GET", "/auth/users", None),
        ("GET", "/auth/users/stats", None),
        ("PATCH", f"/auth/users/{victim}", {"email": "x@y.z"}),
        ("DELETE", f"/auth/users/{victim}", None),
    ]
    for method, path, body in calls:
        r = await auth.client.request(method, path, json=body)
        assert r.status_code == 401, (method, path)
        r = await auth.client.request(method, path, json=body, headers=bearer(token))
        assert r.status_code == 403, (method, path)
        assert r.json() == {"detail": "Permission 'admin' required"}


async def test_user_stats(auth: Auth) -> None:
    """{total_users, active_users} over every user."""
    user_id, _ = await auth.user("alice")
    await auth.user("bob")
    await auth.client.patch(
        f"/auth/users/{user_id}", json={"is_active": False}, headers=bearer(auth.admin_token)
    )
    r = await auth.client.get("/auth/users/stats", headers=bearer(auth.admin_token))
    assert r.status_code == 200
    assert r.json() == {"total_users": 3, "active_users": 2}


async def test_patch_applies_only_sent_fields(auth: Auth) -> None:
    """{} changes nothing; each field changes only itself; username is not changeable."""
    h = bearer(auth.admin_token)
    r = await auth.client.post(
        "/auth/register",
        json={"username": "alice", "password": "password123", "email": "a@x.org", "permissions": ["read"]},
        headers=h,
    )
    before = r.json()
    user_id = before["user_id"]
    r = await auth.client.patch(f"/auth/users/{user_id}", json={}, headers=h)
    assert r.status_code == 200
    assert r.json() == before
    r = await auth.client.patch(
        f"/auth/users/{user_id}", json={"permissions": ["write"], "username": "mallory"}, headers=h
    )
    assert r.json() == before | {"permissions": ["write"]}
    r = await auth.client.patch(
        f"/auth/users/{user_id}", json={"email": "b@x.org", "is_active": False}, headers=h
    )
    assert r.json() == before | {"permissions": ["write"], "email": "b@x.org", "is_active": False}
    r = await auth.client.patch(f"/auth/users/{user_id}", json={"email": None}, headers=h)
    assert r.json()["email"] is None
    r = await auth.client.patch(
        f"/auth/users/{user_id}", json={"password": None, "is_active": None}, headers=h
    )
    assert r.json()["is_active"] is False


async def test_patch_password(auth: Auth) -> None:
    """A new password is hashed: the new one logs in, the old one no longer does."""
    user_id, _ = await auth.user("alice")
    r = await auth.client.patch(
        f"/auth/users/{user_id}", json={"password": "new-password"}, headers=bearer(auth.admin_token)
    )
    assert r.status_code == 200
    assert (await auth.login("alice", "new-password")).status_code == 200
    assert (await auth.login("alice", "password123")).status_code == 401


async def test_patch_permissions_apply_to_existing_tokens(auth: Auth) -> None:
    """Authorization uses the stored record: revoking admin from a token's user takes effect at once."""
    user_id, token = await auth.user("alice", ["admin", "read"])
    assert (await auth.client.get("/auth/users", headers=bearer(token))).status_code == 200
    await auth.client.patch(
        f"/auth/users/{user_id}", json={"permissions": ["read"]}, headers=bearer(auth.admin_token)
    )
    assert (await auth.client.get("/auth/users", headers=bearer(token))).status_code == 403


async def test_patch_validation_and_unknown_user(auth: Auth) -> None:
    """Bad values are 422; an unknown id is 404 "User with ID '<id>' not found"."""
    user_id, _ = await auth.user("alice")
    h = bearer(auth.admin_token)
    for body in ({"password": "short"}, {"permissions": ["sudo"]}, {"is_active": "no"}, {"email": 3}):
        r = await auth.client.patch(f"/auth/users/{user_id}", json=body, headers=h)
        assert r.status_code == 422, body
    r = await auth.client.patch("/auth/users/no-such-id", json={"email": "x@y.z"}, headers=h)
    assert r.status_code == 404
    assert r.json() == {"detail": "User with ID 'no-such-id' not found"}


async def test_delete_user(auth: Auth) -> None:
    """204; the user is gone from the list, cannot log in, and its token says "User not found"."""
    user_id, token = await auth.user("alice")
    r = await auth.client.delete(f"/auth/users/{user_id}", headers=bearer(auth.admin_token))
    assert r.status_code == 204
    r = await auth.client.get("/auth/users", headers=bearer(auth.admin_token))
    assert "alice" not in {u["username"] for u in r.json()}
    assert (await auth.login("alice", "password123")).status_code == 401
    r = await auth.client.get("/auth/me", headers=bearer(token))
    assert r.status_code == 401
    assert r.json() == {"detail": "User not found"}


async def test_delete_user_drops_its_grants(auth: Auth) -> None:
    """A deleted user's read grants disappear from the topics that granted them."""
    _, owner = await auth.user("owner")
    user_id, _ = await auth.user("alice")
    await auth.client.post("/api/v1/topics", json={"topic_name": "jobs"}, headers=bearer(owner))
    await auth.client.post(
        "/api/v1/topics/jobs/permissions", json={"user_id": user_id}, headers=bearer(owner)
    )
    await auth.client.delete(f"/auth/users/{user_id}", headers=bearer(auth.admin_token))
    r = await auth.client.get("/api/v1/topics/jobs", headers=bearer(owner))
    assert r.json()["allowed_user_ids"] == []


async def test_delete_self_and_unknown(auth: Auth) -> None:
    """Deleting oneself is 400 "Cannot delete your own user account"; an unknown id is 404."""
    me = (await auth.client.get("/auth/me", headers=bearer(auth.admin_token))).json()
    r = await auth.client.delete(f"/auth/users/{me['user_id']}", headers=bearer(auth.admin_token))
    assert r.status_code == 400
    assert r.json() == {"detail": "Cannot delete your own user account"}
    r = await auth.client.delete("/auth/users/nope", headers=bearer(auth.admin_token))
    assert r.status_code == 404
    assert "not found" in r.json()["detail"]


async def test_reregister_after_delete(auth: Auth) -> None:
    """A deleted user's name is free again, with a new user id."""
    user_id, _ = await auth.user("alice")
    await auth.client.delete(f"/auth/users/{user_id}", headers=bearer(auth.admin_token))
    new_id, _ = await auth.user("alice")
    assert new_id != user_id
