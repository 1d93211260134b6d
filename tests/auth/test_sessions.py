"""Sign-in sessions over HTTP (CONTRACT decision 6, reference rows 6 and 8): listing and ending
one's own sessions, logout, revoking a refresh token, an admin ending another user's sessions, and
a password change, deactivation or deletion ending them all.  Bad input is a clear 4xx."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from auth.app import create_app
from relaycore.config import Settings
from tests.auth.conftest import Auth, auth_settings, bearer
from tests.support.serve import running

PASSWORD = "password123"


async def _sign_in(auth: Auth, username: str, agent: str = "test-agent/1") -> dict[str, str]:
    r = await auth.client.post(
        "/auth/login", data={"username": username, "password": PASSWORD}, headers={"User-Agent": agent}
    )
    assert r.status_code == 200, r.text
    body: dict[str, str] = r.json()
    return body


def _sid(tokens: dict[str, str]) -> str:
    return tokens["refresh_token"].split(".")[0]


async def _works(auth: Auth, tokens: dict[str, str]) -> bool:
    return (await auth.client.get("/auth/me", headers=bearer(tokens["access_token"]))).status_code == 200


async def _refreshes(auth: Auth, tokens: dict[str, str]) -> bool:
    r = await auth.client.post("/auth/token/refresh", json={"refresh_token": tokens["refresh_token"]})
    return r.status_code == 200


async def _revoked(auth: Auth, tokens: dict[str, str]) -> bool:
    r = await auth.client.get("/auth/me", headers=bearer(tokens["access_token"]))
    return r.status_code == 401 and r.json() == {"detail": "Token has been revoked"}


async def test_sessions_are_listed_with_the_reference_fields(auth: Auth) -> None:
    """GET /auth/sessions lists the caller's sessions: jti, issued_at, expires_at, last_used_at,
    client_hint (the login's User-Agent); another user's sessions are not in it."""
    await auth.user("alice")
    await auth.user("bob")
    a = await _sign_in(auth, "alice", "galaxy-handler/7")
    await _sign_in(auth, "bob")
    r = await auth.client.get("/auth/sessions", headers=bearer(a["access_token"]))
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    rows = r.json()
    assert len(rows) == 2  # auth.user() signed in once too
    mine = next(row for row in rows if row["jti"] == _sid(a))
    assert set(mine) == {"jti", "issued_at", "expires_at", "last_used_at", "client_hint"}
    assert mine["client_hint"] == "galaxy-handler/7" and mine["last_used_at"] is None
    assert mine["issued_at"].endswith("Z") and mine["expires_at"] > mine["issued_at"]


async def test_ending_own_session_stops_its_tokens_only(auth: Auth) -> None:
    """DELETE /auth/sessions/{jti} ends that session (access and refresh token) and no other."""
    await auth.user("alice")
    a, b = await _sign_in(auth, "alice"), await _sign_in(auth, "alice")
    r = await auth.client.delete(f"/auth/sessions/{_sid(a)}", headers=bearer(b["access_token"]))
    assert r.status_code == 204
    assert await _revoked(auth, a) and not await _refreshes(auth, a)
    assert await _works(auth, b) and await _refreshes(auth, b)


async def test_another_users_session_is_404_and_untouched(auth: Auth) -> None:
    """A session id of another user, or an unknown one, is 404 and nothing changes."""
    await auth.user("alice")
    await auth.user("mallory")
    a, m = await _sign_in(auth, "alice"), await _sign_in(auth, "mallory")
    for jti in (_sid(a), "0" * 32, "not-a-session"):
        r = await auth.client.delete(f"/auth/sessions/{jti}", headers=bearer(m["access_token"]))
        assert r.status_code == 404 and r.json() == {"detail": "Session not found"}
    assert await _works(auth, a) and await _refreshes(auth, a)


async def test_logout_ends_the_callers_session(auth: Auth) -> None:
    """POST /auth/logout is 204; that access token and its refresh token stop working, another
    session of the same user goes on; logging out twice is 401."""
    await auth.user("alice")
    a, b = await _sign_in(auth, "alice"), await _sign_in(auth, "alice")
    assert (await auth.client.post("/auth/logout", headers=bearer(a["access_token"]))).status_code == 204
    assert await _revoked(auth, a) and not await _refreshes(auth, a)
    assert await _works(auth, b)
    assert (await auth.client.post("/auth/logout", headers=bearer(a["access_token"]))).status_code == 401
    assert (await auth.client.post("/auth/logout")).status_code == 401


async def test_revoking_a_refresh_token_ends_its_session(auth: Auth) -> None:
    """POST /auth/token/revoke with the current refresh token is 204 and ends the session."""
    await auth.user("alice")
    a = await _sign_in(auth, "alice")
    r = await auth.client.post("/auth/token/revoke", json={"refresh_token": a["refresh_token"]})
    assert r.status_code == 204
    assert await _revoked(auth, a) and not await _refreshes(auth, a)


async def test_revoking_a_replaced_token_needs_revoke_chain(auth: Auth) -> None:
    """A replaced refresh token revokes nothing on its own; with revoke_chain it ends the session."""
    await auth.user("alice")
    first = await _sign_in(auth, "alice")
    r = await auth.client.post("/auth/token/refresh", json={"refresh_token": first["refresh_token"]})
    second = r.json()
    await auth.client.post("/auth/token/revoke", json={"refresh_token": first["refresh_token"]})
    assert await _works(auth, second)
    body = {"refresh_token": first["refresh_token"], "revoke_chain": True}
    assert (await auth.client.post("/auth/token/revoke", json=body)).status_code == 204
    assert await _revoked(auth, second)


async def test_revoke_does_not_tell_unknown_from_known(auth: Auth) -> None:
    """An unknown or wrong-secret token is answered 204 like a real one (no oracle) and ends nothing."""
    await auth.user("alice")
    a = await _sign_in(auth, "alice")
    wrong = _sid(a) + "." + "A" * 43
    for token in ("0" * 32 + "." + "A" * 43, wrong):
        r = await auth.client.post("/auth/token/revoke", json={"refresh_token": token})
        assert r.status_code == 204
    assert await _works(auth, a)


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        (b'{"refresh_token": "garbage"}', 400, "Malformed refresh token"),
        (b'{"refresh_token": ""}', 400, "Malformed refresh token"),
        (b"{}", 422, None),
        (b'{"refresh_token": "x", "revoke_chain": "yes"}', 422, None),
        (b"not json", 422, None),
        (b"", 422, None),
    ],
)
async def test_bad_revoke_bodies_are_4xx(auth: Auth, body: bytes, status: int, detail: str | None) -> None:
    """Malformed revoke requests get a 4xx with a reason, never 500."""
    r = await auth.client.post(
        "/auth/token/revoke", content=body, headers={"content-type": "application/json"}
    )
    assert r.status_code == status, r.text
    assert r.json()["detail"] == detail if detail else r.json()["detail"]


async def test_admin_lists_and_ends_another_users_sessions(auth: Auth) -> None:
    """An admin lists a user's sessions and ends one or all of them; a non-admin gets 403, an
    unknown user 404, a session of someone else 404."""
    alice_id, _ = await auth.user("alice")
    a, b = await _sign_in(auth, "alice"), await _sign_in(auth, "alice")
    admin = bearer(auth.admin_token)
    listed = await auth.client.get(f"/auth/users/{alice_id}/sessions", headers=admin)
    assert listed.status_code == 200 and {_sid(a), _sid(b)} <= {row["jti"] for row in listed.json()}
    assert (
        await auth.client.get(f"/auth/users/{alice_id}/sessions", headers=bearer(a["access_token"]))
    ).status_code == 403
    assert (await auth.client.get("/auth/users/nobody/sessions", headers=admin)).status_code == 404
    admin_sid = (await auth.client.get("/auth/sessions", headers=admin)).json()[0]["jti"]
    r = await auth.client.delete(f"/auth/users/{alice_id}/sessions/{admin_sid}", headers=admin)
    assert r.status_code == 404
    r = await auth.client.delete(f"/auth/users/{alice_id}/sessions/{_sid(a)}", headers=admin)
    assert r.status_code == 204
    assert await _revoked(auth, a) and await _works(auth, b)
    assert (await auth.client.delete(f"/auth/users/{alice_id}/sessions", headers=admin)).status_code == 204
    assert await _revoked(auth, b) and not await _refreshes(auth, b)
    assert (await auth.client.get(f"/auth/users/{alice_id}/sessions", headers=admin)).json() == []


@pytest.mark.parametrize(
    ("change", "status"),
    [
        pytest.param({"password": "a-new-password"}, 401, id="password"),
        pytest.param({"is_active": False}, 403, id="deactivate"),  # "User is inactive" (reference)
    ],
)
async def test_password_change_and_deactivation_end_every_session(
    auth: Auth, change: dict[str, object], status: int
) -> None:
    """PATCH with a new password or is_active=false ends all the user's sessions: access tokens
    and refresh tokens issued before stop working."""
    alice_id, _ = await auth.user("alice")
    a = await _sign_in(auth, "alice")
    r = await auth.client.patch(f"/auth/users/{alice_id}", json=change, headers=bearer(auth.admin_token))
    assert r.status_code == 200
    assert (await auth.client.get("/auth/me", headers=bearer(a["access_token"]))).status_code == status
    assert not await _refreshes(auth, a)
    if change.get("is_active") is False:  # reactivation does not revive what deactivation ended
        await auth.client.patch(
            f"/auth/users/{alice_id}", json={"is_active": True}, headers=bearer(auth.admin_token)
        )
        assert await _revoked(auth, a) and not await _refreshes(auth, a)


async def test_other_changes_keep_sessions(auth: Auth) -> None:
    """An email or permission change does not sign the user out."""
    alice_id, _ = await auth.user("alice")
    a = await _sign_in(auth, "alice")
    r = await auth.client.patch(
        f"/auth/users/{alice_id}",
        json={"email": "a@example.org", "permissions": ["read"]},
        headers=bearer(auth.admin_token),
    )
    assert r.status_code == 200
    assert await _works(auth, a) and await _refreshes(auth, a)


async def test_deleting_a_user_ends_their_sessions(auth: Auth) -> None:
    """After DELETE /auth/users/{id} the user's refresh tokens are refused."""
    alice_id, _ = await auth.user("alice")
    a = await _sign_in(auth, "alice")
    assert (
        await auth.client.delete(f"/auth/users/{alice_id}", headers=bearer(auth.admin_token))
    ).status_code == 204
    assert not await _refreshes(auth, a)


async def test_session_endpoints_need_a_token(auth: Auth) -> None:
    """Without a bearer token the session endpoints are 401."""
    async with httpx.AsyncClient(base_url=auth.url) as anonymous:
        assert (await anonymous.get("/auth/sessions")).status_code == 401
        assert (await anonymous.delete("/auth/sessions/" + "0" * 32)).status_code == 401


async def test_sessions_beyond_the_cap_end_least_recently_used_first(
    settings_factory: Callable[..., Settings],
) -> None:
    """With max_sessions_per_user = 3, a fourth login ends the least recently used session (not
    one refreshed a moment ago), and the user never has more than 3."""
    settings = auth_settings(settings_factory, max_sessions_per_user=3)
    async with running(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as client:
        auth = Auth(url, client, settings)
        auth.admin_token = await auth.token("admin", "admin1234")
        await auth.user("alice")  # its login is alice's first session
        first, second = await _sign_in(auth, "alice"), await _sign_in(auth, "alice")
        r = await client.post("/auth/token/refresh", json={"refresh_token": first["refresh_token"]})
        assert r.status_code == 200
        refreshed = r.json()
        third = await _sign_in(auth, "alice")  # the 4th: the auth.user() login goes
        rows = (await client.get("/auth/sessions", headers=bearer(third["access_token"]))).json()
        assert {row["jti"] for row in rows} == {_sid(first), _sid(second), _sid(third)}
        fourth = await _sign_in(auth, "alice")  # now `second` is the least recently used
        assert await _revoked(auth, second)
        assert await _works(auth, refreshed) and await _works(auth, third) and await _works(auth, fourth)
