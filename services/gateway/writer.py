"""Writes one connection's outbox onto its WebSocket through the server's ASGI ``send``.

A frame is written in the very step that offered it: the ``send`` coroutine is started inline and,
when the server completes it without waiting (the socket has room: the usual case), no task is
created and no other coroutine runs in between.  Only when a send has to wait for the socket to
drain does the rest of it, and the frames queued behind it, continue in a task of their own; the
outbox keeps filling meanwhile and closes the connection as a slow consumer if it overflows.
This is what ``asyncio.eager_task_factory`` does from Python 3.12, for one call.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from time import time_ns
from types import CoroutineType
from typing import Any

from gateway.outbox import CONTROL, REPLAYED, Item, Outbox
from relaycore import eager, metrics
from relaycore.wsframes import FRAME_KEY, text_frame

Send = Callable[[dict[str, Any]], Awaitable[None]]
_delivered = metrics.messages_delivered.labels("websocket")
_latency = metrics.delivery_latency.labels("websocket")


class WriteBatch:
    """Defers writes while the hub dispatches a batch of messages, then writes each connection's
    frames back to back: touching one connection's objects (server protocol, framing, transport)
    for all its frames at once keeps them in the CPU caches, where going round 1,000 connections
    once per message does not (measured: about a third less CPU per delivery)."""

    __slots__ = ("delivered", "frames", "late", "open", "ready", "sharing", "single")

    def __init__(self) -> None:
        self.open = False  # a dispatch is offering frames: writers wait for its end
        self.sharing = False  # a dispatch and its writes: frames are made once for all
        self.ready: list[Writer] = []
        # Each message's WebSocket frame, made once for all its subscribers while the batch is
        # written (the same frame text object reaches every one of them).
        self.frames: dict[str, bytes] = {}
        self.delivered = 0  # replayed messages written while sharing: counted at the end
        # Live messages written while sharing, by delivery latency in ms: each message reaches
        # its subscribers within a few ms, so a dispatch observes a few values many times each
        # (one histogram update per value at the end instead of one per delivery).
        self.late: dict[int, int] = {}
        self.single = SingleMessage(self)  # the scope of a dispatch of one message (``Hub``'s)

    def __enter__(self) -> None:
        self.open = self.sharing = True

    def __exit__(self, *_: object) -> None:
        self.open = False
        ready, self.ready = self.ready, []
        try:
            for writer in ready:
                writer.write()
        finally:
            self.end()

    def end(self) -> None:
        self.sharing = False
        self.frames.clear()
        if self.late:
            for ms, n in self.late.items():
                _latency.observe_many(max(0, ms) / 1000, n)
                self.delivered += n
            self.late.clear()
        if self.delivered:
            _delivered.inc(self.delivered)
            self.delivered = 0

    def record(self, items: list[Item]) -> None:
        """``items`` were just written: their messages count as delivered, and the live ones'
        latency is observed; while a dispatch is written, once at its end (tallied by latency in
        ms: a dispatch's deliveries share a few values), else at once."""
        now = time_ns() // 1_000_000
        if self.sharing:
            late = self.late
            for _, born_ms in items:
                if born_ms > 0:
                    ms = now - born_ms
                    late[ms] = late.get(ms, 0) + 1
                elif born_ms == REPLAYED:
                    self.delivered += 1
            return
        n = 0
        for _, born_ms in items:
            if born_ms != CONTROL:
                n += 1
                if born_ms > 0:
                    _latency.observe(max(0, now - born_ms) / 1000)
        if n:
            _delivered.inc(n)

    def record_one(self, born_ms: int) -> None:
        """``record`` for one frame written alone (``Writer``'s direct write)."""
        if born_ms == CONTROL:
            return
        if self.sharing:
            if born_ms > 0:
                ms = time_ns() // 1_000_000 - born_ms
                self.late[ms] = self.late.get(ms, 0) + 1
            else:
                self.delivered += 1
            return
        _delivered.inc()
        if born_ms > 0:
            _latency.observe(max(0, time_ns() // 1_000_000 - born_ms) / 1000)

    def frame(self, frame: str) -> bytes:
        """One frame's bytes: made once for all subscribers while a dispatch is written."""
        return self._shared(frame) if self.sharing else text_frame(frame)

    def framed(self, items: list[Item]) -> bytes:
        """The WebSocket frames of ``items``, back to back; while a batch is written, each
        message's frame is made once for all its subscribers."""
        if not self.sharing:  # a reply or a replayed message: nothing to share
            return b"".join([text_frame(frame) for frame, _ in items])
        if len(items) == 1:  # the usual case: one message per connection per dispatch
            return self._shared(items[0][0])
        return b"".join([self._shared(frame) for frame, _ in items])

    def _shared(self, frame: str) -> bytes:
        framed = self.frames.get(frame)
        if framed is None:
            framed = self.frames[frame] = text_frame(frame)
        return framed


class SingleMessage:
    """A dispatch of one message: each connection gets at most one frame of it, so waiting for the
    end gains nothing (no connection has a second frame to write with it): frames are written as
    they are offered, the message still framed once for all its subscribers."""

    __slots__ = ("_batch",)

    def __init__(self, batch: WriteBatch) -> None:
        self._batch = batch

    def __enter__(self) -> None:
        self._batch.sharing = True

    def __exit__(self, *_: object) -> None:
        self._batch.end()


class Writer:
    __slots__ = ("_batch", "_framed", "_on_fail", "_outbox", "_send", "_task", "_write")

    def __init__(
        self,
        send: Send,
        outbox: Outbox,
        batch: WriteBatch,
        on_fail: Callable[[BaseException], None],
        *,
        framed: bool = False,
        write: Callable[[bytes], bool] | None = None,
    ) -> None:
        self._send = send
        self._framed = framed  # the server takes ``relay.frames`` (``relaycore.wsframes``)
        # ...and writes them at once when it can (its FRAMES_WRITE): no ASGI message, no coroutine
        self._write = write if framed else None
        self._outbox = outbox
        self._batch = batch
        self._task: asyncio.Task[None] | None = None  # a send that had to wait, and what follows it
        self._on_fail = on_fail
        outbox.on_ready = self._ready
        if self._write is not None:
            outbox.direct = self._direct

    def _direct(self, frame: str, born_ms: int) -> bool:
        """A frame offered to an idle outbox: written at once unless a dispatch of several
        messages defers the writes or a send is waiting (then it is queued), one call instead of
        queueing it, waking this writer and taking it back."""
        write, batch = self._write, self._batch
        if self._task is not None or batch.open or write is None or not write(batch.frame(frame)):
            return False
        batch.record_one(born_ms)
        return True

    def _ready(self) -> None:
        outbox = self._outbox
        if self._batch.open and len(outbox) < outbox.half and outbox.bytes < outbox.half_bytes:
            self._batch.ready.append(self)
        else:  # no dispatch in progress, or this one would fill the outbox before it ends
            self.write()

    def write(self) -> None:
        """Write what the outbox holds, inline as far as the socket takes it."""
        if self._task is not None:  # the waiting send drains the queue when it is done
            return
        write = self._write
        if write is None:
            self._drain()
            return
        # The server writes frames synchronously (``relay.frames``' FRAMES_WRITE): one write takes
        # everything queued, and the outbox is idle again unless the socket refuses it.
        items = self._outbox.take()
        if items is None:
            return
        batch = self._batch
        data = batch.framed(items)
        if write(data):  # the usual case: the socket has room
            batch.record(items)
        else:  # a paused socket: the same frames through the ASGI send, which waits for it
            self._start({"type": "websocket.send", FRAME_KEY: data}, items)

    def _next(self) -> tuple[dict[str, Any], list[Item]] | None:
        """The next ASGI message and the outbox items it carries: everything queued as one
        ``relay.frames`` write when the server offers it, else one text frame."""
        if self._framed:
            items = self._outbox.take()
            if items is None:
                return None
            return {"type": "websocket.send", FRAME_KEY: self._batch.framed(items)}, items
        item = self._outbox.pop()
        if item is None:
            return None
        return {"type": "websocket.send", "text": item[0]}, [item]

    def _drain(self) -> None:
        while (nxt := self._next()) is not None and self._start(*nxt):
            pass

    def _start(self, message: dict[str, Any], items: list[Item]) -> bool:
        """Send ``message``; True if the server took it without waiting, else the rest of the send
        (and what is queued behind it) goes on in a task."""
        sending = self._send(message)
        if isinstance(sending, CoroutineType):
            try:  # eager.step, inline: this runs once per connection per dispatch
                waiting = sending.send(None)
            except StopIteration:
                self._batch.record(items)
                return True
            except Exception as exc:
                self._on_fail(exc)
                return False
            rest: Awaitable[None] = eager.resume(sending, waiting)
        else:  # a server whose send is some other awaitable: it is awaited in the task
            rest = sending
        task = asyncio.get_running_loop().create_task(self._finish(rest, items))
        # Cancelled, maybe before it ever ran: the suspended send still gets to clean up.
        task.add_done_callback(functools.partial(_close, rest, sending))
        self._task = task
        return False

    async def _finish(self, rest: Awaitable[None], items: list[Item]) -> None:
        try:
            await rest
            self._batch.record(items)
            while (nxt := self._next()) is not None:
                await self._send(nxt[0])
                self._batch.record(nxt[1])
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._on_fail(exc)
        finally:
            self._task = None

    def stop(self) -> None:
        """Abandon a waiting send (the connection is closing)."""
        if self._task is not None:
            self._task.cancel()


def _close(*awaitables_then_task: object) -> None:
    for aw in awaitables_then_task[:-1]:
        if isinstance(aw, CoroutineType):
            aw.close()
