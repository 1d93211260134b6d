"""Our relay as the benchmark runs it: the service under test alone on the server core, behind
the server being measured (uvicorn through ``pulsar-relay serve --server``, which is the production
path, or granian on the same app through bench/appfactory.py: ``serve`` does not
offer it), and its helpers (auth for the login, ingest to publish when the gateway is under test)
on the load generator's core, where they cost it little."""

from __future__ import annotations

import sys

from bench.machine import LOADGEN_CORE, SERVER_CORE
from bench.procs import Server, free_port, repo_env

SERVERS = ("uvicorn", "granian")
ADMIN = ("bench-admin", "bench-admin-password")
SECRET = "bench-secret-0123456789abcdef0123456789abcdef"
_FACTORY = {"all": "allinone", "auth": "auth", "ingest": "ingest", "gateway": "gateway"}


def environment(valkey_url: str) -> dict[str, str]:
    return repo_env(
        {
            "PULSAR_STORAGE_BACKEND": "valkey",
            "PULSAR_VALKEY_URL": valkey_url,
            "PULSAR_JWT_SECRET_KEY": SECRET,
            "PULSAR_BOOTSTRAP_ADMIN_USERNAME": ADMIN[0],
            "PULSAR_BOOTSTRAP_ADMIN_PASSWORD": ADMIN[1],
            "PULSAR_LOG_LEVEL": "WARNING",
            "PULSAR_GATEWAY_ID": "bench-gateway",
            # The reference runs with its rate limits off; scenario 6 logs in 25 users at once.
            "PULSAR_LOGIN_RATE_LIMIT_ATTEMPTS": "100000",
        }
    )


def argv(service: str, server: str, port: int) -> list[str]:
    """The command line serving ``service`` ("all", "auth", "ingest", "gateway") with ``server``."""
    host = ["--host", "127.0.0.1", "--port", str(port)]
    if server == "uvicorn":
        return [sys.executable, "-m", "pulsar_relay", "serve", service, *host, "--server", server]
    target = f"bench.appfactory:{_FACTORY[service]}"
    if server == "granian":
        return [
            sys.executable, "-m", "granian", "--interface", "asgi", "--factory", target, *host,
            "--workers", "1", "--runtime-threads", "1", "--loop", "uvloop", "--no-access-log",
            "--log-level", "warning", "--backlog", "4096", "--backpressure", "65536",
        ]  # fmt: skip
    raise ValueError(f"unknown server {server!r}; choose from {SERVERS}")


def service(name: str, valkey_url: str, *, server: str = "uvicorn", core: int = SERVER_CORE) -> Server:
    port = free_port()
    return Server(f"ours-{name}-{server}", argv(name, server, port), environment(valkey_url), port, core=core)


def helper(name: str, valkey_url: str) -> Server:
    """A supporting service (not under test): the default server, on the load generator's core."""
    return service(name, valkey_url, core=LOADGEN_CORE)
