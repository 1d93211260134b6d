"""``pulsar-config --login-only`` (Pulsar 0.16, a real child process) approved by a person in
headless Chromium: the printed link, the relay's sign-in form, the Approve button.  The page runs
under its strict CSP without a single console error, and the credentials file works."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.compat.device import login_only
from tests.console.browser import Browser
from tests.console.conftest import ADMIN, bearer, login, relay_env, start_relay
from tests.support.serve import RelayProcess

USER, PASSWORD = "pulsar_host", "pulsar-host-password"


@pytest.fixture
def device_relay(valkey_url: str) -> Iterator[RelayProcess]:
    """``serve all`` whose devices may poll every second."""
    proc = start_relay(relay_env(valkey_url, PULSAR_DEVICE_POLL_INTERVAL="1"))
    try:
        yield proc
    finally:
        proc.stop()


async def test_pulsar_config_login_approved_in_chromium(
    device_relay: RelayProcess, browser: Browser, tmp_path: Path
) -> None:
    """Open the link pulsar-config prints, sign in, see the device's name, press Approve:
    pulsar-config exits 0 with a credentials file whose access token is the person's."""
    async with httpx.AsyncClient(base_url=device_relay.url, timeout=30) as http:
        admin = await login(http, *ADMIN)
        r = await http.post(
            "/auth/register",
            json={"username": USER, "password": PASSWORD, "permissions": ["read", "write"]},
            headers=bearer(admin),
        )
        assert r.status_code == 201, r.text
        home = tmp_path / "pulsar"
        home.mkdir(mode=0o700)
        cli = login_only(device_relay.url, home)
        try:
            link, code = await asyncio.to_thread(cli.banner)
            assert await browser.call("goto", url=link) == 200
            await browser.call("fill", selector="#username", value=USER)
            await browser.call("fill", selector="#password", value=PASSWORD)
            await browser.call("click", selector="button[type=submit]")
            await browser.call("waitFor", selector="form[action='/auth/device/approve'] button")
            shown = await browser.call("text", selector="main")
            assert code in shown and f"pulsar-config on {socket.gethostname()}" in shown
            await browser.call("click", selector="form[action='/auth/device/approve'] button")
            await browser.call("waitFor", selector="p.ok")
            assert "Device approved" in await browser.call("text", selector="p.ok")
            assert await asyncio.to_thread(cli.wait) == 0, cli.output
        finally:
            cli.stop()
        assert browser.page_errors() == []  # no CSP violation, no script error
        creds = json.loads((home / "relay_credentials.json").read_text())
        me = await http.get("/auth/me", headers=bearer(creds["access_token"]))
        assert me.status_code == 200 and me.json()["username"] == USER
        assert os.stat(home / "relay_credentials.json").st_mode & 0o077 == 0
