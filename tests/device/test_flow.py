"""The RFC 8628 device flow over HTTP: /auth/device/code, approval or denial at the page, and
/auth/device/token's answers (authorization_pending, slow_down, access_denied, expired_token,
invalid_grant, unsupported_grant_type, invalid_request)."""

from __future__ import annotations

import asyncio
import re

import httpx

from tests.auth.conftest import bearer
from tests.device.conftest import Person, Relay, hidden

GRANT = "urn:ietf:params:oauth:grant-type:device_code"


async def test_code_response_has_the_rfc_8628_shape(relay: Relay) -> None:
    """POST /auth/device/code answers every field the client reads, with a typeable user code."""
    body = await relay.code(client_hint="pulsar on host-1")
    assert set(body) == {
        "device_code",
        "user_code",
        "verification_uri",
        "verification_uri_complete",
        "expires_in",
        "interval",
    }
    assert re.fullmatch(r"[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}", body["user_code"])
    assert body["verification_uri"] == f"{relay.url}/auth/device"
    assert body["verification_uri_complete"] == f"{relay.url}/auth/device?user_code={body['user_code']}"
    assert body["expires_in"] == 600 and body["interval"] == 1
    assert len(body["device_code"]) >= 40


async def test_public_url_names_the_verification_uri(relay_factory) -> None:  # type: ignore[no-untyped-def]
    """With public_url set, the links handed out use it, not the request's Host."""
    relay = await relay_factory(public_url="https://relay.example.org")
    body = await relay.code()
    assert body["verification_uri"] == "https://relay.example.org/auth/device"


