"""Run an ASGI app on a real socket inside the test's event loop (uvicorn as ``pulsar-relay serve``
configures it, pre-bound port 0), or a service as a separate ``pulsar-relay serve`` process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping

import httpx
from starlette.types import ASGIApp

from pulsar_relay.serve_uvicorn import RelayServer, uvicorn_config
from pulsar_relay.server import drain_hooks
from relaycore.config import Settings
from tests.support.valkey import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The source tree, so child processes import this checkout whether or not it is pip-installed.
SOURCE_PATH = os.pathsep.join(os.path.join(ROOT, p) for p in ("libs", "services", "."))


def child_env(**overrides: str) -> dict[str, str]:
    """The environment for a ``python -m pulsar_relay`` child: ours without stray ``PULSAR_*``
    settings from whoever runs the tests, the source tree first on PYTHONPATH, then ``overrides``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULSAR_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [SOURCE_PATH, os.environ.get("PYTHONPATH", "")]))
    return env | overrides


def wait_healthy(url: str, proc: subprocess.Popen[bytes], output: Callable[[], str], timeout: float) -> None:
    """Poll ``url``/health until it answers 200; fail with the child's output if it exits or hangs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"child exited with {proc.returncode}:\n{output()}")
        try:
            if httpx.get(f"{url}/health", timeout=0.5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"child did not become healthy within {timeout:g} s:\n{output()}")


@contextlib.asynccontextmanager
async def running(app: ASGIApp, settings: Settings | None = None) -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1 with a kernel-chosen port, on the server and configuration
    ``pulsar-relay serve`` runs by default (uvicorn, ``serve_uvicorn``); yields the base URL.
    ``settings`` (else the app's own, else the defaults) give the server's timeouts and limits."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    port = sock.getsockname()[1]
    if settings is None:
        relay = getattr(getattr(app, "state", None), "relay", None)
        settings = getattr(relay, "settings", None) or Settings(jwt_secret_key="x" * 32)
    server = RelayServer(uvicorn_config(app, settings, "127.0.0.1", port))
    server.config.timeout_graceful_shutdown = 1
    task = asyncio.create_task(server.serve(sockets=[sock]))
    base = f"http://127.0.0.1:{port}"
    try:
        while not server.started:
            if task.done():  # uvicorn exits (SystemExit) when the app's startup fails
                raise RuntimeError("uvicorn stopped before it started (see the log)")
            await asyncio.sleep(0.01)
        yield base
    finally:
        # As stop_on_signals stops `pulsar-relay serve`: the app's drain hooks (WebSockets closed
        # with 1001), then the server.
        with contextlib.suppress(Exception):
            await asyncio.gather(*(hook() for hook in drain_hooks(app)))
        server.stop()
        try:
            with contextlib.suppress(asyncio.CancelledError, SystemExit, Exception):
                await asyncio.wait_for(task, 10)
        finally:
            sock.close()


class RelayProcess:
    """``pulsar-relay serve <service>`` as a child process on a free port."""

    def __init__(
        self,
        service: str,
        env: Mapping[str, str],
        *,
        port: int | None = None,
        extra_args: list[str] | None = None,
    ) -> None:
        self.service = service
        self.env = child_env(**env)
        self.port = port or free_port()
        self.extra = extra_args or []
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20) -> RelayProcess:
        import tempfile

        fd, self.log_path = tempfile.mkstemp(prefix=f"relay-{self.service}-", suffix=".log")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pulsar_relay",
                "serve",
                self.service,
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                *self.extra,
            ],
            env=self.env,
            stdout=fd,
            stderr=subprocess.STDOUT,
        )
        os.close(fd)
        wait_healthy(self.url, self.proc, self.output, timeout)
        return self

    def output(self) -> str:
        if self.log_path is None:
            return ""
        with open(self.log_path, errors="replace") as f:
            return f.read()[-4000:]

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.log_path:
            with contextlib.suppress(OSError):
                os.unlink(self.log_path)
            self.log_path = None


__all__ = ["SOURCE_PATH", "RelayProcess", "child_env", "free_port", "running"]
