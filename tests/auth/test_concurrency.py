"""Atomic creation under concurrency: one username, one topic name, exactly one winner."""

from __future__ import annotations

import asyncio

from tests.auth.conftest import Auth, bearer


async def test_concurrent_registers_of_one_username(auth: Auth) -> None:
    """20 simultaneous registrations of one name: exactly one 201, nineteen 409, one stored user."""
    body = {"username": "racer", "password": "password123"}
    replies = await asyncio.gather(
        *(auth.client.post("/auth/register", json=body, headers=bearer(auth.admin_token)) for _ in range(20))
    )
    codes = sorted(r.status_code for r in replies)
    assert codes == [201] + [409] * 19
    users = (await auth.client.get("/auth/users", headers=bearer(auth.admin_token))).json()
    assert [u["username"] for u in users].count("racer") == 1
    winner = next(r.json() for r in replies if r.status_code == 201)
    assert (await auth.login("racer", "password123")).status_code == 200
    assert next(u for u in users if u["username"] == "racer")["user_id"] == winner["user_id"]


async def test_concurrent_topic_creation(auth: Auth) -> None:
    """20 simultaneous creates of one topic by 4 users: one 201, the rest 409, one owner."""
    tokens = [(await auth.user(f"user{i}"))[1] for i in range(4)]
    replies = await asyncio.gather(
        *(
            auth.client.post("/api/v1/topics", json={"topic_name": "hot"}, headers=bearer(tokens[i % 4]))
            for i in range(20)
        )
    )
    codes = sorted(r.status_code for r in replies)
    assert codes == [201] + [409] * 19
    owner = next(r.json()["owner_id"] for r in replies if r.status_code == 201)
    r = await auth.client.get("/api/v1/topics/stats", headers=bearer(auth.admin_token))
    assert r.json()["topics"] == [
        {"topic_name": "hot", "owner_id": owner, "is_public": False, "message_count": 0}
    ]


async def test_concurrent_distinct_registers(auth: Auth) -> None:
    """Many different users registered at once all succeed and all appear."""
    replies = await asyncio.gather(
        *(
            auth.client.post(
                "/auth/register",
                json={"username": f"user{i:02d}", "password": "password123"},
                headers=bearer(auth.admin_token),
            )
            for i in range(20)
        )
    )
    assert {r.status_code for r in replies} == {201}
    stats = (await auth.client.get("/auth/users/stats", headers=bearer(auth.admin_token))).json()
    assert stats == {"total_users": 21, "active_users": 21}
