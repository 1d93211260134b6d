"""The detached WebSocket (``pulsar_relay.ws_carrier.Carrier``) speaks RFC 6455 to real clients,
end to end through the default server (``tests.support.serve.running``): an app accepts, detaches
with an echoing handler and returns; a client on a raw socket sends frames built by hand (masked,
or malformed on purpose) and reads the server's frames byte for byte."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import struct
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from websockets.asyncio.client import connect

from relaycore.config import Settings
from relaycore.wsframes import FRAMES_DETACH, FRAMES_EXTENSION, text_frame
from tests.conftest import make_settings
from tests.support.asgi import lifespan_or_http
from tests.support.serve import running

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
MASK = b"\x37\xfa\x21\x3d"
KEY = "dGhlIHNhbXBsZSBub25jZQ=="
WAIT = 10.0  # the longest any read waits: no test can hang


# --- the app: accept, detach with an echoing handler, return ---------------------------------------


class Echo:
    """A detached connection's handler: echoes each message, closes on "close-me", records the end."""

    def __init__(self) -> None:
        self.carrier: Any = None
        self.messages: list[str | bytes] = []
        self.ends: list[float] = []  # one entry per closed() call
        self.ended = asyncio.Event()

    def received(self, data: str | bytes) -> bool:
        self.messages.append(data)
        if data == "close-me":
            self.carrier.close(4000, "bye")
        elif isinstance(data, str):
            self.carrier.write(text_frame("echo:" + data))
        else:
            self.carrier.write(text_frame("bytes:" + data.hex()))
        return True

    def closed(self) -> None:
        self.ends.append(time.monotonic())
        self.ended.set()


class EchoApp:
    def __init__(self) -> None:
        self.handlers: asyncio.Queue[Echo] = asyncio.Queue()
        self.tasks: list[asyncio.Task[Any]] = []  # each WebSocket's ASGI task (uvicorn's run_asgi)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if not await lifespan_or_http(scope, receive, send):
            task = asyncio.current_task()
            assert task is not None
            self.tasks.append(task)
            await receive()  # websocket.connect
            await send({"type": "websocket.accept"})
            echo = Echo()
            echo.carrier = scope["extensions"][FRAMES_EXTENSION][FRAMES_DETACH](echo)
            assert echo.carrier is not None, "detach refused an open connection"
            self.handlers.put_nowait(echo)


# --- the client: a raw socket, frames by hand --------------------------------------------------------


def frame(opcode: int, payload: bytes = b"", *, fin: bool = True, masked: bool = True, rsv: int = 0) -> bytes:
    """One client frame; masked with ``MASK`` unless ``masked`` is False (a protocol error)."""
    b0 = (0x80 if fin else 0) | rsv | opcode
    bit = 0x80 if masked else 0
    n = len(payload)
    if n < 126:
        head = bytes((b0, bit | n))
    elif n < 1 << 16:
        head = struct.pack("!BBH", b0, bit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, bit | 127, n)
    if not masked:
        return head + payload
    return head + MASK + bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))


def close_payload(code: int, reason: str = "") -> bytes:
    return struct.pack("!H", code) + reason.encode()


class Wire(asyncio.Protocol):
    """The client's end of the socket: bytes received, and whether the server has ended it.  (A
    StreamReader raises a reset before handing out bytes it already holds, such as a close frame.)"""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.data = bytearray()
        self.ended = False
        self._waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.data += data
        self._wake()

    def eof_received(self) -> bool:
        self.ended = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def more(self) -> None:
        """Wait for more bytes or the end."""
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None


