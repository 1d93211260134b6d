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
"""

from __future__ import annotations

import struct

FRAMES_EXTENSION = "relay.frames"
FRAME_KEY = "relay.frames"
FRAMES_WRITE = "write"
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
