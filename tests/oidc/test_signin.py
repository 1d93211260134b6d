"""Sign-in through a real OpenID Connect provider: users created, found again, linked, and every
kind of bad callback refused with a clear 4xx, nothing changed."""

from __future__ import annotations

import asyncio
import re
from html import unescape
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from tests.auth.conftest import bearer
from tests.device.conftest import hidden
from tests.oidc.conftest import OidcRelay


async def users(oidc: OidcRelay) -> dict[str, dict[str, object]]:
    r = await oidc.client.get("/auth/users", headers=bearer(oidc.relay.admin_token))
    assert r.status_code == 200, r.text
    return {u["username"]: u for u in r.json()}


async def web_user(oidc: OidcRelay, who: httpx.AsyncClient) -> str | None:
    r = await who.get("/auth/web/session")
    assert r.status_code == 200, r.text
    name: str | None = r.json()["username"]
    return name


async def test_providers_are_listed(oidc: OidcRelay) -> None:
    """GET /auth/oidc/providers names each provider with its display name and login URL."""
    r = await oidc.client.get("/auth/oidc/providers")
    assert r.status_code == 200
    assert r.json() == [{"name": "test", "display_name": "Test IdP", "login_url": "/auth/oidc/test/login"}]


async def test_login_redirects_with_pkce_state_and_nonce(oidc: OidcRelay) -> None:
    """The login redirect carries an S256 code challenge, a state and a nonce, and no secret."""
    url = await oidc.start(oidc.browser())
    query = dict(parse_qsl(urlsplit(url).query))
    assert url.startswith(oidc.idp.issuer + "/auth?")
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert len(query["state"]) >= 43 and len(query["nonce"]) >= 43
    assert query["redirect_uri"] == f"{oidc.relay.url}/auth/oidc/test/callback"
    assert query["scope"] == "openid profile email"
    assert "client_secret" not in url and "relay-client-secret" not in url


async def test_first_sign_in_creates_the_user_with_the_default_permissions(oidc: OidcRelay) -> None:
    """A first sign-in creates a user named by preferred_username, with the provider's defaults."""
    who = oidc.browser()
    r = await oidc.sign_in("carol", who)
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/auth/device"
    cookie = r.headers["set-cookie"]
    assert "pulsar_relay_session=" in cookie and "HttpOnly" in cookie and "samesite=lax" in cookie.lower()
    carol = (await users(oidc))["carol"]
    assert carol["permissions"] == ["read", "write"] and carol["email"] == "carol@example.org"
    assert await web_user(oidc, who) == "carol"
    r = await oidc.client.get(
        f"/auth/users/{carol['user_id']}/identities", headers=bearer(oidc.relay.admin_token)
    )
    assert r.json() == [{"provider": "test", "issuer": oidc.idp.issuer, "subject": "id-carol"}]
    # no password was set: the local sign-in cannot be used for this account
    assert (await oidc.relay.login("carol", "")).status_code == 422


async def test_second_sign_in_is_the_same_user(oidc: OidcRelay) -> None:
    """Signing in again with the same identity reaches the same user; nothing new is created."""
    assert (await oidc.sign_in("dora")).status_code == 303
    before = await users(oidc)
    who = oidc.browser()
    assert (await oidc.sign_in("dora", who)).status_code == 303
    assert await users(oidc) == before
    assert await web_user(oidc, who) == "dora"


async def test_email_names_the_user_without_preferred_username(oidc: OidcRelay) -> None:
    """With no preferred_username, the e-mail address is the username."""
    assert (await oidc.sign_in("frank@example.net")).status_code == 303
    assert "frank@example.net" in await users(oidc)


async def test_next_must_be_a_local_path(oidc: OidcRelay) -> None:
    """next is followed when it is a same-origin path, else the sign-in ends at /auth/device."""
    r = await oidc.sign_in("gina", next_path="/console/login?from=oidc")
    assert r.headers["location"] == "/console/login?from=oidc"
    for bad in ("//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:alert(1)"):
        r = await oidc.sign_in("gina", next_path=bad)
        assert (r.status_code, r.headers["location"]) == (303, "/auth/device"), bad


