"""The dependency internals the relay relies on, checked against the installed releases.

Each adapter module lists what it touches in ``INTERNALS``; every entry has a check here, and a
check that fails says which internal changed and what stops working.  Run on the locked versions
(``make test``) and the minimum ones (``make test-min``)."""

from __future__ import annotations

import asyncio
import gc
import inspect
import os
import re
import signal
import socket
import weakref
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import redis.asyncio as aredis
from redis.asyncio.cluster import ClusterNode, NodesManager, RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ResponseError
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.asyncio.client import connect

import pulsar_relay.serve_uvicorn as uv_adapter
import relaycore.adapters.redis as redis_adapter
import relaycore.adapters.starlette as starlette_adapter
from relaycore.valkey import resp
from relaycore.wsframes import FRAME_KEY, FRAMES_DETACH, FRAMES_EXTENSION, FRAMES_WRITE, text_frame
from tests.conftest import make_settings
from tests.support.asgi import lifespan_or_http
from tests.support.serve import running


def _callable_as(owner: type, name: str, *args: Any, **kwargs: Any) -> None:
    fn = getattr(owner, name, None)
    assert callable(fn), f"{owner.__name__}.{name} is gone"
    try:
        inspect.signature(fn).bind(None, *args, **kwargs)
    except TypeError as exc:
        raise AssertionError(
            f"{owner.__name__}.{name} no longer takes the arguments we pass: {exc}"
        ) from None


def _awaitable_as(owner: type, name: str, *args: Any) -> None:
    _callable_as(owner, name, *args)
    assert inspect.iscoroutinefunction(getattr(owner, name)), (
        f"{owner.__name__}.{name} is no longer awaitable"
    )


# redis-py --------------------------------------------------------------------------------------

REDIS_CHECKS: dict[str, Callable[[], None]] = {
    "ConnectionPool.get_connection()": lambda: _callable_as(aredis.BlockingConnectionPool, "get_connection"),
    "ConnectionPool.release(connection)": lambda: _callable_as(aredis.ConnectionPool, "release", None),
    "AbstractConnection.pack_commands(commands)": lambda: _callable_as(
        AbstractConnection, "pack_commands", []
    ),
    "AbstractConnection.send_packed_command(packed)": lambda: _callable_as(
        AbstractConnection, "send_packed_command", b""
    ),
    "AbstractConnection.read_response()": lambda: _callable_as(AbstractConnection, "read_response"),
    "AbstractConnection.disconnect(nowait=True)": lambda: _callable_as(
        AbstractConnection, "disconnect", nowait=True
    ),
    "AbstractConnection.socket_timeout": lambda: _socket_timeout_is_honoured(),
    "ClusterNode.acquire_connection()": lambda: _callable_as(ClusterNode, "acquire_connection"),
    "ClusterNode.release(connection)": lambda: _callable_as(ClusterNode, "release", None),
    "RedisCluster.nodes_manager.move_slot(MovedError)": lambda: _awaitable_as(
        NodesManager, "move_slot", None
    ),
    "RedisCluster.get_node_from_key(key)": lambda: _callable_as(RedisCluster, "get_node_from_key", "k"),
}


def _socket_timeout_is_honoured() -> None:
    """A connection keeps its ``socket_timeout`` as an attribute, and with it None neither the
    write nor a read is given a timeout of redis-py's own (the adapter's deadline covers both)."""
    conn = aredis.Connection(socket_timeout=2.5)
    assert conn.socket_timeout == 2.5, "the attribute is gone or renamed"
    send = inspect.getsource(AbstractConnection.send_packed_command)
    read = inspect.getsource(AbstractConnection.read_response)
    assert "self.socket_timeout" in send and "self.socket_timeout" in read, "no longer read per call"


@pytest.mark.parametrize("internal", sorted(redis_adapter.INTERNALS))
def test_redis_internal_is_there(internal: str) -> None:
    """Each redis-py internal relaycore.adapters.redis names exists with the call shape it uses."""
    try:
        REDIS_CHECKS[internal]()
    except AssertionError as exc:
        pytest.fail(f"redis-py changed {internal} ({redis_adapter.INTERNALS[internal]}): {exc}")


