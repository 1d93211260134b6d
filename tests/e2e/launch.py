"""Launchers for the end-to-end tests: the split stack (``pulsar_relay.stack.Stack``), ``pulsar-relay
dev`` as a child process in a temporary working directory, and the environment they need."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from pulsar_relay.localvalkey import server_binary
from pulsar_relay.stack import Stack
from tests.support.serve import child_env, wait_healthy
from tests.support.valkey import free_port


def require_tools(*, haproxy: bool) -> None:
    if server_binary() is None:
        pytest.skip("no valkey-server or redis-server on PATH (make valkey installs redis-server)")
    if haproxy and shutil.which("haproxy") is None and not Path("/usr/sbin/haproxy").exists():
        pytest.skip("haproxy is not installed (apt-get install haproxy; make valkey installs it)")


@contextmanager
def split_stack(workdir: Path, gateways: int = 2) -> Iterator[Stack]:
    """Valkey, auth, ingest, ``gateways`` gateways and HAProxy as separate processes on free ports;
    on failure the children's logs are in the error."""
    require_tools(haproxy=True)
    logs = workdir / "logs"
    stack = Stack(data_dir=workdir / "data", gateways=gateways, environ=child_env(), log_dir=logs)
    try:
        stack.start()
    except Exception as exc:
        raise AssertionError(f"the split stack did not start: {exc}\n{_logs(logs)}") from exc
    try:
        yield stack
    finally:
        stack.stop()


def _logs(directory: Path) -> str:
    if not directory.is_dir():
        return ""
    return "\n".join(
        f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}" for p in sorted(directory.iterdir())
    )


_LOGIN = re.compile(r'-d "username=(?P<user>[^&"]+)&password=(?P<password>[^"]+)"')


class DevProcess:
    """``pulsar-relay dev`` in ``cwd`` (its ``.relay-data`` lands there), output in files."""

    def __init__(self, cwd: Path, env: dict[str, str], port: int | None = None) -> None:
        self.cwd = cwd
        self.env = env
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.out = cwd / "dev.stdout"
        self.err = cwd / "dev.stderr"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> DevProcess:
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "pulsar_relay", "dev", "--port", str(self.port)],
                cwd=self.cwd,
                env=self.env,
                stdout=out,
                stderr=err,
            )
        wait_healthy(self.url, self.proc, self.output, timeout)
        return self

    def stdout(self) -> str:
        return self.out.read_text(errors="replace") if self.out.exists() else ""

    def output(self) -> str:
        err = self.err.read_text(errors="replace")[-3000:] if self.err.exists() else ""
        return f"{self.stdout()}\n--- stderr\n{err}"

    def credentials(self) -> tuple[str, str]:
        """The admin login from the printed curl line."""
        m = _LOGIN.search(self.stdout())
        assert m, f"dev printed no login line:\n{self.stdout()}"
        return m["user"], m["password"]

    def interrupt(self, timeout: float = 30) -> int:
        """Ctrl-C, as a terminal sends it; the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
