"""Child processes of the benchmark (servers), pinned to a core, with logs kept for failures."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.machine import SERVER_CORE, loadavg, server_preexec

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def repo_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The environment for our own processes: the repo's source trees importable from anywhere."""
    paths = [str(REPO / "libs"), str(REPO / "services"), str(REPO)]
    old = os.environ.get("PYTHONPATH")
    env = {**os.environ, **extra, "PYTHONPATH": os.pathsep.join(paths + ([old] if old else []))}
    return env


def _health(port: int, probe: str) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            if probe == "tcp":
                return True
            s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


class Server:
    """One server process on ``port``; ``start`` waits until ``GET /health`` answers 200."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        port: int,
        *,
        core: int = SERVER_CORE,
        cwd: str | None = None,
        probe: str = "http",
    ) -> None:
        self.probe = probe
        self.name, self.argv, self.env, self.port, self.core = name, list(argv), dict(env), port, core
        self.cwd = cwd or tempfile.mkdtemp(prefix=f"bench-{name}-")
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = Path(self.cwd) / f"{name}.log"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 60) -> Server:
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=server_preexec(self.core),
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}):\n{self.output()}")
            if _health(self.port, self.probe):
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not become healthy in {timeout}s:\n{self.output()}")

    def output(self, tail: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def commit() -> str:
    """The code measured: ``$BENCH_COMMIT`` (set when running from an exported snapshot), else HEAD."""
    if os.environ.get("BENCH_COMMIT"):
        return os.environ["BENCH_COMMIT"]
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True, text=True
        )
    except OSError:
        return "unknown"
    return out.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "") or "unknown"


def run_info(
    program: str, argv: Sequence[str], started: str, machine: dict[str, Any], params: dict[str, Any]
) -> dict[str, Any]:
    """The header of a benchmark's raw results: when, the command line, the code and the machine."""
    return {
        "started": started,
        "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": " ".join([f"python -m {program}", *argv]),
        "commit": commit(),
        "machine": machine,
        "loadavg_after": loadavg(),
        "params": params,
    }
