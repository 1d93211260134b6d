"""A deployment of one system for one scenario: which processes run where, the token, and where
to publish and subscribe.  The reference is always its one process; ours is the service under
test on the server core (ingest for publish scenarios, gateway for delivery scenarios, or the
all-in-one process), with auth and ingest as helpers on the load generator's core."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import redis

from bench import ours, reference
from bench.httpclient import login
from bench.procs import Server
from bench.wire import RELAY, Wire

SYSTEMS = ("ours", "reference")


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

    @property
    def label(self) -> str:
        if self.system == "reference":
            return "reference"
        return f"ours ({self.role}, {self.server})"

    def stop(self) -> None:
        for proc in reversed(self.processes):
            proc.stop()


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
    system: str, role: str, valkey_url: str, *, server: str = "uvicorn", max_clients: int = 25_000
) -> Deployment:
    """Start ``system`` for ``role`` ("ingest", "gateway" or "all") on a flushed Valkey and log in."""
    flush(valkey_url)
    if system == "reference":
        ref = reference.server(valkey_url, max_clients)
        await asyncio.to_thread(_start_all, [ref])
        dep = Deployment(system, "all", "uvicorn", ref.port, ref.port, "", ref, [ref])
        dep.credentials, dep.auth_port = reference.ADMIN, ref.port
    else:
        procs: list[Server] = []
        if role == "all":
            main = ours.service("all", valkey_url, server=server)
            procs = [main]
            auth_port = publish_port = main.port
        else:
            auth = ours.helper("auth", valkey_url)
            main = ours.service(role, valkey_url, server=server)
            procs = [auth, main]
            auth_port, publish_port = auth.port, main.port
            if role == "gateway":
                ingest = ours.helper("ingest", valkey_url)
                procs.append(ingest)
                publish_port = ingest.port
        await asyncio.to_thread(_start_all, procs)
        dep = Deployment(system, role, server, publish_port, main.port, "", main, procs)
        dep.credentials, dep.auth_port = ours.ADMIN, auth_port
    try:
        dep.token = await login(dep.host, dep.auth_port, *dep.credentials)
    except BaseException:
        dep.stop()
        raise
    return dep
