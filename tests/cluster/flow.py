"""Traffic for fault tests: a producer that retries each message with its Idempotency-Key until it
is acknowledged, a WebSocket client that follows topics with ``since`` across reconnects, and the
check that every acknowledged message was delivered once and in order."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid

import httpx
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from tests.gateway.conftest import Relay, bearer


class Follower:
    """A WebSocket client that follows topics with ``since``: on any close it reconnects and
    resumes after the last id it saw per topic.  Records every delivery."""

    def __init__(self, relay: Relay, token: str, topics: list[str]) -> None:
        self.relay, self.token, self.topics = relay, token, topics
        self.got: dict[str, list[str]] = {t: [] for t in topics}
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            since = {t: ids[-1] for t, ids in self.got.items() if ids}
            try:
                ws: ClientConnection = await self.relay.connect(self.token)
                await ws.send(json.dumps({"type": "subscribe", "topics": self.topics, "since": since}))
                async for raw in ws:
                    frame = json.loads(raw)
                    if frame["type"] == "message":
                        self.got[frame["topic"]].append(frame["message_id"])
            except (TimeoutError, OSError, ConnectionClosed, InvalidHandshake):
                pass  # the gateway went away or closed us: resume after what we have
            await asyncio.sleep(0.1)

    def total(self) -> int:
        return sum(len(v) for v in self.got.values())

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


async def publish_acked(relay: Relay, token: str, topic: str, n: int, deadline: float = 30) -> str:
    """Publish one message, retrying with the same Idempotency-Key until it is acknowledged."""
    key = uuid.uuid4().hex
    async with asyncio.timeout(deadline):
        while True:
            try:
                r = await relay.http.post(
                    relay.ingest + "/api/v1/messages",
                    json={"topic": topic, "payload": {"n": n}},
                    headers=bearer(token) | {"Idempotency-Key": key},
                )
            except httpx.TransportError:
                r = None
            if r is not None and r.status_code == 201:
                return str(r.json()["message_id"])
            assert r is None or r.status_code == 503, r.text
            await asyncio.sleep(0.05)


def check_deliveries(got: dict[str, list[str]], acked: dict[str, list[str]]) -> None:
    """Per topic: no id twice, ids increasing, every acknowledged id delivered."""
    for t, ids in got.items():
        assert len(ids) == len(set(ids)), f"{t}: duplicate deliveries"
        parsed = [tuple(map(int, i.split("-"))) for i in ids]
        assert parsed == sorted(parsed), f"{t}: out of order"
        missing = [i for i in acked[t] if i not in set(ids)]
        assert not missing, f"{t}: acknowledged but never delivered: {missing[:5]}"
