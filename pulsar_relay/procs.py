"""Child processes that ``pulsar-relay dev`` and ``pulsar-relay stack`` start and stop: Valkey,
the relay services, HAProxy.  Each child gets its own session (a terminal's Ctrl-C reaches only the
launcher, which then stops children in reverse start order) and dies with the launcher on Linux."""

from __future__ import annotations

import collections
import contextlib
import ctypes
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO


class StartError(RuntimeError):
    """A child exited or did not become ready; the message carries the tail of its output."""

    @property
    def port_taken(self) -> bool:
        """Another process bound the port between our probe and the child's bind."""
        return "address already in use" in str(self).lower()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def _die_with_parent() -> None:
    # PR_SET_PDEATHSIG = 1: a SIGKILLed launcher must not leave a Valkey holding the data dir.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


class Child:
    """One child process.  Output goes to ``log`` (a file) or, when ``log`` is None, through a
    pipe that the owning ``ProcessGroup`` copies to stderr, each line prefixed with the name."""

    def __init__(
        self, name: str, argv: Sequence[str], *, env: Mapping[str, str] | None = None, log: Path | None = None
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(os.environ if env is None else env)
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self._partial = b""
        # The last lines a piped child printed, for error messages.
        self.recent: collections.deque[str] = collections.deque(maxlen=40)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> Child:
        out: int | IO[bytes]
        if self.log is not None:
            self.log.parent.mkdir(parents=True, exist_ok=True)
            out = open(self.log, "ab")  # noqa: SIM115 - handed to the child, closed below
        else:
            out = subprocess.PIPE
        # The death signal is tied to the forking *thread*; only the main thread lives as long as
        # the launcher, so elsewhere we rely on stop() alone.
        on_linux_main = sys.platform == "linux" and threading.current_thread() is threading.main_thread()
        try:
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent if on_linux_main else None,
            )
        finally:
            if not isinstance(out, int):
                out.close()
        return self

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, chars: int = 3000) -> str:
        if self.log is not None and self.log.exists():
            return self.log.read_text(errors="replace")[-chars:]
        return "\n".join(self.recent)[-chars:]

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class ProcessGroup:
    """Children started in order and stopped in reverse; copies piped output to stderr."""

    def __init__(self, out: IO[str] | None = None) -> None:
        self.children: list[Child] = []
        self.out = out or sys.stderr
        self._sel = selectors.DefaultSelector()

    def start(self, child: Child) -> Child:
        self.children.append(child.start())
        if child.proc is not None and child.proc.stdout is not None:
            os.set_blocking(child.proc.stdout.fileno(), False)
            self._sel.register(child.proc.stdout, selectors.EVENT_READ, child)
        return child

    def pump(self, timeout: float) -> None:
        """Copy whatever the piped children printed; waits at most ``timeout`` seconds."""
        if not self._sel.get_map():
            time.sleep(timeout)
            return
        for key, _ in self._sel.select(timeout):
            child: Child = key.data
            stream = key.fileobj
            assert child.proc is not None and child.proc.stdout is stream
            chunk = child.proc.stdout.read() or b""
            if not chunk:
                self._sel.unregister(stream)
                continue
            *lines, child._partial = (child._partial + chunk).split(b"\n")
            for line in lines:
                text = line.decode(errors="replace")
                child.recent.append(text)
                self.out.write(f"{child.name:>9} | {text}\n")
            self.out.flush()

    def discard(self, child: Child) -> None:
        """Stop ``child`` and forget it (to start a replacement)."""
        if child.proc is not None and child.proc.stdout is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(child.proc.stdout)
        child.stop()
        self.children.remove(child)

    def dead(self) -> Child | None:
        return next((c for c in self.children if not c.running()), None)

    def respawn(self, child: Child) -> Child:
        """Start ``child`` again with the same command, environment and log (so the same port)."""
        if child.proc is not None and child.proc.stdout is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(child.proc.stdout)
            child.proc.stdout.close()
        child._partial = b""
        child.start()
        if child.proc is not None and child.proc.stdout is not None:
            os.set_blocking(child.proc.stdout.fileno(), False)
            self._sel.register(child.proc.stdout, selectors.EVENT_READ, child)
        return child

    def wait_until(self, child: Child, ready: Callable[[], bool], timeout: float, what: str) -> None:
        """Block until ``ready()`` holds; ``StartError`` if ``child`` exits or time runs out."""
        deadline = time.monotonic() + timeout
        while not ready():
            if not child.running():
                raise StartError(f"{child.name} exited while starting {what}:\n{child.tail()}")
            if time.monotonic() > deadline:
                raise StartError(
                    f"{child.name} did not become ready ({what}) in {timeout:.0f}s:\n{child.tail()}"
                )
            self.pump(0.05)

    def stop(self) -> None:
        for child in reversed(self.children):
            child.stop()
            with contextlib.suppress(KeyError, ValueError):
                if child.proc is not None and child.proc.stdout is not None:
                    self._sel.unregister(child.proc.stdout)
        self.children.clear()
        self._sel.close()
        self._sel = selectors.DefaultSelector()


def http_ok(url: str) -> bool:
    """True when ``url`` answers 2xx; any error or non-2xx is False."""
    try:
        with urllib.request.urlopen(url, timeout=1.0) as response:
            return 200 <= int(response.status) < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False