async def test_collision_with_a_local_user_is_refused(oidc: OidcRelay) -> None:
    """An identity whose username a local account holds is refused with 409; nothing merged."""
    await oidc.relay.user("hank")
    before = await users(oidc)
    who = oidc.browser()
    r = await oidc.sign_in("hank", who)
    assert r.status_code == 409
    assert "already exists" in r.json()["detail"] and "administrator must link" in r.json()["detail"]
    assert "set-cookie" not in r.headers
    assert await users(oidc) == before
    r = await oidc.client.get(
        f"/auth/users/{before['hank']['user_id']}/identities", headers=bearer(oidc.relay.admin_token)
    )
    assert r.json() == []
    assert await web_user(oidc, who) is None
    # a browser asking for HTML gets the same refusal as a page
    page = oidc.browser()
    page.headers["Accept"] = "text/html,application/xhtml+xml"
    r = await oidc.sign_in("hank", page)
    assert r.status_code == 409 and r.headers["content-type"].startswith("text/html")
    assert "administrator must link" in unescape(r.text)


async def test_admin_link_then_sign_in_reaches_the_linked_user(oidc: OidcRelay) -> None:
    """After an admin links the identity to a local user, signing in reaches that user."""
    erin_id, _ = await oidc.relay.user("erin", permissions=("read",))
    admin = bearer(oidc.relay.admin_token)
    link = {"provider": "test", "subject": "id-erin"}
    r = await oidc.client.post(f"/auth/users/{erin_id}/identities", json=link, headers=admin)
    assert r.status_code == 201, r.text
    assert r.json() == {"provider": "test", "issuer": oidc.idp.issuer, "subject": "id-erin"}
    who = oidc.browser()
    assert (await oidc.sign_in("erin", who)).status_code == 303
    assert await web_user(oidc, who) == "erin"
    assert set(await users(oidc)) == {"admin", "erin"}
    # the same identity cannot be linked to a second user
    other_id, _ = await oidc.relay.user("other")
    r = await oidc.client.post(f"/auth/users/{other_id}/identities", json=link, headers=admin)
    assert r.status_code == 409 and erin_id in r.json()["detail"]
    # unlinked, it is an unlinked identity again: the name collides
    r = await oidc.client.delete(f"/auth/users/{erin_id}/identities/test/id-erin", headers=admin)
    assert r.status_code == 204
    assert (await oidc.sign_in("erin")).status_code == 409
    r = await oidc.client.delete(f"/auth/users/{erin_id}/identities/test/id-erin", headers=admin)
    assert r.status_code == 404


async def test_identity_admin_api_refuses_bad_input(oidc: OidcRelay) -> None:
    """The identities API: 401/403 without admin, 404 unknown user, 400 unknown provider, 422 body."""
    user_id, token = await oidc.relay.user("ivy")
    admin = bearer(oidc.relay.admin_token)
    path = f"/auth/users/{user_id}/identities"
    assert (await oidc.client.get(path)).status_code == 401
    assert (await oidc.client.get(path, headers=bearer(token))).status_code == 403
    assert (await oidc.client.get("/auth/users/nobody/identities", headers=admin)).status_code == 404
    r = await oidc.client.post(path, json={"provider": "nope", "subject": "x"}, headers=admin)
    assert r.status_code == 400 and "nope" in r.json()["detail"]
    r = await oidc.client.post(
        "/auth/users/nobody/identities", json={"provider": "test", "subject": "x"}, headers=admin
    )
    assert r.status_code == 404
    assert (await oidc.client.post(path, json={"provider": "test"}, headers=admin)).status_code == 422
    r = await oidc.client.post(path, json={"provider": "test", "subject": "a\nb"}, headers=admin)
    assert r.status_code == 400
    assert (await oidc.client.post(path, content=b"{", headers=admin)).status_code in (400, 422)
    assert (await oidc.client.get(path, headers=admin)).json() == []


async def test_a_provider_that_may_not_create_users_needs_a_link(oidc_factory, idp) -> None:
    """With create_users false, an unlinked identity is refused (403) and nobody is created."""
    from tests.oidc.conftest import provider_config

    oidc = await oidc_factory([provider_config(idp, create_users=False)])
    r = await oidc.sign_in("jack")
    assert r.status_code == 403 and "administrator must link" in r.json()["detail"]
    assert set(await users(oidc)) == {"admin"}


async def test_forged_or_missing_state_is_refused(oidc: OidcRelay) -> None:
    """A callback whose state the relay never issued, or without one, is a 400."""
    who = oidc.browser()
    for params in ({"state": "forged", "code": "x"}, {"code": "x"}, {"state": "ü" * 10, "code": "x"}, {}):
        r = await who.get("/auth/oidc/test/callback", params=params)
        assert r.status_code == 400, (params, r.text)
        assert "state" in r.json()["detail"]


