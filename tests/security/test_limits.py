"""Hostile traffic meets limits that are settings: bodies over ``max_body_bytes`` (413), deep
nesting (422), WebSocket frames over ``ws_max_message_bytes`` (close 1009), frame floods from a
client that does not read (close 4008 after ``ws_send_queue`` frames, others unaffected), request
heads dribbled byte by byte and thousands of idle sockets (cut after ``read_timeout``), while a
WebSocket that only listens stays open (the server pings it)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.reliability.harness import bearer, metric_sum, scrape
from tests.security.conftest import WAIT, Relay, RelayFactory, recv
from tests.security.rawws import RawWebSocket

LIMITS = {
    "PULSAR_READ_TIMEOUT": "1",
    "PULSAR_WS_PING_INTERVAL": "0.3",
    "PULSAR_WS_MAX_MESSAGE_BYTES": "4096",
    "PULSAR_WS_SEND_QUEUE": "32",
    "PULSAR_MAX_BODY_BYTES": "65536",
}
POSTS = [
    ("POST", "/auth/register"),
    ("POST", "/auth/login"),
    ("POST", "/api/v1/topics"),
    ("PUT", "/api/v1/topics/limits"),
    ("POST", "/api/v1/topics/limits/permissions"),
    ("POST", "/api/v1/messages"),
    ("POST", "/api/v1/messages/bulk"),
    ("POST", "/messages/poll"),
]


@pytest.fixture
async def limited(relay_factory: RelayFactory) -> AsyncIterator[Relay]:
    async with relay_factory(**LIMITS) as relay:
        yield relay


def fresh_client(relay: Relay) -> httpx.AsyncClient:
    """No keep-alive: with a 1 s read timeout the server closes idle connections quickly."""
    return httpx.AsyncClient(
        base_url=relay.url, timeout=WAIT, limits=httpx.Limits(max_keepalive_connections=0)
    )


async def test_bodies_over_the_limit_are_413_on_every_endpoint(limited: Relay) -> None:
    """One byte over max_body_bytes, announced (Content-Length) or streamed (chunked): 413 with a
    detail on every endpoint that takes a body; one byte under is not a 413."""
    over = b"x" * (65536 + 1)

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(over), 8192):
            yield over[i : i + 8192]

    async with fresh_client(limited) as http:
        for method, path in POSTS:
            kind = "application/x-www-form-urlencoded" if path == "/auth/login" else "application/json"
            h = {**bearer(limited.admin), "Content-Type": kind}
            for content in (over, chunks()):
                r = await http.request(method, path, content=content, headers=h)
                assert r.status_code == 413, (method, path, r.text)
                assert "exceeds" in r.json()["detail"]
            r = await http.request(method, path, content=b" " * 65536, headers=h)
            assert r.status_code != 413, (method, path)


async def test_nesting_deeper_than_any_decoder_is_422(limited: Relay) -> None:
    """30,000 levels of nesting (under the size limit) on every JSON endpoint: 422, never 500."""
    deep = b"[" * 30_000 + b"]" * 30_000
    async with fresh_client(limited) as http:
        h = {**bearer(limited.admin), "Content-Type": "application/json"}
        for method, path in POSTS:
            if path == "/auth/login":
                continue
            r = await http.request(method, path, content=deep, headers=h)
            assert r.status_code == 422, (method, path, r.text)


async def test_websocket_frame_over_the_limit_closes_1009(limited: Relay) -> None:
    """A frame one byte over ws_max_message_bytes: close 1009; the server keeps serving."""
    async with connect(limited.ws_url(limited.admin), open_timeout=WAIT) as ws:
        await ws.send(json.dumps({"type": "subscribe", "topics": ["x" * 4100]})[:4097])
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(WAIT):
                while True:
                    await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    async with fresh_client(limited) as http:
        assert (await http.get("/health")).status_code == 200


async def test_frame_flood_from_a_client_that_does_not_read_is_closed_4008(
    relay_factory: RelayFactory,
) -> None:
    """A client that floods subscribe frames (each answered with a few KiB) and never reads: the
    server closes it as a slow consumer (4008) once ws_send_queue answers wait, counts it in
    relay_disconnects_total, and a well-behaved client on the same gateway is unaffected."""
    async with relay_factory(PULSAR_WS_SEND_QUEUE="32") as relay:
        await _flood(relay)


async def _flood(limited: Relay) -> None:
    polite = await limited.subscribe(limited.admin, ["flood"])
    flood = await RawWebSocket.open(limited.proc.port, f"/ws?token={limited.admin}")
    frame = json.dumps({"type": "subscribe", "topics": [f"t{i:02d}-" + "x" * 80 for i in range(40)]})
    sent = 0
    try:
        # Far more answers than the outbox and both sides' socket buffers hold.  Hypercorn stops
        # reading a connection it closes (the send below then blocks); uvicorn keeps reading and
        # discarding until the client's close reply or its close timeout: stop on our own.
        while sent < 20_000:
            async with asyncio.timeout(2):
                await flood.send_text(frame)
            sent += 1
    except (TimeoutError, ConnectionResetError, BrokenPipeError):
        pass  # the server stopped reading us: it gave up on this client
    try:
        async with asyncio.timeout(WAIT):
            code = await flood.read_until_close()
    finally:
        flood.close()
    print(f"\nflood: closed {code} after {sent} frames")
    # The 4008 close frame waits behind everything this client never read; when the server gives
    # up on delivering it (read_timeout) it drops the connection, and the reset discards the unread
    # frames, close frame included.  Either way the server must have closed it as a slow consumer.
    assert code in (4008, None), f"after {sent} frames: {code}"
    await polite.send('{"type":"ping"}')
    assert (await recv(polite))["type"] == "pong"
    assert metric_sum(await scrape(limited.url), "relay_disconnects_total", reason="slow_consumer") >= 1


async def test_request_head_dribbled_byte_by_byte_is_cut_off(limited: Relay) -> None:
    """A client sending one header line every 0.2 s never completes its request: the server closes
    the connection after read_timeout (1 s) instead of waiting for it (bounded: 20 lines)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", limited.proc.port)
    writer.write(b"GET /health HTTP/1.1\r\nHost: relay\r\n")
    cut_after = None
    try:
        for line in range(20):
            writer.write(b"X-Slow-%d: 1\r\n" % line)
            await writer.drain()
            try:
                async with asyncio.timeout(0.2):
                    if await reader.read(1024) == b"":
                        cut_after = line
                        break
            except TimeoutError:
                continue
    except (ConnectionResetError, BrokenPipeError):
        cut_after = -1
    finally:
        writer.close()
    assert cut_after is not None, "the server waited for a head dribbled over 4 s"


