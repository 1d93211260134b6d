"""The writer between an outbox and the server's ASGI ``send``, driven through a ``send`` of our own
(the seam the writer owns): inline writes, a send that must wait, failures and cancellation."""

from __future__ import annotations

import asyncio
from typing import Any

from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from gateway.outbox import REPLAYED, Outbox
from gateway.protocol import SLOW_CONSUMER
from gateway.writer import WriteBatch, Writer
from relaycore import metrics
from relaycore.models import now_ms
from relaycore.wsframes import FRAME_KEY


class Socket:
    """An ASGI ``send`` that records text frames; while ``gate`` is set, each send waits on it."""

    def __init__(self) -> None:
        self.frames: list[str] = []
        self.gate: asyncio.Future[None] | None = None
        self.fail: Exception | None = None
        self.unwound = 0

    async def send(self, message: dict[str, Any]) -> None:
        if self.fail is not None:
            raise self.fail
        try:
            while self.gate is not None:
                await asyncio.shield(self.gate)
        finally:
            self.unwound += 1
        self.frames.append(message["text"])


def wire(limit: int = 10) -> tuple[Outbox, Socket, list[BaseException], Writer]:
    outbox, socket, failures = Outbox(limit), Socket(), []
    writer = Writer(socket.send, outbox, WriteBatch(), on_fail=failures.append)
    return outbox, socket, failures, writer


async def test_a_frame_is_written_before_offer_returns() -> None:
    """A socket with room gets the frame inside ``offer``: no task, no loop round."""
    outbox, socket, _, _ = wire()
    outbox.offer("a")
    outbox.offer("b")
    assert socket.frames == ["a", "b"] and len(outbox) == 0


async def test_frames_behind_a_waiting_send_follow_it_in_order() -> None:
    """While one send waits for the socket, later frames queue and are written after it, in order."""
    outbox, socket, _, _ = wire()
    socket.gate = asyncio.get_running_loop().create_future()
    outbox.offer("a")
    outbox.offer("b")
    outbox.offer("c")
    assert socket.frames == [] and len(outbox) == 2
    gate, socket.gate = socket.gate, None
    gate.set_result(None)
    for _ in range(5):
        await asyncio.sleep(0)
    assert socket.frames == ["a", "b", "c"]
    outbox.offer("d")  # idle again: inline once more
    assert socket.frames[-1] == "d"


async def test_a_socket_that_stays_blocked_overflows_as_a_slow_consumer() -> None:
    """Frames pile up behind a send that never completes; past the limit the outbox closes 4008."""
    outbox, socket, _, writer = wire(limit=3)
    socket.gate = asyncio.get_running_loop().create_future()
    for frame in "abcdef":
        outbox.offer(frame)
    assert outbox.closing == SLOW_CONSUMER
    writer.stop()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert socket.unwound == 1  # the waiting send was closed, its cleanup ran


async def test_a_failing_send_reports_to_the_connection() -> None:
    """A send that raises (the client vanished) is reported once, not swallowed."""
    outbox, socket, failures, _ = wire()
    socket.fail = ConnectionResetError("gone")
    outbox.offer("a")
    assert len(failures) == 1 and isinstance(failures[0], ConnectionResetError)


async def test_queued_frames_are_dropped_once_closing() -> None:
    """After a close is requested nothing more is written: the close frame goes next."""
    outbox, socket, _, _ = wire()
    socket.gate = asyncio.get_running_loop().create_future()
    outbox.offer("a")
    outbox.offer("b")
    outbox.close(SLOW_CONSUMER)
    gate, socket.gate = socket.gate, None
    gate.set_result(None)
    for _ in range(5):
        await asyncio.sleep(0)
    assert socket.frames == ["a"]


async def test_frames_offered_during_a_dispatch_are_written_per_connection_at_its_end() -> None:
    """Inside a write batch nothing is written; at its end each connection's frames go back to back."""
    batch, order = WriteBatch(), []
    outboxes = []
    for name in ("x", "y"):
        outbox = Outbox(10)

        async def send(message: dict[str, Any], name: str = name) -> None:
            order.append(name + message["text"])

        Writer(send, outbox, batch, on_fail=lambda exc: None)
        outboxes.append(outbox)
    with batch:
        for n in "12":
            for outbox in outboxes:
                outbox.offer(n)
        assert order == []
    assert order == ["x1", "x2", "y1", "y2"]


async def test_a_send_that_is_not_a_coroutine_is_awaited_in_order() -> None:
    """A server whose send returns a plain awaitable still gets every frame, in order."""
    outbox, written = Outbox(10), []
    loop = asyncio.get_running_loop()

    def send(message: dict[str, Any]) -> asyncio.Future[None]:
        written.append(message["text"])
        done: asyncio.Future[None] = loop.create_future()
        loop.call_soon(done.set_result, None)
        return done

    Writer(send, outbox, WriteBatch(), on_fail=lambda exc: None)
    for frame in "abc":
        outbox.offer(frame)
    for _ in range(10):
        await asyncio.sleep(0)
    assert written == ["a", "b", "c"] and len(outbox) == 0


