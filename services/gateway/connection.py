"""One accepted WebSocket driven by the server's callbacks (``relay.frames``' detach,
``relaycore.wsframes``): the client's messages go to the session one at a time, in order, the
outbox is written by a ``Writer`` straight to the socket, and a close the session asks for (or a
failed write) ends the session and closes the socket with the documented code
(``docs/CLOSE_CODES.md``).  A task lives only while a message is handled: an idle socket has none.
"""

from __future__ import annotations

import asyncio
import logging

from gateway import protocol
from gateway.node import Node
from gateway.outbox import Outbox
from gateway.session import Session
from gateway.writer import Writer
from relaycore import metrics
from relaycore.models import User
from relaycore.wsframes import Carrier, Detach

log = logging.getLogger(__name__)

_connections = metrics.connections.labels("websocket")


class Connection:
    __slots__ = ("_carrier", "_ended", "_node", "_pending", "_task", "_writer", "session")

    def __init__(self, node: Node, user: User, *, expires_at: float, sign_in: str) -> None:
        self._node = node
        self._carrier: Carrier | None = None
        self._writer: Writer | None = None
        self._pending: list[str | bytes] | None = None  # messages behind the one being handled
        self._task: asyncio.Task[None] | None = None  # a message whose handling had to wait
        self._ended = False
        outbox = Outbox(node.settings.ws_send_queue, node.settings.ws_send_queue_bytes)
        outbox.on_close = self._on_close
        self.session: Session = node.open_session(user, outbox, expires_at=expires_at, sign_in=sign_in)
        _connections.inc()

    def attach(self, detach: Detach) -> None:
        """Take the connection over from the server; messages it had already read come first."""
        carrier = detach(self)
        if carrier is None:  # the client is already gone
            self._end()
            return
        self._carrier = carrier
        self._writer = Writer(
            carrier.send,
            self.session.outbox,
            self._node.writes,
            on_fail=self._failed,
            framed=True,
            write=carrier.write,
        )
        if self._pending is not None:
            self._run()

    # --- the server's callbacks ------------------------------------------------------------------
    def received(self, data: str | bytes) -> bool:
        """Handle a client message; False while one is still being handled (the server holds the
        next ones until ``resume``)."""
        if self._ended:
            return True
        if self._pending is not None:
            self._pending.append(data)
            return False
        self._pending = [data]
        if self._carrier is not None:  # else still detaching: handled once the socket is ours
            self._run()
        return False

    def closed(self) -> None:
        """The connection is gone (the client left, or a close finished)."""
        self._end()

    # --- handling, in order ----------------------------------------------------------------------
    def _run(self) -> None:
        """Handle the pending messages, in order, in a task (a handler may wait on Valkey, with a
        timeout, which needs a task); it resumes reading when they are done."""
        self._task = asyncio.get_running_loop().create_task(self._handle_pending())

    async def _handle_pending(self) -> None:
        try:
            while self._pending and not self._ended:
                await self._handle(self._pending.pop(0))
        finally:
            self._task = None
        self._pending = None
        if not self._ended and self._carrier is not None:
            self._carrier.resume()

    async def _handle(self, data: str | bytes) -> None:
        try:
            await self.session.handle(data)
        except Exception:
            log.exception("session %s failed on a frame", self.session.id)
            self.session.outbox.close(protocol.INTERNAL_ERROR)

    # --- ending ----------------------------------------------------------------------------------
    def _on_close(self, reason: protocol.Close) -> None:
        # Asked from inside a dispatch or a handler: the session ends in the next step, not under
        # their feet.
        asyncio.get_running_loop().call_soon(self._close, reason)

    def _close(self, reason: protocol.Close) -> None:
        if self._ended:
            return
        self._end()
        metrics.disconnects.labels(reason.reason.lower().replace(" ", "_")).inc()
        if self._carrier is not None:
            # A client that stopped reading gets its close frame once it reads again; one that
            # never does is let go after read_timeout (the carrier's close timeout).
            self._carrier.close(reason.code, reason.reason)

    def _failed(self, _: BaseException) -> None:
        asyncio.get_running_loop().call_soon(self._end)

    def _end(self) -> None:
        if self._ended:
            return
        self._ended = True
        self._pending = None
        if self._writer is not None:
            self._writer.stop()
        if self._task is not None:
            self._task.cancel()
        self._node.close_session(self.session)
        _connections.dec()
