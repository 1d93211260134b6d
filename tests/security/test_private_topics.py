"""A private topic stays private on every path: WebSocket subscribe (plain, with ``since``, with
``resume``), long-poll (with and without ``since``), history, topic metadata and publishing; and
what ``/messages/poll/stats`` shows a user who may not read it."""

from __future__ import annotations

import json

from tests.reliability.harness import bearer
from tests.security.conftest import Relay, recv


async def _setup(relay: Relay) -> tuple[str, str]:
    """(owner token, outsider token); the owner's private topic ``payroll`` has two messages."""
    _, owner = await relay.user("owner")
    _, outsider = await relay.user("outsider")
    for n in range(2):
        r = await relay.http.post(
            "/api/v1/messages", json={"topic": "payroll", "payload": {"n": n}}, headers=bearer(owner)
        )
        assert r.status_code == 201, r.text
    return owner, outsider


async def test_outsider_reads_nothing_of_a_private_topic_on_any_path(relay: Relay) -> None:
    """Every read path refuses the outsider, names no content, and nothing published afterwards
    reaches the outsider's socket."""
    owner, outsider = await _setup(relay)
    ws = await relay.websocket(outsider)
    frames = [
        {"type": "subscribe", "topics": ["payroll"]},
        {"type": "subscribe", "topics": ["payroll"], "since": {"payroll": "0-0"}},
        {"type": "subscribe", "topics": ["payroll", "free"], "client_id": "c1", "resume": True},
    ]
    for frame in frames:
        await ws.send(json.dumps(frame))
        reply = await recv(ws)
        assert reply["type"] == "error" and reply["code"] == "SUBSCRIPTION_ERROR", reply
        assert "Access denied" in reply["message"], reply
    r = await relay.http.post(
        "/api/v1/messages", json={"topic": "payroll", "payload": {"n": 2}}, headers=bearer(owner)
    )
    assert r.status_code == 201
    await ws.send(json.dumps({"type": "ping"}))
    assert (await recv(ws))["type"] == "pong", "no message frame came before the pong"

    for body in (
        {"topics": ["payroll"], "since": {"payroll": "0-0"}, "timeout": 1},
        {"topics": ["payroll"], "timeout": 1},
        {"topics": ["free", "payroll"], "since": {"free": "0-0"}, "timeout": 1},
    ):
        r = await relay.http.post("/messages/poll", json=body, headers=bearer(outsider))
        assert r.status_code == 403 and '"n"' not in r.text, r.text
    for path in ("/api/v1/topics/payroll/messages", "/api/v1/topics/payroll/messages?order=asc&cursor=0-0"):
        r = await relay.http.get(path, headers=bearer(outsider))
        assert r.status_code == 403 and '"n"' not in r.text, r.text
    r = await relay.http.get("/api/v1/topics/payroll", headers=bearer(outsider))
    assert r.status_code in (403, 404), r.text
    listed = await relay.http.get("/api/v1/topics", headers=bearer(outsider))
    assert "payroll" not in listed.text
    r = await relay.http.post(
        "/api/v1/messages", json={"topic": "payroll", "payload": {}}, headers=bearer(outsider)
    )
    assert r.status_code == 403
    assert (await relay.http.get("/api/v1/topics/stats", headers=bearer(outsider))).status_code == 403


async def test_poll_stats_do_not_name_private_topics_to_outsiders(relay: Relay) -> None:
    """While the owner is subscribed to its private topic, an outsider's stats do not name it."""
    owner, outsider = await _setup(relay)
    await relay.subscribe(owner, ["payroll"])
    r = await relay.http.get("/messages/poll/stats", headers=bearer(relay.admin))
    assert "payroll" in r.json()["topic_subscriber_counts"], "control: the admin sees it"
    r = await relay.http.get("/messages/poll/stats", headers=bearer(outsider))
    assert r.status_code == 200
    assert "payroll" not in r.text, r.text
