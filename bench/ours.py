"""Our relay as the benchmark runs it: the service under test alone on the server core, behind
the server being measured (uvicorn through ``pulsar-relay serve --server``, which is the production
path, or granian on the same app through bench/appfactory.py: ``serve`` does not
offer it), and its helpers (auth for the login, ingest to publish when the gateway is under test)
on the load generator's core, where they cost it little."""

from __future__ import annotations

import socket
import sys

from bench.machine import ALL_CORES, LOADGEN_CORE, SERVER_CORE
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


def argv(service: str, server: str, port: int, workers: int | None = None) -> list[str]:
    """The command line serving ``service`` ("all", "auth", "ingest", "gateway") with ``server``
    (and ``--workers`` when given)."""
    host = ["--host", "127.0.0.1", "--port", str(port)]
    if server == "uvicorn":
        pool = ["--workers", str(workers)] if workers else []
        return [sys.executable, "-m", "pulsar_relay", "serve", service, *host, "--server", server, *pool]
    if workers:
        raise ValueError("--workers is measured with uvicorn (pulsar-relay serve) only")
    target = f"bench.appfactory:{_FACTORY[service]}"
    if server == "granian":
        return [
            sys.executable, "-m", "granian", "--interface", "asgi", "--factory", target, *host,
            "--workers", "1", "--runtime-threads", "1", "--loop", "uvloop", "--no-access-log",
            "--log-level", "warning", "--backlog", "4096", "--backpressure", "65536",
        ]  # fmt: skip
    raise ValueError(f"unknown server {server!r}; choose from {SERVERS}")


def service(
    name: str,
    valkey_url: str,
    *,
    server: str = "uvicorn",
    core: int = SERVER_CORE,
    workers: int | None = None,
) -> Server:
    """``name`` on a free port.  With ``workers`` (``suite --workers``), ``serve --workers`` on every
    core, the load generator's included, so that 1 and N workers are measured placed alike; each
    worker's metrics on a port of its own."""
    port = free_port()
    env = environment(valkey_url)
    if workers:
        env["PULSAR_METRICS_PORT"] = str(free_run(workers))
        core = ALL_CORES
    label = f"ours-{name}-{server}" + (f"-w{workers}" if workers else "")
    return Server(label, argv(name, server, port, workers), env, port, core=core)


def free_run(count: int) -> int:
    """The first of ``count`` consecutive ports that are free now."""
    while True:
        first = free_port()
        if first + count <= 65536 and all(_free(p) for p in range(first + 1, first + count)):
            return first


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def helper(name: str, valkey_url: str) -> Server:
    """A supporting service (not under test): the default server, on the load generator's core."""
    return service(name, valkey_url, core=LOADGEN_CORE)