class Client:
    def __init__(self, wire: Wire, handler: Echo) -> None:
        self.wire = wire
        self.handler = handler

    def send(self, data: bytes) -> None:
        assert self.wire.transport is not None
        self.wire.transport.write(data)

    async def _take(self, n: int) -> bytes:
        wire = self.wire
        while len(wire.data) < n:
            if wire.ended:
                raise EOFError(f"the server ended the connection; {bytes(wire.data)!r} left")
            await wire.more()
        out = bytes(wire.data[:n])
        del wire.data[:n]
        return out

    async def frame(self, within: float = WAIT) -> tuple[int, bool, bytes]:
        """The server's next frame: (opcode, fin, payload); servers do not mask."""

        async def read() -> tuple[int, bool, bytes]:
            b0, b1 = await self._take(2)
            assert not b1 & 0x80, "a server frame is masked"
            assert not b0 & 0x70, "a server frame has reserved bits set"
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", await self._take(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", await self._take(8))[0]
            return b0 & 0x0F, bool(b0 & 0x80), await self._take(n)

        return await asyncio.wait_for(read(), within)

    async def text(self, within: float = WAIT) -> str:
        """The next frame, which must be a whole text message (keepalive pings are not expected)."""
        opcode, fin, payload = await self.frame(within)
        assert (opcode, fin) == (TEXT, True), (opcode, fin, payload)
        return payload.decode()

    async def close_frame(self, within: float = WAIT) -> tuple[int | None, str]:
        """The next frame, which must be a close: its (code, reason); (None, "") when empty."""
        opcode, fin, payload = await self.frame(within)
        assert (opcode, fin) == (CLOSE, True), (opcode, fin, payload)
        if not payload:
            return None, ""
        return struct.unpack("!H", payload[:2])[0], payload[2:].decode()

    async def ended(self, within: float = WAIT) -> bytes:
        """Wait for the server to end the TCP connection; returns any bytes left unread."""

        async def wait() -> None:
            while not self.wire.ended:
                await self.wire.more()

        await asyncio.wait_for(wait(), within)
        left, self.wire.data = bytes(self.wire.data), bytearray()
        return left

    def close(self) -> None:
        if self.wire.transport is not None:
            self.wire.transport.abort()


