"""``pulsar-relay``: serve a service (or all of them), and manage users by hand.

pulsar-relay serve all|auth|ingest|gateway [--host H] [--port P] [--config FILE] [--server S] [--workers N]
pulsar-relay dev [--host H] [--port P]          (make run: everything, storage and an admin included)
pulsar-relay stack [--gateways N] [--port P]    (make stack: Valkey, auth, ingest, N gateways, HAProxy)
pulsar-relay users create --username U --password P [--email E] [--permission admin ...]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from relaycore import config as relay_config
from relaycore.logs import setup_logging


def _app_factory(service: str) -> Any:
    if service == "all":
        from pulsar_relay.allinone import create_app

        return create_app
    if service == "auth":
        from auth.app import create_app as auth_app

        return auth_app
    if service == "ingest":
        from ingest.app import create_app as ingest_app

        return ingest_app
    from gateway.app import create_app as gateway_app

    return gateway_app


def _load(args: argparse.Namespace) -> relay_config.Settings:
    try:
        return relay_config.load(config_file=args.config)
    except relay_config.ConfigError as exc:
        print(f"pulsar-relay: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _load(args)
    if settings.storage_backend == "memory" and args.service != "all":
        # Each process would hold its own users, tokens and messages: auth's logins unknown to the
        # gateway (every token 401 "User not found"), ingest's messages never delivered.
        print(
            f"pulsar-relay: configuration error: `serve {args.service}` shares its data with the "
            "other services through Valkey; storage_backend=memory serves only with `serve all`",
            file=sys.stderr,
        )
        return 2
    host, port = args.host or settings.host, args.port or settings.port
    if args.workers is not None:
        settings = msgspec.structs.replace(settings, workers=args.workers)
    try:
        relay_config.check_workers(settings, port)
    except relay_config.ConfigError as exc:
        print(f"pulsar-relay: configuration error: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings)
    from pulsar_relay.server import Worker, run

    factory = _app_factory(args.service)
    if settings.workers == 1:
        run(factory(settings), settings, host, port, service=args.service, server=args.server)
        return 0
    from pulsar_relay.workers import supervise, worker_settings

    def serve_worker(index: int, sockets: list[socket.socket], ready: Callable[[], None]) -> None:
        mine = worker_settings(settings, index)
        worker = Worker(index, sockets, ready)
        run(factory(mine), mine, host, port, service=args.service, server=args.server, worker=worker)

    return supervise(settings.workers, host, port, serve_worker)


def cmd_dev(args: argparse.Namespace) -> int:
    from pulsar_relay import dev
    from pulsar_relay.devdata import DataDirBusy
    from pulsar_relay.procs import StartError

    try:
        return dev.run(host=args.host, port=args.port, data_dir=Path(args.data_dir), config_file=args.config)
    except (relay_config.ConfigError, DataDirBusy, StartError) as exc:
        print(f"pulsar-relay dev: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def cmd_stack(args: argparse.Namespace) -> int:
    from pulsar_relay import stack
    from pulsar_relay.devdata import DataDirBusy
    from pulsar_relay.haproxy import HAProxyError
    from pulsar_relay.procs import StartError

    try:
        return stack.run(
            gateways=args.gateways,
            host=args.host,
            port=args.port,
            data_dir=Path(args.data_dir),
            haproxy_config=Path(args.haproxy_config) if args.haproxy_config else None,
            config_file=args.config,
        )
    except (relay_config.ConfigError, DataDirBusy, StartError, HAProxyError) as exc:
        print(f"pulsar-relay stack: {exc}", file=sys.stderr)
        return 2


def cmd_users_create(args: argparse.Namespace) -> int:
    settings = _load(args)
    setup_logging(settings)
    from auth.passwords import Passwords
    from auth.users import ensure_user
    from relaycore.store import open_backend

    async def go() -> str:
        backend = open_backend(settings)
        try:
            user, created = await ensure_user(
                backend,
                username=args.username,
                password=args.password,
                email=args.email,
                permissions=args.permission or ["read"],
                passwords=Passwords.from_settings(settings),
            )
            return f"{'created' if created else 'updated'} user {user.username} ({user.user_id})"
        finally:
            await backend.close()

    print(asyncio.run(go()))
    return 0


def _at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pulsar-relay", description=__doc__.split("\n")[0])
    p.add_argument(
        "--config", help="YAML or TOML settings file (default: $PULSAR_CONFIG_FILE, ./config.yaml)"
    )
    sub = p.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run a service")
    serve.add_argument("service", choices=["all", "auth", "ingest", "gateway"])
    serve.add_argument("--host", default=None, help="bind address (default: settings host, 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (default: settings port, 8080)")
    serve.add_argument(
        "--server",
        choices=["uvicorn"],
        default=None,
        help="HTTP server (uvicorn, for every service: the one server since hypercorn was dropped)",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes serving the port (default: settings workers, 1; more need Valkey storage and"
        " PULSAR_METRICS_PORT: worker i's metrics are on that port + i)",
    )
    serve.set_defaults(func=cmd_serve)

    dev = sub.add_parser("dev", help="development: all services in one process, with storage and an admin")
    dev.add_argument("--host", default="127.0.0.1", help="bind address (default: 127.0.0.1)")
    dev.add_argument("--port", type=int, default=8080, help="port (default: 8080)")
    dev.add_argument(
        "--data-dir", default=".relay-data", help="Valkey data and secrets (default: .relay-data)"
    )
    dev.set_defaults(func=cmd_dev)

    stack = sub.add_parser("stack", help="the split stack: Valkey, auth, ingest, N gateways behind HAProxy")
    stack.add_argument("--gateways", type=_at_least_one, default=2, help="gateway processes (default: 2)")
    stack.add_argument("--host", default="127.0.0.1", help="HAProxy bind address (default: 127.0.0.1)")
    stack.add_argument("--port", type=int, default=8080, help="HAProxy port (default: 8080)")
    stack.add_argument(
        "--data-dir", default=".relay-data", help="Valkey data and secrets (default: .relay-data)"
    )
    stack.add_argument("--haproxy-config", default=None, help="default: deploy/haproxy.cfg")
    stack.set_defaults(func=cmd_stack)

    users = sub.add_parser("users", help="manage users").add_subparsers(dest="users_command", required=True)
    create = users.add_parser("create", help="create a user, or update one that exists")
    create.add_argument("--username", required=True)
    create.add_argument("--password", required=True)
    create.add_argument("--email", default=None)
    create.add_argument(
        "--permission",
        action="append",
        choices=["admin", "read", "write"],
        help="repeat for several (default: read)",
    )
    create.set_defaults(func=cmd_users_create)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.captureWarnings(True)
    result: int = args.func(args)
    return result
