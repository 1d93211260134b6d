"""The process runner: the HTTP server each service runs (flag > setting > per-service default),
and under either server SIGTERM drains WebSockets first (1001 at once), then the server stops."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from pulsar_relay.allinone import create_app as all_in_one
from pulsar_relay.server import DEFAULT_SERVER, SERVERS, choose_server, drain_hooks, stop_on_signals
from relaycore.store.valkey_backend import ValkeyBackend
from tests.conftest import TEST_SECRET, make_settings
from tests.support.identity import make_user
from tests.support.serve import RelayProcess, child_env
from tests.support.valkey import free_port


def test_drain_hooks_find_the_gateway_inside_the_all_in_one_app() -> None:
    """The all-in-one dispatcher exposes exactly one drain hook: its gateway's."""
    app = all_in_one(make_settings())
    hooks = drain_hooks(app)
    assert hooks == [app.apps["gateway"].state.drain]


def test_the_flag_wins_over_the_setting_which_wins_over_the_service_default() -> None:
    """--server beats the server setting; an empty setting means the service's own default."""
    assert choose_server("ingest", None, make_settings()) == DEFAULT_SERVER["ingest"] == "uvicorn"
    assert choose_server("gateway", None, make_settings()) == DEFAULT_SERVER["gateway"]
    assert choose_server("ingest", None, make_settings(server="uvicorn")) == "uvicorn"
    assert choose_server("auth", "uvicorn", make_settings()) == "uvicorn"
    with pytest.raises(ValueError, match="hypercorn"):
        choose_server("ingest", "hypercorn", make_settings())
    assert set(DEFAULT_SERVER) == {"all", "auth", "ingest", "gateway"}
    assert set(DEFAULT_SERVER.values()) <= set(SERVERS)


async def test_serve_ingest_runs_its_default_server_and_the_setting_overrides_it(valkey_url: str) -> None:
    """`serve ingest` with no choice runs uvicorn (log line and Server header); PULSAR_SERVER and
    --server name it too."""
    env = {"PULSAR_VALKEY_URL": valkey_url, "PULSAR_JWT_SECRET_KEY": TEST_SECRET}
    cases = [
        ({}, [], "uvicorn"),
        ({"PULSAR_SERVER": "uvicorn"}, [], "uvicorn"),
        ({"PULSAR_SERVER": "uvicorn"}, ["--server", "uvicorn"], "uvicorn"),
    ]
    for extra_env, args, expected in cases:
        proc = RelayProcess("ingest", env | extra_env, extra_args=args)
        try:
            await asyncio.to_thread(proc.start)
            async with httpx.AsyncClient(base_url=proc.url) as http:
                r = await http.get("/health")
            assert r.headers["server"].startswith(expected), (extra_env, args, r.headers)
            assert f"serving ingest with {expected}" in proc.output()
        finally:
            proc.stop()


