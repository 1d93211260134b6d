"""POST /auth/login: the OAuth2 password form, failures that do not reveal whether a user exists,
the inactive check after the password, and password-hash upgrades."""

from __future__ import annotations

import jwt
from argon2 import PasswordHasher

from relaycore.models import User
from relaycore.store.valkey_backend import ValkeyBackend
from tests.auth.conftest import Auth, bearer


async def test_login_returns_a_bearer_token(auth: Auth) -> None:
    """A correct password gets access_token, token_type "bearer", expires_in and the refresh
    token fields (CONTRACT decision 6), and no user data."""
    await auth.user("alice")
    r = await auth.login("alice", "password123")
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {
        "access_token",
        "token_type",
        "expires_in",
        "refresh_token",
        "refresh_token_secondary",
    }
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    assert r.headers["cache-control"] == "no-store"


async def test_token_claims(auth: Auth) -> None:
    """The token carries sub, username, permissions, iat, exp (iat + expires_in) and a jti."""
    user_id, token = await auth.user("alice", ["read"])
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["sub"] == user_id
    assert claims["username"] == "alice"
    assert claims["permissions"] == ["read"]
    assert claims["exp"] - claims["iat"] == 3600
    assert len(claims["jti"]) == 32
    other = await auth.token("alice", "password123")
    assert jwt.decode(other, options={"verify_signature": False})["jti"] != claims["jti"]


async def test_wrong_password_and_unknown_user_look_the_same(auth: Auth) -> None:
    """Both get 401 "Incorrect username or password" with WWW-Authenticate: Bearer."""
    await auth.user("alice")
    wrong = await auth.login("alice", "not-the-password")
    unknown = await auth.login("nobody", "not-the-password")
    for r in (wrong, unknown):
        assert r.status_code == 401
        assert r.json() == {"detail": "Incorrect username or password"}
        assert r.headers["www-authenticate"] == "Bearer"


async def test_inactive_user_is_refused_only_with_the_right_password(auth: Auth) -> None:
    """An inactive user gets 403 "User account is inactive", but a wrong password still gets 401."""
    user_id, _ = await auth.user("alice")
    r = await auth.client.patch(
        f"/auth/users/{user_id}", json={"is_active": False}, headers=bearer(auth.admin_token)
    )
    assert r.status_code == 200
    r = await auth.login("alice", "password123")
    assert r.status_code == 403
    assert r.json() == {"detail": "User account is inactive"}
    assert (await auth.login("alice", "wrong-password")).status_code == 401


async def test_grant_type_must_be_password(auth: Auth) -> None:
    """grant_type=password and the ignored OAuth2 fields are accepted; another grant_type is a 422."""
    await auth.user("alice")
    form = {"username": "alice", "password": "password123", "scope": "x y", "client_id": "c"}
    ok = await auth.client.post("/auth/login", data=form | {"grant_type": "password", "client_secret": "s"})
    assert ok.status_code == 200
    bad = await auth.client.post("/auth/login", data=form | {"grant_type": "client_credentials"})
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["body", "grant_type"]


async def test_missing_form_fields_are_422(auth: Auth) -> None:
    """No username / no password / empty values / a JSON body: 422 naming each missing field."""
    r = await auth.client.post("/auth/login", data={"username": "alice"})
    assert r.status_code == 422
    assert [e["loc"] for e in r.json()["detail"]] == [["body", "password"]]
    r = await auth.client.post("/auth/login", data={"username": "", "password": ""})
    assert [e["loc"] for e in r.json()["detail"]] == [["body", "username"], ["body", "password"]]
    r = await auth.client.post("/auth/login", json={"username": "alice", "password": "password123"})
    assert r.status_code == 422
    assert all(e["type"] == "missing" for e in r.json()["detail"])


async def test_overlong_password_is_422_without_echo(auth: Auth) -> None:
    """A password over 1024 characters is refused before hashing, and never echoed back."""
    r = await auth.login("alice", "p" * 1025)
    assert r.status_code == 422
    item = r.json()["detail"][0]
    assert item["loc"] == ["body", "password"]
    assert item["input"] is None


async def test_file_upload_in_login_form_is_rejected(auth: Auth) -> None:
    """A multipart form carrying a file gets a 4xx, not a 500."""
    r = await auth.client.post(
        "/auth/login", data={"username": "alice"}, files={"password": ("p.txt", b"password123")}
    )
    assert 400 <= r.status_code < 500


async def test_outdated_hash_is_upgraded_on_login(auth: Auth) -> None:
    """A hash made with other argon2 parameters is replaced by one with the configured ones."""
    old = PasswordHasher(time_cost=2, memory_cost=128, parallelism=1).hash("password123")
    backend = ValkeyBackend(auth.settings)
    try:
        await backend.users.create(
            User(user_id="u-old", username="old", hashed_password=old, permissions=["read"])
        )
        assert (await auth.login("old", "password123")).status_code == 200
        stored = await backend.users.get("u-old")
        assert stored is not None
        assert stored.hashed_password != old
        assert "m=64,t=1,p=4" in stored.hashed_password
        assert (await auth.login("old", "password123")).status_code == 200
    finally:
        await backend.close()


async def test_user_without_password_cannot_log_in(auth: Auth) -> None:
    """A stored user with no password hash (made by another tool) gets the ordinary 401."""
    backend = ValkeyBackend(auth.settings)
    try:
        await backend.users.create(User(user_id="u-np", username="nopass", permissions=["read"]))
    finally:
        await backend.close()
    r = await auth.login("nopass", "")
    assert r.status_code == 422
    r = await auth.login("nopass", "anything-at-all")
    assert r.status_code == 401
