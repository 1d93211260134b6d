"""Serve an ASGI app with hypercorn (uvloop when installed), stopping cleanly on SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

from hypercorn.asyncio import serve
from hypercorn.config import Config

from relaycore.config import Settings

log = logging.getLogger("pulsar_relay")


def hypercorn_config(settings: Settings, host: str, port: int) -> Config:
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = "-"
    config.keep_alive_timeout = 75.0
    config.read_timeout = int(settings.read_timeout)
    config.graceful_timeout = 5.0
    config.websocket_max_message_size = settings.ws_max_message_bytes
    config.h11_max_incomplete_size = 64 * 1024
    return config


async def _serve(app: Any, config: Config) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await serve(app, config, shutdown_trigger=stop.wait)


def run(app: Any, settings: Settings, host: str, port: int) -> None:
    config = hypercorn_config(settings, host, port)
    log.info("listening on http://%s:%d", host, port)
    try:
        import uvloop

        uvloop.run(_serve(app, config))
    except ImportError:
        asyncio.run(_serve(app, config))
