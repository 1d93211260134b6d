"""The operator console in a real headless Chromium against ``pulsar-relay serve all`` on a real
Valkey: signing in, every page with real numbers, users and grants changed through the console,
a published message arriving in the live tail, and non-admins turned away.  Each page is saved
as a screenshot under ``test-artifacts/console/``."""

from __future__ import annotations

import json
from typing import Any

import httpx
import websockets

from tests.console.browser import Browser
from tests.console.conftest import ADMIN, bearer, login
from tests.support.serve import RelayProcess


async def publish(
    http: httpx.AsyncClient, token: str, topic: str, payload: dict[str, Any], **meta: str
) -> str:
    body: dict[str, Any] = {"topic": topic, "payload": payload}
    if meta:
        body["metadata"] = meta
    r = await http.post("/api/v1/messages", json=body, headers=bearer(token))
    assert r.status_code in (200, 201), r.text
    message_id: str = r.json()["message_id"]
    return message_id


async def sign_in(b: Browser, base_url: str, username: str, password: str) -> None:
    await b.call("goto", url=f"{base_url}/console")
    await b.call("waitForUrl", path="/console/login")
    await b.call("fill", selector="#username", value=username)
    await b.call("fill", selector="#password", value=password)
    await b.call("click", selector="#login-form button[type=submit]")


async def wait_text(b: Browser, selector: str, expected: str) -> None:
    """Until the first element matching ``selector`` shows exactly ``expected`` (pages refresh)."""
    body = "const e = document.querySelector(arg.s); return !!e && e.innerText.trim() === arg.t;"
    try:
        await b.call("waitForFunction", body=body, arg={"s": selector, "t": expected})
    except AssertionError:
        shown = await b.call("evaluate", body="return document.querySelector(arg)?.innerText", arg=selector)
        raise AssertionError(f"{selector}: expected {expected!r}, shows {shown!r}") from None


async def test_admin_walks_through_every_page(
    relay: RelayProcess, http: httpx.AsyncClient, browser: Browser
) -> None:
    """An admin signs in, creates a user, grants a topic, sees a published message in the live tail,
    and finds the real numbers on the overview, topics and gateways pages."""
    b = browser
    admin = await login(http)
    for i in range(3):
        await publish(http, admin, "jobs", {"job": i, "state": "queued"})
    await publish(http, admin, "alerts", {"level": "info", "text": "relay started"})

    # signing in lands on the overview, which starts the rate samples
    await b.call("goto", url=f"{relay.url}/console")
    await b.call("waitForUrl", path="/console/login")
    await b.call("waitFor", selector="#username")
    await b.screenshot("login")
    await sign_in(b, relay.url, *ADMIN)
    await b.call("waitForUrl", path="/console/overview")
    await wait_text(b, "[data-total=messages] .stat-value", "4")
    await wait_text(b, "[data-total=topics] .stat-value", "2")

    # users: create alice through the form, then grant her "jobs"
    await b.call("goto", url=f"{relay.url}/console/users")
    await b.call("waitFor", selector=f"tr[data-user={ADMIN[0]}]")
    await b.call("click", selector="#create-box summary")
    await b.call("fill", selector="#new-username", value="alice")
    await b.call("fill", selector="#new-password", value="alice-password-1")
    await b.call("fill", selector="#new-email", value="alice@example.org")
    await b.call("click", selector="#create-user button[type=submit]")
    await b.call("waitFor", selector="tr[data-user=alice]")
    await b.call("fill", selector="tr[data-user=alice] form.inline input", value="jobs")
    await b.call("click", selector="tr[data-user=alice] form.inline button")
    await b.call("waitFor", selector="tr[data-user=alice] [data-grant=jobs]")
    await b.screenshot("users")
    users = (await http.get("/auth/users", headers=bearer(admin))).json()
    alice = next(u for u in users if u["username"] == "alice")
    assert alice["is_active"] and sorted(alice["permissions"]) == ["read", "write"]
    assert alice["email"] == "alice@example.org"
    grants = (await http.get("/api/v1/topics/jobs/permissions", headers=bearer(admin))).json()
    assert [g["username"] for g in grants] == ["alice"]
    alice_token = await login(http, "alice", "alice-password-1")
    r = await http.get("/api/v1/topics/jobs/messages", headers=bearer(alice_token))
    assert r.status_code == 200 and r.json()["total"] == 3

    # live tail: the backlog, then a message published over HTTP while the page watches
    await b.call("goto", url=f"{relay.url}/console/tail?topic=jobs")
    await b.call("waitFor", selector="#status[data-state=live]")
    assert await b.call("count", selector="#messages li.history") == 3
    sent = await publish(http, admin, "jobs", {"job": 99, "state": "done"}, source="console-test")
    await b.call("waitFor", selector=f"#messages li.live[data-id='{sent}']")
    shown = await b.call("text", selector=f"#messages li[data-id='{sent}'] .payload")
    assert json.loads(shown) == {"job": 99, "state": "done"}
    assert "console-test" in await b.call("text", selector=f"#messages li[data-id='{sent}'] .meta")
    await b.screenshot("tail")

    # topics: counts, owner, subscribers, from a WebSocket client of our own
    async with websockets.connect(
        relay.url.replace("http", "ws") + f"/ws?token={alice_token}", open_timeout=10
    ) as ws:
        await ws.send(json.dumps({"type": "subscribe", "topics": ["jobs"]}))
        assert json.loads(await ws.recv())["type"] == "subscribed"
        await b.call("goto", url=f"{relay.url}/console/topics")
        await wait_text(b, "tr[data-topic=jobs] [data-field=messages]", "4")
        await wait_text(b, "tr[data-topic=alerts] [data-field=messages]", "1")
        await wait_text(b, "tr[data-topic=jobs] [data-field=subscribers]", "1")
        await wait_text(b, "tr[data-topic=jobs] [data-field=websocket]", "1")
        assert await b.call("text", selector="tr[data-topic=jobs] .owner") == ADMIN[0]
        await b.screenshot("topics")

        # gateways: this relay's gateway with our one connection and no lag
        await b.call("goto", url=f"{relay.url}/console/gateways")
        row = "tr[data-gateway=gw-console-test]"
        await wait_text(b, f"{row} [data-field=websockets]", "1")
        await wait_text(b, f"{row} [data-field=subscriptions]", "1")
        await wait_text(b, f"{row} [data-field=lag]", "0")
        await b.screenshot("gateways")

    # overview again: the chart has seen the publish and the deliveries to the tail
    await b.call("goto", url=f"{relay.url}/console/overview")
    await publish(http, admin, "alerts", {"level": "info", "text": "chart"})
    await b.call(
        "waitForFunction",
        body="const c = document.getElementById('rates'); "
        "return Number(c.dataset.published) > 0 && Number(c.dataset.delivered) > 0;",
        timeout=30000,
    )
    await wait_text(b, "[data-total=messages] .stat-value", "6")
    await b.screenshot("overview")
    assert b.page_errors() == []


