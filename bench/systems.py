"""A deployment of one system for one scenario: which processes run where, the token, and where
to publish and subscribe.  The reference is always its one process; ours is the service under
test on the server core (ingest for publish scenarios, gateway for delivery scenarios, or the
all-in-one process), with auth and ingest as helpers on the load generator's core.  The peers
(nchan with Redis or memory storage, Pushpin) are their server processes on the server core,
nchan's own Redis placed like the suite's Valkey; Pushpin's GRIP origin is a helper on the load
generator's core."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import redis

from bench import machine, nchan, ours, pushpin, reference
from bench.httpclient import login
from bench.peers import PEERS
from bench.procs import Server
from bench.wire import NCHAN, PUSHPIN, RELAY, Wire

if TYPE_CHECKING:
    from tests.support.valkey import ValkeyServer

SYSTEMS = ("ours", "reference", *PEERS)


def missing(system: str) -> str | None:
    """Why ``system`` cannot run on this machine (a peer's Debian package is absent), or None."""
    if system in ("nchan", "nchan-memory"):
        return nchan.missing()
    if system == "pushpin":
        return pushpin.missing()
    return None


def package(system: str) -> str:
    """The Debian package a peer comes from."""
    return pushpin.PACKAGE if system == "pushpin" else nchan.PACKAGE


def install(system: str) -> bool:
    """Install a peer's Debian package with apt-get where this process may (root, apt-get present);
    True when the peer can run afterwards."""
    if missing(system) is None:
        return True
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        return False
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}

    def run(*argv: str) -> int:
        return subprocess.run(argv, env=env, capture_output=True, check=False, timeout=900).returncode

    if run("apt-get", "install", "-y", "-qq", package(system)) != 0:
        run("apt-get", "update", "-qq")  # stale package lists: refresh once and try again
        run("apt-get", "install", "-y", "-qq", package(system))
    return missing(system) is None


def version(system: str) -> str:
    """A peer's package version, for the report."""
    if system in ("nchan", "nchan-memory"):
        return nchan.version()
    if system == "pushpin":
        return pushpin.version()
    return ""


@dataclass
class Deployment:
    system: str
    role: str
    server: str
    publish_port: int
    gateway_port: int
    token: str
    under_test: Server
    processes: list[Server] = field(default_factory=list)
    ws_auth: str = "subprotocol"
    host: str = "127.0.0.1"
    credentials: tuple[str, str] = ("", "")
    auth_port: int = 0
    wire: Wire = RELAY  # how the load generator speaks to it
    scratch: list[str] = field(default_factory=list)  # temporary directories removed on stop
    stores: list[ValkeyServer] = field(default_factory=list)  # a peer's own Redis, removed on stop

    @property
    def label(self) -> str:
        if self.system == "reference":
            return "reference"
        if self.system in PEERS:
            return f"{self.system} ({self.server})"
        return f"ours ({self.role}, {self.server})"

    def stop(self) -> None:
        for proc in reversed(self.processes):
            proc.stop()
        for store in self.stores:
            store.cleanup()
        for directory in self.scratch:
            shutil.rmtree(directory, ignore_errors=True)


def flush(valkey_url: str) -> None:
    client = redis.Redis.from_url(valkey_url)
    try:
        client.flushall()
    finally:
        client.close()


def _start_all(servers: list[Server]) -> None:
    started: list[Server] = []
    try:
        for s in servers:
            started.append(s.start())
    except BaseException:
        for s in reversed(started):
            s.stop()
        raise


async def deploy(
    system: str,
    role: str,
    valkey_url: str,
    *,
    server: str = "uvicorn",
    max_clients: int = 25_000,
    workers: int | None = None,
) -> Deployment:
    """Start ``system`` for ``role`` ("ingest", "gateway" or "all") on a flushed Valkey and log in."""
    flush(valkey_url)
    if system in PEERS:
        return await _deploy_peer(system)
    if system == "reference":
        ref = reference.server(valkey_url, max_clients)
        await asyncio.to_thread(_start_all, [ref])
        dep = Deployment(system, "all", "uvicorn", ref.port, ref.port, "", ref, [ref])
        dep.credentials, dep.auth_port = reference.ADMIN, ref.port
    else:
        procs: list[Server] = []
        if role == "all":
            main = ours.service("all", valkey_url, server=server, workers=workers)
            procs = [main]
            auth_port = publish_port = main.port
        else:
            auth = ours.helper("auth", valkey_url)
            main = ours.service(role, valkey_url, server=server, workers=workers)
            procs = [auth, main]
            auth_port, publish_port = auth.port, main.port
            if role == "gateway":
                ingest = ours.helper("ingest", valkey_url)
                procs.append(ingest)
                publish_port = ingest.port
        await asyncio.to_thread(_start_all, procs)
        dep = Deployment(system, role, server, publish_port, main.port, "", main, procs)
        dep.credentials, dep.auth_port = ours.ADMIN, auth_port
    dep.scratch = [p.cwd for p in dep.processes]
    try:
        dep.token = await login(dep.host, dep.auth_port, *dep.credentials)
    except BaseException:
        dep.stop()
        raise
    return dep


async def _deploy_peer(system: str) -> Deployment:
    """A peer has no accounts: no login, an empty token, its own wire."""
    reason = missing(system)
    if reason:
        raise RuntimeError(f"{system} cannot run: {reason}")
    if system == "pushpin":
        origin, proxy = pushpin.servers()
        dep = Deployment(system, "all", "pushpin + GRIP origin", proxy.control_port, proxy.port, "", proxy)
        dep.processes, dep.wire = [origin, proxy], PUSHPIN
    else:
        storage = "memory" if system == "nchan-memory" else "redis"
        stores = [await asyncio.to_thread(_own_store)] if storage == "redis" else []
        main = nchan.server(storage, stores[0].url if stores else "")
        dep = Deployment(system, "all", f"nginx + nchan, {storage} storage", main.port, main.port, "", main)
        dep.processes, dep.wire, dep.stores = [main], NCHAN, stores
    dep.ws_auth = dep.wire.ws_auth
    dep.scratch = [p.cwd for p in dep.processes]
    try:
        await asyncio.to_thread(_start_all, dep.processes)
        if dep.wire is NCHAN:
            await asyncio.to_thread(nchan.wait_ready, dep.under_test.port)
        else:
            await pushpin.wait_ready(dep.under_test.port)
    except BaseException:
        dep.stop()
        raise
    return dep


def _own_store() -> ValkeyServer:
    """A private Redis for one peer: the binary and settings the suite's own Valkey has (AOF on,
    ``appendfsync everysec``, loopback, a fresh data directory), placed like it (not pinned)."""
    from tests.support.valkey import ValkeyServer

    store = ValkeyServer().start()
    if store.proc is not None:
        machine.renice(store.proc.pid)
    return store
