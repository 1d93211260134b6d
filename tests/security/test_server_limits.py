"""The server-level protections hold under the HTTP server that runs a service (``PULSAR_SERVER``):
split ingest and gateway processes under uvicorn cut a head
dribbled byte by byte, a body dribbled byte by byte and an idle keep-alive connection after
``read_timeout``, close an oversized WebSocket frame with 1009, and keep a WebSocket that only
listens open past ``read_timeout``."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.client import connect

from tests.reliability.harness import identity
from tests.security import test_limits as limits
from tests.security.conftest import WAIT, Relay, RelayFactory, recv

SERVERS = ("uvicorn",)


@contextlib.asynccontextmanager
async def serving(relay_factory: RelayFactory, service: str, server: str) -> AsyncIterator[Relay]:
    """``service`` alone under ``server`` with the short limits of test_limits; ``admin`` holds a
    token for a read/write user written straight into Valkey (no auth service here)."""
    async with relay_factory(service, PULSAR_SERVER=server, **limits.LIMITS) as relay:
        _, relay.admin = await identity(relay.valkey.url, "operator")
        r = await relay.http.get("/health")
        assert r.headers["server"].startswith(server), r.headers  # the server under test runs
        yield relay


@pytest.mark.parametrize("server", SERVERS)
@pytest.mark.parametrize("service", ["ingest", "gateway"])
async def test_head_and_body_dribbled_and_idle_connections_are_cut(
    relay_factory: RelayFactory, service: str, server: str
) -> None:
    """A head dribbled a line every 0.2 s, a body dribbled a byte every 0.2 s (on the service's own
    body-taking endpoint), a connection that never sends and a keep-alive connection left idle
    after a response are all closed (or answered 4xx) after read_timeout (1 s)."""
    async with serving(relay_factory, service, server) as relay:
        await limits.test_request_head_dribbled_byte_by_byte_is_cut_off(relay)
        path = "/api/v1/messages" if service == "ingest" else "/messages/poll"
        await limits.body_dribbled_is_cut_off(relay, path)
        await _silent_connection_is_closed(relay)
        await _idle_keep_alive_connection_is_closed(relay)


@pytest.mark.parametrize("server", SERVERS)
async def test_gateway_websocket_limits(relay_factory: RelayFactory, server: str) -> None:
    """On a gateway: a frame over ws_max_message_bytes closes 1009 (the server keeps serving), and a
    subscriber that only listens is still served after three read timeouts (protocol pings)."""
    async with serving(relay_factory, "gateway", server) as relay:
        await limits.test_websocket_frame_over_the_limit_closes_1009(relay)
        async with connect(relay.ws_url(relay.admin), open_timeout=WAIT, ping_interval=None) as ws:
            await ws.send(json.dumps({"type": "subscribe", "topics": ["quiet"]}))
            assert (await recv(ws))["type"] == "subscribed"
            await asyncio.sleep(3.5)  # idle across three read timeouts: the condition under test
            await ws.send('{"type":"ping"}')
            assert (await recv(ws))["type"] == "pong"


@pytest.mark.slow
async def test_thousands_of_idle_sockets_are_closed_under_uvicorn(relay_factory: RelayFactory) -> None:
    """2,000 silent TCP connections to an ingest process under uvicorn: it answers meanwhile and
    closes every one after read_timeout (uvicorn alone would hold them for ever)."""
    async with serving(relay_factory, "ingest", "uvicorn") as relay:
        await limits.test_thousands_of_idle_sockets_are_closed_and_service_goes_on(relay)


async def _closed_by_server(reader: asyncio.StreamReader) -> bool:
    try:
        async with asyncio.timeout(WAIT):
            return await reader.read(1) == b""
    except ConnectionResetError:
        return True


async def _silent_connection_is_closed(relay: Relay) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", relay.proc.port)
    try:
        assert await _closed_by_server(reader), "a connection that never sent a byte is still open"
    finally:
        writer.close()


async def _idle_keep_alive_connection_is_closed(relay: Relay) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", relay.proc.port)
    try:
        writer.write(b"GET /health HTTP/1.1\r\nHost: relay\r\n\r\n")
        async with asyncio.timeout(WAIT):
            head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        length = next(
            int(line.split(b":")[1])
            for line in head.lower().split(b"\r\n")
            if line.startswith(b"content-length")
        )
        await reader.readexactly(length)
        assert await _closed_by_server(reader), "an idle keep-alive connection is still open"
    finally:
        writer.close()
