"""Extra users for scenarios that one user cannot carry on the reference (it caps long-poll waiters
at 50 per user, hard-coded): registered by the bootstrap admin, then logged in.  On the
reference every user has its own topic namespace, so each user publishes to and reads its own
topics; the same layout runs on ours."""

from __future__ import annotations

import asyncio

import msgspec

from bench.httpclient import HttpConnection, HttpError, json_headers, login
from bench.systems import Deployment

PASSWORD = "bench-user-password"


async def make_users(dep: Deployment, count: int, prefix: str = "bench-user") -> list[str]:
    """``count`` users with read and write; returns their tokens."""
    conn = await HttpConnection.open(dep.host, dep.auth_port)
    names = [f"{prefix}-{i}" for i in range(count)]
    try:
        for name in names:
            body = msgspec.json.encode(
                {"username": name, "password": PASSWORD, "permissions": ["read", "write"]}
            )
            status, text = await conn.request("POST", "/auth/register", body, json_headers(dep.token))
            if status not in (200, 201, 409):
                raise HttpError(f"register {name}: {status} {text[:200]!r}")
    finally:
        conn.close()
    return list(await asyncio.gather(*(login(dep.host, dep.auth_port, n, PASSWORD) for n in names)))


def owners(topics: list[str], tokens: list[str]) -> dict[str, str]:
    """Topic → the token of the user that owns it (topics dealt round-robin)."""
    return {topic: tokens[i % len(tokens)] for i, topic in enumerate(topics)}
