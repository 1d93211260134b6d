"""A local Valkey for ``dev`` and ``stack``: ``valkey-server`` (or ``redis-server``) from PATH,
loopback only, AOF on, data in a directory that outlives the process.

The persistence settings match ``deploy/valkey.conf`` (what the containers run); they are given as
arguments so that an installed wheel, which has no ``deploy/`` directory, needs no file.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import redis

from pulsar_relay.procs import Child, ProcessGroup, StartError, free_port, port_is_free

# Preferred port for the development Valkey: stable between runs (so `valkey-cli -p 16379` works)
# and away from a system Valkey/Redis on 6379.
DEV_PORT = 16379


def server_binary() -> str | None:
    return shutil.which("valkey-server") or shutil.which("redis-server")


def valkey_args(binary: str, port: int, data_dir: Path) -> list[str]:
    return [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--protected-mode",
        "yes",
        "--dir",
        str(data_dir),
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--aof-use-rdb-preamble",
        "yes",
        # RDB snapshots too: dump.rdb is the simplest thing to back up.
        "--save",
        "3600 1 300 100 60 10000",
        "--maxmemory-policy",
        "noeviction",
        "--daemonize",
        "no",
        "--logfile",
        str(data_dir / "valkey.log"),
    ]


def _pings(port: int) -> bool:
    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.2, socket_timeout=0.5)
    try:
        return bool(client.ping())
    except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
        return False
    finally:
        client.close()


class LocalValkey:
    """A Valkey child of ``group``; ``url`` once started."""

    def __init__(self, binary: str, data_dir: Path, port: int | None = None) -> None:
        self.binary = binary
        self.data_dir = data_dir
        self.any_port = port is None
        self.port = port if port is not None else free_port()
        self.child: Child | None = None

    @classmethod
    def preferring(cls, binary: str, data_dir: Path, port: int = DEV_PORT) -> LocalValkey:
        """On ``port`` when it is free, else (or if it is taken before Valkey binds it) any free port."""
        valkey = cls(binary, data_dir, port if port_is_free(port) else None)
        valkey.any_port = True
        return valkey

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log(self) -> Path:
        return self.data_dir / "valkey.log"

    def start(self, group: ProcessGroup, timeout: float = 20.0) -> LocalValkey:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(3):
            # Valkey writes its own log file; the child's stdout only carries start-up failures.
            self.child = Child(
                "valkey",
                valkey_args(self.binary, self.port, self.data_dir),
                log=self.data_dir / "valkey.stdout",
            )
            group.start(self.child)
            try:
                group.wait_until(
                    self.child, lambda: _pings(self.port), timeout, f"Valkey on port {self.port}"
                )
                return self
            except StartError as exc:
                log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
                error = StartError(f"{exc}\n{log}")
                group.discard(self.child)
                if not (self.any_port and error.port_taken) or attempt == 2:
                    raise error from None
                self.port = free_port()
        raise AssertionError("unreachable")