async def test_admin_revokes_and_deactivates(
    relay: RelayProcess, http: httpx.AsyncClient, browser: Browser
) -> None:
    """Revoking a grant and deactivating a user from the users page take effect in the relay."""
    b = browser
    admin = await login(http)
    await publish(http, admin, "jobs", {"job": 1})
    r = await http.post(
        "/auth/register",
        json={"username": "carol", "password": "carol-password-1", "permissions": ["read"]},
        headers=bearer(admin),
    )
    carol = r.json()["user_id"]
    r = await http.post("/api/v1/topics/jobs/permissions", json={"user_id": carol}, headers=bearer(admin))
    assert r.status_code == 201
    carol_token = await login(http, "carol", "carol-password-1")

    await sign_in(b, relay.url, *ADMIN)
    await b.call("waitForUrl", path="/console/overview")
    await b.call("goto", url=f"{relay.url}/console/users")
    await b.call("click", selector="tr[data-user=carol] [data-grant=jobs] button")
    await b.call("waitFor", selector="tr[data-user=carol] [data-grant=jobs]", state="detached")
    r = await http.get("/api/v1/topics/jobs/messages", headers=bearer(carol_token))
    assert r.status_code == 403
    await b.call("click", selector="tr[data-user=carol] td.actions button")
    await wait_text(b, "tr[data-user=carol] [data-field=status]", "inactive")
    r = await http.get("/auth/me", headers=bearer(carol_token))
    assert r.status_code in (401, 403)
    # the admin's own row cannot be deactivated from here
    assert await b.call("attr", selector=f"tr[data-user={ADMIN[0]}] td.actions button", name="disabled") == ""
    assert b.page_errors() == []


