"""Serve an ASGI app on uvicorn (on uvloop when installed): the cyclic-GC tuning and the SIGINT/SIGTERM
drain.  Hypercorn was offered too until it was dropped for a measured leak (ARCHITECTURE.md, "The
HTTP server"); ``--server``/``server`` still name the one server, so that a choice is explicit."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import socket
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Literal

from relaycore.config import Settings

log = logging.getLogger("pulsar_relay")

ServerName = Literal["uvicorn"]
SERVERS: tuple[ServerName, ...] = ("uvicorn",)
# The server each service runs when neither `serve --server` nor the `server` setting names one:
# the one that measured best for it (docs/BENCHMARKS.md, "Server choice").  Uvicorn (httptools)
# answers single publishes with a lower p50 and ~1.9x the requests/s of hypercorn; with the
# websockets sans-I/O implementation it fans out about twice the deliveries/s per core.  Auth's
# cost is argon2, not the server: it follows the others so one server runs everywhere by default.
DEFAULT_SERVER: dict[str, ServerName] = {
    "all": "uvicorn",
    "auth": "uvicorn",
    "ingest": "uvicorn",
    "gateway": "uvicorn",
}


@dataclass(frozen=True)
class Worker:
    """What a worker process serves with: its number, the listening sockets its parent bound, and
    what to call once it accepts connections (it tells the parent it started)."""

    index: int
    sockets: list[socket.socket]
    ready: Callable[[], None]


def choose_server(service: str, flag: str | None, settings: Settings) -> ServerName:
    """``--server`` wins, then the ``server`` setting, then the service's default."""
    if flag is not None:
        if flag not in SERVERS:
            raise ValueError(f"unknown server {flag!r}; choose from {', '.join(SERVERS)}")
        return flag
    return settings.server or DEFAULT_SERVER[service]


def drain_hooks(app: Any) -> list[Callable[[], Awaitable[None]]]:
    """The ``state.drain`` hooks of the app, or of each app the all-in-one dispatcher mounts."""
    apps = getattr(app, "apps", None)
    targets = list(apps.values()) if isinstance(apps, dict) else [app]
    return [hook for a in targets if (hook := getattr(getattr(a, "state", None), "drain", None))]


def stop_on_signals(
    app: Any, stop: Callable[[], None], stop_now: Callable[[], None], *, same_stop_within: float = 0.0
) -> None:
    """On the first SIGINT/SIGTERM run the app's drain hooks, then ``stop()``; on a second,
    ``stop_now()``.  A signal within ``same_stop_within`` seconds of the first is the same request
    arriving twice (a worker hears its parent and the terminal or service manager) and is ignored.
    Call from inside the running loop."""
    loop = asyncio.get_running_loop()
    hooks = drain_hooks(app)
    draining: list[asyncio.Task[None]] = []
    first: list[float] = []

    async def drain_then_stop() -> None:
        # Long-lived connections (WebSockets) are told to go first (1001); the server's graceful
        # period would otherwise hold them until it expires before the app hears of the shutdown.
        with contextlib.suppress(Exception):
            await asyncio.gather(*(hook() for hook in hooks))
        stop()

    def on_signal() -> None:
        if not draining:
            first.append(loop.time())
            draining.append(loop.create_task(drain_then_stop()))
        elif loop.time() - first[0] >= same_stop_within:
            stop_now()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)


# The relay allocates many short-lived objects per message (frames, dicts, tasks) and few reference
# cycles, so CPython's default gen-0 threshold (700 allocations) runs the cyclic collector
# thousands of times a second under load; its pauses were most of the fan-out p99 tail
# (docs/BENCHMARKS.md, "Reading the results").  Collect less often, and never scan start-up
# objects.  Not too rarely either: each WebSocket handshake leaves a cycle behind (the server's
# HTTP protocol object it upgraded from); at 700,000 that garbage outlived thousands of
# handshakes and cost ~5 KiB per held socket, at 50,000 it does not (and a gen-0 pass stays short).
GC_THRESHOLDS = (50_000, 1_000, 1_000)


def tune_gc() -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _main(
    app: Any, settings: Settings, host: str, port: int, server: ServerName, worker: Worker | None
) -> Coroutine[Any, Any, None]:
    from pulsar_relay.serve_uvicorn import serve as serve_uvicorn

    return serve_uvicorn(app, settings, host, port, worker=worker)


def run(
    app: Any,
    settings: Settings,
    host: str,
    port: int,
    *,
    service: str = "all",
    server: str | None = None,
    worker: Worker | None = None,
) -> None:
    """Serve ``app`` (the ``service``) until a signal stops it: on ``host``:``port``, or, as one
    of several workers, on the sockets its parent bound (``pulsar_relay.workers``)."""
    chosen = choose_server(service, server, settings)
    where = f" as worker {worker.index} of {settings.workers}" if worker is not None else ""
    log.info("serving %s with %s on http://%s:%d%s", service, chosen, host, port, where)
    tune_gc()
    try:
        import uvloop
    except ImportError:
        asyncio.run(_main(app, settings, host, port, chosen, worker))
    else:
        uvloop.run(_main(app, settings, host, port, chosen, worker))
