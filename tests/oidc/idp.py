"""A real OpenID Connect provider for the tests: the npm package ``oidc-provider`` run by Node
(``provider/server.js``) on a free port, plus a person's side of its sign-in page driven over HTTP.
Skips (with the reason) only when Node or npm cannot be found."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from typing import Any
from urllib.parse import parse_qsl, urljoin, urlsplit

import httpx
import pytest

from tests.support.valkey import free_port

PROVIDER_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "provider")
# The Makefile's `js` target runs the same line; the version is pinned in provider/package.json.
NPM_INSTALL = ["npm", "install", "--prefix", PROVIDER_DIR, "--no-audit", "--no-fund", "--no-package-lock"]


def ensure_provider() -> str:
    """Path of ``node`` with oidc-provider installed, or a skip saying what is missing."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (apt-get install -y nodejs npm)")
    if not os.path.isfile(os.path.join(PROVIDER_DIR, "node_modules", "oidc-provider", "package.json")):
        if shutil.which("npm") is None:
            pytest.skip("npm is not installed, cannot install oidc-provider")
        subprocess.run(NPM_INSTALL, check=True, capture_output=True, timeout=300)
    return node


class IdentityProvider:
    """One provider process; ``issuer`` is its URL.  ``stop()`` ends it."""

    def __init__(self, port: int | None = None) -> None:
        node = ensure_provider()
        self.port = port or free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        fd, self._log = tempfile.mkstemp(prefix="oidc-provider-", suffix=".log")
        self.proc = subprocess.Popen(
            [node, "server.js", str(self.port)], cwd=PROVIDER_DIR, stdout=fd, stderr=subprocess.STDOUT
        )
        os.close(fd)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the OIDC provider exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(f"{self.issuer}/.well-known/openid-configuration", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the OIDC provider did not start within 30 s:\n{self.output()}")

    def output(self) -> str:
        with open(self._log, errors="replace") as f:
            return f.read()[-4000:]

    def register(self, client_id: str, redirect_uri: str, secret: str = "") -> None:
        """Register (or replace) a client of this provider."""
        metadata: dict[str, Any] = {
            "redirect_uris": [redirect_uri],
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
        }
        if secret:
            metadata["client_secret"] = secret
        else:
            metadata["token_endpoint_auth_method"] = "none"
        r = httpx.put(f"{self.issuer}/test/clients/{client_id}", json=metadata, timeout=10)
        assert r.status_code == 204, r.text

    async def approve(self, authorization_url: str, login: str, *, refuse: bool = False) -> str:
        """Be a person at the provider: open the authorization URL, sign in as ``login`` (or
        refuse), and return the URL the provider sends the browser back to."""
        async with httpx.AsyncClient(timeout=20) as browser:
            r = await browser.get(authorization_url)
            assert r.status_code in (302, 303), r.text
            interaction = urljoin(authorization_url, r.headers["location"])
            r = await browser.get(interaction)
            assert r.status_code == 200, r.text
            if refuse:
                r = await browser.post(f"{interaction}/abort")
            else:
                r = await browser.post(f"{interaction}/login", data={"login": login})
            assert r.status_code in (302, 303), r.text
            r = await browser.get(urljoin(authorization_url, r.headers["location"]))
            assert r.status_code in (302, 303), r.text
            return urljoin(authorization_url, r.headers["location"])

    async def id_token(self, client_id: str, secret: str, redirect_uri: str, login: str, nonce: str) -> str:
        """A genuine ID token for ``login``, obtained as a client of this provider would."""
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        query = httpx.QueryParams(
            client_id=client_id,
            response_type="code",
            redirect_uri=redirect_uri,
            scope="openid profile email",
            state="s",
            nonce=nonce,
            code_challenge=challenge,
            code_challenge_method="S256",
        )
        back = await self.approve(f"{self.issuer}/auth?{query}", login)
        code = dict(parse_qsl(urlsplit(back).query))["code"]
        async with httpx.AsyncClient(timeout=20) as client:
            r = await client.post(
                f"{self.issuer}/token",
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": redirect_uri,
                    "code_verifier": verifier,
                },
                auth=(client_id, secret),
            )
        assert r.status_code == 200, r.text
        token: str = r.json()["id_token"]
        return token

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        with contextlib.suppress(OSError):
            os.unlink(self._log)
