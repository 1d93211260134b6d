"""Uvicorn behind ``pulsar-relay serve`` (httptools HTTP), with protections it lacks by default:
a request head must arrive within ``read_timeout``, WebSocket pings and frame size from the
settings, and stopping through the shared signal drain instead of uvicorn's own handlers.

This module is the one adapter to uvicorn: its protocol classes are subclassed here, which uvicorn
does not promise to keep working.  ``INTERNALS`` names everything touched beyond ``uvicorn.Config``
and ``uvicorn.Server.serve``; ``tests/contract/test_adapters.py`` fails with the name when a
release changes one (for example, if uvicorn stopped calling ``handle_connect``, relay.frames would
silently be off and the gateway would frame every message per connection)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import Protocol, State

from pulsar_relay import ws_carrier
from pulsar_relay.server import Worker, stop_on_signals
from pulsar_relay.ws_carrier import Carrier
from relaycore.config import Settings
from relaycore.wsframes import FRAME_KEY, FRAMES_DETACH, FRAMES_EXTENSION, FRAMES_WRITE, Handler

# uvicorn's WebSocket implementations on `serve all` (memory backend), 2,000 idle subscribers, then
# 200 publishes fanned out to all of them (server RSS growth per socket; server CPU per delivery,
# publishing included):  websockets-sansio 35.2 KiB, 16.9 us;  wsproto 31.7 KiB, 20.5 us;
# websockets (legacy, deprecated by uvicorn) 42.2 KiB, 21.6 us;  hypercorn for reference 33.5 KiB,
# 25.0 us.  Sending is what a relay does most, so sansio's ~18 % cheaper delivery beats wsproto's
# ~3.5 KiB smaller socket.
WS_IMPL = "websockets-sansio"

INTERNALS = {
    "WebSocketsSansIOProtocol.handle_connect(event)": "called on each handshake: offers relay.frames",
    "WebSocketsSansIOProtocol.send(message)": "receives every ASGI send: writes relay.frames",
    "WebSocketsSansIOProtocol.response.status_code": "101 when the handshake was accepted",
    "WebSocketsSansIOProtocol.request/response": "the handshake's, dropped once accepted (memory)",
    "WebSocketsSansIOProtocol.config.ws_per_message_deflate": "frames are ours only without deflate",
    "WebSocketsSansIOProtocol.scope": "the connection's ASGI scope, its extensions",
    "WebSocketsSansIOProtocol.writable": "cleared while paused (no synchronous write then); a Flag (memory)",
    "WebSocketsSansIOProtocol.handshake_complete": "accepted",
    "WebSocketsSansIOProtocol.initial_response": "None unless the app answered with an HTTP response",
    "WebSocketsSansIOProtocol.disconnected": "the transport is lost",
    "WebSocketsSansIOProtocol.close_sent": "a close frame went out",
    "WebSocketsSansIOProtocol.conn.state": "the websockets sans-I/O connection's State",
    "WebSocketsSansIOProtocol.transport": "where relay.frames are written",
    "WebSocketsSansIOProtocol.queue": "replaced by a Mailbox (put_nowait/get/empty; memory)",
    "WebSocketsSansIOProtocol.conn.parser/conn.reader.buffer": "restarted past the handshake (memory)",
    "WebSocketsSansIOProtocol.read_paused": "set with reading paused from the handshake to accept",
    "WebSocketsSansIOProtocol.connections": "the server's open connections: a carrier takes our place",
    "WebSocketsSansIOProtocol.stop_keepalive()": "detached: the carrier's sweep pings instead",
    "WebSocketsSansIOProtocol.frames": "a message half received when detaching (never, in practice)",
    "WebSocketsSansIOProtocol.run_asgi()": "closes self.transport as the app returns: a stand-in, detached",
    "HttpToolsProtocol.connection_made/connection_lost": "arm and stop the head timer",
    "HttpToolsProtocol.on_headers_complete()": "a head arrived: the timer finds nothing due",
    "HttpToolsProtocol.on_response_complete()": "the next head is awaited",
    "HttpToolsProtocol.parser.should_upgrade()": "the connection leaves HTTP (a WebSocket)",
    "HttpToolsProtocol.pipeline": "requests already received (their heads are in)",
    "HttpToolsProtocol.transport/loop/timeout_keep_alive": "the timer's clock, deadline and target",
    "Server.capture_signals()": "replaced: stop_on_signals drains the app first",
    "Server.should_exit/force_exit": "how stop_on_signals stops the server",
    "Server.started": "a worker tells its parent it serves once this is true",
}


class Mailbox:
    """What uvicorn's WebSocket protocol asks of its ``asyncio.Queue`` (``put_nowait``, ``get``,
    ``empty``) for its one reader, the app's ``receive``: a list and, while the app waits, one
    future.  A queue is four deques and an Event, about 3 KiB of every idle socket."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def empty(self) -> bool:
        return not self._items

    def take_all(self) -> list[Any]:
        """Everything queued, taken at once (the connection is handed to a carrier)."""
        items, self._items = self._items, []
        return items

    async def get(self) -> Any:
        while not self._items:
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        return self._items.pop(0)