async def test_body_dribbled_byte_by_byte_is_cut_off(limited: Relay) -> None:
    """A complete head, then a body dribbled one byte every 0.2 s: the server stops waiting
    (closes, or answers 4xx) before the client has dribbled for 4 s (four read timeouts)."""
    await body_dribbled_is_cut_off(limited, "/api/v1/messages")


async def body_dribbled_is_cut_off(relay: Relay, path: str) -> None:
    """A complete head to ``path``, then a body dribbled a byte every 0.2 s: cut within 4 s."""
    reader, writer = await asyncio.open_connection("127.0.0.1", relay.proc.port)
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: relay\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {relay.admin}\r\nContent-Length: 60000\r\n\r\n".encode()
    )
    answer = None
    try:
        for _ in range(20):  # 4 s of dribbling at most: four read timeouts
            writer.write(b" ")
            await writer.drain()
            try:
                async with asyncio.timeout(0.2):
                    answer = await reader.read(1024)
                    break
            except TimeoutError:
                continue
    except (ConnectionResetError, BrokenPipeError):
        answer = b""
    finally:
        writer.close()
    assert answer is not None, f"{path}: the server waited for a body dribbled over 4 s"
    assert answer == b"" or answer.startswith(b"HTTP/1.1 4"), answer


async def test_a_websocket_that_only_listens_outlives_the_read_timeout(limited: Relay) -> None:
    """A subscriber that never sends after subscribing (a browser) is kept open by the server's
    protocol pings, and gets a message published after several read timeouts."""
    async with connect(limited.ws_url(limited.admin), open_timeout=WAIT, ping_interval=None) as ws:
        await ws.send(json.dumps({"type": "subscribe", "topics": ["quiet"]}))
        assert (await recv(ws))["type"] == "subscribed"
        await asyncio.sleep(3.5)  # idle across three read timeouts: this is the condition under test
        async with fresh_client(limited) as http:
            r = await http.post(
                "/api/v1/messages", json={"topic": "quiet", "payload": {}}, headers=bearer(limited.admin)
            )
            assert r.status_code == 201
        frame = await recv(ws)
        assert frame["type"] == "message", frame


@pytest.mark.slow
async def test_thousands_of_idle_sockets_are_closed_and_service_goes_on(limited: Relay) -> None:
    """2,000 TCP connections that never send a byte: the service answers meanwhile, and closes
    every one of them after read_timeout."""
    conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        for _ in range(0, 2000, 100):
            conns += await asyncio.gather(
                *(asyncio.open_connection("127.0.0.1", limited.proc.port) for _ in range(100))
            )
        async with fresh_client(limited) as http:
            assert (await http.get("/health")).status_code == 200
            r = await http.post(
                "/api/v1/messages", json={"topic": "idle", "payload": {}}, headers=bearer(limited.admin)
            )
            assert r.status_code == 201

        async def closed_by_server(reader: asyncio.StreamReader) -> bool:
            try:
                async with asyncio.timeout(30):
                    return await reader.read(1) == b""
            except ConnectionResetError:
                return True

        results = await asyncio.gather(*(closed_by_server(r) for r, _ in conns))
        assert all(results), f"{results.count(False)} idle sockets still open"
    finally:
        for _, w in conns:
            w.close()
