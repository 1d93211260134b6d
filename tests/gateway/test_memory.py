"""Memory is bounded in bytes, not in counts: large messages against a real gateway process, whose
resident memory (``VmRSS``, and its peak ``VmHWM``, from ``/proc``) stays under a stated bound.
The figures the bounds come from are in docs/RELIABILITY.md."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import redis.asyncio as aredis

from relaycore.config import MiB
from tests.gateway.conftest import WAIT, gateway_env, publish_direct, recv
from tests.gateway.test_processes import KEYS, backend_for, subscribed
from tests.gateway.test_slow import StalledClient
from tests.support.identity import make_user
from tests.support.serve import RelayProcess

pytestmark = pytest.mark.slow

BIG = 900 * 1024  # a message just under the default 1 MiB body limit


def memory(proc: RelayProcess, field: str = "VmRSS") -> float:
    """The process's resident memory (or its peak, ``VmHWM``) in MiB."""
    assert proc.proc is not None
    with open(f"/proc/{proc.proc.pid}/status") as status:
        found = re.search(rf"^{field}:\s+(\d+) kB", status.read(), re.M)
    assert found is not None
    return int(found.group(1)) / 1024


def metric(text: str, name: str) -> float:
    found = re.search(rf"^{name} (\S+)$", text, re.M)
    assert found is not None, name
    return float(found.group(1))


@contextlib.asynccontextmanager
async def gateway(valkey_url: str, **extra: str) -> AsyncIterator[RelayProcess]:
    proc = RelayProcess("gateway", gateway_env(valkey_url, "gw-mem", **extra))
    await asyncio.to_thread(proc.start)
    try:
        yield proc
    finally:
        await asyncio.to_thread(proc.stop)


async def settled(valkey_url: str) -> None:
    """Wait until the gateway's group has read and acknowledged every fan-out log entry."""
    r = aredis.Redis.from_url(valkey_url)
    try:
        async with asyncio.timeout(60):
            while True:
                behind = 0
                for p in range(KEYS.partitions):
                    if not await r.exists(KEYS.log(p)):
                        continue
                    last = (await r.xinfo_stream(KEYS.log(p)))["last-generated-id"]
                    for g in await r.xinfo_groups(KEYS.log(p)):
                        if g["name"] == b"gw:gw-mem":
                            behind += g["pending"] + (g["last-delivered-id"] != last)
                if not behind:
                    return
                await asyncio.sleep(0.2)
    finally:
        await r.aclose()


async def test_history_pages_and_catch_up_polls_stop_at_the_byte_budget(valkey_url: str) -> None:
    """100 messages of 900 KB: a page of limit=100 and a catch-up poll each stop at
    answer_max_bytes (next_cursor / has_more say there is more, and following them reads every
    message once); 20 of each at once raise the gateway's peak memory by far less than one
    unbounded answer (~90 MB) would take, let alone 40 of them (3.6 GB)."""
    budget = 4 * MiB
    async with (
        backend_for(valkey_url) as backend,
        gateway(valkey_url, PULSAR_CACHE_MAX_BYTES=str(8 * MiB), PULSAR_ANSWERS_AT_ONCE="4") as gw,
    ):
        alice, token = await make_user(backend, "alice")
        ids = await publish_direct(backend, alice, "big", 100, pad=BIG, bulk=4)
        await settled(valkey_url)
        base = memory(gw)
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=gw.url, headers=headers, timeout=60) as http:
            page = (
                await http.get("/api/v1/topics/big/messages", params={"limit": 100, "order": "asc"})
            ).json()
            assert 1 <= len(page["messages"]) <= budget // BIG
            assert page["next_cursor"] == page["messages"][-1]["message_id"]
            seen = [m["message_id"] for m in page["messages"]]
            while cursor := page["next_cursor"]:
                params: dict[str, Any] = {"limit": 100, "order": "asc", "cursor": cursor}
                page = (await http.get("/api/v1/topics/big/messages", params=params)).json()
                seen += [m["message_id"] for m in page["messages"]]
            assert seen == ids
            poll = (
                await http.post("/messages/poll", json={"topics": ["big"], "since": {"big": "0-0"}})
            ).json()
            assert poll["has_more"] is True and 1 <= len(poll["messages"]) <= budget // BIG
            assert poll["cursors"] == {"big": poll["messages"][-1]["message_id"]}

            async def page_of_100() -> int:
                r = await http.get("/api/v1/topics/big/messages", params={"limit": 100})
                assert r.status_code == 200, r.text[:200]
                return len(r.content)

            async def catch_up() -> int:
                r = await http.post("/messages/poll", json={"topics": ["big"], "since": {"big": "0-0"}})
                assert r.status_code == 200, r.text[:200]
                return len(r.content)

            sizes = await asyncio.gather(
                *(page_of_100() for _ in range(20)), *(catch_up() for _ in range(20))
            )
        assert max(sizes) <= budget + BIG * 1.1
        grew = memory(gw, "VmHWM") - base
        print(f"history/poll: base {base:.0f} MiB, peak +{grew:.0f} MiB, answers up to {max(sizes)} bytes")
        assert grew < 200, f"peak memory grew by {grew:.0f} MiB"