def test_every_redis_internal_has_a_check() -> None:
    """An internal added to the adapter without a check here fails, by name."""
    assert set(REDIS_CHECKS) == set(redis_adapter.INTERNALS)


async def test_a_packed_batch_round_trips_on_one_connection(valkey_url: str) -> None:
    """send_packed and send_pinned on a real Valkey: replies in order, an error reply as a value
    (its code readable), and the connection back in the pool."""
    client = aredis.Redis.from_url(valkey_url)
    try:
        replies = await redis_adapter.send_packed(
            client, resp([b"SET", b"adapter:k", b"v"]) + resp([b"XGROUP", b"CREATE", b"nokey", b"g", b"$"]), 2
        )
        assert replies[0] in (b"OK", "OK", True), replies
        assert isinstance(replies[1], ResponseError), replies
        pinned = await redis_adapter.send_pinned(
            client, "adapter:k", ("GET", "adapter:k"), ("LPUSH", "adapter:k", 1)
        )
        assert pinned[0] == b"v"
        assert redis_adapter.error_code(pinned[1]) == "WRONGTYPE", pinned[1]
    finally:
        await client.delete("adapter:k")
        await client.aclose()


async def test_storage_errors_are_classified_by_type(valkey_url: str) -> None:
    """A real BUSYGROUP reply is told apart by its code, and a real refused connection becomes
    Unavailable (503) through guarded(), whatever the message says."""
    from relaycore.errors import Unavailable
    from relaycore.valkey import guarded

    client = aredis.Redis.from_url(valkey_url)
    try:
        await client.xgroup_create("adapter:s", "g", id="$", mkstream=True)
        with pytest.raises(ResponseError) as caught:
            await client.xgroup_create("adapter:s", "g", id="$", mkstream=True)
        assert redis_adapter.error_code(caught.value) == "BUSYGROUP"
    finally:
        await client.delete("adapter:s")
        await client.aclose()
    dead = aredis.Redis(host="127.0.0.1", port=_closed_port(), socket_connect_timeout=1)
    try:
        with pytest.raises(Unavailable):
            async with guarded():
                await dead.ping()
    finally:
        await dead.aclose()


async def test_a_round_trip_that_gets_no_reply_times_out_once_at_its_deadline() -> None:
    """Against a real Valkey stopped mid-use (SIGSTOP: the connection stays open, nothing is
    answered), a packed batch fails with redis-py's TimeoutError after the connection's
    socket_timeout instead of hanging; once Valkey resumes the pool serves again, its connections
    still carrying their socket_timeout."""
    from redis.exceptions import TimeoutError as RedisTimeoutError

    from tests.support.valkey import ValkeyServer

    server = ValkeyServer().start()
    assert server.proc is not None
    client = aredis.Redis.from_url(server.url, socket_timeout=0.3)
    try:
        assert await redis_adapter.send_packed(client, resp([b"PING"]), 1) in ([b"PONG"], ["PONG"], [True])
        os.kill(server.proc.pid, signal.SIGSTOP)
        started = asyncio.get_running_loop().time()
        with pytest.raises(RedisTimeoutError):
            await redis_adapter.send_packed(client, resp([b"PING"]) + resp([b"PING"]), 2)
        assert 0.25 <= asyncio.get_running_loop().time() - started < 2
        os.kill(server.proc.pid, signal.SIGCONT)
        assert len(await redis_adapter.send_packed(client, resp([b"PING"]), 1)) == 1  # usable again
        conn = await client.connection_pool.get_connection()
        assert conn.socket_timeout == 0.3
        await client.connection_pool.release(conn)
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)
        await client.aclose()
        server.cleanup()


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# Starlette -------------------------------------------------------------------------------------


