"""Back-pressure: a client that stops reading is cut off by name; nobody else waits for it."""

from __future__ import annotations

import asyncio
import json
import socket

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

from tests.gateway.conftest import WAIT, Relay, eventually, messages, publish_direct

COUNT = 300
PAD = 64 * 1024  # big frames fill the socket buffers quickly
STEP = 15  # published at a time; the fast reader takes each step before the next (COUNT / STEP whole)


class StalledClient:
    """A WebSocket client that reads only when told to (the sans-I/O protocol of ``websockets``
    over a plain socket with a small receive buffer): the asyncio client keeps draining its
    socket into memory even when the application does not read, so it cannot play a slow one."""

    def __init__(self, relay: Relay, token: str) -> None:
        host, port = relay.gateway.removeprefix("http://").split(":")
        self.address = (host, int(port))
        self.proto = ClientProtocol(parse_uri(f"ws://{host}:{port}/ws?token={token}"), max_size=None)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
        self.sock.setblocking(False)
        self.loop = asyncio.get_running_loop()

    async def _flush(self) -> None:
        await self.loop.sock_sendall(self.sock, b"".join(self.proto.data_to_send()))

    async def _events(self) -> list[object]:
        data = await self.loop.sock_recv(self.sock, 1 << 20)
        if data:
            self.proto.receive_data(data)
        else:
            self.proto.receive_eof()
        return list(self.proto.events_received())

    async def subscribe(self, topics: list[str]) -> None:
        async with asyncio.timeout(WAIT):
            await self.loop.sock_connect(self.sock, self.address)
            self.proto.send_request(self.proto.connect())
            await self._flush()
            while self.proto.state is not State.OPEN:
                await self._events()
            self.proto.send_text(json.dumps({"type": "subscribe", "topics": topics}).encode())
            await self._flush()
            while not (events := await self._events()):
                pass
            assert isinstance(events[0], Frame) and b'"subscribed"' in events[0].data

    async def read_to_close(self) -> tuple[int, int, str]:
        """Read everything until the server closes: (messages seen, close code, reason)."""
        seen = 0
        async with asyncio.timeout(WAIT):
            while self.proto.close_rcvd is None:
                for event in await self._events():
                    if isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                        seen += json.loads(bytes(event.data))["type"] == "message"
        return seen, self.proto.close_rcvd.code, self.proto.close_rcvd.reason

    def close(self) -> None:
        self.sock.close()


async def test_slow_client_is_closed_while_a_fast_one_gets_everything(relay_factory) -> None:
    """A subscriber that never reads is closed with 4008 "Slow consumer"; a fast subscriber on the
    same topic receives every message meanwhile."""
    async with relay_factory(ws_send_queue=64, tail_batch_size=16) as relay:
        alice, token = await relay.user("alice")
        fast = await relay.subscribe(token, ["hot"])
        slow = StalledClient(relay, token)
        try:
            await slow.subscribe(["hot"])
            ids: list[str] = []
            got: list[str] = []
            for start in range(0, COUNT, STEP):  # in step with the fast reader, however busy the host
                ids += await publish_direct(relay.backend, alice, "hot", STEP, start, pad=PAD, bulk=STEP)
                got += [m["message_id"] for m in await messages(fast, STEP, within=60)]
            assert got == ids
            await eventually(lambda: len(relay.node.sessions) == 1)  # the slow one is gone
            seen, code, reason = await slow.read_to_close()  # what was in flight, then the close
            assert (code, reason) == (4008, "Slow consumer")
            assert seen < COUNT
        finally:
            slow.close()