async def open_client(url: str, app: EchoApp) -> Client:
    """A raw TCP connection through the WebSocket handshake, once the app has detached from it."""
    host, port = url.removeprefix("http://").split(":")
    loop = asyncio.get_running_loop()
    _, wire = await asyncio.wait_for(loop.create_connection(Wire, host, int(port)), WAIT)
    assert wire.transport is not None
    wire.transport.write(
        b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: " + KEY.encode() + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )

    async def head() -> bytes:
        while b"\r\n\r\n" not in wire.data:
            assert not wire.ended, bytes(wire.data)
            await wire.more()
        end = wire.data.index(b"\r\n\r\n") + 4
        out = bytes(wire.data[:end])
        del wire.data[:end]
        return out

    try:
        response = await asyncio.wait_for(head(), WAIT)
        assert response.startswith(b"HTTP/1.1 101"), response
        headers = dict(
            (name.strip().lower(), value.strip())
            for name, _, value in (line.partition(b":") for line in response.split(b"\r\n")[1:] if line)
        )
        guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
        accept = base64.b64encode(hashlib.sha1((KEY + guid).encode()).digest())
        assert headers.get(b"sec-websocket-accept") == accept, response
        handler = await asyncio.wait_for(app.handlers.get(), WAIT)
    except BaseException:
        wire.transport.abort()
        raise
    return Client(wire, handler)


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[tuple[str, EchoApp]]:
    app = EchoApp()
    async with running(app, settings) as url:
        yield url, app


@asynccontextmanager
async def client_of(url: str, app: EchoApp) -> AsyncIterator[Client]:
    client = await open_client(url, app)
    try:
        yield client
    finally:
        client.close()


def quiet(**overrides: Any) -> Settings:
    """Settings without keepalive pings (unless overridden), so no ping interleaves with replies."""
    return make_settings(**({"ws_ping_interval": 0} | overrides))


async def ended_once(handler: Echo) -> None:
    """handler.closed() has been called, and only once (a second call would follow at once)."""
    await asyncio.wait_for(handler.ended.wait(), WAIT)
    await asyncio.sleep(0.1)
    assert len(handler.ends) == 1, handler.ends


# --- messages ---------------------------------------------------------------------------------------


async def test_a_text_message_is_echoed_after_the_asgi_app_has_returned() -> None:
    """A text message reaches handler.received as str and its echo comes back, on a connection
    whose ASGI task (the app's coroutine) has already finished."""
    async with serving(quiet()) as (url, app), client_of(url, app) as client:
        task = app.tasks[0]
        await asyncio.wait_for(asyncio.shield(task), WAIT)  # the app returned; the socket is open
        client.send(frame(TEXT, b"hello"))
        assert await client.text() == "echo:hello"
        client.send(frame(TEXT, "h\u00e9llo \u2603".encode()))
        assert await client.text() == "echo:h\u00e9llo \u2603"
        assert task.done() and task.exception() is None
        assert client.handler.messages == ["hello", "h\u00e9llo \u2603"]
        assert not client.handler.ends


async def test_a_binary_message_arrives_as_bytes() -> None:
    """A binary message reaches handler.received as bytes (here from a websockets client)."""
    async with serving(quiet()) as (url, app):
        async with connect(url.replace("http://", "ws://") + "/ws", open_timeout=WAIT) as ws:
            handler = await asyncio.wait_for(app.handlers.get(), WAIT)
            await ws.send(b"\x00\x01\xfe\xff")
            assert await asyncio.wait_for(ws.recv(), WAIT) == "bytes:0001feff"
            await ws.send("text too")
            assert await asyncio.wait_for(ws.recv(), WAIT) == "echo:text too"
        assert handler.messages == [b"\x00\x01\xfe\xff", "text too"]
        await ended_once(handler)


async def test_an_empty_message_is_delivered() -> None:
    """Zero-length text and binary messages are messages: "" and b""."""
    async with serving(quiet()) as (url, app), client_of(url, app) as client:
        client.send(frame(TEXT) + frame(BINARY))
        assert await client.text() == "echo:"
        assert await client.text() == "bytes:"
        assert client.handler.messages == ["", b""]


async def test_a_fragmented_message_arrives_whole_and_an_interleaved_ping_is_answered() -> None:
    """TEXT(fin=0), PING, CONT(fin=0), CONT(fin=1) is one message; the PING between fragments is
    answered at once by a PONG with its payload, before the message's echo."""
    async with serving(quiet()) as (url, app), client_of(url, app) as client:
        client.send(frame(TEXT, b"frag", fin=False) + frame(PING, b"are you there"))
        assert await client.frame() == (PONG, True, b"are you there")
        assert client.handler.messages == []
        client.send(frame(CONT, b"men", fin=False))
        client.send(frame(CONT, b"ted", fin=True))
        assert await client.text() == "echo:fragmented"
        assert client.handler.messages == ["fragmented"]


async def test_a_fragmented_binary_message_and_a_character_split_across_fragments() -> None:
    """A binary message in fragments arrives as one bytes; a UTF-8 character split between two
    fragments of a text message is valid (only the whole message must be UTF-8)."""
    snowman = "\u2603".encode()
    async with serving(quiet()) as (url, app), client_of(url, app) as client:
        client.send(
            frame(BINARY, b"\x01", fin=False) + frame(CONT, b"\x02", fin=False) + frame(CONT, b"\x03")
        )
        assert await client.text() == "bytes:010203"
        client.send(frame(TEXT, b"a" + snowman[:1], fin=False) + frame(CONT, snowman[1:] + b"b"))
        assert await client.text() == "echo:a\u2603b"


async def test_a_ping_is_answered_with_a_pong_of_the_same_payload() -> None:
    """An unfragmented PING gets a PONG with the same payload; an unsolicited PONG is ignored."""
    async with serving(quiet()) as (url, app), client_of(url, app) as client:
        client.send(frame(PING, b"x" * 125))
        assert await client.frame() == (PONG, True, b"x" * 125)
        client.send(frame(PONG, b"unsolicited") + frame(TEXT, b"after"))
        assert await client.text() == "echo:after"


# --- limits and malformed frames ----------------------------------------------------------------------


@pytest.mark.parametrize("size", [999, 1000])
async def test_a_message_up_to_the_limit_is_delivered(size: int) -> None:
    """A message of ws_max_message_bytes bytes (or fewer) is delivered (the limit is inclusive)."""
    async with serving(quiet(ws_max_message_bytes=1000)) as (url, app), client_of(url, app) as client:
        client.send(frame(TEXT, b"a" * size))
        assert await client.text() == "echo:" + "a" * size


async def test_a_message_at_the_default_limit_with_a_64_bit_length_is_delivered() -> None:
    """A 64 KiB message (the default limit, needing the 8-byte length form) is delivered whole."""
    settings = quiet()
    size = settings.ws_max_message_bytes
    assert size >= 1 << 16
    async with serving(settings) as (url, app), client_of(url, app) as client:
        client.send(frame(BINARY, b"\xab" * size))
        assert await client.text() == "bytes:" + "ab" * size


@pytest.mark.parametrize(
    "frames",
    [
        pytest.param([frame(TEXT, b"a" * 1001)], id="one-frame"),
        pytest.param([frame(BINARY, b"a" * 1001)], id="binary"),
        pytest.param([frame(TEXT, b"a" * 600, fin=False), frame(CONT, b"a" * 401)], id="fragments"),
    ],
)
async def test_a_message_over_the_limit_is_closed_with_1009(frames: list[bytes]) -> None:
    """A message over ws_max_message_bytes, in one frame or summed over fragments, is answered
    with a 1009 close and the connection ends; the handler gets no message and one closed()."""
    async with serving(quiet(ws_max_message_bytes=1000)) as (url, app), client_of(url, app) as client:
        for f in frames:
            client.send(f)
        code, _ = await client.close_frame()
        assert code == 1009
        await client.ended()
        assert client.handler.messages == []
        await ended_once(client.handler)


async def test_a_ping_inside_a_message_near_the_limit_does_not_count_towards_it() -> None:
    """Control frames are not part of the message they interleave (RFC 6455, 5.4): a PING between
    the fragments of a message just under ws_max_message_bytes is answered with its PONG, and the
    message (within the limit) is delivered, not closed with 1009."""
    async with serving(quiet(ws_max_message_bytes=1000)) as (url, app), client_of(url, app) as client:
        client.send(frame(TEXT, b"a" * 990, fin=False) + frame(PING, b"p" * 20))
        assert await client.frame() == (PONG, True, b"p" * 20)
        client.send(frame(CONT, b"b" * 10))
        assert await client.text() == "echo:" + "a" * 990 + "b" * 10


async def test_a_close_inside_a_message_near_the_limit_is_echoed() -> None:
    """A client close frame between the fragments of a message just under ws_max_message_bytes is
    a close (echoed with its code), not a message over the limit (1009)."""
    async with serving(quiet(ws_max_message_bytes=1000)) as (url, app), client_of(url, app) as client:
        client.send(frame(TEXT, b"a" * 990, fin=False) + frame(CLOSE, close_payload(1000, "x" * 20)))
        code, _ = await client.close_frame()
        assert code == 1000
        await client.ended()


async def test_invalid_utf8_in_a_text_message_is_closed_with_1007() -> None:
    """A text message that is not UTF-8 is answered with a 1007 close and never delivered."""
    async with serving(quiet()) as (url, app), client_of(url, app) as client:
        client.send(frame(TEXT, b"ok\xff\xfe"))
        code, _ = await client.close_frame()
        assert code == 1007
        await client.ended()
        assert client.handler.messages == []
        await ended_once(client.handler)


async def test_invalid_utf8_in_a_fragmented_text_message_is_closed_with_1007() -> None:
    """A fragmented text message whose whole is not UTF-8 (a truncated character) is closed, 1007."""
    async with serving(quiet()) as (url, app), client_of(url, app) as client:
        client.send(frame(TEXT, b"ok", fin=False) + frame(CONT, "\u2603".encode()[:2]))
        code, _ = await client.close_frame()
        assert code == 1007
        await client.ended()


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(frame(TEXT, b"hello", masked=False), id="unmasked"),
        pytest.param(frame(CONT, b"orphan"), id="continuation-without-message"),
        pytest.param(frame(CONT, b"orphan", fin=False), id="continuation-without-message-not-final"),
        pytest.param(frame(TEXT, b"a", fin=False) + frame(TEXT, b"b"), id="text-inside-fragmented"),
        pytest.param(frame(TEXT, b"a", fin=False) + frame(BINARY, b"b"), id="binary-inside-fragmented"),
        pytest.param(frame(PING, b"p", fin=False), id="fragmented-ping"),
        pytest.param(frame(PING, b"p" * 126), id="ping-over-125-bytes"),
        pytest.param(frame(CLOSE, close_payload(1000, "r" * 124)), id="close-over-125-bytes"),
        pytest.param(frame(TEXT, b"hello", rsv=0x40), id="rsv1-without-extension"),
        pytest.param(frame(TEXT, b"hello", rsv=0x10), id="rsv3"),
        pytest.param(frame(0x3, b"?"), id="reserved-data-opcode"),
        pytest.param(frame(0xB, b"?"), id="reserved-control-opcode"),
        pytest.param(frame(CLOSE, b"\x03"), id="close-of-one-byte"),
        pytest.param(frame(CLOSE, close_payload(999, "")), id="close-code-999"),
        pytest.param(frame(CLOSE, close_payload(1005, "")), id="close-code-1005-sent"),
    ],
)
async def test_a_malformed_frame_is_closed_with_1002(data: bytes) -> None:
    """A protocol violation (unmasked client frame, a continuation with no message started, a new
    message inside a fragmented one, a fragmented or oversized control frame, reserved bits or
    opcodes) is answered with a 1002 close, the connection ends and closed() is called once."""
    async with serving(quiet()) as (url, app), client_of(url, app) as client:
        client.send(data)
        code, _ = await client.close_frame()
        assert code == 1002
        await client.ended()
        assert client.handler.messages == []
        await ended_once(client.handler)


