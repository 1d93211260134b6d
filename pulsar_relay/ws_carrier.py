"""An accepted WebSocket once the app has detached from it (``relay.frames``' ``detach``, see
``relaycore.wsframes``): a slotted ``asyncio.Protocol`` that reads the client's frames itself and
hands each complete message to the app's handler, writes pre-encoded frames, answers pings, runs
the closing handshake, and leaves keepalive pings to one sweep per server (``Keepalive``).

What an idle socket holds is this object, its transport and the app's handler: no ASGI task, no
coroutine frames, no queue, no timer (``bench/socket_memory.py``).  RFC 6455, section 5: client
frames must be masked; control frames are at most 125 bytes and never fragmented; a message over
``max_size`` bytes is closed with 1009, a text message that is not UTF-8 with 1007, anything else
malformed with 1002.  Framework-free; this module knows nothing of uvicorn.
"""

from __future__ import annotations

import asyncio
import struct
import weakref
from typing import Any

from relaycore.wsframes import FRAME_KEY, Handler

CLOSE, PING, PONG = 0x8, 0x9, 0xA
_CONT, _TEXT, _BINARY = 0x0, 0x1, 0x2
PROTOCOL_ERROR, TOO_BIG, NOT_UTF8, GOING_AWAY_RESTART, KEEPALIVE = 1002, 1009, 1007, 1012, 1011
_NO_STATUS = 1005  # the peer's close frame carried no code
# Close codes an endpoint may send (RFC 6455, 7.4.1, and the IANA registry), besides 3000-4999.
_SENDABLE = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014})


class Closed(ConnectionError):
    """A frame sent on a connection that is closing or gone."""


def control_frame(opcode: int, payload: bytes = b"") -> bytes:
    return bytes((0x80 | opcode, len(payload))) + payload


def close_frame(code: int, reason: str = "") -> bytes:
    # A control frame's payload is at most 125 bytes: the code and up to 123 bytes of reason.
    return control_frame(CLOSE, struct.pack("!H", code) + reason.encode()[:123])


def unmask(payload: bytes, mask: bytes) -> bytes:
    n = len(payload)
    if not n:
        return b""
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")


class Keepalive:
    """Protocol pings for every carrier of one server, from one timer: a socket silent for a
    whole ``interval`` gets a ping, and one still silent ``timeout`` seconds after its ping is
    closed (1011), which is what a timer per socket did, to within a sweep."""

    __slots__ = ("_handle", "_loop", "interval", "sockets", "timeout")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, interval: float | None, timeout: float | None
    ) -> None:
        self._loop = loop
        self.interval = interval if interval and interval > 0 else None
        self.timeout = timeout
        self.sockets: set[Carrier] = set()
        self._handle: asyncio.TimerHandle | None = None

    def add(self, carrier: Carrier) -> None:
        self.sockets.add(carrier)
        if self._handle is None and self.interval is not None:
            self._handle = self._loop.call_later(self._tick(), self.sweep)

    def discard(self, carrier: Carrier) -> None:
        self.sockets.discard(carrier)

    def _tick(self) -> float:
        assert self.interval is not None
        return min(self.interval, self.timeout) if self.timeout else self.interval

    def sweep(self) -> None:
        self._handle = None
        if not self.sockets:
            return
        now = self._loop.time()
        for carrier in list(self.sockets):
            carrier.keepalive(now, self.timeout)
        self._handle = self._loop.call_later(self._tick(), self.sweep)


_keepalives: weakref.WeakKeyDictionary[Any, Keepalive] = weakref.WeakKeyDictionary()


def keepalive_for(owner: Any, interval: float | None, timeout: float | None) -> Keepalive:
    """The one ``Keepalive`` of ``owner`` (a server's shared state), made on first use."""
    keepalive = _keepalives.get(owner)
    if keepalive is None:
        keepalive = _keepalives[owner] = Keepalive(asyncio.get_running_loop(), interval, timeout)
    return keepalive


