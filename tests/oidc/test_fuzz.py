"""Property: no query, cookie, header or body on the OIDC sign-in routes, the browser-session
routes and the identities API makes the relay answer 5xx or log a traceback; every refusal says
why (hypothesis against ``pulsar-relay serve all`` with the real provider configured)."""

from __future__ import annotations

import json
import string
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.console.conftest import ADMIN, relay_env, start_relay
from tests.fuzz.strategies import LogWatch
from tests.fuzz.test_http_fuzz import FUZZ
from tests.oidc.conftest import CLIENT_ID, CLIENT_SECRET
from tests.oidc.idp import IdentityProvider
from tests.support.serve import RelayProcess
from tests.support.valkey import ContainerValkey, ValkeyServer

TEXT = st.one_of(
    st.text(max_size=80),
    st.sampled_from(["", "\x00", "é" * 300, "/auth/device", "//evil.example", "x" * 5000, "test", "%00"]),
)
# what a browser could put in a cookie or header (the HTTP server refuses the rest itself)
TOKENISH = st.text(alphabet=string.ascii_letters + string.digits + "-_.~=+/%", max_size=120)
PROVIDER = st.one_of(st.sampled_from(["test", "nope", "TEST", "te st", "..", "%2e%2e"]), st.text(max_size=20))


@pytest.fixture(scope="module")
def served(valkey_server: ValkeyServer | ContainerValkey, idp: IdentityProvider) -> Iterator[RelayProcess]:
    providers = [
        {"name": "test", "issuer": idp.issuer, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    ]
    env = relay_env(
        valkey_server.url,
        PULSAR_OIDC_PROVIDERS=json.dumps(providers),
        PULSAR_OIDC_LOGIN_RATE_LIMIT="0",
        PULSAR_KEY_PREFIX="oidcfuzz",
        PULSAR_LOG_LEVEL="INFO",
    )
    proc = start_relay(env)
    try:
        idp.register(CLIENT_ID, f"{proc.url}/auth/oidc/test/callback", CLIENT_SECRET)
        yield proc
    finally:
        proc.stop()


def check(r: httpx.Response) -> None:
    where = f"{r.request.method} {r.request.url} -> {r.status_code}: {r.text[:300]}"
    assert r.status_code < 500, where
    assert b"Traceback" not in r.content, where
    if r.status_code >= 400:
        assert r.json()["detail"], where


def test_sign_in_routes_never_crash(served: RelayProcess) -> None:
    """Random providers, next paths and callback parameters, cookies and CSRF headers: a
    redirect, a JSON answer or a 4xx that says why, never a 5xx."""
    logs = LogWatch(served)
    logs.new_text()
    http = httpx.Client(base_url=served.url, timeout=10)

    @FUZZ
    @given(
        provider=PROVIDER,
        next_path=TEXT,
        params=st.dictionaries(
            st.sampled_from(["state", "code", "error", "error_description", "iss", "session_state"]), TEXT
        ),
        cookie=st.one_of(st.none(), TOKENISH),
        csrf=st.one_of(st.none(), TOKENISH),
    )
    def run(
        provider: str, next_path: str, params: dict[str, str], cookie: str | None, csrf: str | None
    ) -> None:
        quoted = f"/auth/oidc/{quote(provider, safe='') or 'x'}"
        r = http.get(f"{quoted}/login", params={"next": next_path})
        if r.status_code != 404 or provider == "test":
            check(r)
        if r.status_code == 302:
            location = r.headers["location"]
            assert location.startswith("http://127.0.0.1:"), location
        r = http.get(f"{quoted}/callback", params=params)
        if r.status_code != 404:
            check(r)
        jar = (
            {"Cookie": f"pulsar_relay_session={cookie.encode('ascii', 'replace').decode()[:200]}"}
            if cookie
            else {}
        )
        headers = {"X-CSRF-Token": csrf.encode("ascii", "replace").decode()} if csrf is not None else {}
        r = http.get("/auth/web/session", headers=jar)
        assert r.status_code == 200 and r.json()["signed_in"] is False, r.text
        r = http.post("/auth/web/token", headers={**jar, **headers})
        assert r.status_code == 401, r.text

    try:
        run()
    finally:
        http.close()
    logs.assert_no_crash()


def test_identities_api_never_crashes(served: RelayProcess) -> None:
    """Random bodies and paths on the identities API as the admin: 2xx or a 4xx that says why."""
    logs = LogWatch(served)
    logs.new_text()
    http = httpx.Client(base_url=served.url, timeout=10)
    token = http.post("/auth/login", data={"username": ADMIN[0], "password": ADMIN[1]}).json()["access_token"]
    admin = {"Authorization": f"Bearer {token}"}
    me = http.get("/auth/me", headers=admin).json()["user_id"]

    @FUZZ
    @given(
        user=st.one_of(st.just(me), st.text(max_size=40)),
        body=st.one_of(
            st.fixed_dictionaries({"provider": PROVIDER, "subject": TEXT}),
            st.dictionaries(
                st.sampled_from(["provider", "subject", "issuer"]), st.one_of(TEXT, st.integers())
            ),
        ),
        raw=st.one_of(st.none(), st.binary(max_size=100)),
        subject=TEXT,
    )
    def run(user: str, body: dict[str, object], raw: bytes | None, subject: str) -> None:
        base = f"/auth/users/{quote(user, safe='') or 'x'}/identities"
        if raw is None:
            r = http.post(base, json=body, headers=admin)
        else:
            r = http.post(base, content=raw, headers={**admin, "Content-Type": "application/json"})
        if r.status_code != 404 or user == me:
            check(r)
        if user == me:
            check(http.get(base, headers=admin))
        r = http.delete(f"{base}/test/{quote(subject, safe='') or 'x'}", headers=admin)
        if r.status_code not in (404, 405):
            check(r)

    try:
        run()
    finally:
        http.close()
    logs.assert_no_crash()
