"""A real OpenID Connect provider (tests/oidc/idp.py) for the whole session, and the auth service
configured to sign people in through it, with the device flow's helpers (tests/device)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from relaycore.config import OidcProvider
from tests.device.conftest import Person, Relay, relay_factory
from tests.oidc.idp import IdentityProvider

__all__ = ["Person", "Relay", "relay_factory"]

CLIENT_ID = "pulsar-relay"
CLIENT_SECRET = "relay-client-secret-0123456789"


@pytest.fixture(scope="session")
def idp() -> Iterator[IdentityProvider]:
    provider = IdentityProvider()
    try:
        yield provider
    finally:
        provider.stop()


def provider_config(idp: IdentityProvider, **overrides: Any) -> OidcProvider:
    base: dict[str, Any] = {
        "name": "test",
        "display_name": "Test IdP",
        "issuer": idp.issuer,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "default_permissions": ["read", "write"],
    }
    return OidcProvider(**(base | overrides))


class OidcRelay:
    """The auth service with provider ``test`` configured, and a person's side of the sign-in."""

    def __init__(self, relay: Relay, idp: IdentityProvider) -> None:
        self.relay = relay
        self.idp = idp
        self.client = relay.client
        self.browsers: list[httpx.AsyncClient] = []
        for p in relay.settings.oidc_providers:
            if p.issuer == idp.issuer:
                idp.register(p.client_id, f"{relay.url}/auth/oidc/{p.name}/callback", p.client_secret)

    async def start(self, who: httpx.AsyncClient, provider: str = "test", next_path: str = "") -> str:
        """The provider URL that ``GET /auth/oidc/<provider>/login`` redirects to."""
        r = await who.get(f"/auth/oidc/{provider}/login", params={"next": next_path} if next_path else None)
        assert r.status_code == 302, r.text
        location: str = r.headers["location"]
        return location

    def browser(self) -> httpx.AsyncClient:
        """A fresh browser (its own cookie jar) at the relay, closed with the fixture."""
        who = httpx.AsyncClient(base_url=self.relay.url, headers={"Origin": self.relay.url}, timeout=30)
        self.browsers.append(who)
        return who

    async def sign_in(
        self, login: str, who: httpx.AsyncClient | None = None, next_path: str = "", provider: str = "test"
    ) -> httpx.Response:
        """Sign in as ``login`` at the provider; the relay's answer to the callback."""
        who = who or self.browser()
        back = await self.idp.approve(await self.start(who, provider, next_path), login)
        return await self.callback(who, back)

    async def callback(self, who: httpx.AsyncClient, back: str) -> httpx.Response:
        parts = urlsplit(back)
        assert back.startswith(self.relay.url), back
        return await who.get(parts.path, params=dict(parse_qsl(parts.query)))


@pytest.fixture
async def oidc_factory(
    relay_factory: Callable[..., Any], idp: IdentityProvider
) -> AsyncIterator[Callable[..., Any]]:
    started: list[OidcRelay] = []

    async def start(providers: list[OidcProvider] | None = None, **overrides: Any) -> OidcRelay:
        relay = await relay_factory(oidc_providers=providers or [provider_config(idp)], **overrides)
        started.append(OidcRelay(relay, idp))
        return started[-1]

    yield start
    for one in started:
        for who in one.browsers:
            await who.aclose()


@pytest.fixture
async def oidc(oidc_factory: Callable[..., Any]) -> OidcRelay:
    """The auth service with the real provider configured as ``test``."""
    started: OidcRelay = await oidc_factory()
    return started