async def test_starlette_calls_the_stack_put_in_front() -> None:
    """Starlette.middleware_stack, once set, receives every call (relaycore.adapters.starlette):
    otherwise /ws handshakes and ingest's publish routes would silently take the slow path."""
    assert set(starlette_adapter.INTERNALS) == {
        "Starlette.build_middleware_stack()",
        "Starlette.middleware_stack",
    }
    seen: list[str] = []

    def front(stack: Any) -> Any:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            seen.append(scope.get("path", scope["type"]))
            await stack(scope, receive, send)

        return app

    app = Starlette(routes=[Route("/x", lambda request: PlainTextResponse("ok"))])
    starlette_adapter.put_in_front(app, front)
    async with running(app, make_settings()) as url, httpx.AsyncClient(base_url=url) as client:
        assert (await client.get("/x")).text == "ok"
    assert "/x" in seen, "Starlette no longer calls the middleware_stack set on it: the fast paths are off"


# uvicorn ---------------------------------------------------------------------------------------

WS_ATTRIBUTES = {
    "WebSocketsSansIOProtocol.response.status_code",
    "WebSocketsSansIOProtocol.request/response",
    "WebSocketsSansIOProtocol.config.ws_per_message_deflate",
    "WebSocketsSansIOProtocol.scope",
    "WebSocketsSansIOProtocol.writable",
    "WebSocketsSansIOProtocol.handshake_complete",
    "WebSocketsSansIOProtocol.initial_response",
    "WebSocketsSansIOProtocol.disconnected",
    "WebSocketsSansIOProtocol.close_sent",
    "WebSocketsSansIOProtocol.conn.state",
    "WebSocketsSansIOProtocol.transport",
    "WebSocketsSansIOProtocol.queue",
    "WebSocketsSansIOProtocol.conn.parser/conn.reader.buffer",
    "WebSocketsSansIOProtocol.read_paused",
    "WebSocketsSansIOProtocol.connections",
    "WebSocketsSansIOProtocol.frames",
}
HTTP_ATTRIBUTES = {
    "HttpToolsProtocol.parser.should_upgrade()",
    "HttpToolsProtocol.pipeline",
    "HttpToolsProtocol.transport/loop/timeout_keep_alive",
}
METHODS = {
    "WebSocketsSansIOProtocol.handle_connect(event)": (WebSocketsSansIOProtocol, ["handle_connect"]),
    "WebSocketsSansIOProtocol.send(message)": (WebSocketsSansIOProtocol, ["send"]),
    "WebSocketsSansIOProtocol.stop_keepalive()": (WebSocketsSansIOProtocol, ["stop_keepalive"]),
    "WebSocketsSansIOProtocol.run_asgi()": (WebSocketsSansIOProtocol, ["run_asgi"]),
    "HttpToolsProtocol.connection_made/connection_lost": (
        HttpToolsProtocol,
        ["connection_made", "connection_lost"],
    ),
    "HttpToolsProtocol.on_headers_complete()": (HttpToolsProtocol, ["on_headers_complete"]),
    "HttpToolsProtocol.on_response_complete()": (HttpToolsProtocol, ["on_response_complete"]),
    "Server.capture_signals()": (uv_adapter.uvicorn.Server, ["capture_signals"]),
}


@pytest.mark.parametrize(
    ("attribute", "stand_in"), [("queue", uv_adapter.Mailbox), ("writable", uv_adapter.Flag)]
)
def test_the_stand_ins_offer_every_method_uvicorn_calls(attribute: str, stand_in: type) -> None:
    """Each method uvicorn's WebSocket protocol calls on its queue and its writable event exists on
    the lean stand-in serve_uvicorn puts there (a new one fails here, by name)."""
    source = inspect.getsource(WebSocketsSansIOProtocol)
    called = set(re.findall(rf"self\.{attribute}\.(\w+)", source))
    assert called, f"uvicorn no longer uses self.{attribute}"
    missing = sorted(m for m in called if not callable(getattr(stand_in, m, None)))
    assert not missing, f"uvicorn calls self.{attribute}.{missing}, which {stand_in.__name__} lacks"