class Flag:
    """``asyncio.Event``'s ``set``/``clear``/``is_set``/``wait`` without the deque it allocates at
    birth (760 bytes of every socket): waiters are only made while one waits."""

    __slots__ = ("_on", "_waiters")

    def __init__(self, on: bool) -> None:
        self._on = on
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._on

    def set(self) -> None:
        self._on = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._on = False

    async def wait(self) -> None:
        while not self._on:
            waiter = asyncio.get_running_loop().create_future()
            if self._waiters is None:
                self._waiters = []
            self._waiters.append(waiter)
            await waiter


class _Detached:
    """The transport a detached protocol is left with: ``run_asgi`` closes its transport when the
    app returns, and the connection now belongs to a carrier."""

    def close(self) -> None:
        return None

    def is_closing(self) -> bool:
        return True


_DETACHED = _Detached()


class FramedWebSocketProtocol(WebSocketsSansIOProtocol):
    """The sans-I/O WebSocket protocol, offering the ``relay.frames`` extension
    (``relaycore.wsframes``): pre-encoded frames are written as they are, several in one write.
    Framing each message per connection in Python was about a tenth of a fan-out's CPU, and a
    system call per frame most of the rest.  Flow control is kept (a paused transport makes the send
    wait)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Leaner stand-ins for the queue and the event every socket holds (bench/socket_memory.py).
        self.queue = Mailbox()  # type: ignore[assignment]
        self.writable = Flag(self.writable.is_set())  # type: ignore[assignment]

    pipelined = False  # the client sent bytes right behind its handshake, before our answer

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        conn = self.conn
        if self.response.status_code == 101 and not self.transport.is_closing():
            # Nothing is read while the app authenticates: a client may not send before it has
            # our answer (RFC 6455, 4.1), and whatever it sends then is read by the carrier.
            # uvicorn's receive resumes reading once the app takes the connect event (accept).
            self.read_paused = True
            self.transport.pause_reading()
        if conn.reader.buffer:
            self.pipelined = True
        else:
            # websockets' handshake parser keeps the request (its headers) in its generator's frame
            # for the connection's life.  Nothing is buffered, so no frame is half read: a fresh
            # frame parser (the one it runs next) drops it, about 2.5 KiB of every idle socket.
            conn.parser = Protocol.parse(conn)
            next(conn.parser)
        # Frames are only ours to write when no extension (per-message deflate) rewrites them.
        if self.response.status_code == 101 and not self.config.ws_per_message_deflate:
            self.scope["extensions"][FRAMES_EXTENSION] = {
                FRAMES_WRITE: self.write_frames,
                FRAMES_DETACH: self.detach,
            }

    def detach(self, handler: Handler) -> Carrier | None:
        """``relay.frames``' detach: the accepted connection goes on as a ``Carrier``
        (``pulsar_relay.ws_carrier``) and this protocol, its ASGI task and the app's coroutine
        end.  None when the connection is already closing (the app treats it as gone)."""
        if (
            not self.handshake_complete
            or self.initial_response is not None
            or self.disconnected
            or self.close_sent
            or self.conn.state is not State.OPEN
            or self.transport.is_closing()
        ):
            return None
        pending: list[str | bytes] = []
        for event in self.queue.take_all():  # type: ignore[attr-defined]  # our Mailbox
            if event["type"] != "websocket.receive":
                return None  # a disconnect is queued
            text = event.get("text")
            pending.append(text if text is not None else event.get("bytes") or b"")
        rest = bytes(self.conn.reader.buffer)
        if self.frames or (self.pipelined and rest):
            # Part of a frame was parsed before its end came: nowhere to carry it over from.
            self.conn.fail(1002, "frames sent before the handshake was answered")
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.transport.close()
            return None
        self.stop_keepalive()
        self.connections.discard(self)
        transport, self.transport = self.transport, _DETACHED  # type: ignore[assignment]
        config = self.config
        carrier = Carrier(
            transport,
            handler,
            max_size=config.ws_max_size,
            close_timeout=config.ws_ping_timeout or 10.0,
            keepalive=ws_carrier.keepalive_for(config, config.ws_ping_interval, config.ws_ping_timeout),
            connections=self.connections,
        )
        self.scope["extensions"].pop(FRAMES_EXTENSION, None)
        carrier.take_over(pending, rest)
        return carrier

    def write_frames(self, frames: bytes) -> bool:
        """``relay.frames``' synchronous write: the frames are written now (True), or nothing is
        and the app sends them through ``send`` instead, which waits (the transport is paused) or
        raises as uvicorn does (the connection is closing or not yet accepted)."""
        if (
            self.writable.is_set()
            and self.handshake_complete
            and self.initial_response is None
            and not self.disconnected
            and not self.close_sent
            and self.conn.state is State.OPEN
        ):
            self.transport.write(frames)
            return True
        return False

    async def send(self, message: Any) -> None:
        frames = message.get(FRAME_KEY)
        if frames is None:
            await super().send(message)
            if message["type"] == "websocket.accept" and self.handshake_complete:
                # uvicorn keeps the handshake's request and response (websockets' Headers) for the
                # connection's life and never reads them again once it has accepted: 4.6 KiB
                # of every idle socket's 27 (bench/socket_memory.py).
                self.request = self.response = None  # type: ignore[assignment]
            return
        if not self.writable.is_set():
            await self.writable.wait()
        if not self.handshake_complete or self.initial_response is not None:
            raise RuntimeError("relay.frames sent before the WebSocket was accepted")
        if self.disconnected or self.close_sent or self.conn.state is not State.OPEN:
            raise ClientDisconnected  # what uvicorn raises for a text frame sent now
        self.transport.write(frames)


class HeadTimeoutProtocol(HttpToolsProtocol):
    """Uvicorn's keep-alive timer only runs between a response and the next byte, so a client that
    connects and never sends, or dribbles a head byte by byte, is held for ever.  This timer runs
    from accept and from each completed response until a request head is complete."""

    head_timer: asyncio.TimerHandle | None = None
    head_deadline: float | None = None  # when the awaited head is due; None: none awaited

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def on_headers_complete(self) -> None:
        if self.parser.should_upgrade():
            # The connection may leave this protocol for good (a WebSocket): a pending timer would
            # keep this object and its request alive until it fires (~8 KiB per new socket).
            self._stop_head_timer()
        else:
            self.head_deadline = None  # the pending timer, if any, finds nothing due
        super().on_headers_complete()

    def _stop_head_timer(self) -> None:
        self.head_deadline = None
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # A pipelined request already has its head; otherwise the next head is awaited.
        if not self.pipeline and not self.transport.is_closing():
            self._arm_head_timer()

    def _arm_head_timer(self) -> None:
        # The timer is lazy: a head that arrives only clears the deadline, and a timer already
        # pending checks the new deadline when it fires (no timer made and cancelled per request).
        self.head_deadline = self.loop.time() + self.timeout_keep_alive
        if self.head_timer is None:
            self.head_timer = self.loop.call_at(self.head_deadline, self._head_due)

    def _head_due(self) -> None:
        self.head_timer = None
        deadline = self.head_deadline
        if deadline is None or self.transport.is_closing():
            return
        if self.loop.time() >= deadline:
            self.transport.close()
        else:
            self.head_timer = self.loop.call_at(deadline, self._head_due)


class RelayServer(uvicorn.Server):
    """Uvicorn without its signal handlers: ``stop_on_signals`` drains the app first."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def stop(self) -> None:
        self.should_exit = True

    def stop_now(self) -> None:
        self.should_exit = True
        self.force_exit = True


