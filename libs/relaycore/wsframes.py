"""Pre-encoded WebSocket frames: an ASGI extension of ours, ``relay.frames``.

A server-to-client text frame is the same bytes for every connection (servers do not mask), so
the gateway can frame a message once for all its subscribers.  A server that lists
``FRAMES_EXTENSION`` in a WebSocket scope's ``extensions`` (ours, on uvicorn: see
``pulsar_relay.serve_uvicorn``) accepts ``{"type": "websocket.send", FRAME_KEY: data}``, where
``data`` is one or more complete, unmasked, uncompressed frames, and writes it as it is: no framing
per connection, and a connection that has several frames waiting gets them in one write.  The app
sends that message only to a scope that lists the extension; other servers get plain ``text``.

The extension's entry may also hold ``FRAMES_WRITE``: a synchronous ``write(data) -> bool`` that
writes ``data`` at once and returns True, or writes nothing and returns False when it cannot now
(the transport is paused, the connection is not open); the app then sends the same data with the
message above, which waits or fails as a send does.  A delivery thus costs no ASGI message and no
coroutine in the usual case, a socket with room.

And it may hold ``FRAMES_DETACH``: ``detach(handler) -> Carrier``, which the app calls once it has
accepted the connection.  From then on the server drives the connection through callbacks instead
of ASGI: each complete client message goes to ``handler.received(data)`` (``str`` for text,
``bytes`` for binary; a False return asks the server to hold the next ones until
``carrier.resume()``), and ``handler.closed()`` is called once when the connection is gone,
whoever closed it.  The app writes with ``carrier.write(frames) -> bool`` (as ``FRAMES_WRITE``),
falls back to ``await carrier.send(message)`` (the ``relay.frames`` message above, or
``websocket.close``) and closes with ``carrier.close(code, reason)``.  The app's coroutine then
returns at once: an idle connection holds no task, no coroutine and no queue.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, Protocol

FRAMES_EXTENSION = "relay.frames"
FRAME_KEY = "relay.frames"
FRAMES_WRITE = "write"
FRAMES_DETACH = "detach"
_FIN_TEXT = 0x81


def text_frame(text: str) -> bytes:
    """``text`` as one final, unmasked, uncompressed WebSocket text frame (RFC 6455, 5.2)."""
    payload = text.encode()
    n = len(payload)
    if n < 126:
        head = bytes((_FIN_TEXT, n))
    elif n < 1 << 16:
        head = struct.pack("!BBH", _FIN_TEXT, 126, n)
    else:
        head = struct.pack("!BBQ", _FIN_TEXT, 127, n)
    return head + payload


class Handler(Protocol):
    """What the app hands ``detach``: the connection's events."""

    def received(self, data: str | bytes) -> bool: ...

    def closed(self) -> None: ...


class Carrier(Protocol):
    """What ``detach`` hands back: the connection, written and closed by the app."""

    def write(self, frames: bytes) -> bool: ...

    async def send(self, message: dict[str, Any]) -> None: ...

    def close(self, code: int, reason: str = "") -> None: ...

    def resume(self) -> None: ...


Detach = Callable[[Handler], "Carrier | None"]
