"""A real headless Chromium for the console tests: Debian's ``/usr/bin/chromium`` driven by
``playwright-core`` from npm through ``js/driver.js``, one JSON command per line.  Skips (with the
reason) only when Node, npm or Chromium cannot be found."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.serve import ROOT

JS_DIR = Path(__file__).with_name("js")
DRIVER = JS_DIR / "driver.js"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(ROOT) / "test-artifacts" / "console"
SAFETY_NET = 90  # seconds for one command; the driver's own timeouts (20 s) come first
# The Makefile runs the same line; the version is pinned in js/package.json.
NPM_INSTALL = ["npm", "install", "--prefix", str(JS_DIR), "--no-audit", "--no-fund", "--no-package-lock"]


def ensure_driver() -> str:
    """Path of ``node`` with playwright-core installed, or a skip saying what is missing."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (apt-get install -y nodejs npm)")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install -y chromium)")
    if not (JS_DIR / "node_modules" / "playwright-core" / "package.json").is_file():
        if shutil.which("npm") is None:
            pytest.skip("npm is not installed, cannot install playwright-core")
        subprocess.run(NPM_INSTALL, check=True, capture_output=True, timeout=300)
    return node


class BrowserError(AssertionError):
    pass


class Browser:
    """One Chromium with a fresh profile; ``call`` runs a driver op on page ``page``."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.events: list[dict[str, Any]] = []
        self._next = 0

    @classmethod
    async def start(cls) -> Browser:
        node = ensure_driver()
        proc = await asyncio.create_subprocess_exec(
            node,
            str(DRIVER),
            cwd=JS_DIR,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "CHROMIUM": CHROMIUM},
            limit=16 * 1024 * 1024,
        )
        return cls(proc)

    async def call(self, op: str, page: int = 0, **args: Any) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._next += 1
        ident = self._next
        self.proc.stdin.write(
            json.dumps({"id": ident, "op": op, "page": page, "args": args}).encode() + b"\n"
        )
        await self.proc.stdin.drain()
        async with asyncio.timeout(SAFETY_NET):
            while True:
                line = await self.proc.stdout.readline()
                if not line:
                    raise BrowserError(f"driver exited during {op}: {await self._stderr()}")
                reply = json.loads(line)
                if "event" in reply:
                    self.events.append(reply)
                    continue
                if reply.get("id") != ident:
                    continue
                if not reply["ok"]:
                    raise BrowserError(f"{op} {args}: {reply['error']}\nbrowser events: {self.events[-10:]}")
                return reply["result"]

    def page_errors(self) -> list[str]:
        """Script errors and console errors the pages reported so far."""
        return [
            e["text"]
            for e in self.events
            if e["event"] in ("pageerror", "fatal") or (e["event"] == "console" and e["level"] == "error")
        ]

    async def screenshot(self, name: str, page: int = 0) -> Path:
        path = ARTIFACTS / f"{name}.png"
        await self.call("screenshot", page=page, path=str(path))
        return path

    async def _stderr(self) -> str:
        if self.proc.stderr is None:
            return ""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2):
                return (await self.proc.stderr.read()).decode(errors="replace")[-2000:]
        return ""

    async def close(self) -> None:
        assert self.proc.stdin is not None
        if self.proc.returncode is None:
            with contextlib.suppress(ConnectionError):
                self.proc.stdin.write(b'{"op": "quit"}\n')
                await self.proc.stdin.drain()
            self.proc.stdin.close()
            try:
                async with asyncio.timeout(15):
                    await self.proc.communicate()
            except TimeoutError:
                self.proc.kill()
                await self.proc.communicate()
