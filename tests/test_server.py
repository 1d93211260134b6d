"""The process runner: SIGTERM drains WebSockets first (1001 at once), then the server stops."""

from __future__ import annotations

import asyncio
import json
import signal

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from pulsar_relay.allinone import create_app as all_in_one
from pulsar_relay.server import drain_hooks
from relaycore.store.valkey_backend import ValkeyBackend
from tests.conftest import TEST_SECRET, make_settings
from tests.support.identity import make_user
from tests.support.serve import RelayProcess


def test_drain_hooks_find_the_gateway_inside_the_all_in_one_app() -> None:
    """The all-in-one dispatcher exposes exactly one drain hook: its gateway's."""
    app = all_in_one(make_settings())
    hooks = drain_hooks(app)
    assert hooks == [app.apps["gateway"].state.drain]


async def test_sigterm_closes_websockets_with_1001_and_the_process_exits(valkey_url: str) -> None:
    """A gateway process asked to stop closes its sockets with 1001 (going away) and exits 0."""
    settings = make_settings(valkey_url)
    backend = ValkeyBackend(settings)
    _, token = await make_user(backend, "alice", ["read"])
    await backend.close()
    env = {
        "PULSAR_JWT_SECRET_KEY": TEST_SECRET,
        "PULSAR_VALKEY_URL": valkey_url,
        "PULSAR_FANOUT_PARTITIONS": "4",
    }
    proc = RelayProcess("gateway", env).start()
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