async def test_frames_after_a_malformed_one_are_not_delivered() -> None:
    """Whole messages sent after a malformed frame in the same write are not delivered."""
    async with serving(quiet()) as (url, app), client_of(url, app) as client:
        client.send(frame(TEXT, b"before") + frame(CONT, b"orphan") + frame(TEXT, b"after"))
        assert await client.text() == "echo:before"
        code, _ = await client.close_frame()
        assert code == 1002
        await client.ended()
        assert client.handler.messages == ["before"]


# --- the closing handshake ----------------------------------------------------------------------------


@pytest.mark.parametrize(("sent", "echoed"), [(1000, 1000), (1001, 1001), (4001, 4001)])
async def test_a_client_close_is_echoed_and_ends_the_connection(sent: int, echoed: int) -> None:
    """A client close frame is answered with a close of the same code, the TCP connection ends,
    and handler.closed() is called exactly once."""
    async with serving(quiet()) as (url, app), client_of(url, app) as client:
        client.send(frame(TEXT, b"first"))
        assert await client.text() == "echo:first"
        client.send(frame(CLOSE, close_payload(sent, "done")))
        code, _ = await client.close_frame()
        assert code == echoed
        assert await client.ended() == b""
        await ended_once(client.handler)
        assert client.handler.messages == ["first"]


