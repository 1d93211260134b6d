"""The verification page at /auth/device: signing in with a relay account, the session cookie,
security headers, CSRF and cross-site refusals."""

from __future__ import annotations

import httpx

from tests.device.conftest import PASSWORD, Person, Relay, hidden


async def test_page_asks_anonymous_visitors_to_sign_in(relay: Relay) -> None:
    """Without a session the page is a sign-in form that carries the user code along."""
    r = await relay.client.get("/auth/device", params={"user_code": "BCDF-GHJK"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert 'action="/auth/device/signin"' in r.text
    assert hidden(r.text, "next") == "/auth/device?user_code=BCDF-GHJK"
    assert "Sign in with" not in r.text  # no identity provider configured: no links


async def test_page_has_strict_security_headers(relay: Relay) -> None:
    """The page forbids scripts, framing and sniffing, and is never cached."""
    r = await relay.client.get("/auth/device")
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp
    assert "frame-ancestors 'none'" in csp and "form-action 'self'" in csp
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "same-origin"  # the user code never leaves the origin
    assert r.headers["cache-control"] == "no-store"
    assert "<script" not in r.text
    css = await relay.client.get("/auth/device/style.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


async def test_sign_in_sets_a_safe_cookie_and_returns_to_next(relay: Relay) -> None:
    """A right password gets a 303 back to the page and an HttpOnly, SameSite=Lax session cookie."""
    await relay.user("carol")
    who = Person(relay.url)
    relay.people.append(who)
    r = await who.sign_in("carol", next_path="/auth/device?user_code=BCDF-GHJK")
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/auth/device?user_code=BCDF-GHJK"
    cookie = r.headers["set-cookie"].lower()
    assert cookie.startswith("pulsar_relay_session=")
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/" in cookie
    assert "secure" not in cookie  # plain http here; https (or an https public_url) adds it
    page = await who.open()
    assert page.status_code == 200 and "Signed in as <strong>carol</strong>" in page.text
    assert 'name="user_code"' in page.text


async def test_secure_cookie_when_public_url_is_https(relay_factory) -> None:  # type: ignore[no-untyped-def]
    """Behind a TLS-terminating proxy (public_url https) the cookie is marked Secure."""
    relay = await relay_factory(public_url="https://relay.example.org")
    await relay.user("dora")
    who = Person(relay.url)
    relay.people.append(who)
    r = await who.sign_in("dora")
    assert r.status_code == 303
    assert "secure" in r.headers["set-cookie"].lower()


async def test_signing_in_again_ends_the_previous_session(relay: Relay) -> None:
    """A new sign-in replaces the browser's session: the old cookie value no longer works."""
    who = await relay.person("kay")
    old = who.client.cookies.get("pulsar_relay_session")
    r = await who.sign_in("kay")
    assert r.status_code == 303
    assert who.client.cookies.get("pulsar_relay_session") != old
    async with httpx.AsyncClient(base_url=relay.url, cookies={"pulsar_relay_session": old or ""}) as stale:
        assert 'action="/auth/device/signin"' in (await stale.get("/auth/device")).text


async def test_failed_sign_in_keeps_the_code(relay: Relay) -> None:
    """A wrong password shows the form again with the user code the person arrived with."""
    await relay.user("lia")
    who = Person(relay.url)
    relay.people.append(who)
    r = await who.sign_in("lia", "wrong-password", next_path="/auth/device?user_code=BCDF-GHJK")
    assert r.status_code == 401
    assert "BCDF-GHJK" in r.text and hidden(r.text, "next") == "/auth/device?user_code=BCDF-GHJK"


async def test_wrong_password_signs_nobody_in(relay: Relay) -> None:
    """A wrong password is 401 with the form again and no cookie."""
    await relay.user("erin")
    who = Person(relay.url)
    relay.people.append(who)
    r = await who.sign_in("erin", "wrong-password")
    assert r.status_code == 401
    assert "set-cookie" not in r.headers
    assert "Incorrect username or password" in r.text
    r = await who.sign_in("nobody-here", PASSWORD)
    assert r.status_code == 401


async def test_inactive_user_cannot_sign_in(relay: Relay) -> None:
    """A deactivated account is refused with 403 and gets no session."""
    user_id, _ = await relay.user("fay")
    await relay.client.patch(
        f"/auth/users/{user_id}",
        json={"is_active": False},
        headers={"Authorization": f"Bearer {relay.admin_token}"},
    )
    who = Person(relay.url)
    relay.people.append(who)
    r = await who.sign_in("fay")
    assert r.status_code == 403 and "set-cookie" not in r.headers


async def test_sign_in_from_another_site_is_refused(relay: Relay) -> None:
    """A sign-in form posted from another origin (login CSRF) is 403, even with the right password."""
    await relay.user("gail")
    async with httpx.AsyncClient(base_url=relay.url) as c:
        data = {"username": "gail", "password": PASSWORD}
        r = await c.post("/auth/device/signin", data=data, headers={"Origin": "https://evil.example"})
        assert r.status_code == 403 and "set-cookie" not in r.headers
        r = await c.post("/auth/device/signin", data=data, headers={"Sec-Fetch-Site": "cross-site"})
        assert r.status_code == 403 and "set-cookie" not in r.headers
        r = await c.post("/auth/device/signin", data=data, headers={"Sec-Fetch-Site": "same-site"})
        assert r.status_code == 403 and "set-cookie" not in r.headers
        r = await c.post("/auth/device/signin", data=data, headers={"Origin": "null"})
        assert r.status_code == 403 and "set-cookie" not in r.headers


async def test_browser_same_origin_post_with_opaque_origin_signs_in(relay: Relay) -> None:
    """A browser's own form post that says Sec-Fetch-Site: same-origin is accepted even when its
    Origin is "null" (what Chromium sends under a strict referrer policy)."""
    await relay.user("gwen")
    async with httpx.AsyncClient(base_url=relay.url) as c:
        data = {"username": "gwen", "password": PASSWORD}
        headers = {"Origin": "null", "Sec-Fetch-Site": "same-origin"}
        r = await c.post("/auth/device/signin", data=data, headers=headers)
        assert r.status_code == 303 and "set-cookie" in r.headers


async def test_next_must_be_a_local_path(relay: Relay) -> None:
    """next pointing elsewhere (absolute, scheme-relative, backslash tricks) returns to /auth/device."""
    await relay.user("hana")
    who = Person(relay.url)
    relay.people.append(who)
    for bad in (
        "https://evil.example/",
        "//evil.example/x",
        "/\\evil.example",
        "javascript:alert(1)",
        "auth/x",
    ):
        r = await who.sign_in("hana", next_path=bad)
        assert r.status_code == 303 and r.headers["location"] == "/auth/device", bad
    r = await who.sign_in("hana", next_path="/console/overview")
    assert r.headers["location"] == "/console/overview"


async def test_sign_out_needs_csrf_and_ends_the_session(relay: Relay) -> None:
    """Signing out without the page's CSRF token is 403; with it the session is gone."""
    who = await relay.person("ida")
    page = await who.open()
    r = await who.client.post("/auth/device/signout", data={"csrf_token": "forged"})
    assert r.status_code == 403
    assert "Signed in as" in (await who.open()).text
    cookie = who.client.cookies.get("pulsar_relay_session")
    r = await who.client.post("/auth/device/signout", data={"csrf_token": hidden(page.text, "csrf_token")})
    assert r.status_code == 303
    # The cookie is cleared, and the old value no longer works either.
    async with httpx.AsyncClient(base_url=relay.url, cookies={"pulsar_relay_session": cookie or ""}) as old:
        assert 'action="/auth/device/signin"' in (await old.get("/auth/device")).text


async def test_malformed_sign_in_forms_are_4xx(relay: Relay) -> None:
    """JSON instead of a form, files, repeated or oversized fields: 400, no session, never 500."""
    who = Person(relay.url)
    relay.people.append(who)
    c = who.client
    cases = [
        await c.post("/auth/device/signin", json={"username": "x", "password": "y"}),
        await c.post("/auth/device/signin", files={"username": ("a", b"x")}, data={"password": "y"}),
        await c.post(
            "/auth/device/signin",
            content=b"username=a&username=b&password=c",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ),
        await c.post("/auth/device/signin", data={"username": "x" * 5000, "password": "y"}),
        await c.post("/auth/device/signin", data={"username": "only-a-name"}),
    ]
    for r in cases:
        assert r.status_code == 400, r.text
        assert "set-cookie" not in r.headers
