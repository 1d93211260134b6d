"""The read-only admin endpoints the console is built on (``/api/v1/admin/*``): admin only, their
shape, and numbers that match what the relay really holds, against the all-in-one app on a real
socket and the session's Valkey, with real WebSocket and long-poll clients."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import websockets

from pulsar_relay.allinone import create_app
from relaycore.config import Settings
from relaycore.keys import Keys
from relaycore.store.valkey_backend import ValkeyBackend
from tests.console.conftest import ADMIN, bearer, login
from tests.support.serve import running

ENDPOINTS = ["/api/v1/admin/overview", "/api/v1/admin/users", "/api/v1/admin/rates"]
GATEWAY = "gw-api-test"


@pytest.fixture
def settings(settings_factory: Callable[..., Settings]) -> Settings:
    return settings_factory(
        bootstrap_admin_username=ADMIN[0],
        bootstrap_admin_password=ADMIN[1],
        password_hash_time_cost=1,
        password_hash_memory_kib=64,
        gateway_id=GATEWAY,
    )


@pytest.fixture
async def http(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with running(create_app(settings)) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        yield client


async def user(http: httpx.AsyncClient, admin: str, name: str, perms: list[str]) -> tuple[str, str]:
    r = await http.post(
        "/auth/register",
        json={"username": name, "password": f"{name}-password-1", "permissions": perms},
        headers=bearer(admin),
    )
    assert r.status_code == 201, r.text
    return r.json()["user_id"], await login(http, name, f"{name}-password-1")


async def publish(http: httpx.AsyncClient, token: str, topic: str, n: int) -> str:
    r = await http.post("/api/v1/messages", json={"topic": topic, "payload": {"n": n}}, headers=bearer(token))
    assert r.status_code in (200, 201), r.text
    message_id: str = r.json()["message_id"]
    return message_id


async def until(fetch: Callable[[], Awaitable[Any]], ok: Callable[[Any], bool], within: float = 20) -> Any:
    """Fetch until ``ok`` holds (heartbeats and samples arrive on their own schedule)."""
    value = None
    try:
        async with asyncio.timeout(within):
            while not ok(value := await fetch()):  # noqa: ASYNC110 - the state lives in the server
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"condition never held; last value: {value}") from None
    return value


def ws_url(http: httpx.AsyncClient, token: str) -> str:
    return str(http.base_url).replace("http", "ws", 1).rstrip("/") + f"/ws?token={token}"


async def test_admin_endpoints_are_admin_only(http: httpx.AsyncClient) -> None:
    """Without a token 401, with a non-admin token 403, with an admin token 200."""
    admin = await login(http)
    _, reader = await user(http, admin, "reader", ["read", "write"])
    for path in ENDPOINTS:
        r = await http.get(path)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", path
        r = await http.get(path, headers=bearer("not-a-jwt"))
        assert r.status_code == 401, path
        r = await http.get(path, headers=bearer(reader))
        assert r.status_code == 403 and r.json() == {"detail": "Permission 'admin' required"}, (path, r.text)
        r = await http.get(path, headers=bearer(admin))
        assert r.status_code == 200 and r.headers["cache-control"] == "no-store", path


async def test_console_pages_are_served_with_a_strict_policy(http: httpx.AsyncClient) -> None:
    """/console redirects to the overview; pages are HTML with a CSP allowing this origin only;
    assets have their types; unknown names are 404."""
    r = await http.get("/console")
    assert r.status_code == 303 and r.headers["location"] == "/console/overview"
    for page in ("login", "overview", "topics", "tail", "users", "gateways"):
        r = await http.get(f"/console/{page}")
        assert r.status_code == 200 and r.headers["content-type"] == "text/html; charset=utf-8"
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe" not in csp
        assert f'src="/console/assets/{page}.js"' in r.text
        again = await http.get(f"/console/{page}", headers={"If-None-Match": r.headers["etag"]})
        assert again.status_code == 304
    r = await http.get("/console/assets/console.js")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
    assert (await http.get("/console/assets/console.css")).headers["content-type"].startswith("text/css")
    assert (await http.get("/console/nope")).status_code == 404
    assert (await http.get("/console/assets/../app.py")).status_code == 404


async def test_overview_counts_topics_messages_and_owners(http: httpx.AsyncClient) -> None:
    """Message counts, newest ids and owners per topic, and totals, as stored."""
    admin = await login(http)
    alice_id, alice = await user(http, admin, "alice", ["read", "write"])
    last = [await publish(http, alice, "jobs", n) for n in range(3)][-1]
    await publish(http, admin, "alerts", 1)
    r = await http.post(
        "/api/v1/topics", json={"topic_name": "quiet", "is_public": True}, headers=bearer(admin)
    )
    assert r.status_code == 201
    body = (await http.get("/api/v1/admin/overview", headers=bearer(admin))).json()
    assert set(body) == {"generated_at", "totals", "topics", "gateways"}
    topics = {t["topic_name"]: t for t in body["topics"]}
    assert set(topics) == {"jobs", "alerts", "quiet"}
    jobs = topics["jobs"]
    assert jobs["owner_id"] == alice_id and jobs["owner_username"] == "alice"
    assert jobs["message_count"] == 3 and jobs["newest_message_id"] == last
    stored = (await http.get("/api/v1/topics/jobs/messages?limit=1", headers=bearer(admin))).json()
    assert stored["messages"][0]["message_id"] == last
    # the time of the newest id (when Valkey appended it), as ISO 8601 UTC
    appended = datetime.fromtimestamp(int(last.split("-")[0]) / 1000, UTC)
    assert datetime.fromisoformat(jobs["newest_message_at"].replace("Z", "+00:00")) == appended
    assert jobs["newest_message_at"].endswith("Z")
    assert topics["quiet"]["message_count"] == 0 and topics["quiet"]["newest_message_id"] is None
    assert topics["quiet"]["newest_message_at"] is None and topics["quiet"]["is_public"]
    assert topics["alerts"]["owner_username"] == ADMIN[0]
    totals = body["totals"]
    assert totals["topics"] == 3 and totals["messages"] == 4 and totals["published_total"] == 4
    assert totals["users"] == 2 and totals["active_users"] == 2


async def test_overview_counts_subscribers_per_transport_and_gateway(http: httpx.AsyncClient) -> None:
    """A WebSocket subscription and a waiting long-poll show up on the topic and on the gateway;
    the per-transport split is given when it is known and null when it is not."""
    admin = await login(http)
    await publish(http, admin, "jobs", 0)
    await publish(http, admin, "news", 0)

    async def overview() -> Any:
        return (await http.get("/api/v1/admin/overview", headers=bearer(admin))).json()

    async with websockets.connect(ws_url(http, admin), open_timeout=10) as ws:
        await ws.send(json.dumps({"type": "subscribe", "topics": ["jobs", "news"]}))
        assert json.loads(await ws.recv())["type"] == "subscribed"
        body = await until(overview, lambda b: b["totals"]["websocket_connections"] == 1)
        topics = {t["topic_name"]: t for t in body["topics"]}
        # no long-poll waits anywhere: every subscriber is a WebSocket
        assert topics["jobs"]["subscribers"] == 1
        assert topics["jobs"]["subscribers_by_transport"] == {"websocket": 1, "longpoll": 0}
        [gw] = body["gateways"]
        assert gw["gateway_id"] == GATEWAY and gw["consumer_group"] == f"gw:{GATEWAY}"
        assert gw["websocket_connections"] == 1 and gw["subscriptions"] == 2 and gw["subscribed_topics"] == 2
        assert gw["topic_subscribers"] == {"jobs": 1, "news": 1}
        assert gw["heartbeat_age_seconds"] >= 0 and gw["counters"]["websocket_connections"] == 1

        poll = asyncio.create_task(
            http.post("/messages/poll", json={"topics": ["news"], "timeout": 30}, headers=bearer(admin))
        )
        try:
            body = await until(overview, lambda b: b["totals"]["active_waiters"] == 1)
            topics = {t["topic_name"]: t for t in body["topics"]}
            assert topics["news"]["subscribers"] == 2 and topics["jobs"]["subscribers"] == 1
            # the heartbeat reports waiting polls per topic, so the split stays exact
            assert topics["news"]["subscribers_by_transport"] == {"websocket": 1, "longpoll": 1}
            assert topics["jobs"]["subscribers_by_transport"] == {"websocket": 1, "longpoll": 0}
            assert body["gateways"][0]["active_waiters"] == 1
            assert body["totals"]["subscriptions"] == 3
        finally:
            await publish(http, admin, "news", 1)  # answers the poll
            assert (await poll).status_code == 200
    body = await until(overview, lambda b: b["totals"]["websocket_connections"] == 0)
    assert body["totals"]["subscriptions"] == 0 and body["gateways"][0]["topic_subscribers"] == {}


async def test_overview_reports_consumer_group_lag(http: httpx.AsyncClient, settings: Settings) -> None:
    """A gateway whose consumer group stops reading shows the entries it has not taken as lag;
    the live gateway, which reads everything, shows none."""
    admin = await login(http)
    backend = ValkeyBackend(settings)
    try:
        group = Keys(settings.key_prefix, settings.fanout_partitions).gateway_group("stalled")
        await backend.fanout.join(group)
        await backend.gateways.heartbeat("stalled", {"websocket_connections": 0, "active_waiters": 0}, {})
        for n in range(5):
            await publish(http, admin, f"topic-{n}", n)

        async def gateways() -> Any:
            body = (await http.get("/api/v1/admin/overview", headers=bearer(admin))).json()
            return {g["gateway_id"]: g for g in body["gateways"]}

        rows = await until(gateways, lambda g: g.get(GATEWAY, {}).get("lag") == 0 and "stalled" in g)
        assert rows["stalled"]["lag"] == 5
        assert rows["stalled"]["lag"] == await backend.fanout.lag(group)
        body = (await http.get("/api/v1/admin/overview", headers=bearer(admin))).json()
        assert body["totals"]["lag"] >= 5 and body["totals"]["gateways"] == 2
    finally:
        await backend.gateways.forget("stalled")
        await backend.fanout.drop(group)
        await backend.close()


async def test_users_view_lists_permissions_owned_and_granted_topics(http: httpx.AsyncClient) -> None:
    """Each user with permissions, owned topics and read grants, sorted by name."""
    admin = await login(http)
    bob_id, bob = await user(http, admin, "bob", ["read", "write"])
    carol_id, _ = await user(http, admin, "carol", ["read"])
    await publish(http, bob, "builds", 1)
    r = await http.post("/api/v1/topics/builds/permissions", json={"user_id": carol_id}, headers=bearer(bob))
    assert r.status_code == 201
    r = await http.patch(f"/auth/users/{carol_id}", json={"is_active": False}, headers=bearer(admin))
    assert r.status_code == 200
    users = (await http.get("/api/v1/admin/users", headers=bearer(admin))).json()
    assert [u["username"] for u in users] == sorted(["bob", "carol", ADMIN[0]])
    by_name = {u["username"]: u for u in users}
    assert by_name["bob"] | {"created_at": None} == {
        "user_id": bob_id,
        "username": "bob",
        "email": None,
        "is_active": True,
        "created_at": None,
        "permissions": ["read", "write"],
        "owned_topics": ["builds"],
        "granted_topics": [],
    }
    carol = by_name["carol"]
    assert carol["granted_topics"] == ["builds"] and carol["owned_topics"] == []
    assert carol["is_active"] is False and carol["permissions"] == ["read"]
    assert by_name[ADMIN[0]]["permissions"] == ["admin", "read", "write"]


async def test_rates_count_publishes_and_deliveries(http: httpx.AsyncClient) -> None:
    """Once started, the samples add up to exactly the messages published and delivered since."""
    admin = await login(http)

    async def rates() -> Any:
        return (await http.get("/api/v1/admin/rates", headers=bearer(admin))).json()

    first = await rates()
    assert first["interval_seconds"] == 2.0 and first["window_seconds"] == 600.0
    assert first["delivered_source"] == "process"
    async with websockets.connect(ws_url(http, admin), open_timeout=10) as ws:
        await ws.send(json.dumps({"type": "subscribe", "topics": ["jobs"]}))
        assert json.loads(await ws.recv())["type"] == "subscribed"
        await until(rates, lambda r: len(r["samples"]) >= 1)  # the baseline is behind us
        before = await rates()
        published_before = sum(s[2] for s in before["samples"])
        delivered_before = sum(s[3] for s in before["samples"])
        for n in range(4):
            await publish(http, admin, "jobs", n)
        for _ in range(4):
            assert json.loads(await ws.recv())["type"] == "message"
        after = await until(
            rates,
            lambda r: (
                sum(s[2] for s in r["samples"]) - published_before == 4
                and sum(s[3] for s in r["samples"]) - delivered_before == 4
            ),
        )
    at_ms, seconds, published, delivered = after["samples"][-1]
    assert isinstance(at_ms, int) and seconds > 0 and published >= 0 and delivered >= 0
