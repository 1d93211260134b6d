"""``pulsar-relay dev`` (``make run``): the whole relay in this process on one origin, with storage,
a JWT secret and an admin login that work on a fresh machine without any setup.

Storage: ``PULSAR_VALKEY_URL`` (or any explicit Valkey setting) when given; otherwise a local
``valkey-server``/``redis-server`` with AOF and data under ``.relay-data/valkey``; only when neither
binary exists, the memory backend, announced loudly.  Secrets and the admin password are generated
once and kept in ``.relay-data`` (0600).  Ctrl-C stops the relay and the Valkey it started.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

import msgspec

from pulsar_relay.devdata import ADMIN_USERNAME, DevData
from pulsar_relay.localvalkey import LocalValkey, server_binary
from pulsar_relay.procs import ProcessGroup, port_is_free
from relaycore import config as relay_config
from relaycore.config import Settings
from relaycore.logs import setup_logging

MEMORY_WARNING = """\
!!! ------------------------------------------------------------------------------------------
!!! No valkey-server or redis-server on PATH: running on the IN-MEMORY backend.
!!! Nothing is saved: users, topics and messages are gone when this process stops.
!!! Install one (apt-get install redis-server, or valkey-server) or set PULSAR_VALKEY_URL.
!!! ------------------------------------------------------------------------------------------
"""


def display_host(host: str) -> str:
    if host in ("", "0.0.0.0", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def login_command(base_url: str, username: str, password: str) -> str:
    """The seed README's login request, ready to paste."""
    return (
        f"curl -X POST {base_url}/auth/login \\\n"
        '  -H "Content-Type: application/x-www-form-urlencoded" \\\n'
        f'  -d "username={username}&password={password}"'
    )


def secrets_env(
    data: DevData, environ: Mapping[str, str], config_file: str | None
) -> tuple[dict[str, str], tuple[str, str] | None]:
    """The environment with a JWT secret and a bootstrap admin filled in from ``data`` where
    neither the environment nor the config file sets one; also the (username, password) of that
    admin when it is ours.  Raises ``ConfigError`` for a config that cannot load at all."""
    # What the user's own settings resolve to before we add anything (the secret check aside).
    probe_env = {**environ, "PULSAR_ALLOW_INSECURE_DEFAULTS": "1"}
    probe = relay_config.load(environ=probe_env, config_file=config_file)
    env = dict(environ)
    if probe.jwt_algorithm == "HS256" and not probe.jwt_secret_key:
        env["PULSAR_JWT_SECRET_KEY"] = data.jwt_secret()
    admin: tuple[str, str] | None = None
    if not probe.bootstrap_admin_username:
        admin = (ADMIN_USERNAME, data.admin_password())
        env["PULSAR_BOOTSTRAP_ADMIN_USERNAME"], env["PULSAR_BOOTSTRAP_ADMIN_PASSWORD"] = admin
    return env, admin


def valkey_is_explicit(settings: Settings, environ: Mapping[str, str]) -> bool:
    default = Settings()
    return bool(
        settings.valkey_url
        or "PULSAR_VALKEY_HOST" in environ
        or "PULSAR_VALKEY_PORT" in environ
        or (settings.valkey_host, settings.valkey_port) != (default.valkey_host, default.valkey_port)
    )


def choose_storage(
    settings: Settings, environ: Mapping[str, str], data: DevData, group: ProcessGroup, err: TextIO
) -> tuple[Settings, str]:
    """Settings pointing at the storage to use (starting a local Valkey if needed), and a note."""
    if settings.storage_backend == "memory":
        return settings, "memory backend (PULSAR_STORAGE_BACKEND=memory): nothing is saved"
    if valkey_is_explicit(settings, environ):
        where = settings.valkey_url or f"{settings.valkey_host}:{settings.valkey_port}"
        return settings, f"Valkey at {where} (from your settings)"
    binary = server_binary()
    if binary is None:
        err.write(MEMORY_WARNING)
        err.flush()
        return msgspec.structs.replace(
            settings, storage_backend="memory"
        ), "IN-MEMORY backend: nothing is saved"
    valkey = LocalValkey.preferring(binary, data.valkey_dir).start(group)
    settings = msgspec.structs.replace(settings, storage_backend="valkey", valkey_url=valkey.url)
    return settings, f"{Path(binary).name} at {valkey.url}, AOF in {data.valkey_dir} (kept between runs)"


def run(
    *,
    host: str,
    port: int,
    data_dir: Path,
    config_file: str | None,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    if not port_is_free(port, host or "0.0.0.0"):
        err.write(f"pulsar-relay dev: port {port} on {host} is in use; pass --port P\n")
        return 2
    data = DevData(data_dir).acquire()
    group = ProcessGroup(err)
    try:
        env, admin = secrets_env(data, os.environ, config_file)
        settings = relay_config.load(environ=env, config_file=config_file)
        settings, storage_note = choose_storage(settings, env, data, group, err)
        settings = msgspec.structs.replace(settings, host=host, port=port)
        setup_logging(settings)
        base = f"http://{display_host(host)}:{port}"
        lines = [
            f"Pulsar Relay (development, all services in one process) on {base}",
            f"  storage: {storage_note}",
        ]
        if admin is not None:
            lines += [
                f"  admin:   username {admin[0]}, password {admin[1]}",
                f"           (kept in {data.root / 'admin-password'})",
                "  log in (seed README):",
                *("    " + line for line in login_command(base, *admin).splitlines()),
            ]
        else:
            lines.append(f"  admin:   {settings.bootstrap_admin_username} (from your settings)")
        lines.append("  Ctrl-C stops everything this command started.")
        out.write("\n".join(lines) + "\n")
        out.flush()

        from pulsar_relay.allinone import create_app
        from pulsar_relay.server import run as serve

        serve(create_app(settings), settings, host, port)
        return 0
    finally:
        group.stop()
        data.release()
