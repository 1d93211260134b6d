"""One all-in-one relay process on a private Valkey for the whole fuzz module, an admin, a plain
user, a user the fuzzer may PATCH, and a topic with messages (so valid polls answer at once)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.reliability.harness import ADMIN, bearer, relay_env, stop_quickly
from tests.support.serve import RelayProcess
from tests.support.valkey import ValkeyServer, server_binary

SEEDED = "fuzz-seeded"


@dataclass
class Target:
    """The running relay and what the fuzzers aim at."""

    proc: RelayProcess
    http: httpx.Client
    admin: str  # token
    victim_id: str  # a user the fuzzer may PATCH or DELETE
    user_token: str

    @property
    def url(self) -> str:
        return self.proc.url


@pytest.fixture(scope="module")
def target() -> Iterator[Target]:
    if server_binary() is None:
        pytest.skip("no valkey-server or redis-server on PATH")
    valkey = ValkeyServer().start()
    proc = RelayProcess("all", relay_env(valkey.url, PULSAR_LOG_LEVEL="INFO"))
    http = httpx.Client(base_url=proc.url, timeout=10)
    try:
        proc.start()
        admin = http.post("/auth/login", data={"username": ADMIN[0], "password": ADMIN[1]}).json()[
            "access_token"
        ]
        ids = []
        for name in ("fuzz-victim", "fuzz-user"):
            r = http.post(
                "/auth/register",
                json={"username": name, "password": "password123", "permissions": ["read", "write"]},
                headers=bearer(admin),
            )
            assert r.status_code == 201, r.text
            ids.append(r.json()["user_id"])
        token = http.post("/auth/login", data={"username": "fuzz-user", "password": "password123"}).json()[
            "access_token"
        ]
        r = http.post("/api/v1/messages", json={"topic": SEEDED, "payload": {"n": 1}}, headers=bearer(admin))
        assert r.status_code == 201, r.text
        r = http.put(f"/api/v1/topics/{SEEDED}", json={"is_public": True}, headers=bearer(admin))
        assert r.status_code == 200, r.text
        yield Target(proc, http, admin, ids[0], token)
    finally:
        http.close()
        stop_quickly([proc])
        valkey.cleanup()
