"""The WebSocket transport, ``/ws``: authenticate the handshake, then read frames into the session
while a writer puts the outbox onto the socket (``gateway.writer``), and close with the documented
code when the client goes, a write fails or the session asks to close (``docs/CLOSE_CODES.md``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable

from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from gateway import protocol
from gateway.connection import Connection
from gateway.node import Node
from gateway.outbox import Outbox
from gateway.session import Session
from gateway.writer import Writer
from relaycore import metrics
from relaycore.errors import Unauthenticated, Unavailable
from relaycore.models import User
from relaycore.tokens import Claims
from relaycore.web import JSON, context_of
from relaycore.wsframes import FRAMES_DETACH, FRAMES_EXTENSION, FRAMES_WRITE

log = logging.getLogger(__name__)

BEARER = "bearer"
_connections = metrics.connections.labels("websocket")


def _credentials(ws: WebSocket) -> tuple[str | None, str | None]:
    """(token, subprotocol to accept): the ``bearer``, ``bearer.<jwt>`` pair, else ``?token=``."""
    offered = list(ws.scope.get("subprotocols") or [])
    chosen = BEARER if BEARER in offered else None
    for proto in offered:
        if proto.startswith(BEARER + ".") and len(proto) > len(BEARER) + 1:
            return proto[len(BEARER) + 1 :], chosen
    return ws.query_params.get("token") or None, chosen


async def _authenticate(ws: WebSocket, token: str | None) -> tuple[User, Claims] | protocol.Close:
    authorizer = context_of(ws).authorizer
    if not token:
        return protocol.MISSING_TOKEN
    try:
        claims = authorizer.claims(token)
    except Unauthenticated:
        return protocol.BAD_TOKEN
    try:
        user = await authorizer.user(claims.sub)
        if user is None or not user.is_active:
            return protocol.NO_USER
        await authorizer.check_session(claims.sid)
    except Unauthenticated:
        return protocol.REVOKED
    except Unavailable:
        return protocol.HANDSHAKE_UNAVAILABLE
    if not user.has("read"):
        return protocol.NO_READ
    return user, claims


class WebSocketEndpoint:
    """``/ws`` as a bare ASGI app, so frames go to the server's own ``send`` (Starlette's
    ``WebSocket`` still does the handshake, the reads and the close)."""

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Hands back the socket's coroutine rather than awaiting it: one frame fewer held for the
        # socket's life.
        return serve_socket(WebSocket(scope, receive, send), send)


async def _handshake(ws: WebSocket) -> tuple[tuple[User, Claims] | protocol.Close, str | None]:
    """Who the handshake authenticates, and the subprotocol to accept (the token is only held
    here, not for the socket's life)."""
    token, subprotocol = _credentials(ws)
    return await _authenticate(ws, token), subprotocol


async def serve_socket(ws: WebSocket, send: Send) -> None:
    node: Node = ws.app.state.gateway
    who, subprotocol = await _handshake(ws)
    if isinstance(who, protocol.Close):  # before accept: the client sees an HTTP 403
        if who is protocol.HANDSHAKE_UNAVAILABLE and "websocket.http.response" in ws.scope.get(
            "extensions", {}
        ):
            await ws.send_denial_response(JSON({"detail": who.reason}, 503))  # retryable, not a 403
        else:
            await ws.close(who.code, who.reason)
        return
    user, claims = who
    await ws.accept(subprotocol=subprotocol)
    # The handshake's headers and offered subprotocols (the token among them) are not read again:
    # about 2 KiB of every idle socket (bench/socket_memory.py).
    ws.scope["headers"] = []
    ws.scope["subprotocols"] = []
    frames = ws.scope.get("extensions", {}).get(FRAMES_EXTENSION)
    detach = frames.get(FRAMES_DETACH) if frames is not None else None
    if detach is not None:
        # The server carries the socket from here (gateway.connection): this coroutine, its task
        # and everything it holds end now.
        Connection(node, user, expires_at=float(claims.exp), sign_in=claims.sid).attach(detach)
        return
    # A server without detach: this task reads the socket for its whole life.
    # The handler reads the socket itself; a close the session asks for (or a failed write)
    # interrupts that read by cancelling this task: no reader task, no future per connection.
    me = asyncio.current_task()
    assert me is not None
    interrupting = False

    def interrupt(_: object = None) -> None:
        nonlocal interrupting
        if not interrupting:
            interrupting = True
            me.cancel()

    outbox = Outbox(node.settings.ws_send_queue, node.settings.ws_send_queue_bytes)
    outbox.on_close = interrupt
    write = frames.get(FRAMES_WRITE) if frames is not None else None
    writer = Writer(send, outbox, node.writes, on_fail=interrupt, framed=frames is not None, write=write)
    session = node.open_session(user, outbox, expires_at=float(claims.exp), sign_in=claims.sid)
    _connections.inc()
    client_gone = cancelled = False
    try:
        await _read(ws, session)
        client_gone = True
    except asyncio.CancelledError:
        if not interrupting or me.uncancel() > 0:  # the server's grace period is over
            interrupting = True  # no self-cancel from the close below
            outbox.close(protocol.GOING_AWAY)
            cancelled = True
    finally:
        interrupting = True
        writer.stop()
        node.close_session(session)
        _connections.dec()
    close = outbox.closing
    if close is not None and not client_gone:
        metrics.disconnects.labels(close.reason.lower().replace(" ", "_")).inc()
        with contextlib.suppress(Exception):
            # A client that stopped reading gets its close frame once it reads again (a server may
            # hold the frame until the socket drains); one that never does is let go after
            # read_timeout, like any silent connection.
            async with asyncio.timeout(node.settings.read_timeout):
                await ws.close(close.code, close.reason)
    if cancelled:
        raise asyncio.CancelledError


async def _read(ws: WebSocket, session: Session) -> None:
    """Returns when the client goes away; a session that fails on a frame is closed (1011)."""
    try:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("text")
            if data is None:
                data = message.get("bytes") or b""
            await session.handle(data)
    except WebSocketDisconnect:
        return
    except Exception:
        log.exception("session %s failed on a frame", session.id)
        session.outbox.close(protocol.INTERNAL_ERROR)
        await asyncio.Event().wait()  # let the close win the race, not "client gone"
