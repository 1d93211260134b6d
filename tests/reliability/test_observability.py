"""Observability for the bad day: each service's /metrics exports what operators alert on
(docs/OPERATIONS.md), the numbers move when the thing happens, logs are one JSON object per line
with PULSAR_LOG_JSON=1, and a request's id (X-Request-Id, echoed) is in the log lines it causes."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from tests.reliability.clients import PollFollower, Producer, WsFollower, stop_all, wait_caught_up
from tests.reliability.harness import ROOT, Services, bearer, full_log, identity, metric_sum, scrape
from tests.support.valkey import ValkeyServer

EXPORTED = {
    "auth": [
        "relay_http_requests_total",
        "relay_login_attempts_total",
        "relay_token_refreshes_total",
        "relay_device_flow_total",
        "relay_storage_errors_total",
    ],
    "ingest": [
        "relay_http_requests_total",
        "relay_http_request_duration_seconds",
        "relay_messages_published_total",
        "relay_publish_duration_seconds",
        "relay_publish_idempotent_repeats_total",
        "relay_storage_errors_total",
    ],
    "gateway": [
        "relay_messages_delivered_total",
        "relay_delivery_latency_seconds",
        "relay_consumer_group_lag",
        "relay_connections",
        "relay_disconnects_total",
        "relay_messages_expired_total",
        "relay_tail_batches_total",
        "relay_cache_reads_total",
        "relay_storage_errors_total",
    ],
}


@pytest.mark.slow
async def test_metrics_exist_and_move_when_things_happen(
    private_valkey: ValkeyServer, relay_procs: Services
) -> None:
    """Publishes, WebSocket and long-poll deliveries, connections, expiry and a Valkey outage each
    move their metric on the service that saw them."""
    url = private_valkey.url
    _, token = await identity(url, "watcher")
    svc = {name: await relay_procs.start(name) for name in ("auth", "ingest", "gateway")}
    before = {name: await scrape(p.url) for name, p in svc.items()}
    for name, names in EXPORTED.items():
        missing = [m for m in names if m not in before[name]]
        assert not missing, f"{name} does not export {missing}"

    gw = svc["gateway"].url
    ws = WsFollower("ws", [gw], token, ["obs"])
    poll = PollFollower("poll", [gw], token, ["obs"])
    stop = asyncio.Event()
    tasks = [asyncio.create_task(f.run(stop)) for f in (ws, poll)]
    producer = Producer(svc["ingest"].url, token)
    try:
        for _ in range(50):
            if ws.connections and poll.polls:
                break
            await asyncio.sleep(0.05)
        mid = await producer.single("obs", {"n": 0})
        await producer.bulk([("obs", {"n": i}) for i in range(1, 11)])
        await producer.single("obs", {"n": 11}, key="same")
        await producer.single("obs", {"n": 11}, key="same")  # a repeat: no new message
        await wait_caught_up([ws, poll], {"obs": producer.acked["obs"][-1]})
        during = await scrape(gw)
        assert metric_sum(during, "relay_connections", transport="websocket") == 1
    finally:
        await stop_all(stop, tasks)
        await producer.aclose()
    assert mid in ws.received["obs"]

    ing, gate = await scrape(svc["ingest"].url), await scrape(gw)
    assert metric_sum(ing, "relay_messages_published_total", endpoint="single") == 2
    assert metric_sum(ing, "relay_messages_published_total", endpoint="bulk") == 10
    assert metric_sum(ing, "relay_publish_idempotent_repeats_total") == 1
    assert metric_sum(ing, "relay_publish_duration_seconds_count") == 4
    assert metric_sum(gate, "relay_messages_delivered_total", transport="websocket") >= 12
    assert metric_sum(gate, "relay_messages_delivered_total", transport="longpoll") >= 12
    assert metric_sum(gate, "relay_delivery_latency_seconds_count", transport="websocket") >= 12
    assert metric_sum(gate, "relay_tail_batches_total") >= 1
    assert ("relay_consumer_group_lag", ()) and "relay_consumer_group_lag " in gate

    # A message past its ttl is counted when the gateway drops it (live dispatch or hot cache;
    # reads answered from Valkey filter expired entries without counting them).
    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.post(
            svc["ingest"].url + "/api/v1/messages",
            json={"topic": "obs", "payload": {}, "ttl": 1},
            headers=bearer(token),
        )
        assert r.status_code == 201
        await asyncio.sleep(1.5)  # the ttl passes: the condition under test, not a timing assertion
        body = {"topics": ["obs"], "since": {"obs": producer.acked["obs"][-1]}, "timeout": 1}
        r = await http.post(gw + "/messages/poll", json=body, headers=bearer(token))
        assert r.status_code == 200 and r.json()["messages"] == [], r.text
    assert metric_sum(await scrape(gw), "relay_messages_expired_total") >= 1
    assert metric_sum(await scrape(gw), "relay_connections", transport="websocket") == 0

    for name, proc in svc.items():
        assert "Traceback" not in full_log(proc), f"{name} logged a traceback:\n{full_log(proc)[-3000:]}"

    # Valkey goes away: requests fail with 503 and every service counts storage errors.
    private_valkey.kill()
    async with httpx.AsyncClient(timeout=30) as http:
        r = await http.post(
            svc["ingest"].url + "/api/v1/messages",
            json={"topic": "obs", "payload": {}},
            headers=bearer(token),
        )
        assert r.status_code == 503
        r = await http.post(svc["auth"].url + "/auth/login", data={"username": "x", "password": "y"})
        assert r.status_code == 503
        r = await http.get(gw + "/api/v1/topics/obs/messages", headers=bearer(token))
        assert r.status_code in (401, 503)  # the token is cached; the topic lookup fails
        for name in ("ingest", "auth"):
            assert (await http.get(svc[name].url + "/ready")).status_code == 503
    for name in ("ingest", "auth"):
        assert metric_sum(await scrape(svc[name].url), "relay_storage_errors_total") >= 1, name


async def test_json_logs_carry_the_request_id(private_valkey: ValkeyServer, relay_procs: Services) -> None:
    """With PULSAR_LOG_JSON=1 every log line is a JSON object; X-Request-Id is echoed, and the
    warning a failed request logs carries that id."""
    _, token = await identity(private_valkey.url, "logger")
    proc = await relay_procs.start("ingest", PULSAR_LOG_JSON="1", PULSAR_LOG_LEVEL="INFO")
    async with httpx.AsyncClient(base_url=proc.url, timeout=30) as http:
        r = await http.get("/health", headers={"X-Request-Id": "req-health-1"})
        assert r.headers["x-request-id"] == "req-health-1"
        assert len((await http.get("/health")).headers["x-request-id"]) >= 16, "one is made up when absent"
        private_valkey.kill()
        r = await http.post(
            "/api/v1/messages",
            json={"topic": "t", "payload": {}},
            headers={**bearer(token), "X-Request-Id": "req-outage-7"},
        )
        assert r.status_code == 503 and r.headers["x-request-id"] == "req-outage-7"
    lines = [line for line in full_log(proc).splitlines() if line.strip()]
    records = []
    for line in lines:
        record = json.loads(line)  # every line, the server's included
        assert {"time", "level", "logger", "message"} <= set(record), record
        records.append(record)
    tagged = [r for r in records if r.get("request_id") == "req-outage-7"]
    assert tagged and tagged[0]["level"] in ("WARNING", "ERROR"), records[-5:]


def test_operations_doc_lists_every_exported_metric() -> None:
    """docs/OPERATIONS.md names each metric the services export (and so the alerts can use)."""
    text = (ROOT / "docs" / "OPERATIONS.md").read_text()
    missing = sorted({m for names in EXPORTED.values() for m in names if m not in text})
    assert not missing, missing
