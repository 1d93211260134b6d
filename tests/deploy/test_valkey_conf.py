"""deploy/valkey.conf loads in a real server with AOF on and survives a restart, and the arguments
`dev`/`stack` give their local Valkey persist the same way."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from pulsar_relay.localvalkey import server_binary, valkey_args
from tests.support.valkey import free_port

CONF = Path(__file__).resolve().parents[2] / "deploy" / "valkey.conf"
PERSISTENCE = ("appendonly", "appendfsync", "aof-use-rdb-preamble", "save", "maxmemory-policy")


@contextmanager
def server(argv: list[str], cwd: Path, port: int) -> Iterator[redis.Redis]:
    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    client = redis.Redis(port=port, decode_responses=True, socket_connect_timeout=0.2)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.02)
        yield client
    finally:
        client.close()
        proc.terminate()
        proc.wait(10)
        if proc.stderr:
            proc.stderr.close()


def binary() -> str:
    found = server_binary()
    if found is None:
        pytest.skip("no valkey-server or redis-server on PATH (make valkey installs redis-server)")
    return found


def conf_argv(port: int) -> list[str]:
    # Only what differs on this machine: a free port on loopback, not 0.0.0.0:6379.
    return [binary(), str(CONF), "--port", str(port), "--bind", "127.0.0.1"]


def test_conf_loads_with_aof_and_data_survives_restart(tmp_path: Path) -> None:
    """The container's valkey.conf starts a real server with AOF, and a write survives a restart."""
    port = free_port()
    with server(conf_argv(port), tmp_path, port) as client:
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        client.set("kept", "yes")
    assert (tmp_path / "appendonlydir").is_dir()
    with server(conf_argv(port), tmp_path, port) as client:
        assert client.get("kept") == "yes"


def test_native_arguments_persist_like_the_conf(tmp_path: Path) -> None:
    """dev and stack run Valkey with the same persistence settings as deploy/valkey.conf."""
    port_a, port_b = free_port(), free_port()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with server(conf_argv(port_a), tmp_path / "a", port_a) as a:
        from_conf = {k: a.config_get(k)[k] for k in PERSISTENCE}
    with server(valkey_args(binary(), port_b, tmp_path / "b"), tmp_path, port_b) as b:
        native = {k: b.config_get(k)[k] for k in PERSISTENCE}
    assert native == from_conf
