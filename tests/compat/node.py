"""Running the README's JavaScript in Node: the ``ws`` package installed on demand into
``tests/compat/js/node_modules``, and a child process whose console calls arrive as JSON lines."""

from __future__ import annotations

import contextlib
import json
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

JS_DIR = Path(__file__).with_name("js")
HARNESS = JS_DIR / "run_readme_example.js"
# The Makefile runs the same line; the version is pinned in js/package.json.
NPM_INSTALL = ["npm", "install", "--prefix", str(JS_DIR), "--no-audit", "--no-fund", "--no-package-lock"]


def ensure_ws() -> str:
    """Path of ``node``, with the ``ws`` package installed; skips when Node or npm is missing."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    if not (JS_DIR / "node_modules" / "ws" / "package.json").is_file():
        if shutil.which("npm") is None:
            pytest.skip("npm is not installed, cannot install the ws package")
        subprocess.run(NPM_INSTALL, check=True, capture_output=True, timeout=300)
    return node


class NodeExample:
    """One README example running in Node; ``next_call`` returns its console calls in order."""

    def __init__(self, code: str, workdir: Path, *, expect_received: int) -> None:
        node = ensure_ws()
        script = workdir / "example.js"
        script.write_text(code)
        self.proc = subprocess.Popen(
            [node, str(HARNESS), str(script)],
            cwd=JS_DIR,
            env={"PATH": "/usr/bin:/bin", "EXPECT_RECEIVED": str(expect_received), "HARD_LIMIT_MS": "60000"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.calls: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            with contextlib.suppress(ValueError):
                self.calls.put(json.loads(raw))
        self.calls.put(None)

    def next_call(self, timeout: float = 20) -> dict[str, Any] | None:
        """The next console call, or None once the process has ended."""
        try:
            call = self.calls.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no console output within {timeout}s; so far: {self.seen}") from None
        if call is not None:
            self.seen.append(call)
        return call

    def wait_for(self, first_arg: str, timeout: float = 20) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            call = self.next_call(max(0.1, deadline - time.monotonic()))
            if call is None:
                raise AssertionError(f"node exited before logging {first_arg!r}: {self.seen} {self.stderr()}")
            if call["args"] and call["args"][0] == first_arg:
                return call

    def finish(self, timeout: float = 20) -> int:
        """Drain the output until the process exits (killing it past ``timeout``); its exit code."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self._reader.join(10)
        while (call := self.calls.get_nowait() if not self.calls.empty() else None) is not None:
            self.seen.append(call)
        return int(self.proc.returncode)

    def stderr(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return ""
        return self.proc.stderr.read().decode(errors="replace")[-2000:]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._reader.join(10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()

    def errors(self) -> list[dict[str, Any]]:
        return [c for c in self.seen if c["level"] != "log"]

    def received(self) -> list[Any]:
        return [c["args"][1] for c in self.seen if c["level"] == "log" and c["args"][:1] == ["Received:"]]
