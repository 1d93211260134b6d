"""Run an ASGI app on a real socket inside the test's event loop (hypercorn, pre-bound port 0),
or a service as a separate ``pulsar-relay serve`` process."""

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
from hypercorn.asyncio import serve
from hypercorn.config import Config
from starlette.types import ASGIApp

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
async def running(app: ASGIApp) -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1 with a kernel-chosen port; yields the base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    sock.set_inheritable(True)
    port = sock.getsockname()[1]
    config = Config()
    # hypercorn wraps the fd it is given and closes it on shutdown: hand it a duplicate, so this
    # function still owns (and closes) exactly its own descriptor.
    config.bind = [f"fd://{os.dup(sock.fileno())}"]
    config.accesslog = None
    config.errorlog = None
    config.graceful_timeout = 1.0
    stop = asyncio.Event()
    task = asyncio.create_task(serve(app, config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base) as client:
            for _ in range(500):
                if task.done():
                    task.result()
                try:
                    await client.get("/health")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.01)
        yield base
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(task, 10)
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
