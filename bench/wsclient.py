"""A lean WebSocket client over an asyncio protocol, for thousands of subscribers on one core.

It does the RFC 6455 handshake itself (offering the ``bearer`` subprotocol pair), answers pings,
and on every text frame counts the ``"sent_at":<ns>`` stamps it holds (one per delivered
message, whatever the server's batching) into a shared :class:`Deliveries`.  Per frame it runs a
few integer operations and one C regex, so the receiving side is not the bottleneck
(``python -m bench.calibrate`` measures it against the ``websockets`` library).
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import time
from collections.abc import Sequence
from typing import cast
from urllib.parse import quote

_SENT_AT = re.compile(rb'"sent_at":\s*(\d+)')


def stamps(data: bytes) -> list[bytes]:
    """Every ``sent_at`` stamp in ``data``: one per message it carries, however it is framed."""
    return _SENT_AT.findall(data)


class Deliveries:
    """Shared by every subscriber of a scenario: counts, latencies (ns), first and last arrival."""

    def __init__(self) -> None:
        self.count = 0
        self.latencies: list[int] = []
        self.first_ns = 0
        self.last_ns = 0
        self.errors: list[bytes] = []
        self.record_latency = True

    def reset(self) -> None:
        self.count, self.first_ns, self.last_ns = 0, 0, 0
        self.latencies = []

    def add(self, stamps: Sequence[bytes | int], now: int) -> None:
        self.count += len(stamps)
        if not self.first_ns:
            self.first_ns = now
        self.last_ns = now
        if self.record_latency:
            self.latencies.extend(now - int(s) for s in stamps)


def _mask(payload: bytes, opcode: int) -> bytes:
    key = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    if not n:
        return head + key
    stream = (key * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")
    return head + key + masked


class WsProtocol(asyncio.Protocol):
    def __init__(self, request: bytes, sink: Deliveries) -> None:
        self.request = request
        self.sink = sink
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.upgraded = False
        self.close_code: int | None = None  # set when the server sends a close frame
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.subscribed: asyncio.Future[bytes] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        err = exc or ConnectionError("closed")
        for fut in (self.opened, self.subscribed):
            if not fut.done():
                fut.set_exception(err)
                fut.exception()  # mark retrieved: idle subscribers may never await it
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buf = buf
                return
            status = buf[9:12]
            if status != b"101":
                if not self.opened.done():
                    self.opened.set_exception(ConnectionError(f"handshake refused: {buf[:end][:300]!r}"))
                assert self.transport is not None
                self.transport.close()
                return
            self.upgraded = True
            if not self.opened.done():
                self.opened.set_result(None)
            buf = buf[end + 4 :]
        self.buf = self._frames(buf)

    def _frames(self, buf: bytes) -> bytes:
        now = 0
        pos, size = 0, len(buf)
        while size - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            length = b1 & 0x7F
            start = pos + 2
            if length == 126:
                if size - pos < 4:
                    break
                length = int.from_bytes(buf[start : start + 2], "big")
                start += 2
            elif length == 127:
                if size - pos < 10:
                    break
                length = int.from_bytes(buf[start : start + 8], "big")
                start += 8
            end = start + length
            if end > size:
                break
            opcode = b0 & 0x0F
            if opcode == 1 or opcode == 0:
                payload = buf[start:end]
                stamps = _SENT_AT.findall(payload)
                if stamps:
                    if not now:
                        now = time.time_ns()
                    self.sink.add(stamps, now)
                else:
                    self._control_text(payload)
            elif opcode == 9:
                self.send(buf[start:end], 0xA)
            elif opcode == 8:
                self.close_code = int.from_bytes(buf[start : start + 2], "big") if length >= 2 else 1005
                self.send(buf[start : start + 2], 0x8)
                assert self.transport is not None
                self.transport.close()
            pos = end
        return buf[pos:] if pos else buf

    def _control_text(self, payload: bytes) -> None:
        if b'"subscribed"' in payload:
            if not self.subscribed.done():
                self.subscribed.set_result(payload)
        elif b'"error"' in payload:
            self.sink.errors.append(payload[:300])
            if not self.subscribed.done():
                self.subscribed.set_exception(ConnectionError(payload[:300].decode(errors="replace")))

    def send(self, payload: bytes, opcode: int = 0x1) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(_mask(payload, opcode))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()


def handshake(host: str, port: int, token: str, auth: str, path: str = "/ws") -> bytes:
    """The upgrade request for ``path``; ``auth`` is ``"subprotocol"`` (``bearer``,
    ``bearer.<jwt>``), ``"query"`` (``?token=``) or ``"none"`` (the peers have no accounts)."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"Host: {host}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    if auth == "subprotocol":
        lines.append(f"Sec-WebSocket-Protocol: bearer, bearer.{token}")
    elif auth == "query":
        path = f"{path}?token={quote(token)}"
    return (f"GET {path} HTTP/1.1\r\n" + "\r\n".join(lines) + "\r\n\r\n").encode()


async def subscribe(
    host: str,
    port: int,
    token: str,
    topics: list[str],
    sink: Deliveries,
    *,
    auth: str = "subprotocol",
    client_id: str | None = None,
    local_addr: tuple[str, int] | None = None,
    handshake_limit: float = 30.0,
    path: str = "/ws",
    send_subscribe: bool = True,
    await_confirm: bool = True,
) -> WsProtocol:
    """Connect to ``path``, send our ``subscribe`` frame (unless the path subscribes, as a peer's
    does), and return once the server confirmed with ``subscribed`` (or, where nothing confirms,
    once upgraded)."""
    loop = asyncio.get_running_loop()
    request = handshake(host, port, token, auth, path)
    _, proto = await loop.create_connection(
        lambda: WsProtocol(request, sink), host, port, local_addr=local_addr
    )
    try:
        async with asyncio.timeout(handshake_limit):
            await proto.opened
            if send_subscribe:
                frame: dict[str, object] = {"type": "subscribe", "topics": topics}
                frame["client_id"] = client_id or f"bench-{id(proto):x}"
                import msgspec

                proto.send(msgspec.json.encode(frame))
            if await_confirm:
                await proto.subscribed
    except BaseException:
        proto.close()
        raise
    return proto