async def test_an_empty_client_close_is_answered_with_an_empty_close() -> None:
    """A close frame without a status code is answered by a close without one (RFC 6455, 5.5.1)."""
    async with serving(quiet()) as (url, app), client_of(url, app) as client:
        client.send(frame(CLOSE))
        assert await client.close_frame() == (None, "")
        await client.ended()
        await ended_once(client.handler)


async def test_a_client_close_with_a_reason_that_is_not_utf8_is_answered_with_1007() -> None:
    """A client close whose reason is not UTF-8 is answered with 1007, not echoed."""
    async with serving(quiet()) as (url, app), client_of(url, app) as client:
        client.send(frame(CLOSE, close_payload(1000, "") + b"\xff"))
        code, _ = await client.close_frame()
        assert code == 1007
        await client.ended()


async def test_a_client_that_just_disconnects_ends_the_handler_once() -> None:
    """A client that drops the TCP connection without a close frame gets handler.closed() once."""
    async with serving(quiet()) as (url, app), client_of(url, app) as client:
        assert client.wire.transport is not None
        client.wire.transport.close()
        await ended_once(client.handler)


async def test_carrier_close_sends_its_code_and_reason_and_ends_after_the_clients_close() -> None:
    """carrier.close(4000, "bye") sends a close frame with 4000/"bye"; messages the client sends
    after it are not delivered; once the client answers with its close the TCP connection ends."""
    async with serving(quiet(read_timeout=5)) as (url, app), client_of(url, app) as client:
        client.send(frame(TEXT, b"close-me"))
        assert await client.close_frame() == (4000, "bye")
        start = time.monotonic()
        client.send(frame(TEXT, b"late"))
        client.send(frame(CLOSE, close_payload(4000)))
        assert await client.ended() == b""  # nothing more: no echo of "late", no second close
        assert time.monotonic() - start < 3, "the connection waited for the close timeout"
        assert client.handler.messages == ["close-me"]
        await ended_once(client.handler)


