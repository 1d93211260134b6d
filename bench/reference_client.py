"""How the reference's benchmark talks to a relay: one login, a Bearer header on every HTTP call,
``/ws?token=<jwt>`` WebSockets, paced producers, WebSocket and long-poll consumers that measure
delivery latency as receive time - ``payload.sent_at``."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import websockets


async def login(base_url: str, username: str, password: str) -> str:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        (await client.get("/health")).raise_for_status()
        r = await client.post("/auth/login", data={"username": username, "password": password})
        r.raise_for_status()
        return str(r.json()["access_token"])


class BenchClient:
    """The shared plumbing of the scenarios; ``deadline`` bounds loops the reference leaves open."""

    def __init__(self, base_url: str, token: str, deadline: float = 120.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.ws_url = self.base_url.replace("http", "ws", 1) + f"/ws?token={token}"
        self.headers = {"Authorization": f"Bearer {token}"}
        self.deadline = deadline

    def http(self, timeout: float = 5.0) -> httpx.AsyncClient:
        # 5 s is httpx's default, which the reference's ingestion clients use.
        return httpx.AsyncClient(base_url=self.base_url, headers=self.headers, timeout=timeout)

    async def publish_paced(self, topic: str, count: int, gap: float) -> None:
        """Start after 0.5 s, then send ``{index, sent_at}`` to ``topic`` every ``gap`` seconds."""
        async with self.http() as client:
            await asyncio.sleep(0.5)
            for i in range(count):
                try:
                    await client.post(
                        "/api/v1/messages",
                        json={"topic": topic, "payload": {"index": i, "sent_at": time.time()}},
                    )
                except httpx.HTTPError as exc:
                    print(f"Producer error: {exc}")
                await asyncio.sleep(gap)

    async def ws_receive(
        self, topic: str, client_id: str, count: int, latencies: list[float]
    ) -> tuple[int, int]:
        """Subscribe, then read up to ``count`` frames, 5 s per frame at most: (messages, errors)."""
        received = 0
        try:
            async with websockets.connect(self.ws_url) as ws:
                await ws.send(json.dumps({"type": "subscribe", "topics": [topic], "client_id": client_id}))
                await ws.recv()
                for _ in range(count):
                    try:
                        data = json.loads(await asyncio.wait_for(ws.recv(), timeout=5.0))
                    except TimeoutError:
                        return received, 1
                    if data.get("type") == "message":
                        if sent_at := data.get("payload", {}).get("sent_at", 0):
                            latencies.append(time.time() - sent_at)
                        received += 1
        except Exception as exc:
            print(f"Consumer error: {exc}")
            return received, 1
        return received, 0

    async def poll_receive(self, topic: str, count: int, latencies: list[float]) -> tuple[int, int]:
        """Loop ``POST /messages/poll`` with ``since`` = the last id seen (null at first), timeout 5."""
        last_id: dict[str, str] = {}
        received = 0
        stop_at = time.monotonic() + self.deadline
        async with self.http(timeout=35.0) as client:
            while received < count:
                if time.monotonic() > stop_at:
                    print(f"Consumer gave up on {topic} after {self.deadline:.0f}s with {received}/{count}")
                    return received, 1
                try:
                    r = await client.post(
                        "/messages/poll", json={"topics": [topic], "since": last_id or None, "timeout": 5}
                    )
                    r.raise_for_status()
                except Exception as exc:
                    print(f"Consumer error: {exc}")
                    return received, 1
                for msg in r.json().get("messages", []):
                    if msg["topic"] == topic:
                        if sent_at := msg.get("payload", {}).get("sent_at", 0):
                            latencies.append(time.time() - sent_at)
                        last_id[topic] = msg["message_id"]
                        received += 1
        return received, 0
