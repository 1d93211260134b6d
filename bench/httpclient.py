"""A lean HTTP/1.1 keep-alive client over an asyncio protocol: the load generator's publisher.

It parses only the status line, Content-Length and chunked framing, so one core drives tens of
thousands of requests per second where httpx manages a few thousand (``python -m bench.calibrate``
measures both).  One request in flight per connection; open several for concurrency.
"""

from __future__ import annotations

import asyncio
from typing import cast
from urllib.parse import urlencode

_HEADER_END = b"\r\n\r\n"


class HttpError(Exception):
    """The connection broke or the response could not be parsed."""


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.lost: BaseException | None = None
        self.closing = False  # the server said ``Connection: close``
        self.head = b""  # the last response's status line and headers

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = HttpError(f"connection lost: {exc!r}" if exc else "connection closed by the server")
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(self.lost)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.waiter is None or self.waiter.done():
            return
        try:
            parsed = _parse(self.buf)
        except HttpError as exc:
            self.waiter.set_exception(exc)
            return
        if parsed is not None:
            status, body, used = parsed
            self.head = bytes(self.buf[: self.buf.find(_HEADER_END)])
            if b"\r\nconnection: close" in self.head.lower():
                self.closing = True
            del self.buf[:used]
            self.waiter.set_result((status, body))


def _parse(buf: bytearray) -> tuple[int, bytes, int] | None:
    end = buf.find(_HEADER_END)
    if end < 0:
        return None
    head = bytes(buf[:end]).lower()
    try:
        status = int(head[9:12])
    except ValueError as exc:
        raise HttpError(f"bad status line {head[:40]!r}") from exc
    start = end + 4
    i = head.find(b"\r\ncontent-length:")
    if i >= 0:
        j = head.find(b"\r\n", i + 2)
        length = int(head[i + 17 : j if j > 0 else len(head)])
        if len(buf) < start + length:
            return None
        return status, bytes(buf[start : start + length]), start + length
    if b"\r\ntransfer-encoding: chunked" in head:
        return _parse_chunked(buf, status, start)
    if status in (204, 304) or 100 <= status < 200:
        return status, b"", start
    raise HttpError("response without Content-Length on a keep-alive connection")


def _parse_chunked(buf: bytearray, status: int, pos: int) -> tuple[int, bytes, int] | None:
    body = bytearray()
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size = int(bytes(buf[pos:eol]).split(b";")[0], 16)
        if size == 0:
            if len(buf) < eol + 4:
                return None
            return status, bytes(body), eol + 4
        if len(buf) < eol + 2 + size + 2:
            return None
        body += buf[eol + 2 : eol + 2 + size]
        pos = eol + 2 + size + 2


class HttpConnection:
    """One keep-alive connection; ``request`` sends and waits for the whole response.  When the
    server ended the connection (``Connection: close``, e.g. hypercorn after 1,000 requests, or an
    idle timeout) the next request reconnects first, as httpx would; ``reconnects`` counts it."""

    reconnects = 0

    def __init__(self, host: str, port: int, proto: _Protocol) -> None:
        self.host, self.port, self._p = host, port, proto
        self._host_header = f"Host: {host}:{port}\r\n".encode()

    @classmethod
    async def open(cls, host: str, port: int) -> HttpConnection:
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_connection(_Protocol, host, port)
        return cls(host, port, proto)

    def build(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> bytes:
        """The request bytes, for callers that send the same request many times."""
        lines = [f"{method} {path} HTTP/1.1\r\n".encode(), self._host_header]
        for key, value in (headers or {}).items():
            lines.append(f"{key}: {value}\r\n".encode())
        lines.append(f"Content-Length: {len(body)}\r\n\r\n".encode())
        return b"".join(lines) + body

    async def send_raw(self, request: bytes) -> tuple[int, bytes]:
        p = self._p
        if p.closing or p.lost is not None:  # ended by the server between requests: reconnect
            if p.transport is not None:
                p.transport.close()
            _, p = await asyncio.get_running_loop().create_connection(_Protocol, self.host, self.port)
            self._p = p
            HttpConnection.reconnects += 1
        assert p.transport is not None
        p.waiter = asyncio.get_running_loop().create_future()
        p.transport.write(request)
        return await p.waiter

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        return await self.send_raw(self.build(method, path, body, headers))

    def header(self, name: str) -> str | None:
        """A header of the last response (the first of that name), or None."""
        want = name.lower().encode() + b":"
        for line in self._p.head.split(b"\r\n")[1:]:
            if line.lower().startswith(want):
                return line[len(want) :].strip().decode("latin-1")
        return None

    def close(self) -> None:
        if self._p.transport is not None:
            self._p.transport.close()


def json_headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


async def login(host: str, port: int, username: str, password: str) -> str:
    """``POST /auth/login`` (form) → access token."""
    import msgspec

    conn = await HttpConnection.open(host, port)
    try:
        body = urlencode({"username": username, "password": password}).encode()
        status, text = await conn.request(
            "POST", "/auth/login", body, {"Content-Type": "application/x-www-form-urlencoded"}
        )
    finally:
        conn.close()
    if status != 200:
        raise HttpError(f"login failed: {status} {text[:200]!r}")
    token: str = msgspec.json.decode(text)["access_token"]
    return token