async def test_a_client_that_never_answers_a_close_is_dropped_after_the_close_timeout() -> None:
    """After carrier.close(), a client that never sends its close is dropped once read_timeout
    (the close timeout) has passed, not before, and handler.closed() is called once."""
    async with serving(quiet(read_timeout=0.5)) as (url, app), client_of(url, app) as client:
        client.send(frame(TEXT, b"close-me"))
        assert await client.close_frame() == (4000, "bye")
        start = time.monotonic()
        assert await client.ended() == b""
        elapsed = time.monotonic() - start
        assert 0.3 <= elapsed < 5, elapsed
        await ended_once(client.handler)


# --- keepalive ----------------------------------------------------------------------------------------


async def test_a_silent_client_receives_a_keepalive_ping() -> None:
    """With ws_ping_interval set, a client that sends nothing receives a protocol PING."""
    settings = make_settings(ws_ping_interval=0.2, read_timeout=5)
    async with serving(settings) as (url, app), client_of(url, app) as client:
        opcode, fin, payload = await client.frame(within=5)
        assert (opcode, fin) == (PING, True), (opcode, payload)
        assert len(payload) <= 125


@pytest.mark.parametrize("answer", ["pong", "text"])
async def test_a_client_that_answers_pings_stays_open_past_the_timeout(answer: str) -> None:
    """A client that answers each keepalive PING (with its PONG, or with any frame) is not closed,
    though it stays far longer than read_timeout; it still gets its echoes afterwards."""
    settings = make_settings(ws_ping_interval=0.2, read_timeout=0.5)
    async with serving(settings) as (url, app), client_of(url, app) as client:
        pings = 0
        deadline = time.monotonic() + 2.5
        while (left := deadline - time.monotonic()) > 0:
            try:
                opcode, _, payload = await client.frame(within=left)
            except TimeoutError:
                break
            assert opcode != CLOSE, f"closed though it answered: {payload!r}"
            if opcode == PING:
                pings += 1
                client.send(frame(PONG, payload) if answer == "pong" else frame(TEXT, b"alive"))
            else:
                assert (opcode, payload) == (TEXT, b"echo:alive")
        assert pings >= 2, pings
        client.send(frame(TEXT, b"still here"))
        while True:
            opcode, _, payload = await client.frame()
            if opcode == PING:
                client.send(frame(PONG, payload))
            elif payload != b"echo:alive":
                break
        assert (opcode, payload) == (TEXT, b"echo:still here")
        assert not client.handler.ends