async def test_the_hot_cache_is_bounded_in_bytes(valkey_url: str) -> None:
    """200 messages of 500 KB that nobody reads: the cache holds at most cache_max_bytes
    (relay_cache_bytes says so) and the gateway grows by about that, not by the 100 MB published."""
    async with (
        backend_for(valkey_url) as backend,
        gateway(valkey_url, PULSAR_CACHE_MAX_BYTES=str(16 * MiB)) as gw,
    ):
        alice, _ = await make_user(backend, "alice")
        base = memory(gw)
        for i in range(4):
            await publish_direct(backend, alice, f"unread{i}", 50, pad=500 * 1024, bulk=5)
        await settled(valkey_url)
        async with httpx.AsyncClient(base_url=gw.url, timeout=WAIT) as http:
            held = metric((await http.get("/metrics")).text, "relay_cache_bytes")
        grew = memory(gw) - base
        print(f"cache: base {base:.0f} MiB, +{grew:.0f} MiB, relay_cache_bytes {held / MiB:.1f} MiB")
        assert 0 < held <= 16 * MiB
        assert grew < 60, f"memory grew by {grew:.0f} MiB"


async def test_a_client_that_never_reads_is_closed_at_its_byte_budget(valkey_url: str) -> None:
    """A subscriber that never reads while 200 messages of 500 KB arrive is closed with 4008
    (Slow consumer) once its outbox passes ws_send_queue_bytes, well before ws_send_queue frames;
    the gateway's memory stays bounded and a reading subscriber on the same topic gets everything.
    The producer goes in steps the reading subscriber takes before the next, so that one is never
    far behind however busy the host (sharing the test's loop with a free-running producer, it once
    fell behind by the budget and was closed as slow itself)."""
    async with (
        backend_for(valkey_url) as backend,
        gateway(
            valkey_url, PULSAR_CACHE_MAX_BYTES=str(8 * MiB), PULSAR_WS_SEND_QUEUE_BYTES=str(16 * MiB)
        ) as gw,
    ):
        alice, token = await make_user(backend, "alice")
        base = memory(gw)
        slow = StalledClient(SimpleNamespace(gateway=gw.url), token)  # type: ignore[arg-type]
        try:
            await slow.subscribe(["firehose"])
            async with subscribed(gw, token, ["firehose"]) as fast:
                ids: list[str] = []
                got: list[str] = []
                for start in range(0, 200, 5):  # in step with the reading subscriber, however busy the host
                    ids += await publish_direct(backend, alice, "firehose", 5, start, pad=500 * 1024, bulk=5)
                    got += await _count(fast, 5)
                assert got == ids
            seen, code, reason = await slow.read_to_close()
            assert (code, reason) == (4008, "Slow consumer") and seen < 200
        finally:
            slow.close()
        grew = memory(gw, "VmHWM") - base
        print(f"outbox: base {base:.0f} MiB, peak +{grew:.0f} MiB, the slow client saw {seen}")
        assert grew < 120, f"peak memory grew by {grew:.0f} MiB"


async def _count(ws: Any, n: int) -> list[str]:
    got: list[str] = []
    async with asyncio.timeout(120):
        while len(got) < n:
            frame = json.loads(await ws.recv())
            if frame["type"] == "message":
                got.append(frame["message_id"])
    return got


async def test_subscriptions_per_connection_are_limited(valkey_url: str) -> None:
    """ws_max_subscriptions bounds the topics of one socket, however many subscribe frames it
    sends: the frame that would pass it is refused with SUBSCRIPTION_ERROR, the socket stays."""
    async with (
        backend_for(valkey_url) as backend,
        gateway(valkey_url, PULSAR_WS_MAX_SUBSCRIPTIONS="120") as gw,
    ):
        _, token = await make_user(backend, "alice")
        async with subscribed(gw, token, [f"t{i}" for i in range(50)]) as ws:
            for more in (range(25, 75), range(75, 95)):
                await ws.send(json.dumps({"type": "subscribe", "topics": [f"t{i}" for i in more]}))
                assert (await recv(ws))["type"] == "subscribed"  # 95 distinct topics in the end
            await ws.send(json.dumps({"type": "subscribe", "topics": [f"u{i}" for i in range(30)]}))
            refused = await recv(ws)
            assert refused["type"] == "error" and refused["code"] == "SUBSCRIPTION_ERROR"
            assert "at most 120" in refused["message"]
            await ws.send(json.dumps({"type": "subscribe", "topics": [f"u{i}" for i in range(25)]}))
            assert (await recv(ws))["type"] == "subscribed"  # exactly 120
