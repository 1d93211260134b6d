"""HAProxy for the native split stack: ``deploy/haproxy.cfg`` (the file compose mounts) run with
environment variables that switch it to static addresses, and its runtime socket to point each
gateway slot at a gateway process and to read per-server state."""

from __future__ import annotations

import csv
import io
import resource
import shutil
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pulsar_relay.procs import Child

CONFIG_NAME = "haproxy.cfg"


class HAProxyError(RuntimeError):
    """HAProxy is missing, or its runtime socket refused a command."""


def find_config(explicit: Path | None = None) -> Path:
    """``explicit``, else the config shipped in the wheel, else the source checkout's ``deploy/``."""
    here = Path(__file__).resolve().parent
    candidates = (
        [explicit] if explicit else [here / "deploy" / CONFIG_NAME, here.parent / "deploy" / CONFIG_NAME]
    )
    for path in candidates:
        if path is not None and path.is_file():
            return path
    raise HAProxyError(
        f"cannot find {CONFIG_NAME} (looked in {', '.join(str(c) for c in candidates)}); "
        "run from a source checkout or pass --haproxy-config"
    )


def binary() -> str:
    found = shutil.which("haproxy") or next((p for p in ("/usr/sbin/haproxy",) if Path(p).exists()), None)
    if found is None:
        raise HAProxyError("haproxy is not installed (Debian/Ubuntu: apt-get install haproxy)")
    return found


def _maxconn() -> int:
    # Non-root HAProxy cannot raise its file limit; stay within it (two fds per proxied connection).
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = hard if hard != resource.RLIM_INFINITY else 65536
    return max(256, min(20000, (limit - 200) // 2))


@dataclass(frozen=True)
class Addresses:
    bind: str
    monitor: str
    auth: str
    ingest: str
    gateways: Sequence[str]
    runtime_socket: Path


def static_env(addresses: Addresses) -> dict[str, str]:
    """The variables that turn deploy/haproxy.cfg into its native form (see the file's header)."""
    return {
        "RELAY_STATIC": "1",
        "RELAY_ROUTE_HEADER": "1",
        "RELAY_BIND": addresses.bind,
        "RELAY_MONITOR_BIND": addresses.monitor,
        "RELAY_RUNTIME_SOCKET": str(addresses.runtime_socket),
        "RELAY_MAXCONN": str(_maxconn()),
        "AUTH_SERVER": addresses.auth,
        "AUTH_SLOTS": "1",
        "INGEST_SERVER": addresses.ingest,
        "INGEST_SLOTS": "1",
        "GATEWAY_SERVER": addresses.gateways[0],
        "GATEWAY_SLOTS": str(len(addresses.gateways)),
    }


def child(config: Path, env: dict[str, str], log: Path | None) -> Child:
    # -db: stay in the foreground, so stopping the child stops HAProxy.
    return Child("haproxy", [binary(), "-db", "-f", str(config)], env=env, log=log)


class Runtime:
    """HAProxy's runtime API over its admin socket (one command per connection)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def command(self, line: str) -> str:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(str(self.path))
            s.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def set_server(self, backend: str, server: str, address: str) -> None:
        host, _, port = address.rpartition(":")
        answer = self.command(f"set server {backend}/{server} addr {host} port {port}")
        if "changed" not in answer and "no need to change" not in answer:
            raise HAProxyError(f"set server {backend}/{server}: {answer.strip()}")

    def stats(self) -> list[dict[str, str]]:
        """``show stat`` rows: pxname, svname, status, scur (open sessions), stot (total), ..."""
        text = self.command("show stat").lstrip("# ")
        return [row for row in csv.DictReader(io.StringIO(text)) if row.get("pxname")]

    def servers(self, backend: str) -> dict[str, dict[str, str]]:
        return {
            row["svname"]: row
            for row in self.stats()
            if row["pxname"] == backend and row["svname"] not in ("FRONTEND", "BACKEND")
        }

    def all_up(self, backends: Sequence[str]) -> bool:
        try:
            return all(
                servers and all(row["status"] == "UP" for row in servers.values())
                for servers in (self.servers(b) for b in backends)
            )
        except OSError:
            return False
