"""Property: no request body, path or query on any HTTP endpoint makes a service answer 5xx or
leak a traceback; every refusal is a 4xx with a reason (hypothesis against a real process)."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.conftest import SEEDED, Target
from tests.fuzz.strategies import (
    DEEP,
    HUGE_NUMBERS,
    JSON,
    NOT_UTF8,
    RAW,
    TOPIC_LIKE,
    LogWatch,
    bodies,
    check,
    encode,
)
from tests.reliability.harness import bearer

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "120"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

PRINTABLE = st.characters(min_codepoint=33, max_codepoint=126)
PERMISSIONS = st.lists(st.sampled_from(["read", "write", "admin", "root", ""]), max_size=4)
POLL_TOPICS = st.lists(TOPIC_LIKE, max_size=4).map(lambda ts: [*ts, SEEDED])
# (method, path, fields of the body it expects); {victim} is a user the fuzzer may change.
JSON_ENDPOINTS: list[tuple[str, str, dict[str, st.SearchStrategy[Any]]]] = [
    (
        "POST",
        "/auth/register",
        {
            "username": st.text(max_size=60),
            "password": st.text(max_size=80),
            "email": st.text(),
            "permissions": PERMISSIONS,
        },
    ),
    (
        "PATCH",
        "/auth/users/{victim}",
        {"email": st.text(), "password": st.text(), "permissions": PERMISSIONS, "is_active": st.booleans()},
    ),
    (
        "POST",
        "/api/v1/topics",
        {"topic_name": TOPIC_LIKE, "is_public": st.booleans(), "description": st.text()},
    ),
    ("PUT", "/api/v1/topics/fuzz-owned", {"is_public": st.booleans(), "description": st.text()}),
    ("POST", "/api/v1/topics/fuzz-owned/permissions", {"user_id": st.text(), "username": st.text()}),
    (
        "POST",
        "/api/v1/messages",
        {"topic": TOPIC_LIKE, "payload": JSON, "ttl": st.integers(), "metadata": JSON},
    ),
    (
        "POST",
        "/api/v1/messages/bulk",
        {
            "messages": st.lists(
                st.fixed_dictionaries(
                    {"topic": TOPIC_LIKE, "payload": JSON}, optional={"ttl": JSON, "metadata": JSON}
                ),
                max_size=4,
            )
        },
    ),
]
# Always the seeded topic and a since naming it: a valid poll answers at once instead of waiting.
POLL_BODIES = st.builds(
    lambda required, extra: encode(extra | required),
    st.fixed_dictionaries(
        {
            "topics": POLL_TOPICS,
            "since": st.dictionaries(TOPIC_LIKE, JSON, max_size=3).map(lambda d: d | {SEEDED: "0-0"}),
        }
    ),
    st.fixed_dictionaries({}, optional={"timeout": JSON, "extra": JSON}),
)


@pytest.fixture(scope="module")
def logs(target: Target) -> LogWatch:
    watch = LogWatch(target.proc)
    watch.new_text()  # start-up output is not the fuzzer's business
    r = target.http.post("/api/v1/topics", json={"topic_name": "fuzz-owned"}, headers=bearer(target.admin))
    assert r.status_code in (201, 409), r.text
    return watch


@pytest.mark.parametrize(
    ("method", "path", "fields"), JSON_ENDPOINTS, ids=[f"{m} {p}" for m, p, _ in JSON_ENDPOINTS]
)
def test_json_bodies_never_crash(
    target: Target, logs: LogWatch, method: str, path: str, fields: dict[str, st.SearchStrategy[Any]]
) -> None:
    """Random and hostile JSON bodies (as an admin, so validation is reached): always a 2xx/4xx."""
    url = path.format(victim=target.victim_id)

    @FUZZ
    @given(body=bodies(fields), as_user=st.booleans())
    def run(body: bytes, as_user: bool) -> None:
        token = target.user_token if as_user else target.admin
        headers = {**bearer(token), "Content-Type": "application/json"}
        check(target.http.request(method, url, content=body, headers=headers))

    run()
    logs.assert_no_crash()


def test_poll_bodies_never_crash(target: Target, logs: LogWatch) -> None:
    """Random and hostile long-poll bodies: always a 2xx/4xx (valid ones name a topic with history,
    so they answer at once)."""

    @FUZZ
    @given(body=st.one_of(POLL_BODIES, DEEP, NOT_UTF8, HUGE_NUMBERS, RAW), as_user=st.booleans())
    def run(body: bytes, as_user: bool) -> None:
        token = target.user_token if as_user else target.admin
        headers = {**bearer(token), "Content-Type": "application/json"}
        check(target.http.post("/messages/poll", content=body, headers=headers))

    run()
    logs.assert_no_crash()


def test_login_forms_never_crash(target: Target, logs: LogWatch) -> None:
    """Random form fields, raw bytes and wrong content types on /auth/login: never a 5xx."""

    @FUZZ
    @given(
        form=st.dictionaries(
            st.sampled_from(["username", "password", "grant_type", "scope", "x"]), st.text(max_size=50)
        ),
        raw=st.one_of(st.none(), st.binary(max_size=200)),
        ctype=st.sampled_from(
            [
                "application/x-www-form-urlencoded",
                "multipart/form-data; boundary=zz",
                "application/json",
                "text/plain",
            ]
        ),
    )
    def run(form: dict[str, str], raw: bytes | None, ctype: str) -> None:
        if raw is None:
            r = target.http.post("/auth/login", data=form, headers={"X-Forwarded-For": "10.9.8.7"})
        else:
            # A body the form parser leaves unread ends the keep-alive connection after the answer.
            headers = {"Content-Type": ctype, "Connection": "close"}
            r = target.http.post("/auth/login", content=raw, headers=headers)
        assert r.status_code != 200 or form.get("username") in ("admin", "fuzz-user")
        check(r)

    run()
    logs.assert_no_crash()


def test_paths_and_queries_never_crash(target: Target, logs: LogWatch) -> None:
    """Random path segments and query values on every GET/DELETE route: never a 5xx."""
    segment = st.text(min_size=1, max_size=40).filter(lambda s: "/" not in s and s not in (".", ".."))
    query = st.dictionaries(
        st.sampled_from(["limit", "order", "cursor", "skip", "token", "since"]),
        st.one_of(st.text(max_size=30), st.integers(min_value=-(2**70), max_value=2**70).map(str)),
        max_size=4,
    )

    @FUZZ
    @given(
        route=st.sampled_from(
            [
                ("GET", "/api/v1/topics/{s}/messages"),
                ("GET", "/api/v1/topics/{s}"),
                ("GET", "/api/v1/topics/{s}/permissions"),
                ("DELETE", "/api/v1/topics/fuzz-owned/permissions/{s}"),
                ("DELETE", "/auth/users/{s}"),
                ("GET", "/auth/users"),
                ("GET", "/api/v1/topics"),
                ("GET", "/api/v1/topics/stats"),
                ("GET", "/messages/poll/stats"),
                ("GET", "/auth/me"),
            ]
        ),
        s=segment,
        params=query,
        as_user=st.booleans(),
    )
    def run(route: tuple[str, str], s: str, params: dict[str, str], as_user: bool) -> None:
        method, path = route
        if s in (target.victim_id, SEEDED, "fuzz-owned"):
            return
        token = target.user_token if as_user else target.admin
        check(
            target.http.request(
                method, path.format(s=quote(s, safe="")), params=params, headers=bearer(token)
            )
        )

    run()
    logs.assert_no_crash()


def test_bad_tokens_never_crash(target: Target, logs: LogWatch) -> None:
    """Random Authorization headers: a 401/403 with a reason, never a 5xx."""

    @FUZZ
    @given(
        header=st.one_of(
            st.text(alphabet=PRINTABLE, max_size=200),
            st.text(alphabet=PRINTABLE).map(lambda t: f"Bearer {t}"),
            st.lists(st.text(alphabet=PRINTABLE, max_size=30), min_size=3, max_size=3).map(
                lambda parts: "Bearer " + ".".join(parts)
            ),
        ),
        path=st.sampled_from(
            ["/auth/me", "/api/v1/topics", "/messages/poll/stats", f"/api/v1/topics/{SEEDED}/messages"]
        ),
    )
    def run(header: str, path: str) -> None:
        r = target.http.get(path, headers={"Authorization": header.strip()})  # h11 refuses edge spaces
        assert r.status_code in (401, 403), r.text
        check(r)

    run()
    logs.assert_no_crash()
