"""The auth service on a real socket against the session Valkey, with a bootstrap admin, cheap
password hashing (the cost is a setting) and helpers to make users and log them in."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import httpx
import pytest

from auth.app import create_app
from relaycore.config import Settings
from tests.support.serve import running

ADMIN = ("admin", "admin1234")
FAST_HASHING: dict[str, Any] = {"password_hash_time_cost": 1, "password_hash_memory_kib": 64}


class Auth:
    """A running auth service and an HTTP client for it."""

    def __init__(self, url: str, client: httpx.AsyncClient, settings: Settings) -> None:
        self.url = url
        self.client = client
        self.settings = settings
        self.admin_token = ""

    async def login(self, username: str, password: str, **headers: str) -> httpx.Response:
        return await self.client.post(
            "/auth/login", data={"username": username, "password": password}, headers=headers
        )

    async def token(self, username: str, password: str) -> str:
        r = await self.login(username, password)
        assert r.status_code == 200, r.text
        token: str = r.json()["access_token"]
        return token

    async def user(
        self, username: str, permissions: Sequence[str] = ("read", "write"), password: str = "password123"
    ) -> tuple[str, str]:
        """Register a user through the API as the admin and log it in: (user_id, token)."""
        r = await self.client.post(
            "/auth/register",
            json={"username": username, "password": password, "permissions": list(permissions)},
            headers=bearer(self.admin_token),
        )
        assert r.status_code == 201, r.text
        return r.json()["user_id"], await self.token(username, password)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def auth_settings(settings_factory: Callable[..., Settings], **overrides: Any) -> Settings:
    base: dict[str, Any] = {
        **FAST_HASHING,
        "bootstrap_admin_username": ADMIN[0],
        "bootstrap_admin_password": ADMIN[1],
        "login_rate_limit_attempts": 1000,
    }
    return settings_factory(**(base | overrides))


@pytest.fixture
async def auth(settings_factory: Callable[..., Settings]) -> AsyncIterator[Auth]:
    """The auth service with the bootstrap admin logged in."""
    settings = auth_settings(settings_factory)
    async with running(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as client:
        service = Auth(url, client, settings)
        service.admin_token = await service.token(*ADMIN)
        yield service
