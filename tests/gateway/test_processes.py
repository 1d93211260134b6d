"""Gateways as separate ``pulsar-relay serve gateway`` processes on one Valkey: fan-out across
processes, a SIGKILLed gateway resuming its consumer group, dead gateways reaped by live ones,
deployment-wide stats, and a Valkey restart under a running gateway."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aredis
from websockets.asyncio.client import ClientConnection, connect

from relaycore.keys import Keys
from relaycore.store.valkey_backend import ValkeyBackend
from tests.conftest import make_settings
from tests.gateway.conftest import (
    WAIT,
    bearer,
    gateway_env,
    messages,
    publish_direct,
    recv,
    serve,
)
from tests.support.identity import make_user
from tests.support.serve import RelayProcess
from tests.support.valkey import ValkeyServer

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
KEYS = Keys("relay", 4)


@contextlib.asynccontextmanager
async def gateways(valkey_url: str, *ids: str, **extra: str) -> AsyncIterator[list[RelayProcess]]:
    procs = [RelayProcess("gateway", gateway_env(valkey_url, g, **extra)) for g in ids]
    try:
        for p in procs:
            await asyncio.to_thread(p.start)
        yield procs
    finally:
        for p in procs:
            await asyncio.to_thread(p.stop)


@contextlib.asynccontextmanager
async def backend_for(valkey_url: str) -> AsyncIterator[ValkeyBackend]:
    b = ValkeyBackend(make_settings(valkey_url))
    try:
        yield b
    finally:
        await b.close()


@contextlib.asynccontextmanager
async def subscribed(
    proc: RelayProcess, token: str, topics: list[str], **extra: Any
) -> AsyncIterator[ClientConnection]:
    url = proc.url.replace("http://", "ws://") + f"/ws?token={token}"
    async with connect(url, open_timeout=WAIT) as ws:
        await ws.send(json.dumps({"type": "subscribe", "topics": topics, **extra}))
        assert (await recv(ws))["type"] == "subscribed"
        yield ws


async def groups(valkey_url: str) -> set[str]:
    """Consumer group names present on the fan-out logs."""
    r = aredis.Redis.from_url(valkey_url)
    try:
        found: set[str] = set()
        for p in range(KEYS.partitions):
            if await r.exists(KEYS.log(p)):
                found |= {g["name"].decode() for g in await r.xinfo_groups(KEYS.log(p))}
        return found
    finally:
        await r.aclose()


async def eventually_async(check: Any, within: float = 20) -> None:
    """Wait until the coroutine ``check()`` returns true (a safety net, not a timing assertion)."""
    async with asyncio.timeout(within):
        while not await check():  # noqa: ASYNC110 - the condition lives in Valkey, nothing to await
            await asyncio.sleep(0.05)


async def test_two_gateway_processes_deliver_the_same_messages(valkey_url: str) -> None:
    """Subscribers on two gateway processes each receive every message, in the same order."""
    async with backend_for(valkey_url) as backend, gateways(valkey_url, "gw-a", "gw-b") as (a, b):
        alice, token = await make_user(backend, "alice")
        async with subscribed(a, token, ["jobs"]) as on_a, subscribed(b, token, ["jobs"]) as on_b:
            ids = await publish_direct(backend, alice, "jobs", 300)
            got_a = [m["message_id"] for m in await messages(on_a, 300, within=30)]
            got_b = [m["message_id"] for m in await messages(on_b, 300, within=30)]
            assert got_a == got_b == ids
        assert {"gw:gw-a", "gw:gw-b"} <= await groups(valkey_url)


async def test_messages_of_every_frame_length_arrive_intact(valkey_url: str) -> None:
    """Payloads needing each WebSocket length encoding (7-bit, 16-bit, 64-bit) arrive byte for byte,
    one at a time and as bursts of all three (which uvicorn, taking the gateway's pre-encoded
    frames, writes several at once)."""
    async with (
        backend_for(valkey_url) as backend,
        gateways(valkey_url, "gw-frames") as (gw,),
    ):
        alice, token = await make_user(backend, "alice")
        async with subscribed(gw, token, ["sizes"]) as ws:
            for pad in (0, 60, 200, 70_000):
                await publish_direct(backend, alice, "sizes", 1, pad=pad)
                [m] = await messages(ws, 1)
                assert m["payload"] == {"n": 0, **({"pad": "x" * pad} if pad else {})}
            sent = []
            for pad in (0, 200, 70_000, 60) * 5:
                sent += await publish_direct(backend, alice, "sizes", 3, pad=pad)
            got = await messages(ws, len(sent), within=30)
            assert [m["message_id"] for m in got] == sent
            assert [len(m["payload"].get("pad", "")) for m in got] == [
                p for p in (0, 200, 70_000, 60) * 5 for _ in range(3)
            ]


async def test_the_default_server_declines_per_message_deflate(valkey_url: str) -> None:
    """A client offering per-message deflate (as browsers do) gets plain frames: no zlib context
    per socket, and the gateway's one frame per message stays valid for every subscriber."""
    async with backend_for(valkey_url) as backend, gateways(valkey_url, "gw-plain") as (gw,):
        _, token = await make_user(backend, "alice")
        async with subscribed(gw, token, ["t"]) as ws:
            assert ws.response is not None
            assert "Sec-WebSocket-Extensions" not in ws.response.headers
            assert ws.request is not None and "permessage-deflate" in str(ws.request.headers)