def uvicorn_config(app: Any, settings: Settings, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        # The loop is ours (server.run); uvicorn only serves on it.
        loop="none",
        http=HeadTimeoutProtocol,
        ws=FramedWebSocketProtocol,
        lifespan="on",
        # Read timeouts are by design equal: head, keep-alive idle and body (the app's 408).
        timeout_keep_alive=settings.read_timeout,  # type: ignore[arg-type]  # a float works
        # Protocol pings make browsers answer with pongs, so a WebSocket that only listens is not
        # cut off; one whose pong does not come within read_timeout is gone.
        ws_ping_interval=settings.ws_ping_interval or None,
        ws_ping_timeout=settings.read_timeout,
        ws_max_size=settings.ws_max_message_bytes,
        # Per-message deflate would compress every frame once per connection (the gateway
        # encodes a message once for all its subscribers) and hold a zlib context per socket:
        # ~50 KiB each, measured with tracemalloc, more than the rest of the connection.
        ws_per_message_deflate=False,
        # The app reads X-Forwarded-For itself (forwarded_allow_ips, rate limits); the ASGI client
        # address stays the peer's, as under hypercorn.
        proxy_headers=False,
        # We log requests ourselves, and through the root logger (setup_logging).
        access_log=False,
        log_config=None,
        backlog=4096,
        limit_max_requests=None,
        timeout_graceful_shutdown=5,
    )


