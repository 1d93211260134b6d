"""How much of a request's latency is the client's: ``python -m bench.client_floor``.

The reference's own scenarios (``bench.reference_scenarios``) measure through httpx in the
measuring process.  This serves the relay (``serve all``, memory storage) and times one
``GET /health`` every 10 ms on one keep-alive connection, the pacing of those scenarios, first
with a raw asyncio client, then with httpx: the difference is what httpx adds to every request
leg of their end-to-end figures, whichever server answers.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import httpx

from bench.httpclient import HttpConnection
from bench.procs import REPO

sys.path[:0] = [str(REPO / "libs"), str(REPO / "services"), str(REPO)]

from tests.conftest import TEST_SECRET  # noqa: E402
from tests.support.serve import RelayProcess  # noqa: E402

GAP = 0.01


def _median_ms(samples: list[int]) -> float:
    return sorted(samples)[len(samples) // 2] / 1e6


async def raw_client(port: int, n: int) -> float:
    conn = await HttpConnection.open("127.0.0.1", port)  # the suite's own lean client
    took = []
    try:
        for _ in range(n):
            start = time.perf_counter_ns()
            status, _ = await conn.request("GET", "/health", b"", {})
            took.append(time.perf_counter_ns() - start)
            assert status == 200, status
            await asyncio.sleep(GAP)
    finally:
        conn.close()
    return _median_ms(took)


async def httpx_client(port: int, n: int) -> float:
    took = []
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        await client.get("/health")
        for _ in range(n):
            start = time.perf_counter_ns()
            (await client.get("/health")).json()
            took.append(time.perf_counter_ns() - start)
            await asyncio.sleep(GAP)
    return _median_ms(took)


async def main_async(requests: int, rounds: int) -> None:
    relay = RelayProcess("all", {"PULSAR_JWT_SECRET_KEY": TEST_SECRET, "PULSAR_STORAGE_BACKEND": "memory"})
    relay.start()
    try:
        print("| round | lean client, p50 ms | httpx, p50 ms |")
        print("|---:|---:|---:|")
        for i in range(rounds):
            raw = await raw_client(relay.port, requests)
            hx = await httpx_client(relay.port, requests)
            print(f"| {i + 1} | {raw:.3f} | {hx:.3f} |", flush=True)
    finally:
        relay.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args(argv)
    import uvloop

    uvloop.run(main_async(args.requests, args.rounds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