async def test_approved_code_yields_tokens_once(relay: Relay) -> None:
    """Pending until approved; then a token that works as the approver; then invalid_grant."""
    who = await relay.person("ann")
    body = await relay.code(client_hint="ann's laptop")
    r = await relay.poll(body["device_code"])
    assert r.status_code == 400 and r.json()["error"] == "authorization_pending"
    page = await who.open(body["user_code"])
    assert "ann&#x27;s laptop" in page.text and "Approve" in page.text
    r = await who.decide(body["user_code"])
    assert r.status_code == 200 and "Device approved" in r.text
    await asyncio.sleep(1.0)
    r = await relay.poll(body["device_code"])
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    tokens = r.json()
    assert tokens["token_type"] == "bearer" and tokens["expires_in"] > 0
    me = await relay.client.get("/auth/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert me.status_code == 200 and me.json()["username"] == "ann"
    await asyncio.sleep(1.0)
    r = await relay.poll(body["device_code"])
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


async def test_metrics_count_the_flow(relay: Relay) -> None:
    """relay_device_flow_total counts issued, approved, pending, exchanged and failed look-ups."""

    def count(text: str, event: str) -> float:
        found = re.search(rf'^relay_device_flow_total{{event="{event}"}} ([0-9.e+]+)$', text, re.M)
        return float(found.group(1)) if found else 0.0

    before = (await relay.client.get("/metrics")).text
    who = await relay.person("mia")
    body = await relay.code()
    await relay.poll(body["device_code"])
    await who.open("BBBB-BBBB")
    await who.decide(body["user_code"])
    await asyncio.sleep(1.0)
    assert (await relay.poll(body["device_code"])).status_code == 200
    after = (await relay.client.get("/metrics")).text
    for event in ("issued", "approved", "pending", "exchanged", "lookup_failed"):
        assert count(after, event) - count(before, event) == 1, event


async def test_approver_deactivated_before_exchange_gets_nothing(relay: Relay) -> None:
    """If the approving user is deactivated before the device polls, the device hears access_denied
    and no session is created."""
    who = await relay.person("nia")
    user_id = (await relay.client.get("/auth/users", headers=bearer(relay.admin_token))).json()
    nia = next(u["user_id"] for u in user_id if u["username"] == "nia")
    body = await relay.code()
    await who.decide(body["user_code"])
    r = await relay.client.patch(
        f"/auth/users/{nia}", json={"is_active": False}, headers=bearer(relay.admin_token)
    )
    assert r.status_code == 200
    r = await relay.poll(body["device_code"])
    assert r.status_code == 400 and r.json()["error"] == "access_denied"


async def test_typed_code_is_forgiving(relay: Relay) -> None:
    """Lower case, spaces and a missing dash still find the code."""
    who = await relay.person("ben")
    body = await relay.code()
    typed = body["user_code"].replace("-", " ").lower()
    page = await who.open(typed)
    assert page.status_code == 200 and hidden(page.text, "user_code") == body["user_code"]


async def test_denied_code_answers_access_denied(relay: Relay) -> None:
    """Deny at the page: the device hears access_denied, and the code cannot be approved after."""
    who = await relay.person("cat")
    body = await relay.code()
    r = await who.decide(body["user_code"], approve=False)
    assert r.status_code == 200 and "denied" in r.text
    r = await relay.poll(body["device_code"])
    assert r.status_code == 400 and r.json()["error"] == "access_denied"
    page = await who.open(body["user_code"])
    assert page.status_code == 404  # decided: no longer offered for approval


async def test_polling_faster_than_interval_is_slow_down(relay: Relay) -> None:
    """A poll sooner than interval gets slow_down and raises the interval by 5 seconds."""
    body = await relay.code()
    assert (await relay.poll(body["device_code"])).json()["error"] == "authorization_pending"
    r = await relay.poll(body["device_code"])
    assert r.status_code == 400 and r.json()["error"] == "slow_down"
    await asyncio.sleep(1.1)  # the old interval is no longer enough: it is 6 s now
    assert (await relay.poll(body["device_code"])).json()["error"] == "slow_down"


async def test_expired_code_answers_expired_token(relay_factory) -> None:  # type: ignore[no-untyped-def]
    """After device_code_lifetime the device hears expired_token and the page refuses the code."""
    relay = await relay_factory(device_code_lifetime=1.0)
    who = await relay.person("dan")
    body = await relay.code()
    await asyncio.sleep(1.2)
    r = await relay.poll(body["device_code"])
    assert r.status_code == 400 and r.json()["error"] == "expired_token"
    assert (await who.open(body["user_code"])).status_code == 404


async def test_pair_issues_two_independent_refresh_chains(relay: Relay) -> None:
    """pair=true: refresh_token and refresh_token_secondary are different sessions of the approver;
    rotating one leaves the other working, and both show in GET /auth/sessions."""
    who = await relay.person("eve")
    body = await relay.code(client_hint="byoc", pair="true")
    page = await who.open(body["user_code"])
    assert "second, separate session" in page.text
    await who.decide(body["user_code"])
    r = await relay.poll(body["device_code"])
    assert r.status_code == 200, r.text
    tokens = r.json()
    primary, secondary = tokens["refresh_token"], tokens["refresh_token_secondary"]
    assert primary and secondary and primary != secondary
    assert primary.split(".")[0] != secondary.split(".")[0]  # two sessions, not one
    rotated = await relay.client.post("/auth/token/refresh", json={"refresh_token": primary})
    assert rotated.status_code == 200, rotated.text
    other = await relay.client.post("/auth/token/refresh", json={"refresh_token": secondary})
    assert other.status_code == 200, other.text
    me = await relay.client.get("/auth/me", headers=bearer(other.json()["access_token"]))
    assert me.json()["username"] == "eve"
    sessions = await relay.client.get("/auth/sessions", headers=bearer(rotated.json()["access_token"]))
    hints = sorted(s.get("client_hint") for s in sessions.json())
    assert hints == ["byoc", "byoc (paired)"], sessions.text


async def test_unpaired_answer_has_a_refresh_token_and_null_secondary(relay: Relay) -> None:
    """Without pair the answer is login's TokenResponse: a refresh token, secondary null."""
    who = await relay.person("ezra")
    body = await relay.code(client_hint="solo")
    await who.decide(body["user_code"])
    tokens = (await relay.poll(body["device_code"])).json()
    assert tokens["refresh_token"] and tokens["refresh_token_secondary"] is None


async def test_approval_needs_session_and_csrf(relay: Relay) -> None:
    """Approve/deny without a session is 401, with a wrong CSRF token or from another site 403;
    the code stays pending in every case."""
    who = await relay.person("fox")
    body = await relay.code()
    page = await who.open(body["user_code"])
    csrf = hidden(page.text, "csrf_token")
    code = body["user_code"]
    async with httpx.AsyncClient(base_url=relay.url) as anonymous:
        for action in ("approve", "deny"):
            r = await anonymous.post(f"/auth/device/{action}", data={"user_code": code, "csrf_token": csrf})
            assert r.status_code == 401
    for action in ("approve", "deny"):
        r = await who.client.post(f"/auth/device/{action}", data={"user_code": code, "csrf_token": "x" * 64})
        assert r.status_code == 403
        r = await who.client.post(f"/auth/device/{action}", data={"user_code": code})
        assert r.status_code == 403
        r = await who.client.post(
            f"/auth/device/{action}",
            data={"user_code": code, "csrf_token": csrf},
            headers={"Origin": "https://evil.example"},
        )
        assert r.status_code == 403
    # Another person's CSRF token does not work with this person's session either.
    other = await relay.person("gus")
    r = await other.client.post("/auth/device/approve", data={"user_code": code, "csrf_token": csrf})
    assert r.status_code == 403
    assert (await relay.poll(body["device_code"])).json()["error"] == "authorization_pending"


async def test_second_decision_is_refused(relay: Relay) -> None:
    """Once approved, a replayed approve or a deny of the same code is 404 and changes nothing."""
    who = await relay.person("hal")
    body = await relay.code()
    page = await who.open(body["user_code"])
    form = {"user_code": body["user_code"], "csrf_token": hidden(page.text, "csrf_token")}
    assert (await who.client.post("/auth/device/approve", data=form)).status_code == 200
    assert (await who.client.post("/auth/device/deny", data=form)).status_code == 404
    assert (await who.client.post("/auth/device/approve", data=form)).status_code == 404
    assert (await relay.poll(body["device_code"])).status_code == 200


async def test_user_code_guessing_is_rate_limited(relay_factory) -> None:  # type: ignore[no-untyped-def]
    """Past device_verify_rate_limit_attempts look-ups per address, 429 with Retry-After, even
    for a right code."""
    relay = await relay_factory(device_verify_rate_limit_attempts=3, device_verify_rate_limit_total=1000)
    who = await relay.person("ivy")
    body = await relay.code()
    for guess in ("BBBB-BBBB", "CCCC-CCCC", "DDDD-DDDD"):
        assert (await who.open(guess)).status_code == 404
    r = await who.open(body["user_code"])
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1


async def test_user_code_guessing_is_limited_overall(relay_factory) -> None:  # type: ignore[no-untyped-def]
    """device_verify_rate_limit_total bounds look-ups from all addresses together."""
    total = await relay_factory(device_verify_rate_limit_attempts=100, device_verify_rate_limit_total=2)
    people = [await total.person(f"jo{i}") for i in range(2)]
    assert (await people[0].open("BBBB-BBBB")).status_code == 404
    assert (await people[1].open("BBBB-BBBB")).status_code == 404
    assert (await people[0].open("CCCC-CCCC")).status_code == 429


async def test_device_codes_per_address_are_limited(relay_factory) -> None:  # type: ignore[no-untyped-def]
    """Past device_code_rate_limit requests from one address, 429 with Retry-After and a reason."""
    relay = await relay_factory(device_code_rate_limit=2)
    await relay.code()
    await relay.code()
    r = await relay.client.post("/auth/device/code", data={"client_hint": "third"})
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert r.json()["error"] == "too_many_requests" and "retry in" in r.json()["error_description"]
    other = await relay.client.post("/auth/device/code", headers={"X-Forwarded-For": "192.0.2.7"})
    assert other.status_code == 200  # another client (behind a trusted proxy) is not affected


async def test_bad_token_requests_are_clear_4xx(relay: Relay) -> None:
    """Wrong or missing grant_type, missing, unknown or absurd device codes, non-form bodies: 400
    with the OAuth error code, never 500."""
    c = relay.client
    cases = [
        (await c.post("/auth/device/token", data={"device_code": "x"}), "invalid_request"),
        (
            await c.post("/auth/device/token", data={"grant_type": "password", "device_code": "x"}),
            "unsupported_grant_type",
        ),
        (await c.post("/auth/device/token", data={"grant_type": GRANT}), "invalid_request"),
        (
            await c.post("/auth/device/token", data={"grant_type": GRANT, "device_code": "nope"}),
            "invalid_grant",
        ),
        (
            await c.post("/auth/device/token", data={"grant_type": GRANT, "device_code": "é" * 20}),
            "invalid_grant",
        ),
        (
            await c.post("/auth/device/token", data={"grant_type": GRANT, "device_code": "x" * 500}),
            "invalid_request",
        ),
        (
            await c.post("/auth/device/token", json={"grant_type": GRANT, "device_code": "x"}),
            "invalid_request",
        ),
        (
            await c.post(
                "/auth/device/token", files={"device_code": ("f", b"x")}, data={"grant_type": GRANT}
            ),
            "invalid_request",
        ),
        (await c.post("/auth/device/token"), "invalid_request"),
    ]
    for r, error in cases:
        assert r.status_code == 400, r.text
        assert r.json()["error"] == error, r.text
        assert r.json()["error_description"]


async def test_bad_code_requests_are_clear_4xx(relay: Relay) -> None:
    """A bad pair value, an oversized or control-character hint, a non-form body: 400 invalid_request."""
    c = relay.client
    for r in (
        await c.post("/auth/device/code", data={"pair": "maybe"}),
        await c.post("/auth/device/code", data={"client_hint": "x" * 1000}),
        await c.post("/auth/device/code", data={"client_hint": "evil\nline"}),
        await c.post("/auth/device/code", json={"client_hint": "x"}),
        await c.post("/auth/device/code", content=b"\xff\xfe", headers={"Content-Type": "text/plain"}),
    ):
        assert r.status_code == 400, r.text
        assert r.json()["error"] == "invalid_request"
    r = await c.post("/auth/device/code")  # every field is optional
    assert r.status_code == 200


async def test_bad_page_input_is_4xx(relay: Relay) -> None:
    """Malformed approve/deny forms and absurd codes on the page are 4xx pages, never 500."""
    who = await relay.person("kim")
    page = await who.open()
    csrf = hidden(page.text, "csrf_token")
    c = who.client
    assert (await who.open("x" * 100)).status_code == 400
    assert (await who.open("not a code")).status_code == 404
    assert (await c.post("/auth/device/approve", json={"user_code": "x"})).status_code == 400
    assert (await c.post("/auth/device/approve", data={"csrf_token": csrf})).status_code == 400
    assert (
        await c.post("/auth/device/approve", data={"csrf_token": csrf, "user_code": "zz"})
    ).status_code == 404
    assert (
        await c.post("/auth/device/deny", data={"csrf_token": csrf, "user_code": "x" * 99})
    ).status_code == 400


async def test_unsigned_visitor_never_looks_codes_up(relay: Relay) -> None:
    """Anonymous visitors are not told whether a code exists: the same sign-in page either way."""
    body = await relay.code(client_hint="secret-hint")
    async with httpx.AsyncClient(base_url=relay.url) as c:
        known = await c.get("/auth/device", params={"user_code": body["user_code"]})
        unknown = await c.get("/auth/device", params={"user_code": "BBBB-BBBB"})
    assert known.status_code == unknown.status_code == 200
    assert "secret-hint" not in known.text


async def test_person_signs_in_after_opening_the_link(relay: Relay) -> None:
    """verification_uri_complete -> sign in -> back at the code's approval page."""
    await relay.user("lee")
    body = await relay.code(client_hint="lee's box")
    who = Person(relay.url)
    relay.people.append(who)
    first = await who.client.get(body["verification_uri_complete"])
    r = await who.sign_in("lee", next_path=hidden(first.text, "next"))
    assert r.status_code == 303
    page = await who.client.get(r.headers["location"])
    assert "lee&#x27;s box" in page.text and 'action="/auth/device/approve"' in page.text
