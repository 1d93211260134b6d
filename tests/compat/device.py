"""Pulsar 0.16's device-flow login as an operator runs it, and a person approving it.

``PulsarConfig`` runs the real ``pulsar-config --login-only --relay-url URL`` (pulsar-galaxy-lib
0.16.0, a dev dependency) as a child process and reads the user code from the banner it prints.
``approve`` is the person: an HTTP client with a cookie jar that opens the printed link, signs in
with a relay account and presses Approve (or Deny), posting the page's own forms."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from html import unescape
from pathlib import Path

import httpx

PULSAR_CONFIG = Path(sys.executable).with_name("pulsar-config")
_CODE = re.compile(r"Code:\s+([A-Z]{4}-[A-Z]{4})")
_VISIT = re.compile(r"Visit:\s+(\S+)")


def hidden(page: str, name: str) -> str:
    found = re.search(rf'name="{re.escape(name)}" value="([^"]*)"', page)
    assert found, f"no hidden field {name!r} on the page:\n{page}"
    return unescape(found.group(1))


class PulsarConfig:
    """``pulsar-config`` running in a child process; its output collected by a reader thread."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [str(PULSAR_CONFIG), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if not k.startswith("PULSAR_")},
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.append(raw.decode(errors="replace"))

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def banner(self, timeout: float = 30) -> tuple[str, str]:
        """(link to open, user code) once the banner is printed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code, visit = _CODE.search(self.output), _VISIT.search(self.output)
            if code and visit:
                return visit.group(1), code.group(1)
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"pulsar-config printed no user code:\n{self.output}")

    def wait(self, timeout: float = 60) -> int:
        try:
            rc = self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(10)
        self._reader.join(5)
        return rc

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self._reader.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def login_only(relay_url: str, directory: Path) -> PulsarConfig:
    return PulsarConfig("--login-only", "--relay-url", relay_url, "--directory", str(directory))


def approve(link: str, username: str, password: str, *, allow: bool = True) -> str:
    """Open ``link`` (verification_uri_complete) as a person would, sign in, and press Approve
    (or Deny); returns the final page."""
    origin = re.match(r"https?://[^/]+", link)
    assert origin, link
    with httpx.Client(base_url=origin.group(0), headers={"Origin": origin.group(0)}, timeout=30) as browser:
        first = browser.get(link)
        assert first.status_code == 200, first.text
        signed = browser.post(
            "/auth/device/signin",
            data={"username": username, "password": password, "next": hidden(first.text, "next")},
        )
        assert signed.status_code == 303, signed.text
        page = browser.get(signed.headers["location"])
        assert page.status_code == 200 and "/auth/device/approve" in page.text, page.text
        form = {"user_code": hidden(page.text, "user_code"), "csrf_token": hidden(page.text, "csrf_token")}
        done = browser.post("/auth/device/approve" if allow else "/auth/device/deny", data=form)
        assert done.status_code == 200, done.text
        return done.text
