"""``/metrics`` exposure is the operator's choice (docs/OPERATIONS.md): open by default, behind a
token (``metrics_token``), or on a listener of its own (``metrics_port``), on real processes."""

from __future__ import annotations

import asyncio

import httpx

from tests.reliability.harness import relay_env
from tests.support.serve import RelayProcess
from tests.support.valkey import free_port


async def _started(valkey_url: str, service: str, **extra: str) -> RelayProcess:
    proc = RelayProcess(service, relay_env(valkey_url, **extra))
    await asyncio.to_thread(proc.start)
    return proc


async def test_metrics_are_open_by_default(valkey_url: str) -> None:
    """With neither setting, any client reads /metrics on the service's port (the default)."""
    proc = await _started(valkey_url, "ingest")
    try:
        async with httpx.AsyncClient(base_url=proc.url) as http:
            r = await http.get("/metrics")
        assert r.status_code == 200 and "relay_http_requests_total" in r.text
    finally:
        await asyncio.to_thread(proc.stop)


async def test_a_metrics_token_is_required_when_set(valkey_url: str) -> None:
    """metrics_token set: no or a wrong bearer is 401 with WWW-Authenticate and no figures; the
    token reads them.  Other routes are unaffected."""
    proc = await _started(valkey_url, "gateway", PULSAR_METRICS_TOKEN="scrape-me-0123456789")
    try:
        async with httpx.AsyncClient(base_url=proc.url) as http:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "scrape-me-0123456789"}):
                r = await http.get("/metrics", headers=headers)
                assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
                assert "relay_" not in r.text
            r = await http.get("/metrics", headers={"Authorization": "Bearer scrape-me-0123456789"})
            assert r.status_code == 200 and "relay_connections" in r.text
            assert (await http.get("/health")).status_code == 200
    finally:
        await asyncio.to_thread(proc.stop)


async def test_metrics_on_a_listener_of_their_own(valkey_url: str) -> None:
    """metrics_port set: the service's port answers 404 for /metrics; the metrics port serves
    them; stopping the service closes that listener too."""
    port = free_port()
    proc = await _started(valkey_url, "auth", PULSAR_METRICS_PORT=str(port))
    try:
        async with httpx.AsyncClient() as http:
            assert (await http.get(proc.url + "/metrics")).status_code == 404
            r = await http.get(f"http://127.0.0.1:{port}/metrics")
            assert r.status_code == 200 and "relay_http_requests_total" in r.text
    finally:
        await asyncio.to_thread(proc.stop)
    async with httpx.AsyncClient() as http:
        try:
            await http.get(f"http://127.0.0.1:{port}/metrics")
            raise AssertionError("the metrics listener outlived its service")
        except httpx.ConnectError:
            pass
