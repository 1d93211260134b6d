"""A relay as its users see it: started the way an operator starts it (``serve all`` with a bootstrap
admin), then driven only over HTTP: log in, register users, publish, wait for a poller."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest

from tests.conftest import TEST_SECRET

# The seed README's login example uses this password verbatim, so its curl runs unchanged.
ADMIN_USERNAME = "admin"
ADMIN_PASSWORD = "your-secure-password"

# What ``relay`` can be: the all-in-one process, or the split stack behind HAProxy.
DEPLOYMENTS = ["all", pytest.param("stack", marks=pytest.mark.slow)]

REPO = Path(__file__).resolve().parents[2]
# The child relay imports the source tree even where the project is not pip-installed.
SOURCE_PATH = os.pathsep.join(str(REPO / d) for d in ("libs", "services", "."))


class Relay(Protocol):
    """What a test needs of a running relay, all-in-one or split: its one public origin."""

    @property
    def url(self) -> str: ...

    @property
    def port(self) -> int: ...

    def output(self) -> str: ...


def relay_env(valkey_url: str, **extra: str) -> dict[str, str]:
    """The environment of an operator's relay: Valkey storage, a real secret, a bootstrap admin."""
    return {
        "PULSAR_JWT_SECRET_KEY": TEST_SECRET,
        "PULSAR_STORAGE_BACKEND": "valkey",
        "PULSAR_VALKEY_URL": valkey_url,
        "PULSAR_BOOTSTRAP_ADMIN_USERNAME": ADMIN_USERNAME,
        "PULSAR_BOOTSTRAP_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "PULSAR_LOG_LEVEL": "WARNING",
        "PYTHONPATH": os.pathsep.join(filter(None, [SOURCE_PATH, os.environ.get("PYTHONPATH", "")])),
        **extra,
    }


class Api:
    """Plain HTTP calls a test needs to set the scene around the code under test."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = httpx.Client(base_url=base_url, timeout=30)

    def close(self) -> None:
        self.http.close()

    def login(self, username: str = ADMIN_USERNAME, password: str = ADMIN_PASSWORD) -> str:
        r = self.http.post("/auth/login", data={"username": username, "password": password})
        assert r.status_code == 200, f"login {username}: {r.status_code} {r.text}"
        return str(r.json()["access_token"])

    def register(
        self, admin_token: str, username: str, password: str, permissions: Sequence[str]
    ) -> dict[str, Any]:
        r = self.http.post(
            "/auth/register",
            headers=bearer(admin_token),
            json={"username": username, "password": password, "permissions": list(permissions)},
        )
        assert r.status_code == 201, f"register {username}: {r.status_code} {r.text}"
        return dict(r.json())

    def user(self, admin_token: str, username: str, permissions: Sequence[str]) -> str:
        """Register ``username`` (password = username + '-password') and return its token."""
        password = f"{username}-password"
        self.register(admin_token, username, password, permissions)
        return self.login(username, password)

    def create_topic(self, token: str, name: str, *, is_public: bool = False) -> dict[str, Any]:
        r = self.http.post(
            "/api/v1/topics", headers=bearer(token), json={"topic_name": name, "is_public": is_public}
        )
        assert r.status_code == 201, f"create topic {name}: {r.status_code} {r.text}"
        return dict(r.json())

    def grant(self, token: str, topic: str, username: str) -> None:
        r = self.http.post(
            f"/api/v1/topics/{topic}/permissions", headers=bearer(token), json={"username": username}
        )
        assert r.status_code == 201, f"grant {topic} to {username}: {r.status_code} {r.text}"

    def publish(self, token: str, topic: str, payload: Mapping[str, Any]) -> str:
        r = self.http.post(
            "/api/v1/messages", headers=bearer(token), json={"topic": topic, "payload": dict(payload)}
        )
        assert r.status_code == 201, f"publish to {topic}: {r.status_code} {r.text}"
        return str(r.json()["message_id"])

    def history(self, token: str, topic: str) -> list[dict[str, Any]]:
        """Every stored message of ``topic``, oldest first, paging with the history endpoint."""
        out: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            params: dict[str, str | int] = {"limit": 100, "order": "asc"}
            if cursor:
                params["cursor"] = cursor
            r = self.http.get(f"/api/v1/topics/{topic}/messages", headers=bearer(token), params=params)
            assert r.status_code == 200, f"history of {topic}: {r.status_code} {r.text}"
            page = r.json()["messages"]
            if not page:
                return out
            out.extend(page)
            cursor = page[-1]["message_id"]

    def wait_for_pollers(self, token: str, topics: Iterable[str], timeout: float = 15) -> None:
        """Block until a long-poll is waiting on every topic in ``topics``, as the Pulsar resilience
        harness does (``/messages/poll/stats``); a consumer that starts without a cursor only sees
        messages published after its poll registered."""
        wanted = list(topics)
        deadline = time.monotonic() + timeout
        body: Any = None
        while time.monotonic() < deadline:
            r = self.http.get("/messages/poll/stats", headers=bearer(token))
            if r.status_code == 200:
                body = r.json()
                counts = body.get("topic_subscriber_counts") or {}
                if all(_count_for(counts, t) > 0 for t in wanted):
                    return
            else:
                body = (r.status_code, r.text)
            time.sleep(0.05)
        raise AssertionError(f"no poller registered on {wanted} within {timeout}s; last stats: {body}")


def _count_for(counts: Mapping[str, int], topic: str) -> int:
    # Seed keys are bare topic names; the latest reference uses "<owner>/<topic>".
    return sum(n for key, n in counts.items() if key == topic or key.endswith("/" + topic))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
