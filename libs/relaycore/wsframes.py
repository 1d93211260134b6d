"""Pre-encoded WebSocket frames: an extra key of the ASGI ``websocket.send`` message.

A server-to-client text frame is the same bytes for every connection (servers do not mask), so
the gateway can frame a message once and hand those bytes to each subscriber's ``send`` under
``FRAME_KEY``, next to the usual ``text``.  A server that knows the key (ours, on uvicorn: see
``pulsar_relay.serve_uvicorn``) writes the bytes as they are and skips framing per connection; any
other server ignores the unknown key, as ASGI asks, and frames ``text`` itself.
"""

from __future__ import annotations

import struct

FRAME_KEY = "relay.frame"
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