async def test_killed_gateway_restarted_with_its_identity_resumes_its_group(valkey_url: str) -> None:
    """A SIGKILLed gateway's group keeps what was published meanwhile; the restarted gateway
    (same identity) drains it, and a client reconnecting with since misses nothing."""
    async with backend_for(valkey_url) as backend:
        alice, token = await make_user(backend, "alice")
        async with gateways(valkey_url, "gw-k") as (gw,):
            async with subscribed(gw, token, ["jobs"]) as ws:
                first = await publish_direct(backend, alice, "jobs", 50)
                seen = await messages(ws, 50)
                assert [m["message_id"] for m in seen] == first
                await asyncio.to_thread(gw.kill)
                missed = await publish_direct(backend, alice, "jobs", 120, start=50)
                assert await backend.fanout.lag("gw:gw-k") >= 120  # kept for the group, unread
                await asyncio.to_thread(gw.start)  # same identity, same port
                await eventually_async(lambda: _drained(backend, "gw:gw-k"))
            async with subscribed(gw, token, ["jobs"], since={"jobs": first[-1]}) as again:
                assert [m["message_id"] for m in await messages(again, 120)] == missed
                live = await publish_direct(backend, alice, "jobs", 5, start=170)
                assert [m["message_id"] for m in await messages(again, 5)] == live


async def _drained(backend: ValkeyBackend, group: str) -> bool:
    return await backend.fanout.lag(group) == 0


async def test_a_dead_gateway_is_reaped_by_a_live_one(valkey_url: str) -> None:
    """A gateway that stops beating has its consumer group and registry entry removed by a peer."""
    async with (
        backend_for(valkey_url) as backend,
        gateways(valkey_url, "gw-live", "gw-dead", PULSAR_GATEWAY_EXPIRY="1.5") as (_, dead),
    ):
        await eventually_async(lambda: _has(valkey_url, "gw:gw-dead"))
        await asyncio.to_thread(dead.kill)

        async def reaped() -> bool:
            return "gw-dead" not in await backend.gateways.live() and not await _has(valkey_url, "gw:gw-dead")

        await eventually_async(reaped)
        assert "gw-live" in await backend.gateways.live() and await _has(valkey_url, "gw:gw-live")


async def _has(valkey_url: str, group: str) -> bool:
    return group in await groups(valkey_url)


async def test_poll_stats_cover_the_whole_deployment(valkey_url: str) -> None:
    """Any gateway reports waiters and subscribers of every live gateway."""
    async with backend_for(valkey_url) as backend, gateways(valkey_url, "gw-s1", "gw-s2") as (one, two):
        _, token = await make_user(backend, "alice", ["read"])
        async with httpx.AsyncClient(timeout=30) as http, subscribed(two, token, ["job_setup"]):
            poll = asyncio.create_task(
                http.post(
                    one.url + "/messages/poll",
                    json={"topics": ["job_setup"], "timeout": 5},
                    headers=bearer(token),
                )
            )
            want = {
                "active_waiters": 1,
                "subscribed_topics": 1,
                "topic_subscriber_counts": {"job_setup": 2},
                "websocket_connections": 1,
                "gateways": 2,
            }

            async def reported() -> bool:
                bodies = [
                    (await http.get(g.url + "/messages/poll/stats", headers=bearer(token))).json()
                    for g in (one, two)
                ]
                return all(b == want for b in bodies)

            await eventually_async(reported)
            assert (await poll).status_code == 200


async def test_gateway_survives_a_valkey_restart_without_losing_messages(tmp_path: Path) -> None:
    """Valkey killed and restarted under a running gateway: the tailer reconnects with backoff and
    the open socket receives everything published before and after, in order."""
    server = ValkeyServer(appendfsync="always", workdir=str(tmp_path)).start()
    try:
        settings = make_settings(server.url)
        async with serve(settings) as relay:
            alice, token = await relay.user("alice")
            ws = await relay.subscribe(token, ["durable"])
            before = await publish_direct(relay.backend, alice, "durable", 30)
            assert [m["message_id"] for m in await messages(ws, 30)] == before
            await asyncio.to_thread(server.kill)
            await asyncio.sleep(0.3)  # let the tailer notice and back off
            await asyncio.to_thread(server.start)
            after: list[str] = []

            async def publish_when_back() -> bool:
                try:
                    after.extend(await publish_direct(relay.backend, alice, "durable", 30, start=30))
                    return True
                except Exception:
                    return False

            await eventually_async(publish_when_back)
            assert [m["message_id"] for m in await messages(ws, 30, within=30)] == after
            await ws.send(json.dumps({"type": "ping"}))
            assert (await recv(ws))["type"] == "pong"
    finally:
        server.cleanup()


async def test_a_malformed_fan_out_entry_is_skipped_not_fatal(relay_factory, valkey_url: str) -> None:
    """An entry in a fan-out log that publish did not write is acknowledged and skipped; the
    messages around it are delivered."""
    async with relay_factory() as relay:
        alice, token = await relay.user("alice")
        ws = await relay.subscribe(token, ["jobs"])
        r = aredis.Redis.from_url(valkey_url)
        try:
            await r.xadd(KEYS.log_for("jobs"), {"junk": "1"})
        finally:
            await r.aclose()
        ids = await publish_direct(relay.backend, alice, "jobs", 2)
        assert [m["message_id"] for m in await messages(ws, 2)] == ids

        async def nothing_pending() -> bool:
            return bool(await relay.backend.fanout.lag(f"gw:{relay.node.gateway_id}") == 0)

        await eventually_async(nothing_pending)
