"""Refresh tokens over HTTP (CONTRACT decision 6, reference row 6): login returns one, refresh
rotates it atomically, a replayed one ends its session, and bad input is a clear 4xx."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from auth.app import create_app
from relaycore.config import Settings
from tests.auth.conftest import ADMIN, Auth, auth_settings, bearer
from tests.support.serve import running


async def _login(auth: Auth, username: str = ADMIN[0], password: str = ADMIN[1]) -> dict[str, object]:
    r = await auth.login(username, password)
    assert r.status_code == 200, r.text
    body: dict[str, object] = r.json()
    return body


async def _refresh(auth: Auth, token: object):
    return await auth.client.post("/auth/token/refresh", json={"refresh_token": token})


async def test_login_returns_a_refresh_token_and_null_secondary(auth: Auth) -> None:
    """The login body carries refresh_token (a string) and refresh_token_secondary: null."""
    body = await _login(auth)
    assert isinstance(body["refresh_token"], str) and body["refresh_token"]
    assert "refresh_token_secondary" in body and body["refresh_token_secondary"] is None
    assert body["token_type"] == "bearer" and body["expires_in"] == auth.settings.access_token_expire_seconds


async def test_refresh_rotates_both_tokens(auth: Auth) -> None:
    """A refresh returns a working access token and a different refresh token, which refreshes
    again; the response is not cacheable."""
    first = await _login(auth)
    r = await _refresh(auth, first["refresh_token"])
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    second = r.json()
    assert second["refresh_token"] != first["refresh_token"] and second["refresh_token_secondary"] is None
    me = await auth.client.get("/auth/me", headers=bearer(second["access_token"]))
    assert me.status_code == 200 and me.json()["username"] == ADMIN[0]
    assert (await _refresh(auth, second["refresh_token"])).status_code == 200


@pytest.fixture
async def no_grace(settings_factory: Callable[..., Settings]) -> AsyncIterator[Auth]:
    """The auth service with no reuse grace: any repeat of a replaced token is theft."""
    settings = auth_settings(settings_factory, refresh_token_reuse_grace=0)
    async with running(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as client:
        yield Auth(url, client, settings)


async def test_replayed_refresh_token_ends_the_session(no_grace: Auth) -> None:
    """Presenting a rotated refresh token again is 401 and ends the session: the newest refresh
    token and the access tokens of the session stop working too."""
    first = await _login(no_grace)
    second = (await _refresh(no_grace, first["refresh_token"])).json()
    assert (await no_grace.client.get("/auth/me", headers=bearer(second["access_token"]))).status_code == 200
    r = await _refresh(no_grace, first["refresh_token"])
    assert r.status_code == 401 and r.json() == {"detail": "Invalid refresh token"}
    assert (await _refresh(no_grace, second["refresh_token"])).status_code == 401
    for token in (first["access_token"], second["access_token"]):
        me = await no_grace.client.get("/auth/me", headers=bearer(str(token)))
        assert me.status_code == 401 and me.json() == {"detail": "Token has been revoked"}


async def test_racing_repeat_within_grace_keeps_the_session(auth: Auth) -> None:
    """Within the reuse grace, a repeat of the just-replaced token is 401 but the session and
    the winner's tokens keep working (two handlers racing do not log each other out)."""
    first = await _login(auth)
    second = (await _refresh(auth, first["refresh_token"])).json()
    assert (await _refresh(auth, first["refresh_token"])).status_code == 401
    assert (await auth.client.get("/auth/me", headers=bearer(second["access_token"]))).status_code == 200
    assert (await _refresh(auth, second["refresh_token"])).status_code == 200


async def test_concurrent_refreshes_have_one_winner(auth: Auth) -> None:
    """Ten refreshes of one token at once: exactly one 200, the rest 401, and the winner's new
    tokens keep working."""
    first = await _login(auth)
    responses = await asyncio.gather(*(_refresh(auth, first["refresh_token"]) for _ in range(10)))
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] + [401] * 9, codes
    winner = next(r for r in responses if r.status_code == 200).json()
    assert (await auth.client.get("/auth/me", headers=bearer(winner["access_token"]))).status_code == 200
    assert (await _refresh(auth, winner["refresh_token"])).status_code == 200


@pytest.mark.parametrize(
    "token",
    [
        "",
        "garbage",
        "0" * 32,
        "0" * 32 + "." + "A" * 43,  # well-formed, unknown session
        "not-hex-" * 4 + "." + "A" * 43,
    ],
)
async def test_bad_refresh_tokens_are_401(auth: Auth, token: str) -> None:
    """Malformed, truncated or unknown refresh tokens get 401 with a reason, never 500."""
    r = await _refresh(auth, token)
    assert r.status_code == 401 and r.json() == {"detail": "Invalid refresh token"}


async def test_tampered_and_truncated_tokens_change_nothing(auth: Auth) -> None:
    """A token with a changed or cut secret is 401 and the genuine one still refreshes."""
    wire = str((await _login(auth))["refresh_token"])
    flipped = wire[:-1] + ("A" if wire[-1] != "A" else "B")
    for bad in (flipped, wire[:-5], wire + "x", wire.upper()):
        assert (await _refresh(auth, bad)).status_code == 401
    assert (await _refresh(auth, wire)).status_code == 200


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"", 422),
        (b"{not json", 422),
        (b"[]", 422),
        (b'{"refresh_token": 5}', 422),
        (b"{}", 422),
        (b'{"refresh_token": "' + b"a" * 600 + b'"}', 422),
    ],
)
async def test_malformed_refresh_bodies_are_4xx(auth: Auth, body: bytes, status: int) -> None:
    """Bodies that are not {refresh_token: string} get a 4xx with a reason, never 500."""
    r = await auth.client.post(
        "/auth/token/refresh", content=body, headers={"content-type": "application/json"}
    )
    assert r.status_code == status, r.text
    assert r.json()["detail"]