def test_every_uvicorn_internal_has_a_check() -> None:
    """An internal added to serve_uvicorn without a check here fails, by name."""
    checked = (
        WS_ATTRIBUTES | HTTP_ATTRIBUTES | set(METHODS) | {"Server.should_exit/force_exit", "Server.started"}
    )
    assert checked == set(uv_adapter.INTERNALS)


@pytest.mark.parametrize("internal", sorted(METHODS))
def test_uvicorn_method_is_there(internal: str) -> None:
    """Each uvicorn method serve_uvicorn overrides or calls still exists."""
    owner, names = METHODS[internal]
    for name in names:
        assert callable(getattr(owner, name, None)), (
            f"uvicorn no longer has {internal} ({uv_adapter.INTERNALS[internal]})"
        )


def _missing(obj: Any, internal: str) -> list[str]:
    """The attribute paths an INTERNALS entry names (``Owner.a.b``, ``Owner.x/y/z``) that ``obj`` lacks."""
    _, _, rest = internal.partition(".")
    missing = []
    for path in rest.removesuffix("()").split("/"):
        target = obj
        for part in path.split("."):
            if not hasattr(target, part):
                missing.append(path)
                break
            target = getattr(target, part)
    return missing


async def _app(scope: Any, receive: Any, send: Any) -> None:
    if not await lifespan_or_http(scope, receive, send):
        await receive()
        await send({"type": "websocket.accept", "headers": []})
        frames = scope.get("extensions", {}).get(FRAMES_EXTENSION)
        if frames is not None:
            if not frames[FRAMES_WRITE](text_frame("one")):
                await send({"type": "websocket.send", "text": "relay.frames' write wrote nothing"})
            await send({"type": "websocket.send", FRAME_KEY: text_frame("two") + text_frame("three")})
        else:
            await send({"type": "websocket.send", "text": "relay.frames is not offered"})
        await receive()


async def test_relay_frames_is_offered_and_written_under_the_default_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Under uvicorn as `pulsar-relay serve` runs it, a WebSocket scope lists relay.frames and
    pre-encoded frames reach the client as they are, written at once or sent; the protocol
    objects have every attribute serve_uvicorn reads (a missing one is named), and an accepted
    one lets its handshake go."""
    ws_protocols: list[list[str]] = []
    live: list[Any] = []
    http_protocols: list[list[str]] = []
    requests: list[weakref.ref[Any]] = []
    handle_connect = uv_adapter.FramedWebSocketProtocol.handle_connect
    on_headers_complete = uv_adapter.HeadTimeoutProtocol.on_headers_complete

    # Checked while the connection is live (uvicorn drops some of them when it closes).
    def spy_connect(self: Any, event: Any) -> None:
        requests.append(weakref.ref(event))
        handle_connect(self, event)
        ws_protocols.append([m for i in sorted(WS_ATTRIBUTES) for m in _missing(self, i)])
        live.append(self)

    def spy_headers(self: Any) -> None:
        http_protocols.append([m for i in sorted(HTTP_ATTRIBUTES) for m in _missing(self, i)])
        on_headers_complete(self)

    monkeypatch.setattr(uv_adapter.FramedWebSocketProtocol, "handle_connect", spy_connect)
    monkeypatch.setattr(uv_adapter.HeadTimeoutProtocol, "on_headers_complete", spy_headers)
    async with running(_app, make_settings()) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            assert (await client.get("/")).text == "ok"
        async with connect(url.replace("http", "ws", 1) + "/ws") as ws:
            got = [await asyncio.wait_for(ws.recv(), 10)]
            while got[-1] in ("one", "two"):
                got.append(await asyncio.wait_for(ws.recv(), 10))
            held = [(p.request, p.response) for p in live]
            gc.collect()
            request_kept = [r() is not None for r in requests]
    assert ws_protocols, "uvicorn no longer calls `handle_connect`: relay.frames is off"
    assert got == ["one", "two", "three"], f"relay.frames is off under the default server: {got}"
    assert not ws_protocols[0], f"uvicorn's WebSocket protocol lacks {ws_protocols[0]}: relay.frames is off"
    assert held == [(None, None)], "the accepted connection still holds its handshake request/response"
    assert request_kept == [False], "websockets' parser still holds the handshake request (its headers)"
    assert http_protocols, "uvicorn no longer calls `on_headers_complete`: the head timeout is off"
    assert not http_protocols[0], f"uvicorn's HTTP protocol lacks {http_protocols[0]}: no head timeout"


async def test_uvicorn_server_says_when_it_started() -> None:
    """A worker tells its parent it serves when Server.started turns true (pulsar_relay.workers):
    false before serve(), true once it listens."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    server = uv_adapter.RelayServer(uv_adapter.uvicorn_config(_app, make_settings(), "127.0.0.1", 0))
    assert server.started is False, "uvicorn.Server lost `started`: workers would never report ready"
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(10):
            while not server.started:  # noqa: ASYNC110 - the flag is what is under test
                await asyncio.sleep(0.01)
    finally:
        server.stop()
        await asyncio.wait_for(task, 10)
        sock.close()


