"""The fastest possible stand-ins for a relay, used only to measure the load generator's ceiling.

``python -m bench.fakeserver http PORT``: answers every request at once with a fixed 201 body.
``python -m bench.fakeserver ws PORT``: accepts WebSocket upgrades, answers ``subscribe`` with
``subscribed`` and then streams pre-encoded message frames as fast as the socket drains.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import sys
import time
from typing import cast

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_BODY = b'{"message_id":"1-0","topic":"t","timestamp":"2025-01-01T00:00:00Z"}'
_RESPONSE = (
    b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: "
    + str(len(_BODY)).encode()
    + b"\r\n\r\n"
    + _BODY
)


class FakeHttp(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)
        self.t, self.buf = transport, b""

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data
        out = []
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buf[:end].lower()
            i = head.find(b"content-length:")
            length = int(head[i + 15 :].split(b"\r\n", 1)[0]) if i >= 0 else 0
            if len(buf) < end + 4 + length:
                break
            buf = buf[end + 4 + length :]
            out.append(_RESPONSE)
        self.buf = buf
        if out:
            self.t.write(b"".join(out))


def _frame(payload: bytes) -> bytes:
    n = len(payload)
    head = bytes((0x81, n)) if n < 126 else bytes((0x81, 126)) + n.to_bytes(2, "big")
    return head + payload


class FakeWs(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)
        self.t, self.buf, self.open = transport, b"", False

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.open:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            key = b""
            for line in self.buf[:end].split(b"\r\n"):
                if line.lower().startswith(b"sec-websocket-key:"):
                    key = line.split(b":", 1)[1].strip()
            accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
            self.t.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Protocol: bearer\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
            )
            self.open, self.buf = True, b""
            return
        # the first client frame is taken as the subscribe, the second starts the stream
        self.buf = b""
        self.frames = getattr(self, "frames", 0) + 1
        if self.frames == 1:
            self.t.write(_frame(b'{"type":"subscribed","topics":["t"]}'))
        elif self.frames == 2:
            asyncio.get_running_loop().create_task(self.stream())

    async def stream(self) -> None:
        while not self.t.is_closing():
            stamp = str(time.time_ns()).encode()
            msg = b'{"type":"message","message_id":"1-0","topic":"t","payload":{"sent_at":' + stamp
            frame = _frame(msg + b',"data":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"},"metadata":{}}')
            self.t.write(frame * 50)
            # polling the write buffer keeps this stand-in free of flow-control callbacks
            while self.t.get_write_buffer_size() > 256 * 1024 and not self.t.is_closing():  # noqa: ASYNC110
                await asyncio.sleep(0.001)
            await asyncio.sleep(0)


async def main(kind: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    factory = FakeHttp if kind == "http" else FakeWs
    server = await loop.create_server(factory, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    import uvloop

    uvloop.run(main(sys.argv[1], int(sys.argv[2])))