async def test_a_dispatch_larger_than_the_outbox_writes_early_instead_of_overflowing() -> None:
    """Inside a write batch, an outbox that reaches half its limit is written at once, not closed."""
    outbox, socket, _, _ = wire(limit=4)
    batch = WriteBatch()
    Writer(socket.send, outbox, batch, on_fail=lambda exc: None)
    with batch:
        for frame in "abcdefgh":
            outbox.offer(frame)
    assert outbox.closing is None and socket.frames == list("abcdefgh")


def frames_of(data: bytes) -> list[str]:
    """The text frames in ``data``, parsed by the websockets library."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    texts = []
    while True:
        parser = Frame.parse(reader.read_exact, mask=False)
        try:
            next(parser)
        except StopIteration as done:
            frame = done.value
        except EOFError:
            return texts
        assert frame.opcode is Opcode.TEXT and frame.fin
        texts.append(frame.data.decode())


async def test_with_relay_frames_a_connections_queued_frames_go_out_in_one_send() -> None:
    """A server offering ``relay.frames`` gets everything a dispatch queued for a connection as one
    message of back-to-back frames, in order; a frame offered outside a dispatch is framed alone."""
    batch, sent = WriteBatch(), []
    outbox = Outbox(10)

    async def send(message: dict[str, Any]) -> None:
        assert set(message) == {"type", FRAME_KEY}
        sent.append(frames_of(message[FRAME_KEY]))

    Writer(send, outbox, batch, on_fail=lambda exc: None, framed=True)
    with batch:
        for frame in ("a", "é" * 200, "c"):
            outbox.offer(frame)
    outbox.offer("d")
    assert sent == [["a", "é" * 200, "c"], ["d"]] and len(outbox) == 0


async def test_a_message_is_framed_once_for_every_connection_in_a_dispatch() -> None:
    """Within one dispatch, every subscriber of a message is handed the very same frame bytes."""
    batch, sent = WriteBatch(), []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message[FRAME_KEY])

    outboxes = [Outbox(10) for _ in range(3)]
    for outbox in outboxes:
        Writer(send, outbox, batch, on_fail=lambda exc: None, framed=True)
    with batch:
        for outbox in outboxes:
            outbox.offer("shared")
    assert len(sent) == 3 and sent[0] is sent[1] is sent[2] and frames_of(sent[0]) == ["shared"]


async def test_relay_frames_behind_a_waiting_send_go_out_together_after_it() -> None:
    """While a framed send waits for the socket, frames queued behind it leave in one later send."""
    outbox, sent = Outbox(10), []
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def send(message: dict[str, Any]) -> None:
        if not sent and not gate.done():
            await gate
        sent.append(frames_of(message[FRAME_KEY]))

    Writer(send, outbox, WriteBatch(), on_fail=lambda exc: None, framed=True)
    for frame in "abc":
        outbox.offer(frame)
    assert sent == [] and len(outbox) == 2
    gate.set_result(None)
    for _ in range(5):
        await asyncio.sleep(0)
    assert sent == [["a"], ["b", "c"]] and len(outbox) == 0


async def test_relay_frames_write_takes_frames_at_once_and_send_what_it_refuses() -> None:
    """A server's synchronous FRAMES_WRITE gets each connection's frames with no ASGI send; frames
    it refuses (a paused socket) go through ``send`` instead, in order, and later ones follow them."""
    outbox, written, sent, room = Outbox(10), [], [], [True]
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def write(data: bytes) -> bool:
        if room[0]:
            written.append(frames_of(data))
        return room[0]

    async def send(message: dict[str, Any]) -> None:
        await gate
        sent.append(frames_of(message[FRAME_KEY]))

    Writer(send, outbox, WriteBatch(), on_fail=lambda exc: None, framed=True, write=write)
    outbox.offer("a")
    room[0] = False
    outbox.offer("b")
    outbox.offer("c")
    room[0] = True
    outbox.offer("d")
    assert written == [["a"]] and sent == [] and len(outbox) == 2
    gate.set_result(None)
    for _ in range(5):
        await asyncio.sleep(0)
    assert sent == [["b"], ["c", "d"]] and len(outbox) == 0


async def test_a_single_message_dispatch_writes_each_connection_as_offered_with_one_frame() -> None:
    """In the single-message scope a connection's frame is written inside ``offer`` (no waiting for
    the dispatch's end), and every connection gets the very same frame bytes."""
    batch, sent = WriteBatch(), []

    def write(data: bytes) -> bool:
        sent.append(data)
        return True

    async def send(message: dict[str, Any]) -> None:
        raise AssertionError("a socket with room is written synchronously")

    outboxes = [Outbox(10) for _ in range(3)]
    for outbox in outboxes:
        Writer(send, outbox, batch, on_fail=lambda exc: None, framed=True, write=write)
    with batch.single:
        for i, outbox in enumerate(outboxes):
            outbox.offer("shared")
            assert len(sent) == i + 1
    assert sent[0] is sent[1] is sent[2] and frames_of(sent[0]) == ["shared"]


