"""Processes for the fault tests: a private Valkey the test may kill, relay services as child
processes (``pulsar-relay serve``) with one shared environment, users and tokens written straight
into Valkey, and the Valkey connections a given child process holds (so a test can cut them)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from relaycore.models import Permission, User
from relaycore.store.valkey_backend import ValkeyBackend
from tests.conftest import TEST_SECRET, make_settings
from tests.support.identity import make_user
from tests.support.serve import RelayProcess

ROOT = Path(__file__).resolve().parents[2]
PARTITIONS = 4
ADMIN = ("admin", "admin-password-1")


def relay_env(valkey_url: str, **extra: str) -> dict[str, str]:
    """Settings for a relay child (RelayProcess / child_env add the source tree): fast heartbeats
    and tailing, cheap password hashing, a bootstrap admin, and ``extra`` on top."""
    return {
        "PULSAR_JWT_SECRET_KEY": TEST_SECRET,
        "PULSAR_STORAGE_BACKEND": "valkey",
        "PULSAR_VALKEY_URL": valkey_url,
        "PULSAR_FANOUT_PARTITIONS": str(PARTITIONS),
        "PULSAR_GATEWAY_HEARTBEAT_INTERVAL": "0.2",
        "PULSAR_TAIL_BLOCK": "0.2",
        "PULSAR_LOG_LEVEL": "WARNING",
        "PULSAR_PASSWORD_HASH_TIME_COST": "1",
        "PULSAR_PASSWORD_HASH_MEMORY_KIB": "64",
        "PULSAR_BOOTSTRAP_ADMIN_USERNAME": ADMIN[0],
        "PULSAR_BOOTSTRAP_ADMIN_PASSWORD": ADMIN[1],
        **extra,
    }


class Services:
    """Relay child processes started by one test; every one is stopped at the end."""

    def __init__(self, valkey_url: str, **extra: str) -> None:
        self.valkey_url = valkey_url
        self.extra = extra
        self.procs: list[RelayProcess] = []

    def env(self, **extra: str) -> dict[str, str]:
        return relay_env(self.valkey_url, **self.extra, **extra)

    async def start(self, service: str, *, port: int | None = None, **extra: str) -> RelayProcess:
        for attempt in range(3):
            proc = RelayProcess(service, self.env(**extra), port=port)
            self.procs.append(proc)
            try:
                await asyncio.to_thread(proc.start)
                return proc
            except RuntimeError as exc:
                # Another test process on this machine took the free port first: pick another.
                if port is not None or "Address already in use" not in str(exc) or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def restart(self, proc: RelayProcess) -> RelayProcess:
        """The same service, environment and port again (after a kill)."""
        again = RelayProcess(proc.service, proc.env, port=proc.port)
        self.procs.append(again)
        await asyncio.to_thread(again.start)
        return again

    def logs(self) -> str:
        return "\n".join(f"--- {p.service}:{p.port}\n{p.output()}" for p in self.procs)

    def stop(self) -> None:
        stop_quickly(self.procs)


def stop_quickly(procs: Sequence[RelayProcess]) -> None:
    """SIGTERM all, SIGKILL what is still up a second later (a graceful drain is not what these
    tests are about), then let RelayProcess clean up its log file."""
    running = [p.proc for p in procs if p.proc is not None and p.proc.poll() is None]
    for child in running:
        child.terminate()
    for child in running:
        try:
            child.wait(1)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(10)
    for proc in procs:
        proc.stop()


@contextlib.contextmanager
def services(valkey_url: str, **extra: str) -> Iterator[Services]:
    s = Services(valkey_url, **extra)
    try:
        yield s
    finally:
        s.stop()


async def identity(
    valkey_url: str, name: str, permissions: Sequence[Permission] = ("read", "write")
) -> tuple[User, str]:
    """A user stored directly in Valkey and a valid token for it."""
    backend = ValkeyBackend(make_settings(valkey_url, fanout_partitions=PARTITIONS))
    try:
        return await make_user(backend, name, permissions)
    finally:
        await backend.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def valkey_client_ports(pid: int, valkey_port: int) -> list[int]:
    """Local ports of the TCP connections process ``pid`` holds to ``127.0.0.1:valkey_port``
    (sockets found through /proc/<pid>/fd, matched by inode in /proc/net/tcp)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    ports = []
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            cols = line.split()
            local, remote, state, inode = cols[1], cols[2], cols[3], cols[9]
            if inode in inodes and state == "01" and int(remote.split(":")[1], 16) == valkey_port:
                ports.append(int(local.split(":")[1], 16))
    return ports


def metric_values(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Prometheus exposition text → {(sample name, sorted labels): value}."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def metric_sum(text: str, name: str, **labels: str) -> float:
    """The sum of every sample called ``name`` whose labels include ``labels``."""
    total = 0.0
    for (sample, have), value in metric_values(text).items():
        if sample == name and all((k, v) in have for k, v in labels.items()):
            total += value
    return total


async def scrape(url: str) -> str:
    async with httpx.AsyncClient(timeout=10) as c:
        r = await c.get(url + "/metrics")
        r.raise_for_status()
        return r.text


def full_log(proc: RelayProcess) -> str:
    """Everything the process wrote so far (``RelayProcess.output`` keeps only the tail)."""
    assert proc.log_path is not None
    return Path(proc.log_path).read_text(errors="replace")
