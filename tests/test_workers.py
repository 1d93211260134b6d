"""``pulsar-relay serve <service> --workers N``: real parent and worker processes on one port and a
real Valkey.  Gateway workers are separate gateways (their own consumer groups, ids and metrics
ports), a killed worker is restarted while the other serves, SIGTERM drains every worker, and
configurations that cannot work are refused before anything starts."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aredis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from relaycore.keys import Keys
from relaycore.store.valkey_backend import ValkeyBackend
from tests.gateway.conftest import WAIT, bearer, gateway_env, messages, publish_direct, recv
from tests.gateway.test_processes import backend_for, groups
from tests.support.identity import make_user
from tests.support.serve import RelayProcess, child_env

pytestmark = pytest.mark.slow

KEYS = Keys("relay", 4)
STOP_BOUND = 20.0  # the parent's own limit is workers.STOP_TIMEOUT (25 s); a drain takes a few


def free_ports(count: int) -> int:
    """The first of ``count`` consecutive free ports on 127.0.0.1."""
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = int(probe.getsockname()[1])
        if first + count > 65535:
            continue
        held: list[socket.socket] = []
        try:
            for port in range(first, first + count):
                s = socket.socket()
                held.append(s)
                s.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
    raise RuntimeError("no run of free ports")


def worker_pids(parent: int) -> set[int]:
    """The parent's child processes (its workers)."""
    try:
        text = Path(f"/proc/{parent}/task/{parent}/children").read_text()
    except OSError:
        return set()
    return {int(p) for p in text.split()}


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


async def until(check: Callable[[], Any], within: float = 20) -> None:
    """Wait until ``check()`` (sync or async) is true: a safety net, not a timing assertion."""
    async with asyncio.timeout(within):
        while True:
            result = check()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return
            await asyncio.sleep(0.05)


def metrics_value(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


@contextlib.asynccontextmanager
async def pool(
    valkey_url: str, service: str = "gateway", workers: int = 2, **extra: str
) -> AsyncIterator[tuple[RelayProcess, int]]:
    """``serve <service> --workers <workers>``; yields the process and its first metrics port."""
    metrics_port = free_ports(workers)
    env = gateway_env(valkey_url, "pool", PULSAR_METRICS_PORT=str(metrics_port), PULSAR_LOG_LEVEL="INFO")
    proc = RelayProcess(service, env | extra, extra_args=["--workers", str(workers)])
    try:
        await asyncio.to_thread(proc.start, 30)
        # every worker has served once (the parent logs it): one killed before would be a failed start
        await until(lambda: _log(proc).count(" is serving") == workers)
        assert len(worker_pids(proc.proc.pid)) == workers  # type: ignore[union-attr]
        yield proc, metrics_port
    finally:
        parent = proc.proc.pid if proc.proc else 0
        left = worker_pids(parent)
        await asyncio.to_thread(proc.stop)
        for pid in left:  # never leave a worker behind, whatever the test did
            with contextlib.suppress(ProcessLookupError):
                if alive(pid):
                    os.kill(pid, signal.SIGKILL)


def _log(proc: RelayProcess) -> str:
    return Path(proc.log_path).read_text(errors="replace") if proc.log_path else ""


async def connections_by_gateway(backend: ValkeyBackend) -> dict[str, int]:
    return {g: c.get("websocket_connections", 0) for g, c, _ in await backend.gateways.stats()}


async def subscribe(url: str, token: str, topic: str) -> ClientConnection:
    ws = await connect(url.replace("http://", "ws://") + f"/ws?token={token}", open_timeout=WAIT)
    await ws.send(json.dumps({"type": "subscribe", "topics": [topic]}))
    assert (await recv(ws))["type"] == "subscribed"
    return ws


async def spread_subscribers(
    backend: ValkeyBackend, url: str, token: str, topic: str, ids: set[str]
) -> list[ClientConnection]:
    """Subscribers opened one by one until every gateway in ``ids`` reports at least one."""
    sockets: list[ClientConnection] = []
    for _ in range(40):
        sockets.append(await subscribe(url, token, topic))
        if len(sockets) >= 4:
            with contextlib.suppress(TimeoutError):
                await until(
                    lambda: _covers(backend, ids, len(sockets)),
                    within=2,
                )
                return sockets
    raise AssertionError(
        f"40 connections never reached every worker: {await connections_by_gateway(backend)}"
    )


async def _covers(backend: ValkeyBackend, ids: set[str], total: int) -> bool:
    counts = await connections_by_gateway(backend)
    return all(counts.get(g, 0) >= 1 for g in ids) and sum(counts.get(g, 0) for g in ids) == total


async def test_gateway_workers_are_separate_gateways_each_delivering_every_message(valkey_url: str) -> None:
    """Two gateway workers on one port: connections reach both (ids pool-w0, pool-w1, each its own
    consumer group and metrics port), and one publish reaches subscribers on both exactly once."""
    async with backend_for(valkey_url) as backend, pool(valkey_url) as (gw, metrics_port):
        alice, token = await make_user(backend, "alice")
        sockets = await spread_subscribers(backend, gw.url, token, "jobs", {"pool-w0", "pool-w1"})
        try:
            assert set(await backend.gateways.live()) == {"pool-w0", "pool-w1"}
            ids = await publish_direct(backend, alice, "jobs", 20)
            for ws in sockets:
                assert [m["message_id"] for m in await messages(ws, 20)] == ids
            for ws in sockets:  # exactly once: nothing after the 20 but pings
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.5):
                        while True:
                            assert json.loads(await ws.recv())["type"] == "ping"
            async with httpx.AsyncClient(timeout=10) as http:
                for i in (0, 1):  # each worker's own figures: its own deliveries
                    text = (await http.get(f"http://127.0.0.1:{metrics_port + i}/metrics")).text
                    assert metrics_value(text, "relay_messages_delivered_total") >= 20
                stats = (await http.get(gw.url + "/messages/poll/stats", headers=bearer(token))).json()
                assert stats["gateways"] == 2 and stats["websocket_connections"] == len(sockets)
        finally:
            for ws in sockets:
                await ws.close()