def test_hypercorn_is_refused_with_the_reason() -> None:
    """PULSAR_SERVER=hypercorn (dropped for its WebSocket leak) stops start-up with exit 2 and a
    configuration error naming the setting, rather than serving on something else."""
    env = child_env(PULSAR_SERVER="hypercorn", PULSAR_JWT_SECRET_KEY=TEST_SECRET)
    done = subprocess.run(
        [sys.executable, "-m", "pulsar_relay", "serve", "all", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "PULSAR_SERVER" in done.stderr and "hypercorn" in done.stderr, done.stderr


@pytest.mark.parametrize("service", ["auth", "ingest", "gateway"])
def test_one_service_refuses_the_memory_backend(service: str) -> None:
    """`serve auth|ingest|gateway` with the memory backend would start and then answer every valid
    token 401 (each process holds its own users): it refuses at start-up, rc 2, one line why."""
    env = child_env(PULSAR_STORAGE_BACKEND="memory", PULSAR_JWT_SECRET_KEY=TEST_SECRET)
    done = subprocess.run(
        [sys.executable, "-m", "pulsar_relay", "serve", service, "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, (done.returncode, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "memory" in lines[0] and "serve all" in lines[0], lines


@pytest.mark.parametrize("server", SERVERS)
async def test_sigterm_closes_websockets_with_1001_and_the_process_exits(
    valkey_url: str, server: str
) -> None:
    """A gateway process asked to stop closes its sockets with 1001 (going away) and exits 0,
    under either server."""
    settings = make_settings(valkey_url)
    backend = ValkeyBackend(settings)
    _, token = await make_user(backend, "alice", ["read"])
    await backend.close()
    env = {
        "PULSAR_JWT_SECRET_KEY": TEST_SECRET,
        "PULSAR_VALKEY_URL": valkey_url,
        "PULSAR_FANOUT_PARTITIONS": "4",
    }
    proc = RelayProcess("gateway", env, extra_args=["--server", server]).start()
    try:
        async with connect(f"ws://127.0.0.1:{proc.port}/ws?token={token}") as ws:
            await ws.send(json.dumps({"type": "subscribe", "topics": ["t"]}))
            assert json.loads(await ws.recv())["type"] == "subscribed"
            assert proc.proc is not None
            proc.proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(30):  # a safety net, not a timing assertion
                    while True:
                        await ws.recv()
            except ConnectionClosed as closed:
                assert closed.rcvd is not None and closed.rcvd.code == 1001
        assert await asyncio.to_thread(proc.proc.wait, 30) == 0
    finally:
        proc.stop()


def test_gc_is_tuned_for_many_short_lived_objects() -> None:
    """run() raises the collector's thresholds and freezes start-up objects (fan-out p99 tail)."""
    import gc

    from pulsar_relay.server import GC_THRESHOLDS, tune_gc

    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_threshold() == GC_THRESHOLDS
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


@pytest.mark.parametrize("server", SERVERS)
async def test_sigterm_answers_a_long_poll_in_flight_at_once_and_exits_within_two_seconds(
    valkey_url: str, server: str
) -> None:
    """A long-poll waiting when the gateway is asked to stop gets its normal (empty) answer at
    once, not a 500 after the server's grace period, and the process exits 0 within 2 s."""
    settings = make_settings(valkey_url)
    backend = ValkeyBackend(settings)
    _, token = await make_user(backend, "alice", ["read"])
    await backend.close()
    env = {
        "PULSAR_JWT_SECRET_KEY": TEST_SECRET,
        "PULSAR_VALKEY_URL": valkey_url,
        "PULSAR_FANOUT_PARTITIONS": "4",
    }
    proc = RelayProcess("gateway", env, extra_args=["--server", server]).start()
    try:
        assert proc.proc is not None
        async with httpx.AsyncClient(base_url=proc.url, timeout=60) as http:
            body = {"topics": ["t"], "timeout": 30}
            waiting = asyncio.create_task(http.post("/messages/poll", json=body, headers=bearer(token)))
            await asyncio.sleep(1.0)  # the poll is waiting in the gateway
            assert not waiting.done()
            loop = asyncio.get_running_loop()
            asked = loop.time()
            proc.proc.send_signal(signal.SIGTERM)
            answer = await waiting
            answered_in = loop.time() - asked
        assert answer.status_code == 200, answer.text
        assert answer.json()["messages"] == [] and set(answer.json()["cursors"]) == {"t"}
        assert answered_in < 1.0, f"answered {answered_in:.2f}s after SIGTERM"
        code = await asyncio.to_thread(proc.proc.wait, 30)
        exited_in = loop.time() - asked
        assert code == 0, proc.output()
        assert exited_in < 2.0, f"exited {exited_in:.2f}s after SIGTERM\n{proc.output()}"
    finally:
        proc.stop()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_gateway_stopped_cleanly_leaves_no_consumer_group_and_no_entry(valkey_url: str) -> None:
    """SIGTERM: the gateway removes its consumer group from every fan-out log and its registry
    entry, so a container recreated under a new hostname orphans nothing and the console lists
    only running gateways."""
    import redis.asyncio as aredis

    from relaycore.keys import Keys

    env = {
        "PULSAR_JWT_SECRET_KEY": TEST_SECRET,
        "PULSAR_VALKEY_URL": valkey_url,
        "PULSAR_FANOUT_PARTITIONS": "4",
        "PULSAR_GATEWAY_ID": "gw-leaving",
    }
    keys = Keys("relay", 4)
    r = aredis.Redis.from_url(valkey_url)

    async def groups() -> list[str]:
        names = []
        for p in range(4):
            if await r.exists(keys.log(p)):
                names += [g["name"].decode() for g in await r.xinfo_groups(keys.log(p))]
        return names

    proc = RelayProcess("gateway", env).start()
    try:
        assert proc.proc is not None
        for _ in range(100):
            if b"gw-leaving" in [g for g, _ in await r.zrange(keys.gateways, 0, -1, withscores=True)]:
                break
            await asyncio.sleep(0.05)
        assert keys.gateway_group("gw-leaving") in await groups()
        proc.proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.proc.wait, 30) == 0
        assert keys.gateway_group("gw-leaving") not in await groups()
        assert await r.zrange(keys.gateways, 0, -1) == []
    finally:
        proc.stop()
        await r.aclose()


@pytest.mark.parametrize(("within", "forced"), [(0.0, True), (1.0, False)])
async def test_a_repeated_stop_signal_forces_unless_it_is_the_same_request(
    within: float, forced: bool
) -> None:
    """A second SIGTERM forces the stop, except within ``same_stop_within`` of the first: a worker
    hears one stop from its parent and one from the terminal or service manager."""
    calls: list[str] = []
    loop = asyncio.get_running_loop()
    stop_on_signals(
        object(), lambda: calls.append("stop"), lambda: calls.append("now"), same_stop_within=within
    )
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.sleep(0.05)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    assert calls == (["stop", "now"] if forced else ["stop"])
