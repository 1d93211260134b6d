"""The WebSocket transport, ``/ws``: authenticate the handshake, then run the connection as a
reader (frames into the session) and a writer (the outbox onto the socket), and close with the
documented code when either ends or the session asks to close (``docs/CLOSE_CODES.md``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from starlette.websockets import WebSocket, WebSocketDisconnect

from gateway import protocol
from gateway.node import Node
from gateway.outbox import CONTROL, REPLAYED, Outbox
from gateway.session import Session
from relaycore import metrics
from relaycore.errors import Unauthenticated, Unavailable
from relaycore.models import User, now_ms
from relaycore.web import JSON, context_of

log = logging.getLogger(__name__)

BEARER = "bearer"
CLOSE_TIMEOUT = 2.0  # a client that reads nothing cannot hold the handler open on its close frame
_delivered = metrics.messages_delivered.labels("websocket")
_latency = metrics.delivery_latency.labels("websocket")
_connections = metrics.connections.labels("websocket")


def _credentials(ws: WebSocket) -> tuple[str | None, str | None]:
    """(token, subprotocol to accept): the ``bearer``, ``bearer.<jwt>`` pair, else ``?token=``."""
    offered = list(ws.scope.get("subprotocols") or [])
    chosen = BEARER if BEARER in offered else None
    for proto in offered:
        if proto.startswith(BEARER + ".") and len(proto) > len(BEARER) + 1:
            return proto[len(BEARER) + 1 :], chosen
    return ws.query_params.get("token") or None, chosen


async def _authenticate(ws: WebSocket, token: str | None) -> tuple[User, float] | protocol.Close:
    authorizer = context_of(ws).authorizer
    if not token:
        return protocol.MISSING_TOKEN
    try:
        claims = authorizer.claims(token)
        user = await authorizer.user(claims.sub)
    except Unauthenticated:
        return protocol.BAD_TOKEN
    except Unavailable:
        return protocol.HANDSHAKE_UNAVAILABLE
    if user is None or not user.is_active:
        return protocol.NO_USER
    if not user.has("read"):
        return protocol.NO_READ
    return user, float(claims.exp)


async def websocket_endpoint(ws: WebSocket) -> None:
    node: Node = ws.app.state.gateway
    token, subprotocol = _credentials(ws)
    who = await _authenticate(ws, token)
    if isinstance(who, protocol.Close):  # before accept: the client sees an HTTP 403
        if who is protocol.HANDSHAKE_UNAVAILABLE and "websocket.http.response" in ws.scope.get(
            "extensions", {}
        ):
            await ws.send_denial_response(JSON({"detail": who.reason}, 503))  # retryable, not a 403
        else:
            await ws.close(who.code, who.reason)
        return
    user, expires_at = who
    await ws.accept(subprotocol=subprotocol)
    outbox = Outbox(node.settings.ws_send_queue)
    session = node.open_session(user, outbox, expires_at=expires_at)
    _connections.inc()
    reader = asyncio.create_task(_read(ws, session))
    writer = asyncio.create_task(_write(ws, outbox, node.settings.ws_ping_interval))
    closing = asyncio.create_task(outbox.closed())
    cancelled = False
    try:
        await asyncio.wait({reader, writer, closing}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:  # the server's grace period is over
        outbox.close(protocol.GOING_AWAY)
        cancelled = True
    finally:
        client_gone = reader.done() and not reader.cancelled() and reader.exception() is None
        for task in (reader, writer, closing):
            task.cancel()
        await asyncio.gather(reader, writer, closing, return_exceptions=True)
        node.close_session(session)
        _connections.dec()
    close = outbox.closing
    if close is not None and not client_gone:
        metrics.disconnects.labels(close.reason.lower().replace(" ", "_")).inc()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await ws.close(close.code, close.reason)
    if cancelled:
        raise asyncio.CancelledError


async def _read(ws: WebSocket, session: Session) -> None:
    """Returns when the client goes away."""
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


async def _write(ws: WebSocket, outbox: Outbox, ping_interval: float) -> None:
    """Drains the outbox onto the socket; an idle socket gets an application-level ping."""
    while (items := await outbox.take(ping_interval)) is not None:
        if not items:
            await ws.send_text(protocol.encode(protocol.ServerPing(timestamp=protocol.now())))
            continue
        for frame, born_ms in items:
            await ws.send_text(frame)
            if born_ms != CONTROL:
                _delivered.inc()
                if born_ms != REPLAYED:
                    _latency.observe(max(0, now_ms() - born_ms) / 1000)