async def test_a_dispatchs_live_deliveries_are_counted_and_timed_at_its_end() -> None:
    """Live messages written in a dispatch reach relay_messages_delivered_total and the latency
    histogram once it ends, one delivery and one observation per connection; nothing before."""
    batch = WriteBatch()
    child = metrics.delivery_latency.labels("websocket")
    delivered, observed = metrics.delivered_total(), sum(child.counts)

    async def send(message: dict[str, Any]) -> None:
        raise AssertionError("a socket with room is written synchronously")

    outboxes = [Outbox(10) for _ in range(4)]
    for outbox in outboxes:
        Writer(send, outbox, batch, on_fail=lambda exc: None, framed=True, write=lambda data: True)
    with batch.single:
        for outbox in outboxes:
            outbox.offer("m", now_ms() - 5)
        assert (metrics.delivered_total(), sum(child.counts)) == (delivered, observed)
    assert (metrics.delivered_total(), sum(child.counts)) == (delivered + 4, observed + 4)


async def test_a_dispatch_counts_live_and_replayed_messages_but_times_only_live_ones() -> None:
    """A connection's live, replayed and control frames written in one dispatch add two deliveries
    (not the control frame) and one latency observation (not the replayed one), at its end."""
    batch, outbox = WriteBatch(), Outbox(10)
    child = metrics.delivery_latency.labels("websocket")
    delivered, observed = metrics.delivered_total(), sum(child.counts)

    async def send(message: dict[str, Any]) -> None:
        raise AssertionError("a socket with room is written synchronously")

    Writer(send, outbox, batch, on_fail=lambda exc: None, framed=True, write=lambda data: True)
    with batch:
        outbox.offer("live", now_ms() - 5)
        outbox.offer("old", REPLAYED)
        outbox.offer("pong")
    assert (metrics.delivered_total(), sum(child.counts)) == (delivered + 2, observed + 1)


async def test_a_message_stamped_ahead_of_the_gateways_clock_is_timed_at_zero_both_ways() -> None:
    """A delivery whose publish stamp lies in the future (clocks apart) is observed as 0 s, never
    negative, whether written in a dispatch or on its own."""
    batch, outbox = WriteBatch(), Outbox(10)
    child = metrics.delivery_latency.labels("websocket")

    async def send(message: dict[str, Any]) -> None:
        raise AssertionError("a socket with room is written synchronously")

    Writer(send, outbox, batch, on_fail=lambda exc: None, framed=True, write=lambda data: True)
    before, zero = child.sum, child.counts[0]
    with batch:
        outbox.offer("ahead", now_ms() + 60_000)
    outbox.offer("ahead, alone", now_ms() + 60_000)
    assert (child.sum, child.counts[0]) == (before, zero + 2)


async def test_with_a_synchronous_write_a_dispatch_of_several_messages_still_defers_to_its_end() -> None:
    """The direct write of a frame offered to an idle outbox waits while a dispatch of several
    messages is open: each connection's frames still leave together, in one write, at its end."""
    batch, written = WriteBatch(), []

    async def send(message: dict[str, Any]) -> None:
        raise AssertionError("a socket with room is written synchronously")

    outboxes = [Outbox(10) for _ in range(2)]
    for i, outbox in enumerate(outboxes):
        Writer(
            send,
            outbox,
            batch,
            on_fail=lambda exc: None,
            framed=True,
            write=lambda d, i=i: written.append((i, d)) or True,
        )
    with batch:
        for n in "12":
            for outbox in outboxes:
                outbox.offer(n, now_ms())
        assert written == []
    assert [(i, frames_of(d)) for i, d in written] == [(0, ["1", "2"]), (1, ["1", "2"])]


async def test_a_direct_write_leaves_the_outbox_empty_and_marks_it_active() -> None:
    """A frame written at once by the idle writer is never queued, and the ping sweep sees the
    connection as active."""
    outbox, written = Outbox(10), []

    async def send(message: dict[str, Any]) -> None:
        raise AssertionError("a socket with room is written synchronously")

    Writer(
        send,
        outbox,
        WriteBatch(),
        on_fail=lambda exc: None,
        framed=True,
        write=lambda d: written.append(d) or True,
    )
    assert outbox.offer("x") and len(outbox) == 0 and outbox.bytes == 0 and outbox.active
    assert [frames_of(d) for d in written] == [["x"]]
