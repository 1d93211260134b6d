"""What the two-gateway fault tests put around the relay processes: HAProxy running
deploy/haproxy.cfg in front of them (as ``pulsar-relay stack`` and the split-stack tests run it),
and a TCP proxy between one gateway and Valkey that can stall (hold every byte, keep every
connection open), which is what a Valkey that stops answering looks like to that gateway alone."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pulsar_relay import haproxy
from tests.support.serve import RelayProcess
from tests.support.valkey import free_port


@contextlib.asynccontextmanager
async def balancer(
    auth: RelayProcess, ingest: RelayProcess, gateways: list[RelayProcess]
) -> AsyncIterator[str]:
    """HAProxy in front of the processes; yields its URL once every server is up."""
    try:
        binary = haproxy.binary()
    except haproxy.HAProxyError:
        pytest.skip("haproxy is not installed (make valkey installs it)")
    run_dir = Path(tempfile.mkdtemp(prefix="relay-lb-"))
    port = free_port()
    addresses = haproxy.Addresses(
        bind=f"127.0.0.1:{port}",
        monitor=f"127.0.0.1:{free_port()}",
        auth=auth.url.removeprefix("http://"),
        ingest=ingest.url.removeprefix("http://"),
        gateways=[g.url.removeprefix("http://") for g in gateways],
        runtime_socket=run_dir / "haproxy.sock",
    )
    proc = await asyncio.to_thread(_spawn, binary, addresses, run_dir / "haproxy.log")
    try:
        runtime = haproxy.Runtime(addresses.runtime_socket)
        for _ in range(400):
            if addresses.runtime_socket.exists():
                break
            assert proc.poll() is None, (run_dir / "haproxy.log").read_text()
            await asyncio.sleep(0.05)
        for k, g in enumerate(addresses.gateways[1:], start=2):
            runtime.set_server("gateway", f"gw{k}", g)
        for _ in range(400):
            if runtime.all_up(["ingest", "gateway"]):
                break
            await asyncio.sleep(0.05)
        assert runtime.all_up(["ingest", "gateway"]), runtime.stats()
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        shutil.rmtree(run_dir, ignore_errors=True)


def _spawn(binary: str, addresses: haproxy.Addresses, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [binary, "-db", "-f", str(haproxy.find_config(None))],
            env={"PATH": "/usr/sbin:/usr/bin:/bin", **haproxy.static_env(addresses)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )


class StallingProxy:
    """127.0.0.1:<port> → ``upstream_port``; ``stall()`` holds every byte both ways (connections
    stay open), ``resume()`` lets them through again."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.flowing = asyncio.Event()
        self.flowing.set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self) -> StallingProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stall(self) -> None:
        self.flowing.clear()

    def resume(self) -> None:
        self.flowing.set()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                await self.flowing.wait()
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            dst.close()