async def test_replayed_callback_is_refused(oidc: OidcRelay) -> None:
    """A callback URL works once: the state is taken at the first use."""
    who = oidc.browser()
    back = await oidc.idp.approve(await oidc.start(who), "kate")
    assert (await oidc.callback(who, back)).status_code == 303
    again = oidc.browser()
    r = await oidc.callback(again, back)
    assert r.status_code == 400 and "already used" in r.json()["detail"]
    assert await web_user(oidc, again) is None


async def test_callback_in_another_browser_is_refused(oidc: OidcRelay) -> None:
    """A callback URL opened in another browser than the one that started the sign-in (someone
    sending a victim their own callback link) signs nobody in: 400, no user, no session."""
    attacker, victim = oidc.browser(), oidc.browser()
    login = await attacker.get("/auth/oidc/test/login")
    cookie = login.headers["set-cookie"]
    assert "pulsar_relay_oidc=" in cookie and "HttpOnly" in cookie and "Path=/auth/oidc/" in cookie
    back = await oidc.idp.approve(login.headers["location"], "mallory")
    r = await oidc.callback(victim, back)
    assert r.status_code == 400 and "another browser" in r.json()["detail"]
    assert await web_user(oidc, victim) is None
    assert set(await users(oidc)) == {"admin"}


async def test_callback_to_the_wrong_provider_is_refused(oidc_factory, idp) -> None:
    """A state started with one provider does not complete at another's callback."""
    from tests.oidc.conftest import provider_config

    oidc = await oidc_factory([provider_config(idp), provider_config(idp, name="other", client_id="other")])
    who = oidc.browser()
    back = await oidc.idp.approve(await oidc.start(who), "liam")
    parts = urlsplit(back)
    r = await who.get("/auth/oidc/other/callback", params=dict(parse_qsl(parts.query)))
    assert r.status_code == 400 and "another identity provider" in r.json()["detail"]


async def test_wrong_nonce_is_refused(oidc: OidcRelay) -> None:
    """An ID token minted for another nonce than the sign-in's is refused; nobody is created."""
    who = oidc.browser()
    url = urlsplit(await oidc.start(who))
    query = dict(parse_qsl(url.query)) | {"nonce": "not-the-relays-nonce"}
    back = await oidc.idp.approve(urlunsplit(url._replace(query=urlencode(query))), "mia")
    r = await oidc.callback(who, back)
    assert r.status_code == 400 and "nonce" in r.json()["detail"]
    assert set(await users(oidc)) == {"admin"}


async def test_bad_code_is_refused(oidc: OidcRelay) -> None:
    """A callback with a code the provider never issued is a 400 naming the provider's refusal."""
    who = oidc.browser()
    back = urlsplit(await oidc.idp.approve(await oidc.start(who), "nina"))
    query = dict(parse_qsl(back.query)) | {"code": "made-up-code"}
    r = await who.get(back.path, params=query)
    assert r.status_code == 400 and "invalid_grant" in r.json()["detail"]


async def test_refusal_at_the_provider_is_a_403(oidc: OidcRelay) -> None:
    """A person who cancels at the provider comes back to a 403 naming the provider's error."""
    who = oidc.browser()
    back = await oidc.idp.approve(await oidc.start(who), "", refuse=True)
    r = await oidc.callback(who, back)
    assert r.status_code == 403 and "access_denied" in r.json()["detail"]


async def test_unknown_provider_is_a_404(oidc: OidcRelay) -> None:
    """Login and callback of a provider that is not configured answer 404."""
    who = oidc.browser()
    assert (await who.get("/auth/oidc/nope/login")).status_code == 404
    r = await who.get("/auth/oidc/nope/callback", params={"state": "x", "code": "y"})
    assert r.status_code == 404 and "nope" in r.json()["detail"]


async def test_inactive_user_cannot_sign_in(oidc: OidcRelay) -> None:
    """A linked user who has been deactivated is refused (403) and gets no session."""
    assert (await oidc.sign_in("olga")).status_code == 303
    olga = (await users(oidc))["olga"]
    r = await oidc.client.patch(
        f"/auth/users/{olga['user_id']}", json={"is_active": False}, headers=bearer(oidc.relay.admin_token)
    )
    assert r.status_code == 200
    r = await oidc.sign_in("olga")
    assert r.status_code == 403 and "set-cookie" not in r.headers


async def test_deleting_a_user_forgets_its_identities(oidc: OidcRelay) -> None:
    """A deleted user's identity is free again: the next sign-in creates a new user."""
    assert (await oidc.sign_in("pete")).status_code == 303
    first = (await users(oidc))["pete"]["user_id"]
    r = await oidc.client.delete(f"/auth/users/{first}", headers=bearer(oidc.relay.admin_token))
    assert r.status_code == 204
    assert (await oidc.sign_in("pete")).status_code == 303
    assert (await users(oidc))["pete"]["user_id"] != first


