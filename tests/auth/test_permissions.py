"""The seed's topic access matrix (reference §6, CONTRACT decisions 1-3), seen through the auth
API: admin bypass, owner read and manage, others denied on private topics, grantees read but do
not manage, public topics readable by all but listed only for their owner, revocation."""

from __future__ import annotations

from tests.auth.conftest import Auth, bearer


async def _setup(auth: Auth) -> dict[str, tuple[str, str]]:
    people = {name: await auth.user(name) for name in ("owner", "grantee", "other")}
    h = bearer(people["owner"][1])
    await auth.client.post("/api/v1/topics", json={"topic_name": "private"}, headers=h)
    await auth.client.post("/api/v1/topics", json={"topic_name": "public", "is_public": True}, headers=h)
    r = await auth.client.post(
        "/api/v1/topics/private/permissions", json={"user_id": people["grantee"][0]}, headers=h
    )
    assert r.status_code == 201
    return people


async def _status(auth: Auth, token: str, topic: str) -> int:
    return (await auth.client.get(f"/api/v1/topics/{topic}", headers=bearer(token))).status_code


async def test_read_matrix(auth: Auth) -> None:
    """Who may GET which topic: owner, admin, grantee (private); anyone (public); not others."""
    p = await _setup(auth)
    expected = {
        ("owner", "private"): 200,
        ("grantee", "private"): 200,
        ("other", "private"): 403,
        ("owner", "public"): 200,
        ("grantee", "public"): 200,
        ("other", "public"): 200,
    }
    for (who, topic), status in expected.items():
        assert await _status(auth, p[who][1], topic) == status, (who, topic)
    for topic in ("private", "public"):
        assert await _status(auth, auth.admin_token, topic) == 200
    r = await auth.client.get("/api/v1/topics/private", headers=bearer(p["other"][1]))
    assert r.json() == {"detail": "Access denied to topic 'private'"}


async def test_grants_shown_only_to_managers(auth: Auth) -> None:
    """allowed_user_ids: the list for owner and admin, null for a grantee or a public reader."""
    p = await _setup(auth)
    grantee_id = p["grantee"][0]
    for token in (p["owner"][1], auth.admin_token):
        r = await auth.client.get("/api/v1/topics/private", headers=bearer(token))
        assert r.json()["allowed_user_ids"] == [grantee_id]
    r = await auth.client.get("/api/v1/topics/private", headers=bearer(p["grantee"][1]))
    assert r.json()["allowed_user_ids"] is None
    r = await auth.client.get("/api/v1/topics/public", headers=bearer(p["other"][1]))
    assert r.json()["allowed_user_ids"] is None


async def test_grantee_and_public_readers_cannot_manage(auth: Auth) -> None:
    """Grants are read-only and public means read-only: no update, delete or grant for non-owners."""
    p = await _setup(auth)
    for who, topic in (("grantee", "private"), ("other", "public"), ("grantee", "public")):
        h = bearer(p[who][1])
        assert (await auth.client.put(f"/api/v1/topics/{topic}", json={}, headers=h)).status_code == 403
        assert (await auth.client.delete(f"/api/v1/topics/{topic}", headers=h)).status_code == 403
        r = await auth.client.post(
            f"/api/v1/topics/{topic}/permissions", json={"username": "other"}, headers=h
        )
        assert r.status_code == 403


async def test_admin_manages_any_topic(auth: Auth) -> None:
    """The admin may update and delete a user's private topic."""
    await _setup(auth)
    h = bearer(auth.admin_token)
    r = await auth.client.put("/api/v1/topics/private", json={"description": "by admin"}, headers=h)
    assert r.status_code == 200
    assert (await auth.client.delete("/api/v1/topics/private", headers=h)).status_code == 204


async def test_list_shows_owned_and_granted_only(auth: Auth) -> None:
    """Lists: the owner sees both; the grantee sees the granted one; others see none (not even the
    public one); the admin sees only its own topics, as the reference does."""
    p = await _setup(auth)

    async def names(token: str) -> list[str]:
        r = await auth.client.get("/api/v1/topics", headers=bearer(token))
        assert r.status_code == 200
        return [t["topic_name"] for t in r.json()]

    assert await names(p["owner"][1]) == ["private", "public"]
    assert await names(p["grantee"][1]) == ["private"]
    assert await names(p["other"][1]) == []
    assert await names(auth.admin_token) == []
    r = await auth.client.get("/api/v1/topics", headers=bearer(p["grantee"][1]))
    assert r.json()[0]["allowed_user_ids"] is None


async def test_revoke_removes_access(auth: Auth) -> None:
    """After revocation the former grantee gets 403 and the topic leaves its list."""
    p = await _setup(auth)
    grantee_id, grantee = p["grantee"]
    r = await auth.client.delete(
        f"/api/v1/topics/private/permissions/{grantee_id}", headers=bearer(p["owner"][1])
    )
    assert r.status_code == 204
    assert await _status(auth, grantee, "private") == 403
    assert (await auth.client.get("/api/v1/topics", headers=bearer(grantee))).json() == []


async def test_making_a_topic_private_again_removes_public_reads(auth: Auth) -> None:
    """is_public false again: non-owners without a grant are denied once more."""
    p = await _setup(auth)
    assert await _status(auth, p["other"][1], "public") == 200
    await auth.client.put("/api/v1/topics/public", json={"is_public": False}, headers=bearer(p["owner"][1]))
    assert await _status(auth, p["other"][1], "public") == 403


async def test_inactive_and_deleted_users_lose_access(auth: Auth) -> None:
    """A deactivated owner gets 403 "User is inactive"; a deleted one 401 "User not found"."""
    p = await _setup(auth)
    owner_id, owner = p["owner"]
    admin = bearer(auth.admin_token)
    await auth.client.patch(f"/auth/users/{owner_id}", json={"is_active": False}, headers=admin)
    r = await auth.client.get("/api/v1/topics/private", headers=bearer(owner))
    assert (r.status_code, r.json()) == (403, {"detail": "User is inactive"})
    await auth.client.delete(f"/auth/users/{owner_id}", headers=admin)
    r = await auth.client.get("/api/v1/topics/private", headers=bearer(owner))
    assert (r.status_code, r.json()) == (401, {"detail": "User not found"})
