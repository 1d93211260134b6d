"""The operator console signs in through the real identity provider in a headless Chromium: the
"Sign in with" button, the provider's page, and back to the console with a token that never
appeared in a URL, under the console's strict Content-Security-Policy."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests.console.browser import Browser
from tests.oidc.conftest import provider_config


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    b = await Browser.start()
    try:
        yield b
    finally:
        await b.close()


async def test_console_sign_in_through_the_provider(
    oidc_factory: Callable[..., Any], idp, browser: Browser
) -> None:
    """An admin identity signs in to the console with "Sign in with Test IdP" and lands on the
    overview; a non-admin identity is turned away on the login page."""
    admins = provider_config(idp, default_permissions=["admin", "read", "write"])
    readers = provider_config(idp, name="readers", display_name="Readers IdP", client_id="readers")
    oidc = await oidc_factory([admins, readers])
    idp.register("readers", f"{oidc.relay.url}/auth/oidc/readers/callback", readers.client_secret)
    b = browser
    await b.call("goto", url=f"{oidc.relay.url}/console/topics")
    await b.call("waitForUrl", path="/console/login")
    await b.call("waitFor", selector="#providers a")
    assert await b.call("texts", selector="#providers a") == [
        "Sign in with Test IdP",
        "Sign in with Readers IdP",
    ]
    await b.screenshot("oidc-login")
    await b.call("click", selector="#providers a >> nth=0")
    await b.call("waitFor", selector="#login")  # the provider's own sign-in page
    assert (await b.call("url")).startswith(idp.issuer)
    await b.call("fill", selector="#login", value="victor")
    await b.call("click", selector="#submit")
    await b.call("waitForUrl", path="/console/topics")
    stored = await b.call(
        "evaluate", body="return JSON.parse(sessionStorage.getItem(Object.keys(sessionStorage)[0]))"
    )
    assert stored["username"] == "victor" and stored["token"]
    assert stored["token"] not in await b.call("url")
    await b.call("waitFor", selector=".who")
    assert b.page_errors() == []

    # a person whose identity has no admin permission stays on the login page, told why (a
    # second browser: the first one's provider session would sign victor in again)
    other = await Browser.start()
    try:
        await other.call("goto", url=f"{oidc.relay.url}/console/login")
        await other.call("waitFor", selector="#providers a")
        await other.call("click", selector="#providers a >> nth=1")
        await other.call("waitFor", selector="#login")
        await other.call("fill", selector="#login", value="wanda")
        await other.call("click", selector="#submit")
        await other.call("waitForUrl", path="/console/login")
        await other.call("waitFor", selector="#login-error")
        assert "wanda is not an administrator" in await other.call("text", selector="#login-error")
        assert await other.call("evaluate", body="return sessionStorage.length") == 0
        assert other.page_errors() == []
    finally:
        await other.close()
