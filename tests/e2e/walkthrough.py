"""The seed README's walkthrough as one function, run over real sockets against any origin (the
split stack through HAProxy, ``serve all``, ``pulsar-relay dev``): log in with the form, register
users, create a topic, grant access, publish, receive over two WebSockets, long-poll with
``since``, page history, make the topic public, delete it."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import websockets
from websockets.asyncio.client import ClientConnection

ID = re.compile(r"^\d+-\d+$")
SpreadCheck = Callable[[list[ClientConnection]], Awaitable[None]]


async def login(http: httpx.AsyncClient, username: str, password: str) -> str:
    r = await http.post(
        "/auth/login",
        data={"username": username, "password": password},
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 3600
    return str(body["access_token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def eventually(check: Callable[[], Awaitable[bool]], what: str, within: float = 10) -> None:
    """Access changes reach other processes through the invalidation channel (CONTRACT 6: within
    a second); this waits for that with a generous safety net."""
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, f"not within {within}s: {what}"
        await asyncio.sleep(0.05)


async def next_message(ws: ClientConnection) -> dict[str, Any]:
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 15))
        assert frame.get("type") != "error", frame
        if frame.get("type") == "message":
            return dict(frame)


async def subscribe(ws: ClientConnection, topic: str) -> None:
    # The README's example: no client_id.
    await ws.send(json.dumps({"type": "subscribe", "topics": [topic]}))
    frame = json.loads(await asyncio.wait_for(ws.recv(), 15))
    assert frame["type"] == "subscribed", frame
    assert frame["topics"] == [topic] and frame["session_id"]


async def walkthrough(base_url: str, admin: tuple[str, str], spread: SpreadCheck | None = None) -> str:
    """Runs the walkthrough; returns the suffix of the user names it registered."""
    suffix = uuid.uuid4().hex[:8]
    topic = f"notifications-{suffix}"
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        admin_token = await login(http, *admin)
        me = (await http.get("/auth/me", headers=bearer(admin_token))).json()
        assert me["username"] == admin[0] and "admin" in me["permissions"]

        users = {"producer": ["write"], "consumer": ["read"], "reader": ["read"]}
        ids: dict[str, str] = {}
        tokens: dict[str, str] = {}
        for role, permissions in users.items():
            name = f"{role}-{suffix}"
            body = {"username": name, "email": f"{name}@example.com", "password": "secure-password"}
            r = await http.post(
                "/auth/register", json=body | {"permissions": permissions}, headers=bearer(admin_token)
            )
            assert r.status_code == 201, r.text
            assert r.json()["username"] == name and r.json()["permissions"] == permissions
            ids[role] = r.json()["user_id"]
            tokens[role] = await login(http, name, "secure-password")
        producer, consumer, reader = (bearer(tokens[r]) for r in ("producer", "consumer", "reader"))

        create = {"topic_name": topic, "is_public": False, "description": "User notification messages"}
        r = await http.post("/api/v1/topics", json=create, headers=producer)
        assert r.status_code == 201, r.text
        assert r.json()["owner_id"] == ids["producer"] and r.json()["is_public"] is False
        r = await http.post(
            f"/api/v1/topics/{topic}/permissions", json={"username": f"consumer-{suffix}"}, headers=producer
        )
        assert r.status_code == 201, r.text
        listed = (await http.get("/api/v1/topics", headers=consumer)).json()
        assert topic in [t["topic_name"] for t in listed]

        ws_url = base_url.replace("http://", "ws://", 1) + f"/ws?token={tokens['consumer']}"
        async with websockets.connect(ws_url) as ws1, websockets.connect(ws_url) as ws2:
            for ws in (ws1, ws2):
                await subscribe(ws, topic)
            if spread is not None:
                await spread([ws1, ws2])
            payload = {"user_id": 123, "message": "Hello, World!"}
            r = await http.post(
                "/api/v1/messages", json={"topic": topic, "payload": payload, "ttl": 3600}, headers=producer
            )
            assert r.status_code == 201, r.text
            first = r.json()["message_id"]
            assert ID.match(first) and r.json()["topic"] == topic and r.json()["timestamp"].endswith("Z")
            for ws in (ws1, ws2):
                frame = await next_message(ws)
                assert (frame["message_id"], frame["topic"], frame["payload"]) == (first, topic, payload)
                assert frame["timestamp"].endswith("Z") and frame["metadata"] == {}
                await ws.send(json.dumps({"type": "ack", "message_id": frame["message_id"]}))

        published = [first]
        for i in (2, 3):
            r = await http.post(
                "/api/v1/messages", json={"topic": topic, "payload": {"n": i}}, headers=producer
            )
            assert r.status_code == 201, r.text
            published.append(r.json()["message_id"])

        # Long-poll with since: the backlog after the first message comes back at once, ascending.
        r = await http.post(
            "/messages/poll",
            json={"topics": [topic], "since": {topic: first}, "timeout": 5},
            headers=consumer,
        )
        assert r.status_code == 200, r.text
        assert [m["message_id"] for m in r.json()["messages"]] == published[1:]
        assert [m["payload"] for m in r.json()["messages"]] == [{"n": 2}, {"n": 3}]
        # ... and a poll that is up to date waits for the next one (no window where it is lost).
        waiting = asyncio.create_task(
            http.post(
                "/messages/poll",
                json={"topics": [topic], "since": {topic: published[-1]}, "timeout": 30},
                headers=consumer,
            )
        )
        await asyncio.sleep(0.2)
        r = await http.post("/api/v1/messages", json={"topic": topic, "payload": {"n": 4}}, headers=producer)
        published.append(r.json()["message_id"])
        r = await waiting
        assert r.status_code == 200, r.text
        assert [m["message_id"] for m in r.json()["messages"]] == published[3:]

        # History, oldest first in pages of two, then newest first by default.
        pages: list[list[str]] = []
        cursor: str | None = None
        for _ in range(len(published) + 1):
            params = {"limit": "2", "order": "asc"} | ({"cursor": cursor} if cursor else {})
            r = await http.get(f"/api/v1/topics/{topic}/messages", params=params, headers=consumer)
            assert r.status_code == 200, r.text
            page = [m["message_id"] for m in r.json()["messages"]]
            if page:
                pages.append(page)
            # The reference ends on an empty page; a null next_cursor also says there is no more.
            cursor = r.json()["next_cursor"]
            if not page or cursor is None:
                break
        assert pages == [published[:2], published[2:]]
        r = await http.get(f"/api/v1/topics/{topic}/messages", headers=consumer)
        assert [m["message_id"] for m in r.json()["messages"]] == published[::-1]

        # A user without a grant reads it only once it is public.
        r = await http.get(f"/api/v1/topics/{topic}/messages", headers=reader)
        assert r.status_code == 403, r.text
        r = await http.put(f"/api/v1/topics/{topic}", json={"is_public": True}, headers=producer)
        assert r.status_code == 200 and r.json()["is_public"] is True, r.text

        async def reader_sees_history() -> bool:
            r = await http.get(f"/api/v1/topics/{topic}/messages", headers=reader)
            return r.status_code == 200 and len(r.json()["messages"]) == len(published)

        await eventually(reader_sees_history, "a public topic's history readable by a non-grantee")
        r = await http.post(
            "/messages/poll",
            json={"topics": [topic], "since": {topic: published[-2]}, "timeout": 5},
            headers=reader,
        )
        assert [m["message_id"] for m in r.json()["messages"]] == published[-1:]

        r = await http.delete(f"/api/v1/topics/{topic}", headers=producer)
        assert r.status_code == 204, r.text
        assert (await http.get(f"/api/v1/topics/{topic}", headers=producer)).status_code == 404

        async def history_gone() -> bool:
            r = await http.get(f"/api/v1/topics/{topic}/messages", headers=consumer)
            return r.status_code == 404

        await eventually(history_gone, "a deleted topic's history answers 404")
    return suffix
