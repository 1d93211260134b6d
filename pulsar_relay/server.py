"""Serve an ASGI app with hypercorn (uvloop when installed), stopping cleanly on SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import Any

from hypercorn.asyncio import serve
from hypercorn.config import Config

from relaycore.config import Settings

log = logging.getLogger("pulsar_relay")


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


def drain_hooks(app: Any) -> list[Callable[[], Awaitable[None]]]:
    """The ``state.drain`` hooks of the app, or of each app the all-in-one dispatcher mounts."""
    apps = getattr(app, "apps", None)
    targets = list(apps.values()) if isinstance(apps, dict) else [app]
    return [hook for a in targets if (hook := getattr(getattr(a, "state", None), "drain", None))]


async def _serve(app: Any, config: Config) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    hooks = drain_hooks(app)
    draining: list[asyncio.Task[None]] = []

    async def drain_then_stop() -> None:
        # Long-lived connections (WebSockets) are told to go first; hypercorn's graceful period
        # would otherwise hold them for graceful_timeout before the app hears of the shutdown.
        with contextlib.suppress(Exception):
            await asyncio.gather(*(hook() for hook in hooks))
        stop.set()

    def on_signal() -> None:
        if not draining:
            draining.append(loop.create_task(drain_then_stop()))
        else:
            stop.set()  # a second signal: stop now

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    await serve(app, config, shutdown_trigger=stop.wait)


# The relay allocates many short-lived objects per message (frames, dicts, tasks) and almost no
# reference cycles, so CPython's default gen-0 threshold (700 allocations) runs the cyclic collector
# thousands of times a second under load; its pauses were most of the fan-out p99 tail
# (docs/BENCHMARKS.md, "Reading the results"). Collect rarely, and never scan start-up objects.
GC_THRESHOLDS = (700_000, 1_000, 1_000)


def tune_gc() -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def run(app: Any, settings: Settings, host: str, port: int) -> None:
    config = hypercorn_config(settings, host, port)
    log.info("listening on http://%s:%d", host, port)
    tune_gc()
    try:
        import uvloop

        uvloop.run(_serve(app, config))
    except ImportError:
        asyncio.run(_serve(app, config))