async def test_a_killed_worker_is_restarted_while_the_other_keeps_serving(valkey_url: str) -> None:
    """SIGKILL of one worker: once it is gone the port keeps answering, a new worker takes its place
    under the same gateway id (its consumer group resumed, no third group), the other is untouched."""
    async with backend_for(valkey_url) as backend, pool(valkey_url) as (gw, metrics_port):
        assert gw.proc is not None
        before = worker_pids(gw.proc.pid)
        alice, _ = await make_user(backend, "alice")
        await publish_direct(backend, alice, "jobs", 1)  # the logs exist: lag is measurable
        victim, survivor = sorted(before)
        os.kill(victim, signal.SIGKILL)
        await publish_direct(backend, alice, "jobs", 10, start=1)  # the victim's group keeps them
        await until(lambda: not alive(victim))
        # A connection arriving while the kernel tears the dead worker's socket down (a few ms) can
        # be reset (docs/OPERATIONS.md, "Worker processes"); after that every one reaches the live
        # worker, long before the replacement starts (0.5 s, then its start-up).
        await asyncio.sleep(0.1)
        async with httpx.AsyncClient(timeout=5) as http:
            deadline = time.monotonic() + 20
            while worker_pids(gw.proc.pid) - before == set():
                r = await http.get(gw.url + "/health", headers={"Connection": "close"})
                assert r.status_code == 200
                assert time.monotonic() < deadline, "the killed worker was not restarted"
                await asyncio.sleep(0.05)
            assert survivor in worker_pids(gw.proc.pid) and victim not in worker_pids(gw.proc.pid)
            for i in (0, 1):
                await until(lambda i=i: _answers(f"http://127.0.0.1:{metrics_port + i}/metrics"))
        await until(lambda: _groups_are(valkey_url, {"gw:pool-w0", "gw:pool-w1"}))
        for group in ("gw:pool-w0", "gw:pool-w1"):  # the restarted worker read its group's backlog
            await until(lambda group=group: _drained(backend, group))
        assert gw.proc.poll() is None


async def _drained(backend: ValkeyBackend, group: str) -> bool:
    return await backend.fanout.lag(group) == 0


async def _answers(url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=1) as http:
            return (await http.get(url)).status_code == 200
    except httpx.TransportError:
        return False


async def test_sigterm_drains_every_worker_and_the_parent_exits_0(valkey_url: str) -> None:
    """SIGTERM to the parent: WebSockets on both workers are closed with 1001, a waiting long-poll
    is answered, every worker exits, and the parent exits 0 within the bound."""
    async with backend_for(valkey_url) as backend, pool(valkey_url) as (gw, _):
        assert gw.proc is not None
        _, token = await make_user(backend, "alice")
        sockets = await spread_subscribers(backend, gw.url, token, "jobs", {"pool-w0", "pool-w1"})
        children = worker_pids(gw.proc.pid)
        async with httpx.AsyncClient(timeout=30) as http:
            poll = asyncio.create_task(
                http.post(
                    gw.url + "/messages/poll", json={"topics": ["jobs"], "timeout": 25}, headers=bearer(token)
                )
            )
            await until(lambda: _waiting(backend))
            started = time.monotonic()
            gw.proc.send_signal(signal.SIGTERM)
            assert (await poll).status_code == 200
            for ws in sockets:
                with pytest.raises(ConnectionClosed) as closed:
                    async with asyncio.timeout(STOP_BOUND):
                        while True:
                            await ws.recv()
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
        code = await asyncio.to_thread(gw.proc.wait, STOP_BOUND)
        assert code == 0 and time.monotonic() - started < STOP_BOUND
        assert not any(alive(pid) for pid in children)
        # a worker stopped cleanly leaves: no registry entry, no consumer group
        await until(lambda: _gone(backend, valkey_url))


async def _groups_are(valkey_url: str, want: set[str]) -> bool:
    return await groups(valkey_url) == want


async def _waiting(backend: ValkeyBackend) -> bool:
    return sum(c.get("active_waiters", 0) for _, c, _ in await backend.gateways.stats()) == 1


