"""The auth service's operational surface: /health, /ready (503 without Valkey), /metrics, storage
outages answered with 503 rather than 500, and the same API on the memory backend."""

from __future__ import annotations

import httpx

from auth.app import create_app
from relaycore.context import Context
from relaycore.store.memory import MemoryBackend
from tests.auth.conftest import ADMIN, FAST_HASHING, Auth, bearer
from tests.conftest import make_settings
from tests.support.serve import running
from tests.support.valkey import free_port


async def test_health_ready_metrics(auth: Auth) -> None:
    """/health and /ready are 200 with Valkey up; /metrics is Prometheus text with login counts."""
    r = await auth.client.get("/health")
    assert r.status_code == 200
    assert r.json()["status"] == "healthy"
    r = await auth.client.get("/ready")
    assert (r.status_code, r.json()) == (200, {"ready": True, "checks": {"storage": "ok"}})
    await auth.login("nobody", "wrong-password")
    r = await auth.client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    assert 'relay_login_attempts_total{outcome="failed"}' in r.text
    assert 'relay_login_attempts_total{outcome="ok"}' in r.text


async def test_storage_outage_is_503() -> None:
    """With Valkey unreachable: /ready is 503 naming the cause, and API calls are 503, never 500."""
    settings = make_settings(f"redis://127.0.0.1:{free_port()}/0", valkey_timeout=0.5, **FAST_HASHING)
    async with running(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as client:
        r = await client.get("/ready")
        assert r.status_code == 503
        assert r.json()["ready"] is False
        assert r.json()["checks"]["storage"] == "error: Valkey is unreachable (connection refused)"
        assert (await client.get("/health")).status_code == 200
        r = await client.post("/auth/login", data={"username": "a", "password": "password123"})
        assert r.status_code == 503
        assert "detail" in r.json()


async def test_memory_backend() -> None:
    """The API works the same on the memory backend (single-process mode)."""
    settings = make_settings(
        bootstrap_admin_username=ADMIN[0], bootstrap_admin_password=ADMIN[1], **FAST_HASHING
    )
    ctx = Context(settings, backend=MemoryBackend(settings))
    async with running(create_app(settings, ctx)) as url, httpx.AsyncClient(base_url=url) as client:
        service = Auth(url, client, settings)
        service.admin_token = await service.token(*ADMIN)
        owner_id, owner = await service.user("owner")
        reader_id, reader = await service.user("reader", ["read"])
        r = await client.post("/api/v1/topics", json={"topic_name": "jobs"}, headers=bearer(owner))
        assert r.status_code == 201
        r = await client.post("/api/v1/topics", json={"topic_name": "jobs"}, headers=bearer(owner))
        assert r.status_code == 409
        assert (await client.get("/api/v1/topics/jobs", headers=bearer(reader))).status_code == 403
        r = await client.post(
            "/api/v1/topics/jobs/permissions", json={"username": "reader"}, headers=bearer(owner)
        )
        assert r.status_code == 201
        assert (await client.get("/api/v1/topics/jobs", headers=bearer(reader))).status_code == 200
        me = (await client.get("/auth/me", headers=bearer(owner))).json()
        assert me["owned_topics"] == ["jobs"]
        r = await client.patch(
            f"/auth/users/{reader_id}", json={"is_active": False}, headers=bearer(service.admin_token)
        )
        assert r.status_code == 200
        assert (await client.get("/auth/me", headers=bearer(reader))).status_code == 403
        r = await client.get("/api/v1/topics/stats", headers=bearer(service.admin_token))
        assert r.json()["topics"][0]["owner_id"] == owner_id
        assert (await client.delete("/api/v1/topics/jobs", headers=bearer(owner))).status_code == 204