async def test_non_admin_is_refused(relay: RelayProcess, http: httpx.AsyncClient, browser: Browser) -> None:
    """A user without the admin permission cannot sign in to the console, and a non-admin token
    planted in the tab is sent back to the login page."""
    b = browser
    admin = await login(http)
    r = await http.post(
        "/auth/register",
        json={"username": "bob", "password": "bob-password-1", "permissions": ["read", "write"]},
        headers=bearer(admin),
    )
    assert r.status_code == 201
    await sign_in(b, relay.url, "bob", "bob-password-1")
    await b.call("waitFor", selector="#login-error:not([hidden])")
    error = await b.call("text", selector="#login-error")
    assert "bob is not an administrator" in error
    assert await b.call("evaluate", body="return sessionStorage.length") == 0
    assert "/console/login?" in await b.call("url")
    await b.screenshot("refused")

    # a bob token smuggled into the session does not get past /auth/me
    bob = await login(http, "bob", "bob-password-1")
    plant = (
        "sessionStorage.setItem('pulsar-relay-console', JSON.stringify("
        "{token: arg, username: 'bob', expiresAt: Date.now() + 600000}));"
    )
    await b.call("evaluate", body=plant, arg=bob)
    await b.call("goto", url=f"{relay.url}/console/users")
    await b.call("waitForUrl", path="/console/login")
    await b.call("waitFor", selector="#login-error:not([hidden])")
    assert "not an administrator" in await b.call("text", selector="#login-error")
    assert await b.call("count", selector="tr[data-user]") == 0

    # wrong password: a clear message, still on the login page
    await sign_in(b, relay.url, ADMIN[0], "not-the-password")
    await b.call("waitFor", selector="#login-error:not([hidden])")
    assert "Incorrect username or password" in await b.call("text", selector="#login-error")


async def test_tail_says_when_the_websocket_is_refused(
    relay: RelayProcess, http: httpx.AsyncClient, browser: Browser
) -> None:
    """An admin without the read permission gets a clear refusal in the live tail, not a retry loop."""
    b = browser
    admin = await login(http)
    r = await http.post(
        "/auth/register",
        json={"username": "ops", "password": "ops-password-1", "permissions": ["admin"]},
        headers=bearer(admin),
    )
    assert r.status_code == 201
    r = await http.post("/api/v1/topics", json={"topic_name": "refused-tail"}, headers=bearer(admin))
    assert r.status_code in (201, 409), r.text
    await sign_in(b, relay.url, "ops", "ops-password-1")
    await b.call("waitForUrl", path="/console/overview")
    await b.call("goto", url=f"{relay.url}/console/tail?topic=refused-tail")
    await b.call("waitFor", selector="#status[data-state=error]")
    assert "read permission" in await b.call("text", selector="#status")


async def test_tail_of_a_missing_topic_says_not_found(relay: RelayProcess, browser: Browser) -> None:
    """/console/tail?topic=<missing> says the topic does not exist (404), not "Live"."""
    b = browser
    await sign_in(b, relay.url, *ADMIN)
    await b.call("waitForUrl", path="/console/overview")
    await b.call("goto", url=f"{relay.url}/console/tail?topic=no-such-topic")
    await b.call("waitFor", selector="#status[data-state=error]")
    text = await b.call("text", selector="#status")
    assert "No topic named no-such-topic" in text and "404" in text, text


async def test_expired_session_returns_to_login(relay: RelayProcess, browser: Browser) -> None:
    """A session past its expiry sends the page to the login form, which says why and comes back."""
    b = browser
    await sign_in(b, relay.url, *ADMIN)
    await b.call("waitForUrl", path="/console/overview")
    # The expiry is written from the login page, which runs no timers: the overview's own refresh
    # (every 2 s) would otherwise find the session expired first and sign out with next=overview.
    await b.call("goto", url=f"{relay.url}/console/login")
    expire = (
        "const k = 'pulsar-relay-console'; const s = JSON.parse(sessionStorage.getItem(k));"
        "s.expiresAt = Date.now() - 1; sessionStorage.setItem(k, JSON.stringify(s));"
    )
    await b.call("evaluate", body=expire)
    await b.call("goto", url=f"{relay.url}/console/gateways")
    await b.call("waitForUrl", path="/console/login")
    await b.call("waitFor", selector="#login-error:not([hidden])")
    assert "session has ended" in await b.call("text", selector="#login-error")
    await b.call("fill", selector="#username", value=ADMIN[0])
    await b.call("fill", selector="#password", value=ADMIN[1])
    await b.call("click", selector="#login-form button[type=submit]")
    await b.call("waitForUrl", path="/console/gateways")
    await b.call("waitFor", selector="tr[data-gateway=gw-console-test]")