async def _gone(backend: ValkeyBackend, valkey_url: str) -> bool:
    return not await backend.gateways.live() and not await groups(valkey_url)


async def test_ingest_workers_publish_on_one_port(valkey_url: str) -> None:
    """``serve ingest --workers 2``: publishes over fresh connections are all stored once, and
    both workers took some (each one's own relay_messages_published_total)."""
    async with backend_for(valkey_url) as backend, pool(valkey_url, "ingest") as (ingest, metrics_port):
        _, token = await make_user(backend, "alice")
        for i in range(30):
            async with httpx.AsyncClient(timeout=10, headers=bearer(token)) as http:
                r = await http.post(
                    ingest.url + "/api/v1/messages", json={"topic": "jobs", "payload": {"n": i}}
                )
                assert r.status_code in (200, 201), r.text
        r = aredis.Redis.from_url(valkey_url)
        try:
            assert await r.xlen(KEYS.stream("jobs")) == 30
        finally:
            await r.aclose()
        async with httpx.AsyncClient(timeout=10) as http:
            published = [
                metrics_value(
                    (await http.get(f"http://127.0.0.1:{metrics_port + i}/metrics")).text,
                    "relay_messages_published_total",
                )
                for i in (0, 1)
            ]
        assert sum(published) == 30 and all(n > 0 for n in published), published


def run_serve(env: dict[str, str], *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pulsar_relay", "serve", *args],
        env=child_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize(
    ("extra", "args", "says"),
    [
        ({"PULSAR_STORAGE_BACKEND": "memory"}, ["all", "--workers", "2"], "storage_backend=memory"),
        ({"PULSAR_METRICS_PORT": ""}, ["gateway", "--workers", "2"], "need PULSAR_METRICS_PORT"),
        ({"PULSAR_WORKERS": "0"}, ["gateway"], "must be 1 to 64"),
        ({}, ["gateway", "--workers", "65"], "must be 1 to 64"),
    ],
)
def test_impossible_worker_settings_are_refused_with_exit_2(
    valkey_url: str, extra: dict[str, str], args: list[str], says: str
) -> None:
    """Worker settings that cannot work (memory storage, no metrics ports, out of 1..64) stop
    start-up with a configuration error and exit code 2, before any process serves."""
    env = gateway_env(valkey_url, "pool") | {"PULSAR_METRICS_PORT": str(free_ports(2))} | extra
    env = {k: v for k, v in env.items() if v != ""}
    done = run_serve(env, *args, "--host", "127.0.0.1", "--port", str(free_ports(1)))
    assert done.returncode == 2, done.stderr
    assert "configuration error" in done.stderr and says in done.stderr


def test_a_worker_that_cannot_start_stops_the_parent(valkey_url: str) -> None:
    """Worker 1's metrics port is taken: it fails at start-up, so the parent stops worker 0 and
    exits non-zero (naming the worker) instead of restarting it for ever."""
    metrics_port = free_ports(2)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", metrics_port + 1))
        taken.listen(1)
        env = gateway_env(valkey_url, "pool", PULSAR_METRICS_PORT=str(metrics_port), PULSAR_LOG_LEVEL="INFO")
        done = run_serve(
            env, "gateway", "--workers", "2", "--host", "127.0.0.1", "--port", str(free_ports(1))
        )
    assert done.returncode != 0
    assert "worker 1" in done.stderr and "before it served" in done.stderr, done.stderr[-3000:]


async def test_one_worker_is_todays_single_process(valkey_url: str) -> None:
    """Without --workers (PULSAR_WORKERS unset) ``serve gateway`` is one process, no supervisor,
    under its gateway id unchanged."""
    async with backend_for(valkey_url) as backend:
        proc = RelayProcess("gateway", gateway_env(valkey_url, "solo"))
        try:
            await asyncio.to_thread(proc.start, 30)
            assert proc.proc is not None and worker_pids(proc.proc.pid) == set()
            await until(lambda: _live_is(backend, {"solo"}))
        finally:
            await asyncio.to_thread(proc.stop)


async def _live_is(backend: ValkeyBackend, ids: set[str]) -> bool:
    return set(await backend.gateways.live()) == ids


async def test_all_in_one_workers_are_each_a_whole_relay_with_its_own_gateway_id(valkey_url: str) -> None:
    """``serve all --workers 2``: two all-in-one workers, gateways pool-w0 and pool-w1, and a
    message published over HTTP on the port reaches a subscriber on the same port."""
    async with backend_for(valkey_url) as backend, pool(valkey_url, "all") as (relay, _):
        await until(lambda: _live_is(backend, {"pool-w0", "pool-w1"}))
        _, token = await make_user(backend, "alice")
        ws = await subscribe(relay.url, token, "jobs")
        try:
            async with httpx.AsyncClient(timeout=10, headers=bearer(token)) as http:
                r = await http.post(
                    relay.url + "/api/v1/messages", json={"topic": "jobs", "payload": {"n": 1}}
                )
                assert r.status_code in (200, 201), r.text
            [got] = await messages(ws, 1)
            assert got["payload"] == {"n": 1}
        finally:
            await ws.close()
