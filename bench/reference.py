"""The reference implementation (``pulsar-relay`` from PyPI) in its own virtualenv, started as
its README says (``uvicorn pulsar_relay.main:app``), one worker, Valkey backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

from bench.procs import REPO, Server, free_port

VENV = REPO / ".bench-venv" / "reference"
PACKAGE = "pulsar-relay"
MODULE = "pulsar_relay.main:app"
ADMIN = ("admin", "bench-admin-password")
SECRET = "bench-secret-0123456789abcdef0123456789abcdef"


def python() -> Path:
    return VENV / "bin" / "python"


def ensure_installed(upgrade: bool = False) -> str:
    """Create the virtualenv and install the latest ``pulsar-relay``; returns its version."""
    if not python().exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    if upgrade or not _version():
        subprocess.run(
            [str(python()), "-m", "pip", "install", "-q", "--upgrade", "pip", PACKAGE],
            check=True,
        )
    version = _version()
    if not version:
        raise RuntimeError(f"{PACKAGE} did not install into {VENV}")
    return version


def _version() -> str:
    if not python().exists():
        return ""
    out = subprocess.run(
        [str(python()), "-c", "import importlib.metadata as m; print(m.version('pulsar-relay'))"],
        capture_output=True,
        text=True,
    )
    return out.stdout.strip() if out.returncode == 0 else ""


def environment(valkey_url: str, max_clients: int) -> dict[str, str]:
    """The settings its config module reads (``PULSAR_`` prefix) plus slowapi's switch."""
    url = urlparse(valkey_url)
    # Never our PYTHONPATH: our composition root is also called ``pulsar_relay``.
    inherited = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("PULSAR_")}
    return inherited | {
        "PULSAR_STORAGE_BACKEND": "valkey",
        "PULSAR_VALKEY_HOST": url.hostname or "127.0.0.1",
        "PULSAR_VALKEY_PORT": str(url.port or 6379),
        "PULSAR_ALLOW_INSECURE_DEFAULTS": "1",
        "PULSAR_TRUSTED_HOSTS": json.dumps(["localhost", "127.0.0.1"]),
        "PULSAR_WS_MAX_PER_USER": str(max_clients + 1000),
        # Its default closes a socket silent for 60 s; the idle-connection scenario holds them longer.
        "PULSAR_WS_IDLE_SECONDS": "3600",
        "PULSAR_ACCESS_TOKEN_EXPIRE_MINUTES": "120",
        "PULSAR_JWT_SECRET_KEY": SECRET,
        "PULSAR_BOOTSTRAP_ADMIN_USERNAME": ADMIN[0],
        "PULSAR_BOOTSTRAP_ADMIN_PASSWORD": ADMIN[1],
        "PULSAR_BOOTSTRAP_ADMIN_EMAIL": "admin@example.org",
        "PULSAR_LOG_LEVEL": "WARNING",
        "RATELIMIT_ENABLED": "false",
    }


def server(valkey_url: str, max_clients: int) -> Server:
    port = free_port()
    argv = [
        str(python()),
        "-m",
        "uvicorn",
        MODULE,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--log-level",
        "warning",
        "--no-access-log",
        "--backlog",
        "4096",
    ]
    return Server("reference", argv, environment(valkey_url, max_clients), port)
