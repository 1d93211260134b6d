"""A private Valkey/Redis server for tests: ``valkey-server`` or ``redis-server`` from PATH on a free
port with AOF on in a temporary directory; testcontainers where Docker works and no binary does."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_args(binary: str, port: int, workdir: str, appendfsync: str) -> list[str]:
    """A private server's command line: loopback only, AOF on, no RDB snapshots, log in ``workdir``."""
    return [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        workdir,
        "--appendonly",
        "yes",
        "--appendfsync",
        appendfsync,
        "--save",
        "",
        "--protected-mode",
        "no",
        "--daemonize",
        "no",
        "--logfile",
        os.path.join(workdir, "server.log"),
    ]


def server_binary() -> str | None:
    return shutil.which("valkey-server") or shutil.which("redis-server")


class ValkeyServer:
    """One server process; ``kill()`` (SIGKILL) and ``start()`` again reuse the same data dir and port."""

    def __init__(
        self,
        *,
        appendfsync: str = "everysec",
        extra: list[str] | None = None,
        port: int | None = None,
        workdir: str | None = None,
    ) -> None:
        binary = server_binary()
        if binary is None:
            raise RuntimeError("no valkey-server or redis-server on PATH (make test installs redis-server)")
        self.binary = binary
        self.port = port or free_port()
        self.dir = workdir or tempfile.mkdtemp(prefix="relay-valkey-")
        self.appendfsync = appendfsync
        self.extra = extra or []
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> ValkeyServer:
        args = [*server_args(self.binary, self.port, self.dir, self.appendfsync), *self.extra]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.2)
        while True:
            try:
                if client.ping():
                    break
            except (redis.ConnectionError, redis.ResponseError):
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log = Path(self.dir, "server.log")
                raise RuntimeError(f"Valkey did not start: {log.read_text() if log.exists() else ''}")
            time.sleep(0.02)
        client.close()
        return self

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

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class ContainerValkey:
    """Valkey in a container (testcontainers): where Docker runs but no server binary exists, or
    where RELAY_TEST_VALKEY_IMAGE names the image (``make test-docker`` runs the storage suite so)."""

    def __init__(self, image: str = "valkey/valkey:8") -> None:
        try:
            from testcontainers.community.redis import RedisContainer
        except ImportError:  # testcontainers before the community packages
            from testcontainers.redis import RedisContainer

        self._c = RedisContainer(image)

    def start(self) -> ContainerValkey:
        self._c.start()
        return self

    @property
    def url(self) -> str:
        return f"redis://{self._c.get_container_host_ip()}:{self._c.get_exposed_port(6379)}/0"

    def cleanup(self) -> None:
        self._c.stop()


def start_any() -> ValkeyServer | ContainerValkey:
    image = os.environ.get("RELAY_TEST_VALKEY_IMAGE")
    if image:
        return ContainerValkey(image).start()
    if server_binary() is not None:
        return ValkeyServer().start()
    return ContainerValkey().start()