def _no_secrets(record: logging.LogRecord) -> bool:
    """Drop the WebSocket protocol's DEBUG lines, and the query string (``?token=``) from the
    ``"WebSocket /ws" [accepted]`` lines uvicorn writes at INFO."""
    if record.levelno <= logging.DEBUG:
        return False
    if isinstance(record.args, tuple) and '"WebSocket %s"' in str(record.msg):
        record.args = tuple(
            a.split("?", 1)[0] if isinstance(a, str) and a.startswith("/") else a for a in record.args
        )
    return True


async def serve(app: Any, settings: Settings, host: str, port: int, *, worker: Worker | None = None) -> None:
    # The WebSocket protocol logs every handshake header and frame at DEBUG through this logger:
    # tokens (the `bearer.<jwt>` subprotocol) and message contents.  Those lines never reach the
    # log, whatever PULSAR_LOG_LEVEL says; nor do the tokens of `?token=` handshakes.
    logging.getLogger("uvicorn.error").addFilter(_no_secrets)
    server = RelayServer(uvicorn_config(app, settings, host, port))
    if worker is None:
        stop_on_signals(app, server.stop, server.stop_now)
        await server.serve()
        return
    # A worker hears a stop twice when its parent forwards what the terminal or the service manager
    # also sent it: the repeat within a second is the same request, not an impatient second one.
    stop_on_signals(app, server.stop, server.stop_now, same_stop_within=1.0)
    announce = asyncio.create_task(_when_started(server, worker.ready))
    try:
        await server.serve(sockets=worker.sockets)
    finally:
        announce.cancel()


async def _when_started(server: uvicorn.Server, ready: Callable[[], None]) -> None:
    """Call ``ready()`` once ``server`` accepts connections (its app started, its sockets listen)."""
    while not server.started:  # noqa: ASYNC110 - uvicorn sets a plain flag, there is nothing to await
        await asyncio.sleep(0.02)
    ready()
