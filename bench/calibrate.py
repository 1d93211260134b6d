"""How fast the load generator itself is, on its one core, against stand-in servers that do no
work (``bench.fakeserver`` on the server core): the ceiling above which a figure measures the
load generator rather than the relay.  Also compares the lean clients with httpx and websockets.

``python -m bench.calibrate`` prints JSON; the suite stores it with every run.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

from bench import load, wsclient
from bench.machine import LOADGEN_CORE, pin_self, raise_nofile
from bench.procs import Server, free_port, repo_env

CONCURRENCY = 50
WS_CLIENTS = 100


def _fake(kind: str) -> Server:
    port = free_port()
    argv = [sys.executable, "-m", "bench.fakeserver", kind, str(port)]
    return Server(f"fake-{kind}", argv, repo_env({}), port, probe="tcp")


async def _lean_http(port: int, seconds: float) -> float:
    conns = await load.open_connections("127.0.0.1", port, CONCURRENCY)
    body = load.message_json("t", 0)
    request = conns[0].build("POST", "/api/v1/messages", body, {"Content-Type": "application/json"})
    result = await load.closed_loop(conns, lambda _: request, duration=seconds)
    for c in conns:
        c.close()
    return float(result["rps"])


async def _httpx(port: int, seconds: float) -> float:
    import httpx

    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    done = 0
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits) as client:
        stop = time.monotonic() + seconds

        async def worker() -> None:
            nonlocal done
            while time.monotonic() < stop:
                await client.post("/api/v1/messages", content=load.message_json("t", 0))
                done += 1

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return done / seconds


async def _lean_ws(port: int, seconds: float) -> float:
    sink = wsclient.Deliveries()
    conns = [await wsclient.subscribe("127.0.0.1", port, "x", ["t"], sink) for _ in range(WS_CLIENTS)]
    for c in conns:
        c.send(b'{"type":"go"}')
    await asyncio.sleep(0.3)
    before = sink.count
    await asyncio.sleep(seconds)
    rate = (sink.count - before) / seconds
    for c in conns:
        c.close()
    return rate


async def _websockets_lib(port: int, seconds: float) -> float:
    from websockets.asyncio.client import connect

    count = 0
    stop = time.monotonic() + seconds + 0.3

    async def one() -> None:
        nonlocal count
        async with connect(f"ws://127.0.0.1:{port}/ws", subprotocols=["bearer"]) as ws:  # type: ignore[list-item]
            await ws.send('{"type":"subscribe","topics":["t"]}')
            await ws.recv()
            await ws.send('{"type":"go"}')
            async for msg in ws:
                stamps = wsclient._SENT_AT.findall(msg if isinstance(msg, bytes) else msg.encode())
                count += len(stamps)
                if time.monotonic() > stop:
                    return

    tasks = [asyncio.create_task(one()) for _ in range(WS_CLIENTS)]
    await asyncio.sleep(0.3)
    before = count
    await asyncio.sleep(seconds)
    rate = (count - before) / seconds
    await asyncio.gather(*tasks, return_exceptions=True)
    return rate


async def calibrate(seconds: float = 3.0) -> dict[str, Any]:
    out: dict[str, Any] = {}
    http = _fake("http").start()
    try:
        out["http_lean_rps"] = await _lean_http(http.port, seconds)
        out["http_httpx_rps"] = await _httpx(http.port, seconds)
    finally:
        http.stop()
    ws = _fake("ws").start()
    try:
        out["ws_lean_frames_per_s"] = await _lean_ws(ws.port, seconds)
    finally:
        ws.stop()
    ws = _fake("ws").start()
    try:
        out["ws_websockets_frames_per_s"] = await _websockets_lib(ws.port, seconds)
    finally:
        ws.stop()
    return out


def main() -> None:
    import json

    import uvloop

    pin_self(LOADGEN_CORE)
    raise_nofile()
    print(json.dumps(uvloop.run(calibrate()), indent=2))


if __name__ == "__main__":
    main()
