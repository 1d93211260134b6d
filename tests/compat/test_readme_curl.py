"""Every curl command of the seed README, run by curl exactly as printed (only the origin and the
token placeholders substituted) against the all-in-one relay, checked against what the README
says comes back.  A ``.curlrc`` in a private ``CURL_HOME`` adds the status line, so the command
text itself stays untouched."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.compat import readme
from tests.compat.relay import ADMIN_PASSWORD, Api, Relay, bearer

STREAM_ID = re.compile(r"^\d+-\d+$")
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
COMMANDS = {c.key: c for c in readme.curl_commands()}


def run_curl(command: readme.CurlCommand, base_url: str, token: str, tmp_path: Path) -> tuple[int, Any]:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    (tmp_path / ".curlrc").write_text('silent\nshow-error\nwrite-out = "\\n%{http_code}"\n')
    done = subprocess.run(
        ["bash", "-c", command.for_relay(base_url, token)],
        env={"PATH": "/usr/bin:/bin:/usr/local/bin", "CURL_HOME": str(tmp_path), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    body, _, status = done.stdout.rpartition("\n")
    return int(status), json.loads(body) if body.strip() else None


def test_the_readme_has_the_seven_curl_commands() -> None:
    """The extraction finds every curl command the README documents (a README edit shows up here)."""
    assert sorted(COMMANDS) == sorted(
        [
            "POST /auth/login",
            "POST /auth/register",
            "POST /api/v1/messages",
            "POST /api/v1/topics",
            "POST /api/v1/topics/notifications/permissions",
            "GET /api/v1/topics",
            "PUT /api/v1/topics/notifications",
        ]
    )


def check_login(status: int, body: Any, api: Api, _ctx: dict[str, Any]) -> None:
    assert status == 200, body
    assert set(body) >= {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer" and body["expires_in"] == 3600
    # The README says to save access_token for the next requests: it works.
    me = api.http.get("/auth/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200 and me.json()["username"] == "admin"


def check_register(status: int, body: Any, api: Api, _ctx: dict[str, Any]) -> None:
    assert status == 201, body
    assert body["username"] == "producer1" and body["email"] == "producer@example.com"
    assert body["permissions"] == ["write"] and body["is_active"] is True
    assert "password" not in body and "hashed_password" not in body
    assert api.login("producer1", "secure-password")


def check_send(status: int, body: Any, api: Api, ctx: dict[str, Any]) -> None:
    assert status == 201, body
    assert set(body) == {"message_id", "topic", "timestamp"}
    assert STREAM_ID.match(body["message_id"]) and body["topic"] == "notifications"
    assert ISO_Z.match(body["timestamp"])
    stored = api.history(ctx["token"], "notifications")
    assert [(m["message_id"], m["payload"]) for m in stored] == [
        (body["message_id"], {"user_id": 123, "message": "Hello, World!"})
    ]


def check_create_topic(status: int, body: Any, _api: Api, ctx: dict[str, Any]) -> None:
    assert status == 201, body
    assert body["topic_name"] == "notifications" and body["is_public"] is False
    assert body["description"] == "User notification messages"
    assert body["owner_id"] == ctx["user_id"]


def check_grant(status: int, body: Any, api: Api, ctx: dict[str, Any]) -> None:
    assert status == 201, body
    assert body["topic_name"] == "notifications" and body["username"] == "consumer1"
    consumer = api.login("consumer1", "consumer1-password")
    r = api.http.get("/api/v1/topics/notifications/messages", headers=bearer(consumer))
    assert r.status_code == 200, r.text


def check_list(status: int, body: Any, _api: Api, _ctx: dict[str, Any]) -> None:
    assert status == 200, body
    assert [t["topic_name"] for t in body] == ["notifications"]


def check_make_public(status: int, body: Any, api: Api, _ctx: dict[str, Any]) -> None:
    assert status == 200, body
    assert body["topic_name"] == "notifications" and body["is_public"] is True
    outsider = api.login("outsider", "outsider-password")
    r = api.http.get("/api/v1/topics/notifications/messages", headers=bearer(outsider))
    assert r.status_code == 200, r.text


# Per command: what must exist first (set up over plain HTTP), whose token fills the placeholder,
# and the check of the answer.
Setup = Callable[[Api, str], dict[str, Any]]


def as_admin(_api: Api, admin: str) -> dict[str, Any]:
    return {"token": admin}


def as_producer(api: Api, admin: str) -> dict[str, Any]:
    api.register(admin, "producer1", "secure-password", ["write"])
    token = api.login("producer1", "secure-password")
    user_id = api.http.get("/auth/me", headers=bearer(token)).json()["user_id"]
    return {"token": token, "user_id": user_id}


def owner_of_notifications(api: Api, admin: str) -> dict[str, Any]:
    ctx = as_producer(api, admin)
    api.create_topic(ctx["token"], "notifications")
    api.register(admin, "consumer1", "consumer1-password", ["read"])
    api.register(admin, "outsider", "outsider-password", ["read"])
    return ctx


CASES: dict[str, tuple[Setup, Callable[..., None]]] = {
    "POST /auth/login": (as_admin, check_login),
    "POST /auth/register": (as_admin, check_register),
    "POST /api/v1/messages": (as_producer, check_send),
    "POST /api/v1/topics": (as_producer, check_create_topic),
    "POST /api/v1/topics/notifications/permissions": (owner_of_notifications, check_grant),
    "GET /api/v1/topics": (owner_of_notifications, check_list),
    "PUT /api/v1/topics/notifications": (owner_of_notifications, check_make_public),
}


@pytest.mark.parametrize("key", sorted(CASES))
def test_readme_curl_command_works_as_written(
    key: str, relay: Relay, api: Api, admin_token: str, tmp_path: Path
) -> None:
    """The README's curl command gets the status and fields the README describes."""
    setup, check = CASES[key]
    ctx = setup(api, admin_token)
    status, body = run_curl(COMMANDS[key], relay.url, ctx["token"], tmp_path)
    check(status, body, api, ctx)


def test_readme_curl_walkthrough_in_order(relay: Relay, api: Api, tmp_path: Path) -> None:
    """A newcomer's path through the README with the token curl's own login printed: all succeed."""
    status, body = run_curl(COMMANDS["POST /auth/login"], relay.url, "", tmp_path)
    assert status == 200, body
    admin = body["access_token"]
    api.register(admin, "consumer1", "consumer1-password", ["read"])
    steps = [
        ("POST /auth/register", 201),
        ("POST /api/v1/topics", 201),
        ("POST /api/v1/topics/notifications/permissions", 201),
        ("GET /api/v1/topics", 200),
        ("PUT /api/v1/topics/notifications", 200),
        ("POST /api/v1/messages", 201),
    ]
    for key, expected in steps:
        status, body = run_curl(COMMANDS[key], relay.url, admin, tmp_path)
        assert status == expected, (key, status, body)
    assert ADMIN_PASSWORD in COMMANDS["POST /auth/login"].text
