"""Property: no body on the refresh-token endpoints and no id on the session endpoints makes the
relay answer 5xx or log a traceback; every refusal is a 4xx that says why, and a real session
survives the barrage (hypothesis against a real process)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.conftest import Target
from tests.fuzz.strategies import LogWatch, bodies, check
from tests.fuzz.test_http_fuzz import FUZZ
from tests.reliability.harness import bearer

WIRE_LIKE = st.one_of(
    st.text(max_size=120),
    st.builds(lambda a, b: f"{a}.{b}", st.text("0123456789abcdef", max_size=40), st.text(max_size=50)),
    st.sampled_from(["", ".", "0" * 32 + ".", "0" * 32 + "." + "A" * 43, "\x00" * 10, "é" * 200]),
)
FIELDS: dict[str, st.SearchStrategy[Any]] = {"refresh_token": WIRE_LIKE, "revoke_chain": st.booleans()}


@pytest.fixture(scope="module")
def logs(target: Target) -> LogWatch:
    watch = LogWatch(target.proc)
    watch.new_text()
    return watch


@pytest.mark.parametrize("path", ["/auth/token/refresh", "/auth/token/revoke"])
def test_refresh_and_revoke_bodies_never_crash(target: Target, logs: LogWatch, path: str) -> None:
    """Random, hostile and token-shaped bodies on refresh and revoke: a 2xx or a 4xx with a reason
    (429 once the failures from this address reach the limit), never a 5xx."""
    keep = target.http.post("/auth/login", data={"username": "fuzz-user", "password": "password123"}).json()

    @FUZZ
    @given(body=bodies(FIELDS))
    def run(body: bytes) -> None:
        check(target.http.post(path, content=body, headers={"Content-Type": "application/json"}))

    run()
    logs.assert_no_crash()
    r = target.http.get("/auth/me", headers=bearer(keep["access_token"]))
    assert r.status_code == 200, "a random body ended someone's session"


def test_session_ids_never_crash(target: Target, logs: LogWatch) -> None:
    """Random ids on DELETE /auth/sessions/{jti} and the admin's /auth/users/{id}/sessions[/{jti}]:
    404 or 204, never a 5xx; the caller's own session survives what is not its id."""

    @FUZZ
    @given(
        jti=st.text(min_size=1, max_size=80),
        user=st.one_of(st.text(min_size=1, max_size=40), st.just(target.victim_id)),
        method=st.sampled_from(["GET", "DELETE"]),
    )
    def run(jti: str, user: str, method: str) -> None:
        j, u = quote(jti, safe=""), quote(user, safe="")
        check(target.http.delete(f"/auth/sessions/{j}", headers=bearer(target.user_token)))
        check(target.http.request(method, f"/auth/users/{u}/sessions", headers=bearer(target.user_token)))
        check(target.http.delete(f"/auth/users/{u}/sessions/{j}", headers=bearer(target.admin)))

    run()
    logs.assert_no_crash()
    assert target.http.get("/auth/sessions", headers=bearer(target.user_token)).status_code == 200
