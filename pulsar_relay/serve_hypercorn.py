"""Hypercorn behind ``pulsar-relay serve``: a configuration that enforces the relay's settings
(head and read timeouts, WebSocket pings and frame size), stopped by the shared signal drain."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config

from pulsar_relay.server import stop_on_signals
from relaycore.config import Settings


def hypercorn_config(settings: Settings, host: str, port: int) -> Config:
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None
    # Through the root logger, so hypercorn's lines follow PULSAR_LOG_JSON like ours.
    config.errorlog = logging.getLogger("hypercorn.error")
    # Hypercorn's idle timer runs from accept until a request head is complete: tying it to
    # read_timeout cuts off clients that dribble a head byte by byte, not only silent ones.
    config.keep_alive_timeout = settings.read_timeout
    config.read_timeout = settings.read_timeout  # type: ignore[assignment]  # a float works
    # Protocol pings make browsers answer with pongs, so a WebSocket that only listens is not
    # cut off by read_timeout.
    config.websocket_ping_interval = settings.ws_ping_interval or None
    # Hypercorn closes a keep-alive connection after 1,000 requests by default; producers
    # publishing steadily then reconnect for nothing.  A deep backlog keeps SYNs from being dropped
    # when hundreds of clients (re)connect at once, e.g. after a gateway restart.
    config.keep_alive_max_requests = 1_000_000
    config.backlog = 4096
    config.graceful_timeout = 5.0
    config.websocket_max_message_size = settings.ws_max_message_bytes
    config.h11_max_incomplete_size = 64 * 1024
    return config


async def serve(app: Any, settings: Settings, host: str, port: int) -> None:
    stop = asyncio.Event()
    stop_on_signals(app, stop.set, stop.set)
    await hypercorn_serve(app, hypercorn_config(settings, host, port), shutdown_trigger=stop.wait)
