"""Where an idle subscribed WebSocket's memory goes in a gateway: ``python -m bench.socket_memory``.

Serves the relay in this process (uvicorn, the default server, on a real Valkey), opens N idle
subscribed sockets with the suite's lean client, and prints the Python heap they added
(``tracemalloc``), per socket, grouped by source file and by allocating line.  The client's own
objects are in the same heap (``bench/wsclient.py``, a few hundred bytes per socket) and are
shown as such; kernel socket buffers are not in the heap (nor in the resident set that scenario 7
of the suite measures).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import linecache
import sys
import tracemalloc
from typing import Any

from bench.procs import REPO

sys.path[:0] = [str(REPO / "libs"), str(REPO / "services"), str(REPO)]

from bench.wsclient import Deliveries, WsProtocol, subscribe  # noqa: E402
from tests.conftest import make_settings  # noqa: E402
from tests.gateway.conftest import serve  # noqa: E402
from tests.support.identity import make_user  # noqa: E402
from tests.support.valkey import ValkeyServer  # noqa: E402

TOPICS = 50


def _where(filename: str) -> str:
    for marker in ("site-packages/", "/lib/python3.11/", str(REPO) + "/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


async def measure(sockets: int, top: int) -> dict[str, Any]:
    valkey = ValkeyServer().start()
    opened: list[WsProtocol] = []
    try:
        async with serve(make_settings(valkey.url)) as relay:
            _, token = await make_user(relay.backend, "bench", ["read", "write"])
            host, _, port = relay.gateway.removeprefix("http://").rpartition(":")
            sink = Deliveries()

            async def open_some(n: int) -> None:
                for i in range(n):
                    opened.append(await subscribe(host, int(port), token, [f"t{i % TOPICS}"], sink))

            await open_some(TOPICS)  # every topic followed once, caches and first-use objects made
            await asyncio.sleep(0.5)
            gc.collect()
            tracemalloc.start(1)
            before = tracemalloc.take_snapshot()
            await open_some(sockets)
            await asyncio.sleep(1.0)
            gc.collect()
            after = tracemalloc.take_snapshot()
            tracemalloc.stop()
            by_file = after.compare_to(before, "filename")
            by_line = after.compare_to(before, "lineno")
            return {
                "sockets": sockets,
                "bytes_per_socket": sum(s.size_diff for s in by_file) / sockets,
                "files": [
                    (_where(s.traceback[0].filename), s.size_diff / sockets, s.count_diff / sockets)
                    for s in by_file[:top]
                ],
                "lines": [
                    (
                        f"{_where(s.traceback[0].filename)}:{s.traceback[0].lineno}",
                        s.size_diff / sockets,
                        linecache.getline(s.traceback[0].filename, s.traceback[0].lineno).strip(),
                    )
                    for s in by_line[:top]
                ],
            }
    finally:
        for proto in opened:
            if proto.transport is not None:
                proto.transport.close()
        valkey.cleanup()


def report(result: dict[str, Any]) -> str:
    lines = [
        f"{result['sockets']} idle subscribed sockets: {result['bytes_per_socket'] / 1024:.1f} KiB of"
        " Python heap per socket (the client's included)",
        "",
        "| file | bytes per socket | objects per socket |",
        "|---|---:|---:|",
    ]
    lines += [f"| {f} | {size:,.0f} | {count:.1f} |" for f, size, count in result["files"]]
    lines += ["", "| allocated at | bytes per socket | line |", "|---|---:|---|"]
    lines += [f"| {where} | {size:,.0f} | `{text[:70]}` |" for where, size, text in result["lines"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.socket_memory", description=__doc__.split("\n\n")[0])
    ap.add_argument("--sockets", type=int, default=1000)
    ap.add_argument("--top", type=int, default=20, help="rows per table")
    args = ap.parse_args(argv)
    print(report(asyncio.run(measure(args.sockets, args.top))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
