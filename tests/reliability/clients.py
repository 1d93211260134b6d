"""Clients that behave as the contract tells real clients to on a bad day: a producer that retries
with the same ``Idempotency-Key`` until it gets a 2xx, and consumers that keep their position per
topic and resume from it (WebSocket ``since`` / ``resume``, long-poll cursors) on whichever gateway
answers.  They record everything they see; the tests compare it with what was acknowledged."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import uuid
from collections.abc import Sequence
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidHandshake, WebSocketException

from relaycore import ids

ZERO = "0-0"
MAX_ATTEMPTS = 400  # per request or reconnect run: a bound on every retry loop


def sort_ids(values: Sequence[str]) -> list[str]:
    return sorted(values, key=lambda v: ids.parse(v) or ids.ZERO)


class Producer:
    """Publishes through ingest; retries 503s and transport errors with the same key."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.client = httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        self.acked: dict[str, list[str]] = {}
        self.requests = 0
        self.unavailable = 0  # 503 answers seen (retried)
        self.transport_errors = 0  # connection failures seen (retried)
        self.replayed = 0  # answers marked idempotent-replayed
        self.attempts_per_key: dict[str, int] = {}

    async def aclose(self) -> None:
        await self.client.aclose()

    @property
    def total(self) -> int:
        return sum(len(v) for v in self.acked.values())

    async def bulk(self, messages: Sequence[tuple[str, dict[str, Any]]], key: str | None = None) -> list[str]:
        body = {"messages": [{"topic": t, "payload": p} for t, p in messages]}
        r = await self._post("/api/v1/messages/bulk", body, key or uuid.uuid4().hex)
        assert r.status_code == 207, r.text
        out = [item["message_id"] for item in r.json()["results"]]
        for (topic, _), mid in zip(messages, out, strict=True):
            self.acked.setdefault(topic, []).append(mid)
        return out

    async def single(self, topic: str, payload: dict[str, Any], key: str | None = None) -> str:
        r = await self._post(
            "/api/v1/messages", {"topic": topic, "payload": payload}, key or uuid.uuid4().hex
        )
        assert r.status_code == 201, r.text
        mid: str = r.json()["message_id"]
        self.acked.setdefault(topic, []).append(mid)
        return mid

    async def _post(self, path: str, body: dict[str, Any], key: str) -> httpx.Response:
        for attempt in range(1, MAX_ATTEMPTS + 1):
            self.attempts_per_key[key] = attempt
            self.requests += 1
            try:
                r = await self.client.post(path, json=body, headers={"Idempotency-Key": key})
            except httpx.TransportError:
                self.transport_errors += 1
                await asyncio.sleep(0.05)
                continue
            if r.status_code == 503:
                self.unavailable += 1
                await asyncio.sleep(0.05)
                continue
            if r.headers.get("idempotent-replayed") == "true":
                self.replayed += 1
            return r
        raise AssertionError(f"no 2xx for {path} after {MAX_ATTEMPTS} attempts")


class Follower:
    """What every consumer records: messages per topic in arrival order, and its position."""

    def __init__(self, name: str, urls: Sequence[str], topics: Sequence[str], start: int = 0) -> None:
        self.name = name
        self.urls = list(urls)
        self.topics = list(topics)
        self.received: dict[str, list[str]] = {t: [] for t in topics}
        self.last: dict[str, str] = dict.fromkeys(topics, ZERO)
        self.reconnects = 0
        self.problems: list[str] = []
        self._next = itertools.count(start)

    def next_url(self) -> str:
        return self.urls[next(self._next) % len(self.urls)]

    def caught_up(self, target: dict[str, str]) -> bool:
        return all(ids.parse(self.last[t]) == ids.parse(v) for t, v in target.items())

    def record(self, frame: dict[str, Any]) -> None:
        topic, mid = frame["topic"], frame["message_id"]
        if topic not in self.received:
            self.problems.append(f"message for unsubscribed topic {topic}")
            return
        self.received[topic].append(mid)
        if (ids.parse(mid) or ids.ZERO) > (ids.parse(self.last[topic]) or ids.ZERO):
            self.last[topic] = mid


