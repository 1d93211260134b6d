"""The one-container image's process tree without Docker: ``deploy/allinone/entrypoint.sh`` execs
supervisord with ``deploy/allinone/supervisord.conf`` (the files the image copies to
/etc/pulsar-relay), with the data volume, the run directory and both ports moved to a temporary
directory and free loopback ports through the same environment variables the image sets."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import httpx
import pytest

from tests.e2e.launch import child_env
from tests.support.valkey import free_port, server_binary

ROOT = Path(__file__).resolve().parents[2]
ALLINONE = ROOT / "deploy" / "allinone"
ENTRYPOINT = ALLINONE / "entrypoint.sh"
CONF = ALLINONE / "supervisord.conf"
BIN = Path(sys.executable).parent
_STATUS = re.compile(r"^(?P<name>\S+)\s+(?P<state>[A-Z]+)", re.MULTILINE)


def supervisord() -> str:
    found = shutil.which("supervisord", path=str(BIN)) or shutil.which("supervisord")
    if found is None:
        pytest.skip("supervisor is not installed: pip install supervisor")
    return found


def valkey_binary() -> str:
    found = server_binary()
    if found is None:
        pytest.skip("no valkey-server or redis-server on PATH (make valkey installs redis-server)")
    return found


def tool_path(workdir: Path) -> str:
    """PATH for the container's processes: this interpreter's scripts first (supervisord, and
    pulsar-relay where the project is installed), else a pulsar-relay that runs the source tree,
    as the wheel's console script does in the image."""
    directories = [str(BIN)]
    if not (BIN / "pulsar-relay").exists():
        shim = workdir / "bin" / "pulsar-relay"
        shim.parent.mkdir(parents=True, exist_ok=True)
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m pulsar_relay "$@"\n')
        shim.chmod(0o755)
        directories.insert(0, str(shim.parent))
    return os.pathsep.join([*directories, os.environ.get("PATH", "")])


class OneContainer:
    """supervisord, Valkey and the relay as the image runs them; ``data_dir`` is the volume."""

    def __init__(self, workdir: Path, data_dir: Path, **env: str) -> None:
        self.workdir = workdir
        self.data_dir = data_dir
        self.port = free_port()
        # A unix socket path must stay short (about 100 bytes); pytest's tmp_path can be long.
        self.run_dir = Path(tempfile.mkdtemp(prefix="relay-run-"))
        self.env = (
            child_env(
                PATH=tool_path(workdir),
                PULSAR_HOST="127.0.0.1",
                PULSAR_PORT=str(self.port),
                PULSAR_VALKEY_HOST="127.0.0.1",
                PULSAR_VALKEY_PORT=str(free_port()),
                RELAY_VALKEY_SERVER=valkey_binary(),
                RELAY_VALKEY_DIR=str(data_dir),
                RELAY_RUN_DIR=str(self.run_dir),
            )
            | env
        )
        self.log = workdir / f"container-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.seen: set[int] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> OneContainer:
        supervisord()
        # Appending: the children's output reaches this file through supervisord's /dev/stdout.
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [str(ENTRYPOINT), "supervisord", "-c", str(CONF)],
                env=self.env,
                cwd=self.workdir,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.until(self.ready, timeout, "the relay answers /ready")
        self.until(self.settled, timeout, "supervisord counts its programs as started")
        for program in self.states():
            self.pid(program)  # remembered for close()
        return self

    def settled(self) -> bool:
        """No program is still within its startsecs (or backing off after a failed start)."""
        states = self.states()
        return bool(states) and not {"STARTING", "BACKOFF"} & set(states.values())

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""

    def until(self, check: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"supervisord exited {self.proc.returncode}:\n{self.output()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"not within {timeout:.0f}s: {what}\n{self.output()}")
            time.sleep(0.1)

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/ready", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def ctl(self, *args: str) -> str:
        """supervisorctl with the image's configuration (exit status 3 only says "not all running")."""
        result = subprocess.run(
            [sys.executable, "-m", "supervisor.supervisorctl", "-c", str(CONF), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        return result.stdout

    def states(self) -> dict[str, str]:
        return {m["name"]: m["state"] for m in _STATUS.finditer(self.ctl("status"))}

    def pid(self, program: str) -> int:
        """The program's pid, 0 when it is not running."""
        text = self.ctl("pid", program).strip()
        pid = int(text) if text.isdigit() else 0
        if pid:
            self.seen.add(pid)
        return pid

    def kill(self, program: str, timeout: float = 60) -> int:
        """SIGKILL the program and wait for supervisord to run a new one that is ready; its pid."""
        old = self.pid(program)
        assert old, self.states()
        os.kill(old, signal.SIGKILL)

        def replaced() -> bool:
            return self.pid(program) not in (0, old) and self.settled()

        self.until(replaced, timeout, f"supervisord restarts {program}")
        self.until(self.ready, timeout, "the restarted relay answers /ready")
        return self.pid(program)

    def stop(self, timeout: float = 90) -> int:
        """SIGTERM to supervisord, as `docker stop` sends; its exit status."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def close(self) -> None:
        """Whatever is still running after a failed test: supervisord stops its children on
        SIGTERM; only if it does not, it and then every child it ran are killed."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(90)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        ports = {self.env["PULSAR_PORT"], self.env["PULSAR_VALKEY_PORT"]}
        for pid in self.seen:
            # Only a child of ours still running (its command line, or the title Valkey gives
            # itself, names one of our ports), never a process that reused a pid freed since.
            with contextlib.suppress(OSError):
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
                if alive(pid) and any(port in cmdline for port in ports):
                    os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.run_dir, ignore_errors=True)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone in every sense that matters here, but only its parent can reap it.
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z"):
            return False
    return True


def entrypoint(env: Mapping[str, str], *command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The entrypoint with ``command`` in place of supervisord."""
    return subprocess.run(
        [str(ENTRYPOINT), *command], env=dict(env), cwd=cwd, capture_output=True, text=True, timeout=60
    )
