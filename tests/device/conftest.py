"""The auth service on a real socket against the session Valkey, a quick device-flow poll
interval, and a ``Person``: an HTTP client with a cookie jar that signs in at the verification
page and approves or denies codes the way a browser's forms do."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from html import unescape
from typing import Any

import httpx
import pytest

from auth.app import create_app
from relaycore.config import Settings
from tests.auth.conftest import ADMIN, Auth, auth_settings, bearer
from tests.support.serve import running

PASSWORD = "password123"
DEVICE_SETTINGS: dict[str, Any] = {"device_poll_interval": 1}


def hidden(page: str, name: str) -> str:
    """The value of a hidden form field on an HTML page."""
    found = re.search(rf'name="{re.escape(name)}" value="([^"]*)"', page)
    assert found, f"no hidden field {name!r} on the page:\n{page}"
    return unescape(found.group(1))


class Person:
    """Someone at a browser: cookies kept, forms posted with this origin's Origin header."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client = httpx.AsyncClient(base_url=url, headers={"Origin": url})

    async def sign_in(self, username: str, password: str = PASSWORD, next_path: str = "") -> httpx.Response:
        data = {"username": username, "password": password}
        if next_path:
            data["next"] = next_path
        return await self.client.post("/auth/device/signin", data=data)

    async def open(self, user_code: str = "") -> httpx.Response:
        return await self.client.get("/auth/device", params={"user_code": user_code} if user_code else None)

    async def decide(self, user_code: str, approve: bool = True) -> httpx.Response:
        """Open the code's page and press Approve (or Deny) on it."""
        page = await self.open(user_code)
        assert page.status_code == 200, page.text
        form = {"user_code": hidden(page.text, "user_code"), "csrf_token": hidden(page.text, "csrf_token")}
        return await self.client.post(f"/auth/device/{'approve' if approve else 'deny'}", data=form)

    async def aclose(self) -> None:
        await self.client.aclose()


class Relay(Auth):
    people: list[Person]

    async def person(self, username: str, permissions: tuple[str, ...] = ("read", "write")) -> Person:
        """A new user, signed in at the verification page."""
        r = await self.client.post(
            "/auth/register",
            json={"username": username, "password": PASSWORD, "permissions": list(permissions)},
            headers=bearer(self.admin_token),
        )
        assert r.status_code == 201, r.text
        who = Person(self.url)
        self.people.append(who)
        r = await who.sign_in(username)
        assert r.status_code == 303, r.text
        return who

    async def code(self, **form: str) -> dict[str, Any]:
        r = await self.client.post("/auth/device/code", data=form or {"client_hint": "test device"})
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    async def poll(self, device_code: str) -> httpx.Response:
        return await self.client.post(
            "/auth/device/token",
            data={"grant_type": "urn:ietf:params:oauth:grant-type:device_code", "device_code": device_code},
        )


@pytest.fixture
async def relay_factory(settings_factory: Callable[..., Settings]) -> AsyncIterator[Callable[..., Any]]:
    """Start auth services with settings overrides; everything started is stopped afterwards."""
    from contextlib import AsyncExitStack

    async with AsyncExitStack() as stack:

        async def start(**overrides: Any) -> Relay:
            settings = auth_settings(settings_factory, **(DEVICE_SETTINGS | overrides))
            url = await stack.enter_async_context(running(create_app(settings)))
            client = await stack.enter_async_context(httpx.AsyncClient(base_url=url))
            relay = Relay(url, client, settings)
            relay.people = []
            relay.admin_token = await relay.token(*ADMIN)

            async def close_people() -> None:
                for p in relay.people:
                    await p.aclose()

            stack.push_async_callback(close_people)
            return relay

        yield start


@pytest.fixture
async def relay(relay_factory: Callable[..., Any]) -> Relay:
    """The auth service with the device flow polled every second."""
    started: Relay = await relay_factory()
    return started
