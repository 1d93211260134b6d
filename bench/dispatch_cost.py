"""The gateway's own Python per delivery, without sockets: ``python -m bench.dispatch_cost``.

Builds what a gateway builds for N subscribers of one topic (a ``Subscription``, ``Outbox`` and
``Writer`` each, on the node's ``WriteBatch`` and ``Hub``) and dispatches single messages to them,
as the tailer does at a steady rate.  The server's synchronous ``relay.frames`` write is replaced by
one that only counts (a seam the gateway owns): what is left is our code's CPU per delivery, the
part of a delivery that the scenario-4 figure of the suite (kernel and event loop included) does
not separate.  Prints microseconds per delivery, the best of several repeats.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from bench.procs import REPO

sys.path[:0] = [str(REPO / "libs"), str(REPO / "services")]

from gateway.hub import Hub  # noqa: E402
from gateway.outbox import Outbox  # noqa: E402
from gateway.subscription import Subscription  # noqa: E402
from gateway.writer import WriteBatch, Writer  # noqa: E402
from relaycore.models import StoredMessage, now_ms  # noqa: E402

PAYLOAD = b'{"job": 1, "state": "running"}'


async def measure(subscribers: int, messages: int, repeats: int) -> dict[str, float | int]:
    """Dispatch ``messages`` single messages to ``subscribers``, ``repeats`` times; the best
    repeat's CPU time per delivery, and how many frames were written in all."""
    batch = WriteBatch()
    hub = Hub(batch, batch.single)
    written = 0

    def write(data: bytes) -> bool:
        nonlocal written
        written += 1
        return True

    async def send(message: object) -> None:
        raise RuntimeError("every write is taken synchronously here")

    for _ in range(subscribers):
        outbox = Outbox(4096, 16 << 20)
        Writer(send, outbox, batch, on_fail=print, framed=True, write=write)
        hub.add("t", Subscription("t", outbox, after=None, verified=True, limit=4096, on_unverified=print))
    best = float("inf")
    seq = 0
    for _ in range(repeats):
        started = time.process_time()
        for _ in range(messages):
            seq += 1
            ms = now_ms()
            m = StoredMessage(
                message_id=f"{ms}-{seq}", topic="t", payload=PAYLOAD, timestamp="2026-01-01T00:00:00Z"
            )
            hub.dispatch([((ms, seq), m)])
        best = min(best, (time.process_time() - started) / (messages * subscribers))
    return {"subscribers": subscribers, "us_per_delivery": round(best * 1e6, 3), "written": written}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subscribers", type=int, default=1000)
    ap.add_argument("--messages", type=int, default=300, help="single messages per repeat")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    result = asyncio.run(measure(args.subscribers, args.messages, args.repeats))
    print(f"{result['us_per_delivery']} µs of the gateway's Python per delivery "
          f"({result['subscribers']} subscribers, best of {args.repeats})")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