class Carrier(asyncio.Protocol):
    __slots__ = (
        "_buffer",
        "_close_timer",
        "_connections",
        "_fragment_opcode",
        "_fragments",
        "_held",
        "_keepalive",
        "_loop",
        "_writable_waiters",
        "close_sent",
        "close_timeout",
        "closed",
        "handler",
        "heard",
        "max_size",
        "pinged_at",
        "transport",
        "writable",
    )

    def __init__(
        self,
        transport: asyncio.Transport,
        handler: Handler,
        *,
        max_size: int,
        close_timeout: float,
        keepalive: Keepalive,
        connections: set[Any],
    ) -> None:
        self.transport = transport
        self.handler = handler
        self.max_size = max_size
        self.close_timeout = close_timeout
        self._loop = asyncio.get_running_loop()
        self._keepalive = keepalive
        self._connections = connections
        self._buffer = b""  # received, not yet a whole frame (or held while the handler is busy)
        self._fragments: bytearray | None = None  # a fragmented message so far
        self._fragment_opcode = _TEXT  # ...and whether it is text or binary
        self._held = False  # the handler asked to hold further messages (``resume`` lets them go)
        self._close_timer: asyncio.TimerHandle | None = None
        self._writable_waiters: list[asyncio.Future[None]] | None = None
        self.writable = True
        self.close_sent = False
        self.closed = False
        self.heard = True  # something arrived since the keepalive sweep last looked
        self.pinged_at = 0.0  # when an unanswered ping went out; 0: none
        connections.add(self)
        keepalive.add(self)

    # --- what the app calls --------------------------------------------------------------------
    def write(self, frames: bytes) -> bool:
        """Write pre-encoded frames now (True), or nothing when the socket is paused or closing."""
        if self.writable and not self.close_sent and not self.closed:
            self.transport.write(frames)
            return True
        return False

    async def send(self, message: dict[str, Any]) -> None:
        """The ASGI-shaped send a writer falls back to: ``relay.frames`` wait while the socket is
        paused (``Closed`` once it is closing); ``websocket.close`` closes."""
        if message["type"] == "websocket.close":
            self.close(message.get("code", 1000), message.get("reason") or "")
            return
        frames = message[FRAME_KEY]
        while not self.writable and not self.closed:
            waiter = self._loop.create_future()
            if self._writable_waiters is None:
                self._writable_waiters = []
            self._writable_waiters.append(waiter)
            await waiter
        if not self.write(frames):
            raise Closed("the WebSocket is closing")

    def close(self, code: int, reason: str = "") -> None:
        """Start the closing handshake: the close frame goes after what is already written, and
        the connection is dropped if the client has not answered within ``close_timeout``."""
        if self.close_sent or self.closed:
            return
        self.close_sent = True
        self.transport.write(close_frame(code, reason))
        self._close_timer = self._loop.call_later(self.close_timeout, self.transport.abort)
        if self._held:  # the client's close must be read
            self.resume()

    def resume(self) -> None:
        """The handler is ready for more messages: those already received, then the socket's."""
        if not self._held or self.closed or self.transport.is_closing():
            return
        self._held = False
        self.transport.resume_reading()
        if self._buffer:
            self._parse(b"")

    def take_over(self, pending: list[str | bytes], rest: bytes) -> None:
        """Become the transport's protocol.  The messages the server already parsed (``pending``:
        only from a client that sent frames before it saw the handshake's answer) go to the
        handler first, in order, then the bytes the server had not yet parsed (``rest``)."""
        self.transport.set_protocol(self)
        self._buffer = rest
        busy = False
        for data in pending:
            busy = not self.handler.received(data) or busy
        if busy:
            self._held = True
            self.transport.pause_reading()
        else:
            self.transport.resume_reading()  # the server may have paused it for what it parsed
            if rest:
                self._parse(b"")

    # --- transport callbacks -------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        self.heard = True
        self.pinged_at = 0.0
        self._parse(data)

    def eof_received(self) -> None:
        return None  # the transport closes itself: connection_lost follows

    def pause_writing(self) -> None:
        self.writable = False

    def resume_writing(self) -> None:
        self.writable = True
        self._wake_writers()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closed:
            return
        self.closed = True
        self._connections.discard(self)
        self._keepalive.discard(self)
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        self._buffer = b""
        self._fragments = None
        self._wake_writers()
        self.handler.closed()

    def shutdown(self) -> None:
        """The server is stopping (uvicorn calls this on every connection it holds)."""
        if not self.close_sent:
            self.close(GOING_AWAY_RESTART)
        self.transport.close()

    def keepalive(self, now: float, timeout: float | None) -> None:
        if self.heard:
            self.heard = False
        elif not self.pinged_at:
            if not self.close_sent:
                self.pinged_at = now
                self.transport.write(control_frame(PING, struct.pack("!d", now)))
        elif timeout is not None and now - self.pinged_at >= timeout:
            self._fail(KEEPALIVE, "keepalive ping timeout")

    # --- reading -------------------------------------------------------------------------------
    def _parse(self, data: bytes) -> None:
        buf = self._buffer + data if self._buffer else data
        pos = 0
        end = len(buf)
        while end - pos >= 2 and not self._held and not self.transport.is_closing():
            b0 = buf[pos]
            b1 = buf[pos + 1]
            opcode = b0 & 0x0F
            if b0 & 0x70 or not b1 & 0x80:
                self._fail(PROTOCOL_ERROR, "reserved bits set" if b0 & 0x70 else "unmasked client frame")
                return
            length = b1 & 0x7F
            head = 2
            if length == 126:
                if end - pos < 4:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                head = 4
            elif length == 127:
                if end - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                head = 10
            if opcode >= CLOSE and (length > 125 or not b0 & 0x80):
                self._fail(PROTOCOL_ERROR, "bad control frame")
                return
            # A control frame inside a fragmented message is not part of it (RFC 6455, 5.4).
            so_far = len(self._fragments) if self._fragments is not None and opcode < CLOSE else 0
            if so_far + length > self.max_size:
                self._fail(TOO_BIG, f"message over {self.max_size} bytes")
                return
            start = pos + head + 4
            if end - start < length:
                break
            payload = unmask(buf[start : start + length], buf[pos + head : start])
            pos = start + length
            self._frame(opcode, bool(b0 & 0x80), payload)
        self._buffer = buf[pos:] if pos < end and not self.transport.is_closing() else b""

    def _frame(self, opcode: int, fin: bool, payload: bytes) -> None:
        if opcode == PING:
            if not self.close_sent:
                self.transport.write(control_frame(PONG, payload))
        elif opcode == PONG:
            pass  # any frame counts as a sign of life (data_received)
        elif opcode == CLOSE:
            self._closed_by_client(payload)
        elif opcode in (_TEXT, _BINARY):
            if self._fragments is not None:
                self._fail(PROTOCOL_ERROR, "new message inside a fragmented one")
            elif fin:
                self._message(opcode, payload)
            else:
                self._fragments = bytearray(payload)
                self._fragment_opcode = opcode
        elif opcode == _CONT:
            fragments = self._fragments
            if fragments is None:
                self._fail(PROTOCOL_ERROR, "continuation without a message")
                return
            fragments += payload
            if fin:
                self._fragments = None
                self._message(self._fragment_opcode, bytes(fragments))
        else:
            self._fail(PROTOCOL_ERROR, f"unknown opcode {opcode}")

    def _message(self, opcode: int, payload: bytes) -> None:
        if self.close_sent:
            return  # past our close: only the client's close matters now
        if opcode == _TEXT:
            try:
                data: str | bytes = payload.decode()
            except UnicodeDecodeError:
                self._fail(NOT_UTF8, "invalid UTF-8 in a text message")
                return
        else:
            data = payload
        if not self.handler.received(data):
            self._held = True
            self.transport.pause_reading()

    def _closed_by_client(self, payload: bytes) -> None:
        if not self.close_sent:  # the client started it: answer with its code, then go
            if len(payload) == 1:
                self._fail(PROTOCOL_ERROR, "close frame of one byte")
                return
            code = struct.unpack("!H", payload[:2])[0] if payload else _NO_STATUS
            if payload and not (code in _SENDABLE or 3000 <= code < 5000):
                self._fail(PROTOCOL_ERROR, f"close code {code} may not be sent")
                return
            try:
                payload[2:].decode()
            except UnicodeDecodeError:
                self._fail(NOT_UTF8, "invalid UTF-8 in the close reason")
                return
            self.close_sent = True
            self.transport.write(close_frame(code) if payload else control_frame(CLOSE))
        self.transport.close()

    def _fail(self, code: int, reason: str) -> None:
        if not self.close_sent:
            self.close_sent = True
            self.transport.write(close_frame(code, reason))
        self.transport.close()

    def _wake_writers(self) -> None:
        waiters, self._writable_waiters = self._writable_waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)