class WsFollower(Follower):
    """Subscribes with ``since`` (its last id per topic, ``0-0`` before the first), or with
    ``client_id`` + ``resume`` and acks every message; reconnects on any disconnect."""

    def __init__(
        self,
        name: str,
        urls: Sequence[str],
        token: str,
        topics: Sequence[str],
        *,
        start: int = 0,
        client_id: str | None = None,
    ) -> None:
        super().__init__(name, urls, topics, start)
        self.token = token
        self.client_id = client_id
        self.connections = 0

    def _subscribe_frame(self) -> dict[str, Any]:
        if self.client_id is None:
            return {"type": "subscribe", "topics": self.topics, "since": dict(self.last)}
        # Resume after the acknowledged positions; topics with nothing seen yet from the start.
        fresh = {t: ZERO for t in self.topics if not self.received[t]}
        return {"type": "subscribe", "topics": self.topics, "client_id": self.client_id, "resume": True} | (
            {"since": fresh} if fresh else {}
        )

    async def run(self, stop: asyncio.Event) -> None:
        for _ in range(MAX_ATTEMPTS):
            if stop.is_set():
                return
            url = self.next_url().replace("http://", "ws://") + f"/ws?token={self.token}"
            try:
                async with connect(url, open_timeout=5, close_timeout=1, max_queue=None) as ws:
                    self.connections += 1
                    await ws.send(json.dumps(self._subscribe_frame()))
                    await self._read(ws, stop)
                    if stop.is_set():
                        return
            except (OSError, TimeoutError, InvalidHandshake, WebSocketException):
                pass
            self.reconnects += 1
            await asyncio.sleep(0.05)
        self.problems.append("gave up reconnecting")

    async def _read(self, ws: ClientConnection, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                async with asyncio.timeout(0.25):
                    raw = await ws.recv()
            except TimeoutError:
                continue
            frame = json.loads(raw)
            kind = frame.get("type")
            if kind == "message":
                self.record(frame)
                if self.client_id is not None:
                    ack = {"type": "ack", "message_id": frame["message_id"], "topic": frame["topic"]}
                    await ws.send(json.dumps(ack))
            elif kind == "error":
                self.problems.append(f"error frame: {frame}")
            elif kind not in ("subscribed", "ping", "pong"):
                self.problems.append(f"unexpected frame: {frame}")


class PollFollower(Follower):
    """Long-polls with ``since`` = the cursors of the previous answer (``0-0`` at first), moving
    to the next gateway on a transport error, a 503, or a load balancer's 502/504."""

    def __init__(
        self, name: str, urls: Sequence[str], token: str, topics: Sequence[str], *, start: int = 0
    ) -> None:
        super().__init__(name, urls, topics, start)
        self.client = httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=10)
        self.cursors: dict[str, str] = dict.fromkeys(topics, ZERO)
        self.polls = 0

    async def run(self, stop: asyncio.Event) -> None:
        url = self.next_url()
        failures = 0
        try:
            while not stop.is_set():
                body = {"topics": self.topics, "since": dict(self.cursors), "timeout": 1}
                try:
                    r = await self.client.post(url + "/messages/poll", json=body)
                except httpx.TransportError:
                    r = None
                if r is None or r.status_code in (502, 503, 504):  # 502/504: the balancer's
                    failures += 1
                    if failures > MAX_ATTEMPTS:
                        self.problems.append("gave up polling")
                        return
                    self.reconnects += 1
                    url = self.next_url()
                    await asyncio.sleep(0.05)
                    continue
                self.polls += 1
                if r.status_code != 200:
                    self.problems.append(f"poll answered {r.status_code}: {r.text[:200]}")
                    return
                answer = r.json()
                for frame in answer["messages"]:
                    self.record(frame)
                for t, cursor in answer["cursors"].items():
                    self.cursors[t] = cursor
        finally:
            await self.client.aclose()


async def wait_caught_up(
    followers: Sequence[Follower], target: dict[str, str], *, rounds: int = 1200, step: float = 0.05
) -> None:
    """Bounded wait until every follower's position reached ``target`` (a safety net, not a timing
    assertion: the comparison that follows says what went wrong if they never do)."""
    for _ in range(rounds):
        if all(f.caught_up(target) for f in followers):
            return
        await asyncio.sleep(step)


async def stop_all(stop: asyncio.Event, tasks: Sequence[asyncio.Task[None]]) -> None:
    stop.set()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            async with asyncio.timeout(10):
                await task


def differences(follower: Follower, acked: dict[str, list[str]]) -> list[str]:
    """Human-readable differences between what a follower saw and what producers were told."""
    out = list(follower.problems)
    for topic, want in acked.items():
        got = follower.received.get(topic, [])
        if got == want:
            continue
        missing = sorted(set(want) - set(got))
        extra = sorted(set(got) - set(want))
        dups = len(got) - len(set(got))
        out.append(
            f"{follower.name} {topic}: {len(got)} received vs {len(want)} acknowledged;"
            f" missing {missing[:5]}{'...' if len(missing) > 5 else ''} ({len(missing)}),"
            f" unexpected {extra[:5]} ({len(extra)}), duplicates {dups},"
            f" in order {got == sort_ids(got)}"
        )
    return out