async def test_device_approved_after_an_oidc_sign_in(oidc: OidcRelay) -> None:
    """The verification page offers the provider; signed in through it, the person approves a
    device code and the device gets tokens for the OIDC user."""
    code = await oidc.relay.code(client_hint="laptop")
    who = oidc.browser()
    page = await who.get("/auth/device", params={"user_code": code["user_code"]})
    assert page.status_code == 200
    link = re.search(r'<a href="([^"]+)">Sign in with Test IdP</a>', page.text)
    assert link, page.text
    r = await who.get(unescape(link.group(1)))
    assert r.status_code == 302
    back = await oidc.idp.approve(r.headers["location"], "quinn")
    r = await oidc.callback(who, back)
    assert r.status_code == 303 and r.headers["location"].startswith("/auth/device?user_code=")
    page = await who.get(r.headers["location"])
    assert page.status_code == 200 and "quinn" in page.text
    form = {"user_code": hidden(page.text, "user_code"), "csrf_token": hidden(page.text, "csrf_token")}
    r = await who.post("/auth/device/approve", data=form)
    assert r.status_code == 200, r.text
    r = await oidc.relay.poll(code["device_code"])
    assert r.status_code == 200, r.text
    me = await oidc.client.get("/auth/me", headers=bearer(r.json()["access_token"]))
    assert me.json()["username"] == "quinn"


async def test_console_token_from_the_browser_session(oidc: OidcRelay) -> None:
    """POST /auth/web/token trades the session cookie plus its CSRF header for an access token."""
    who = oidc.browser()
    assert (await who.post("/auth/web/token")).status_code == 401
    assert (await who.get("/auth/web/session")).json() == {
        "signed_in": False,
        "username": None,
        "csrf_token": None,
    }
    assert (await oidc.sign_in("rose", who)).status_code == 303
    session = (await who.get("/auth/web/session")).json()
    assert session["signed_in"] and session["username"] == "rose"
    assert (await who.post("/auth/web/token")).status_code == 403
    r = await who.post("/auth/web/token", headers={"X-CSRF-Token": "0" * 64})
    assert r.status_code == 403
    r = await who.post(
        "/auth/web/token", headers={"X-CSRF-Token": session["csrf_token"], "Origin": "https://evil.example"}
    )
    assert r.status_code == 403
    r = await who.post("/auth/web/token", headers={"X-CSRF-Token": session["csrf_token"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["refresh_token"] is None and body["token_type"] == "bearer"
    me = await oidc.client.get("/auth/me", headers=bearer(body["access_token"]))
    assert me.json()["username"] == "rose"
    # traded, the browser session is over: nothing is left signed in in this browser
    assert (await who.get("/auth/web/session")).json()["signed_in"] is False
    r = await who.post("/auth/web/token", headers={"X-CSRF-Token": session["csrf_token"]})
    assert r.status_code == 401


async def test_sign_ins_started_per_address_are_limited(oidc_factory) -> None:
    """Past oidc_login_rate_limit sign-ins from one address, login answers 429 with Retry-After
    (JSON, or a page for a browser), and stores nothing more."""
    oidc = await oidc_factory(oidc_login_rate_limit=3)
    who = oidc.browser()
    for _ in range(3):
        assert (await who.get("/auth/oidc/test/login")).status_code == 302
    r = await who.get("/auth/oidc/test/login")
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert "Too many sign-ins started" in r.json()["detail"]
    r = await who.get("/auth/oidc/test/login", headers={"Accept": "text/html"})
    assert r.status_code == 429 and "Retry-After" in r.headers and "Too many sign-ins" in r.text


async def test_concurrent_first_sign_ins_make_one_user(oidc: OidcRelay) -> None:
    """Two first sign-ins of one identity completing at once end in the same, single user."""
    a, b = oidc.browser(), oidc.browser()
    back_a = await oidc.idp.approve(await oidc.start(a), "tom")
    back_b = await oidc.idp.approve(await oidc.start(b), "tom")
    ra, rb = await asyncio.gather(oidc.callback(a, back_a), oidc.callback(b, back_b))
    assert (ra.status_code, rb.status_code) == (303, 303), (ra.text, rb.text)
    assert await web_user(oidc, a) == await web_user(oidc, b) == "tom"
    assert set(await users(oidc)) == {"admin", "tom"}
