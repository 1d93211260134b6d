"""Scenario 6: 500 long-pollers (10 per topic over 50 topics), each looping ``POST
/messages/poll`` with ``since`` = the last id it saw (on nchan, its own long-poll with the last
``Last-Modified``/``Etag``).  Steady single publishes give deliveries/s and latency; a burst of
bulk publishes gives deliveries/s at saturation."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec

from bench import load, users
from bench.httpclient import HttpConnection, HttpError, json_headers
from bench.scenarios import Params
from bench.scenarios.common import cpu_usage
from bench.scenarios.driving import burst, burst_size, steady
from bench.systems import Deployment
from bench.wire import NchanWire
from bench.wsclient import Deliveries, stamps


class _Payload(msgspec.Struct):
    sent_at: int = 0


class _Message(msgspec.Struct):
    message_id: str
    payload: _Payload


class _Response(msgspec.Struct):
    messages: list[_Message] = []


_decode = msgspec.json.Decoder(_Response).decode
PER_USER = 20


class Poller:
    def __init__(self, token: str, conn: HttpConnection, topic: str, sink: Deliveries, timeout: int):
        self.conn, self.topic, self.sink, self.timeout = conn, topic, sink, timeout
        self.headers = json_headers(token)
        self.last = "0-0"
        self.errors: list[str] = []

    async def loop(self) -> None:
        while True:
            body = msgspec.json.encode(
                {"topics": [self.topic], "since": {self.topic: self.last}, "timeout": self.timeout}
            )
            try:
                status, text = await self.conn.request("POST", "/messages/poll", body, self.headers)
            except HttpError as exc:
                self.errors.append(str(exc)[:200])
                return
            now = time.time_ns()
            if status != 200:
                self.errors.append(f"{status} {text[:200]!r}")
                await asyncio.sleep(0.1)
                continue
            messages = _decode(text).messages
            if messages:
                self.last = messages[-1].message_id
                self.sink.add([m.payload.sent_at for m in messages], now)


class NchanPoller:
    """nchan's long-poll: ``GET /poll/<channel>`` with the last response's ``Last-Modified`` and
    ``Etag`` as ``If-Modified-Since`` / ``If-None-Match`` (nchan's ``since``); every message queued
    after it comes back at once (a multipart response), each stamp counted as for ours."""

    def __init__(self, conn: HttpConnection, topic: str, sink: Deliveries) -> None:
        self.conn, self.topic, self.sink = conn, topic, sink
        self.headers: dict[str, str] = {}
        self.errors: list[str] = []

    async def loop(self) -> None:
        path = f"/poll/{self.topic}"
        while True:
            try:
                status, body = await self.conn.request("GET", path, b"", self.headers)
            except HttpError as exc:
                self.errors.append(str(exc)[:200])
                return
            now = time.time_ns()
            if status == 200:
                found = stamps(body)
                if found:
                    self.sink.add(found, now)
                modified, etag = self.conn.header("Last-Modified"), self.conn.header("Etag")
                if modified is not None and etag is not None:
                    self.headers = {"If-Modified-Since": modified, "If-None-Match": etag}
            elif status not in (304, 408):  # 304/408: the poll timed out with nothing new
                self.errors.append(f"{status} {body[:200]!r}")
                await asyncio.sleep(0.1)


async def run(dep: Deployment, params: Params) -> dict[str, Any]:
    if not dep.wire.longpoll:
        return {"skipped": f"{dep.wire.name} offers no long-poll here (bench/METHOD.md says why)"}
    topics = [f"bench-poll-{i}" for i in range(params.poll_topics)]
    per_topic = max(1, params.pollers // params.poll_topics)
    if dep.wire.accounts:
        # The reference allows 50 waiters per user: give each user at most 20 pollers.
        owner = users.owners(topics, await users.make_users(dep, max(1, -(-params.pollers // PER_USER))))
    else:
        owner = {t: dep.token for t in topics}
    await load.prepare_topics(dep.host, dep.publish_port, dep.token, topics, owner, wire=dep.wire)
    sink = Deliveries()
    conns = await load.open_connections(dep.host, dep.gateway_port, params.pollers)
    pollers: list[Poller | NchanPoller] = []
    for i, c in enumerate(conns):
        topic = topics[i % len(topics)]
        if isinstance(dep.wire, NchanWire):
            pollers.append(NchanPoller(c, topic, sink))
        else:
            pollers.append(Poller(owner[topic], c, topic, sink, params.poll_timeout))
    # The topics each hold one message already; the pollers first catch up past it.
    tasks = [asyncio.create_task(p.loop()) for p in pollers]
    out: dict[str, Any] = {"pollers": len(pollers), "topics": len(topics), "users": len(set(owner.values()))}
    pubs = await load.open_connections(dep.host, dep.publish_port, 8)
    try:
        await asyncio.sleep(1.0)
        step: dict[str, Any] = {}
        with cpu_usage(dep, step):
            step |= await steady(
                dep,
                pubs,
                sink,
                topics,
                params.poll_rate,
                params.duration,
                per_topic,
                params.drain_timeout,
                owner,
            )
        out["steady"] = step
        probe = await burst(dep, pubs[:4], sink, topics, 200, per_topic, params.drain_timeout, owner)
        size = burst_size(probe["deliveries_per_s"], params.burst_seconds, per_topic, 200, 50_000)
        with cpu_usage(dep, out):
            out["burst"] = await burst(
                dep, pubs[:4], sink, topics, size, per_topic, params.drain_timeout, owner
            )
        out["saturation_deliveries_per_s"] = out["burst"]["deliveries_per_s"]
        errors = [e for p in pollers for e in p.errors]
        out["poll_error_count"] = len(errors)
        out["poll_errors"] = sorted(set(errors))[:5]
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for c in conns + pubs:
            c.close()
    return out