class _Echo:
    """A detached connection's handler: echoes each message, remembers the end."""

    def __init__(self) -> None:
        self.carrier: Any = None
        self.ended = 0

    def received(self, data: str | bytes) -> bool:
        self.carrier.write(text_frame(f"echo {data!r}"))
        return True

    def closed(self) -> None:
        self.ended += 1


async def test_detach_outlives_the_app_and_lets_uvicorns_protocol_go() -> None:
    """relay.frames' detach under the default server: the socket stays open after the app's
    coroutine returns (uvicorn's run_asgi closes a stand-in, not the socket), a message sent before
    the app detached is read after it, uvicorn's protocol object and its keepalive timer are
    released (a pending ping timer would hold it), and the end is reported once."""
    echoes: list[_Echo] = []
    protocols: list[weakref.ref[Any]] = []
    returned = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            await _app(scope, receive, send)
            return
        await receive()
        await asyncio.sleep(0.2)  # the client's first message arrives before the accept
        await send({"type": "websocket.accept"})
        protocols.append(weakref.ref(send.__self__))
        echo = _Echo()
        echoes.append(echo)
        echo.carrier = scope["extensions"][FRAMES_EXTENSION][FRAMES_DETACH](echo)
        returned.set()

    async with running(app, make_settings()) as url:
        reader, writer = await asyncio.open_connection(*url.removeprefix("http://").split(":"))
        writer.write(
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 101"), head
        writer.write(bytes((0x81, 0x80 | 5)) + b"\0\0\0\0" + b"first")  # before the app detaches
        await asyncio.wait_for(returned.wait(), 10)
        await asyncio.sleep(0.1)  # run_asgi has finished
        writer.write(bytes((0x81, 0x80 | 6)) + b"\0\0\0\0" + b"second")
        got = [await asyncio.wait_for(reader.readexactly(2 + len("echo 'first'")), 10)]
        got.append(await asyncio.wait_for(reader.readexactly(2 + len("echo 'second'")), 10))
        gc.collect()
        protocol_kept = protocols[0]() is not None
        writer.write(bytes((0x88, 0x82)) + b"\0\0\0\0" + b"\x03\xe8")
        echoed_close = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        await asyncio.sleep(0.1)
    assert [g[2:] for g in got] == [b"echo 'first'", b"echo 'second'"]
    assert not protocol_kept, "uvicorn's WebSocket protocol is still held after detach"
    assert echoed_close.endswith(b"\x88\x02\x03\xe8"), echoed_close
    assert echoes[0].ended == 1


def test_uvicorn_server_has_the_stop_flags() -> None:
    """RelayServer stops uvicorn through Server.should_exit/force_exit (stop_on_signals)."""
    server = uv_adapter.RelayServer(uv_adapter.uvicorn_config(_app, make_settings(), "127.0.0.1", 0))
    missing = _missing(server, "Server.should_exit/force_exit")
    assert not missing, f"uvicorn.Server lacks {missing}: signals would not stop the server"
