"""Malformed input on every auth endpoint gets a clear 4xx with a ``detail``, never a 500."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.auth.conftest import Auth, bearer

JSON_ROUTES = [
    ("POST", "/auth/register"),
    ("PATCH", "/auth/users/{user}"),
    ("POST", "/api/v1/topics"),
    ("PUT", "/api/v1/topics/jobs"),
    ("POST", "/api/v1/topics/jobs/permissions"),
]

BAD_BODIES: list[bytes] = [
    b"{not json",
    b'{"a": 1} trailing',
    b"[1, 2, 3]",
    b'"a string"',
    b"null",
    b"42",
    b"\xff\xfe\x00garbage",
    b'{"username": "\xff\xfe"}',
    b'{"username": "\\ud800\\ud800", "password": "\\ud800\\ud800\\ud800\\ud800", "topic_name": "\\ud800"}',
    b"[" * 5000 + b"]" * 5000,
    b'{"username": {"nested": true}, "password": [1], "topic_name": {}, "is_public": {}, "user_id": []}',
    b'{"username": null, "password": 5, "topic_name": null, "permissions": 1, "is_active": 1.5,'
    b' "is_public": "yes", "user_id": 7}',
    b'{"email": "' + b"e" * 10_000 + b'", "description": "' + b"d" * 10_000 + b'", "username": 1e400,'
    b' "user_id": 1e400}',
]


@pytest.fixture
async def setup(auth: Auth) -> dict[str, str]:
    user_id, _ = await auth.user("alice")
    await auth.client.post("/api/v1/topics", json={"topic_name": "jobs"}, headers=bearer(auth.admin_token))
    return {"user": user_id}


@pytest.mark.parametrize(("method", "path"), JSON_ROUTES)
async def test_malformed_bodies_are_4xx(auth: Auth, setup: dict[str, str], method: str, path: str) -> None:
    """Not JSON, the wrong JSON type, wrong field types, odd Unicode, deep nesting, huge values."""
    url = path.format(**setup)
    h = bearer(auth.admin_token) | {"content-type": "application/json"}
    replies = await asyncio.gather(
        *(auth.client.request(method, url, content=b, headers=h) for b in BAD_BODIES)
    )
    for body, r in zip(BAD_BODIES, replies, strict=True):
        assert 400 <= r.status_code < 500, (body[:60], r.status_code, r.text[:200])
        assert "detail" in r.json()


@pytest.mark.parametrize(("method", "path"), JSON_ROUTES)
async def test_missing_body_is_422(auth: Auth, setup: dict[str, str], method: str, path: str) -> None:
    """No body at all is a 422 (or, where every field is optional, a 4xx from the rules)."""
    r = await auth.client.request(method, path.format(**setup), headers=bearer(auth.admin_token))
    assert r.status_code in (400, 422)


async def test_oversized_body_is_413(auth: Auth) -> None:
    """A body over max_body_bytes is refused with 413 before it is parsed."""
    big = b'{"username": "' + b"a" * (auth.settings.max_body_bytes + 10) + b'"}'
    r = await auth.client.post("/auth/register", content=big, headers=bearer(auth.admin_token))
    assert r.status_code == 413


ODD_NAMES = [
    "%00",
    "a%00b",
    "..",
    "%2E%2E",
    "%2F",
    "a%2Fb",
    "%F0%9F%92%A9",
    "%FF%FE",
    "x" * 5000,
    "%7B%7D",
    "%20",
    "a%3Ab",
    "*",
    "%25",
    "stats%00",
]


@pytest.mark.parametrize("name", ODD_NAMES)
async def test_odd_path_params_are_4xx(auth: Auth, name: str) -> None:
    """Odd characters or lengths in topic names and user ids: 4xx on every route that takes them."""
    h = bearer(auth.admin_token)
    calls = [
        ("GET", f"/api/v1/topics/{name}", None),
        ("PUT", f"/api/v1/topics/{name}", {"is_public": True}),
        ("DELETE", f"/api/v1/topics/{name}", None),
        ("POST", f"/api/v1/topics/{name}/permissions", {"username": "admin"}),
        ("GET", f"/api/v1/topics/{name}/permissions", None),
        ("DELETE", f"/api/v1/topics/{name}/permissions/{name}", None),
        ("PATCH", f"/auth/users/{name}", {"email": None}),
        ("DELETE", f"/auth/users/{name}", None),
    ]
    for method, path, body in calls:
        r = await auth.client.request(method, httpx.URL(auth.url + path), json=body, headers=h)
        assert 400 <= r.status_code < 500 or r.status_code == 307, (method, path[:80], r.status_code, r.text)


async def test_login_form_oddities(auth: Auth) -> None:
    """Broken encodings, repeated fields and many fields in the login form: 4xx, never 500."""
    h = {"content-type": "application/x-www-form-urlencoded"}
    bodies = [
        b"username=%FF%FE&password=%FF%FE%FD%FC%FB%FA%F9%F8",
        b"username=a&username=b&password=password123",
        b"&".join(b"f%d=v" % i for i in range(100)),
        b"username",
        b"=&=&=",
        b"%%%%%",
    ]
    for body in bodies:
        r = await auth.client.post("/auth/login", content=body, headers=h)
        assert 400 <= r.status_code < 500, (body[:40], r.status_code, r.text)
    r = await auth.client.post(
        "/auth/login",
        content=b"--x\r\nbroken multipart",
        headers={"content-type": "multipart/form-data; boundary=x"},
    )
    assert 400 <= r.status_code < 500


async def test_unknown_routes_and_methods(auth: Auth) -> None:
    """Unknown paths are 404 and wrong methods 405, both with a detail."""
    r = await auth.client.get("/auth/nowhere")
    assert r.status_code == 404
    assert "detail" in r.json()
    r = await auth.client.put("/auth/login")
    assert r.status_code == 405
    assert "detail" in r.json()
