"""Property: no form, raw body or query on the device-flow endpoints and the verification page
makes the relay answer 5xx or log a traceback.  The JSON endpoints refuse with RFC 6749's
``{"error", "error_description"}``, the page with a 4xx page that says why (hypothesis against a
real process)."""

from __future__ import annotations

import re
from html import unescape

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.conftest import Target
from tests.fuzz.strategies import LogWatch
from tests.fuzz.test_http_fuzz import FUZZ

GRANT = "urn:ietf:params:oauth:grant-type:device_code"
CONTENT_TYPES = st.sampled_from(
    [
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=zz",
        "application/json",
        "text/plain",
        "",
    ]
)
TEXT = st.one_of(
    st.text(max_size=60), st.sampled_from([GRANT, "true", "false", "BCDF-GHJK", "", "\x00", "é" * 300])
)


@pytest.fixture
def logs(target: Target) -> LogWatch:
    watch = LogWatch(target.proc)
    watch.new_text()
    return watch


def oauth_check(r: httpx.Response) -> None:
    where = f"{r.request.method} {r.request.url.path} -> {r.status_code}: {r.text[:300]}"
    assert r.status_code < 500, where
    assert b"Traceback" not in r.content, where
    if r.status_code >= 400:
        body = r.json()
        assert body["error"] and body["error_description"], where


def page_check(r: httpx.Response) -> None:
    where = f"{r.request.method} {r.request.url.path} -> {r.status_code}: {r.text[:300]}"
    assert r.status_code < 500, where
    assert b"Traceback" not in r.content, where
    if r.status_code >= 400 and r.status_code != 429:
        assert 'role="alert"' in r.text, where


def test_device_endpoints_never_crash(target: Target, logs: LogWatch) -> None:
    """Random forms and raw bodies on /auth/device/code and /auth/device/token: 200 or a 400 with
    an OAuth error code, never a 5xx."""

    @FUZZ
    @given(
        path=st.sampled_from(["/auth/device/code", "/auth/device/token"]),
        form=st.dictionaries(
            st.sampled_from(["client_hint", "scope", "pair", "grant_type", "device_code", "x"]), TEXT
        ),
        raw=st.one_of(st.none(), st.binary(max_size=200)),
        ctype=CONTENT_TYPES,
    )
    def run(path: str, form: dict[str, str], raw: bytes | None, ctype: str) -> None:
        if raw is None:
            r = target.http.post(path, data=form)
        else:
            r = target.http.post(path, content=raw, headers={"Content-Type": ctype, "Connection": "close"})
        oauth_check(r)
        if path == "/auth/device/token":
            assert r.status_code == 400  # nothing here was ever approved

    run()
    logs.assert_no_crash()


def test_verification_page_never_crashes(target: Target, logs: LogWatch) -> None:
    """Random queries, forms and raw bodies on the page and its POSTs, signed in or not: a page,
    a redirect or a 4xx page that says why, never a 5xx."""
    signed_in = httpx.Client(base_url=target.url, timeout=10)
    r = signed_in.post("/auth/device/signin", data={"username": "fuzz-user", "password": "password123"})
    assert r.status_code == 303, r.text
    page = signed_in.get("/auth/device").text
    found = re.search(r'name="csrf_token" value="([^"]*)"', page)
    assert found
    csrf = unescape(found.group(1))

    @FUZZ
    @given(
        path=st.sampled_from(
            ["/auth/device/signin", "/auth/device/signout", "/auth/device/approve", "/auth/device/deny"]
        ),
        form=st.dictionaries(
            st.sampled_from(["username", "password", "next", "user_code", "csrf_token"]), TEXT
        ),
        with_csrf=st.booleans(),
        raw=st.one_of(st.none(), st.binary(max_size=200)),
        ctype=CONTENT_TYPES,
        query=st.one_of(st.text(max_size=50), st.sampled_from(["BCDF-GHJK", "x" * 100])),
        who=st.sampled_from(["anonymous", "signed-in"]),
    )
    def run(
        path: str, form: dict[str, str], with_csrf: bool, raw: bytes | None, ctype: str, query: str, who: str
    ) -> None:
        client = signed_in if who == "signed-in" else target.http
        if path == "/auth/device/signout" and who == "signed-in":
            path = "/auth/device/deny"  # keep the session for the next example
        check = client.get("/auth/device", params={"user_code": query})
        page_check(check)
        if with_csrf:
            form = {**form, "csrf_token": csrf}
        if raw is None:
            r = client.post(path, data=form)
        else:
            r = client.post(path, content=raw, headers={"Content-Type": ctype, "Connection": "close"})
        page_check(r)

    try:
        run()
    finally:
        signed_in.close()
    logs.assert_no_crash()