async def test_a_client_that_never_answers_a_ping_is_closed_with_1011() -> None:
    """A client that never answers the keepalive PING is closed with 1011, within a generous bound
    of read_timeout after the PING, and handler.closed() is called once."""
    settings = make_settings(ws_ping_interval=0.2, read_timeout=0.5)
    async with serving(settings) as (url, app), client_of(url, app) as client:
        opcode, _, _ = await client.frame(within=5)
        assert opcode == PING
        pinged = time.monotonic()
        code, _ = await client.close_frame(within=5)
        assert code == 1011
        elapsed = time.monotonic() - pinged
        assert 0.3 <= elapsed < 5, elapsed
        await client.ended()
        await ended_once(client.handler)


# --- TCP segmentation -----------------------------------------------------------------------------------


async def test_two_frames_in_one_write_are_both_delivered_in_order() -> None:
    """Two (and more) whole frames in one TCP write are each delivered, in order."""
    async with serving(quiet()) as (url, app), client_of(url, app) as client:
        client.send(frame(TEXT, b"one") + frame(TEXT, b"two"))
        assert [await client.text(), await client.text()] == ["echo:one", "echo:two"]
        client.send(b"".join(frame(TEXT, str(i).encode()) for i in range(20)))
        assert [await client.text() for _ in range(20)] == [f"echo:{i}" for i in range(20)]


@pytest.mark.parametrize("size", [5, 300])
async def test_a_frame_split_byte_by_byte_is_delivered_once_complete(size: int) -> None:
    """A frame that arrives one byte per TCP write (short and 16-bit lengths) is delivered once,
    when its last byte is in, and not before."""
    payload = bytes(ord("a") + i % 26 for i in range(size))
    data = frame(TEXT, payload)
    async with serving(quiet()) as (url, app), client_of(url, app) as client:
        assert client.wire.transport is not None
        for i in range(len(data) - 1):
            client.send(data[i : i + 1])
            await asyncio.sleep(0.002)
        await asyncio.sleep(0.05)
        assert client.handler.messages == []
        assert client.wire.data == b""
        client.send(data[-1:])
        assert await client.text() == "echo:" + payload.decode()
        assert client.handler.messages == [payload.decode()]


async def test_a_write_ending_mid_frame_delivers_the_whole_frames_before_it() -> None:
    """A write with one whole frame and the start of the next delivers the first at once and the
    second when the rest arrives."""
    first, second = frame(TEXT, b"whole"), frame(TEXT, b"x" * 200)
    async with serving(quiet()) as (url, app), client_of(url, app) as client:
        client.send(first + second[:3])
        assert await client.text() == "echo:whole"
        client.send(second[3:50])
        await asyncio.sleep(0.05)
        assert client.handler.messages == ["whole"]
        client.send(second[50:])
        assert await client.text() == "echo:" + "x" * 200


# --- server shutdown ------------------------------------------------------------------------------------


async def test_a_server_shutdown_closes_an_open_connection_with_1012() -> None:
    """Stopping the server (leaving running()) sends 1012 to a detached connection, ends it and
    calls handler.closed() once."""
    app = EchoApp()
    async with running(app, quiet()) as url:
        client = await open_client(url, app)
    try:
        code, _ = await client.close_frame()
        assert code == 1012
        await client.ended()
        await ended_once(client.handler)
    finally:
        client.close()
