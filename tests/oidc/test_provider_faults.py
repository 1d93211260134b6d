"""A provider that is down, stalled or sends a token that fails its checks: the relay answers
at once with a clear 502/400, never hangs and never answers 500."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import httpx
import jwt
import pytest

from auth.oidc_client import ProviderClient
from relaycore.errors import BadGateway, BadRequest
from tests.oidc.conftest import CLIENT_ID, CLIENT_SECRET, provider_config
from tests.oidc.idp import IdentityProvider
from tests.support.valkey import free_port


@pytest.fixture
def stalled() -> Iterator[str]:
    """The URL of a socket that accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


async def test_stalled_and_unreachable_providers_fail_fast(oidc_factory, idp, stalled: str) -> None:
    """Login through a provider that never answers, or is not listening, is a 502 within the
    configured time limit, naming the provider."""
    oidc = await oidc_factory(
        [
            provider_config(idp),
            provider_config(idp, name="stalled", display_name="Stalled", issuer=stalled),
            provider_config(idp, name="gone", display_name="Gone", issuer=f"http://127.0.0.1:{free_port()}"),
        ],
        oidc_http_timeout=1.0,
    )
    who = oidc.browser()
    for name, why in (("stalled", "did not answer within 1 s"), ("gone", "cannot be reached")):
        started = time.monotonic()
        r = await who.get(f"/auth/oidc/{name}/login")
        assert r.status_code == 502, r.text
        assert time.monotonic() - started < 5
        detail = r.json()["detail"]
        assert (
            detail.startswith(f"The identity provider '{name.capitalize()}' is not working") and why in detail
        )
    # the healthy provider is unaffected
    assert (await oidc.sign_in("sam", who)).status_code == 303


async def test_provider_down_at_the_callback_is_a_502(oidc_factory) -> None:
    """A provider that goes down between the sign-in and the callback: 502 naming it, no user,
    and the state is spent (a retry starts over)."""
    own = IdentityProvider()
    try:
        oidc = await oidc_factory([provider_config(own)], oidc_http_timeout=1.0)
        own.register(CLIENT_ID, f"{oidc.relay.url}/auth/oidc/test/callback", CLIENT_SECRET)
        who = oidc.browser()
        back = await own.approve(await oidc.start(who), "tess")
    finally:
        own.stop()
    r = await oidc.callback(who, back)
    assert r.status_code == 502 and "token endpoint cannot be reached" in r.json()["detail"]
    r = await oidc.callback(who, back)
    assert r.status_code == 400 and "already used" in r.json()["detail"]


def _flip(segment: str) -> str:
    return ("A" if segment[5] != "A" else "B").join((segment[:5], segment[6:]))


async def test_id_token_checks(idp: IdentityProvider) -> None:
    """A genuine ID token passes; a tampered signature or payload, another nonce or another
    audience is rejected (400) with the reason."""
    redirect = "http://127.0.0.1:9/callback"
    idp.register("direct-client", redirect, CLIENT_SECRET)
    token = await idp.id_token("direct-client", CLIENT_SECRET, redirect, "uma", nonce="n-1")
    async with httpx.AsyncClient() as http:
        client = ProviderClient(
            provider_config(idp, client_id="direct-client"), http, timeout=5, cache_ttl=60
        )
        claims = await client.verify(token, "n-1")
        assert claims["sub"] == "id-uma" and claims["preferred_username"] == "uma"
        header, payload, signature = token.split(".")
        for bad, why in (
            (f"{header}.{payload}.{_flip(signature)}", "Signature verification failed"),
            (f"{header}.{_flip(payload)}.{signature}", ""),
            ("not-a-jwt", "not a JWT"),
            (jwt.encode({"sub": "x"}, "k" * 32, algorithm="HS256"), "is not accepted"),
        ):
            with pytest.raises(BadRequest) as err:
                await client.verify(bad, "n-1")
            assert why in err.value.detail and err.value.detail.startswith("The identity provider's ID token")
        with pytest.raises(BadRequest, match="nonce"):
            await client.verify(token, "n-2")
        other = ProviderClient(provider_config(idp, client_id="someone-else"), http, timeout=5, cache_ttl=60)
        with pytest.raises(BadRequest, match="Audience"):
            await other.verify(token, "n-1")
        wrong_issuer = ProviderClient(
            provider_config(idp, issuer=idp.issuer + "/"), http, timeout=5, cache_ttl=60
        )
        with pytest.raises(BadGateway, match="names issuer"):
            await wrong_issuer.verify(token, "n-1")


async def test_wrong_client_secret_is_a_502_for_the_operator(oidc_factory, idp) -> None:
    """A provider refusing the relay's own client credentials is the relay's misconfiguration:
    502 saying to check client_id and client_secret, not a 400 blaming the person."""
    oidc = await oidc_factory([provider_config(idp, client_secret="not-the-registered-secret")])
    idp.register(CLIENT_ID, f"{oidc.relay.url}/auth/oidc/test/callback", CLIENT_SECRET)
    r = await oidc.sign_in("yves")
    assert r.status_code == 502, r.text
    assert "invalid_client" in r.json()["detail"] and "client_secret" in r.json()["detail"]


@pytest.mark.slow
async def test_provider_key_rotation_needs_no_restart(oidc_factory) -> None:
    """After the provider starts signing with a new key, the relay fetches its JWKS again on the
    unknown key id (at most every 10 s) and the next sign-in works."""
    own = IdentityProvider()
    try:
        oidc = await oidc_factory([provider_config(own)])
        redirect = f"{oidc.relay.url}/auth/oidc/test/callback"
        own.register(CLIENT_ID, redirect, CLIENT_SECRET)
        assert (await oidc.sign_in("zoe")).status_code == 303  # JWKS fetched and cached
        port = own.port
        own.stop()
        own = IdentityProvider(port=port)  # same issuer, a new signing key
        own.register(CLIENT_ID, redirect, CLIENT_SECRET)
        await asyncio.sleep(10)  # past the JWKS refetch floor
        who = oidc.browser()
        assert (await oidc.sign_in("zoe", who)).status_code == 303
        assert (await who.get("/auth/web/session")).json()["username"] == "zoe"
    finally:
        own.stop()
