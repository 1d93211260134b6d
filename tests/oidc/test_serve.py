"""``pulsar-relay serve all`` configured from the environment (one JSON value in
PULSAR_OIDC_PROVIDERS): a sign-in through the real provider works end to end, and a bad
provider stops start-up with a message naming the field, the secret never printed."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx

from tests.conftest import TEST_SECRET
from tests.console.conftest import relay_env, start_relay
from tests.oidc.conftest import CLIENT_ID, CLIENT_SECRET
from tests.oidc.idp import IdentityProvider
from tests.support.serve import child_env


async def test_serve_all_signs_in_through_a_provider_from_the_environment(
    valkey_url: str, idp: IdentityProvider
) -> None:
    """The all-in-one server reads the provider from PULSAR_OIDC_PROVIDERS; a first sign-in
    creates a user with the configured permissions and the browser session reaches the console
    token endpoint."""
    providers = [
        {
            "name": "corp",
            "display_name": "Corp SSO",
            "issuer": idp.issuer,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "default_permissions": ["read"],
        }
    ]
    proc = start_relay(relay_env(valkey_url, PULSAR_OIDC_PROVIDERS=json.dumps(providers)))
    try:
        idp.register(CLIENT_ID, f"{proc.url}/auth/oidc/corp/callback", CLIENT_SECRET)
        async with httpx.AsyncClient(base_url=proc.url, timeout=30) as who:
            listed = (await who.get("/auth/oidc/providers")).json()
            assert listed == [
                {"name": "corp", "display_name": "Corp SSO", "login_url": "/auth/oidc/corp/login"}
            ]
            r = await who.get("/auth/oidc/corp/login", params={"next": "/console/login?oidc=1"})
            assert r.status_code == 302
            back = await idp.approve(r.headers["location"], "xena")
            assert back.startswith(f"{proc.url}/auth/oidc/corp/callback?")
            r = await who.get(back.removeprefix(proc.url))
            assert (r.status_code, r.headers["location"]) == (303, "/console/login?oidc=1")
            session = (await who.get("/auth/web/session")).json()
            r = await who.post("/auth/web/token", headers={"X-CSRF-Token": session["csrf_token"]})
            assert r.status_code == 200, r.text
            me = await who.get("/auth/me", headers={"Authorization": f"Bearer {r.json()['access_token']}"})
            assert (me.json()["username"], me.json()["permissions"]) == ("xena", ["read"])
    finally:
        proc.stop()


def test_bad_provider_setting_stops_start_up() -> None:
    """A provider without https stops `pulsar-relay serve` with exit 2, naming the field; the
    client secret is not printed."""
    providers = [
        {
            "name": "corp",
            "issuer": "http://sso.example.org",
            "client_id": "x",
            "client_secret": "s3cr3t-v4lue",
        }
    ]
    env = child_env(PULSAR_JWT_SECRET_KEY=TEST_SECRET, PULSAR_OIDC_PROVIDERS=json.dumps(providers))
    done = subprocess.run(
        [sys.executable, "-m", "pulsar_relay", "serve", "auth", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "PULSAR_OIDC_PROVIDERS[0] (corp).issuer" in done.stderr and "must use https" in done.stderr
    assert "s3cr3t-v4lue" not in done.stderr + done.stdout
