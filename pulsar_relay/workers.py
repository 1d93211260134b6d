"""``pulsar-relay serve <service> --workers N`` with N > 1: a small parent process that keeps N
worker processes serving one port.

Each worker is forked from the parent (after the settings were checked, so a bad configuration
stops the parent before any worker starts) with listening sockets of its own on the service's
address, opened with ``SO_REUSEPORT``: the kernel hands each new connection to one of the workers'
sockets by a hash of its addresses, so connections spread evenly whichever worker is awake
(ARCHITECTURE.md, "Worker processes", says why not one shared socket).  Worker ``i`` serves as
gateway ``<gateway_id>-w<i>`` (its own consumer group, the same across its restarts, so a restarted
worker resumes its group) with its metrics on ``metrics_port + i``.

The parent forwards SIGTERM and SIGINT to the workers, each of which drains as a single process does
(``pulsar_relay.server.stop_on_signals``), waits for them (``STOP_TIMEOUT``, then SIGKILL) and exits
0 when every worker stopped cleanly, 1 otherwise.  A worker that dies while the others serve is
restarted after ``RESTART_DELAY``, doubled each time it dies again within ``QUICK_DEATH`` of its
start, up to ``MAX_RESTART_DELAY``.  A worker that fails before it ever served (its first start, or
``MAX_FAILED_STARTS`` restarts in a row) stops the others, and the parent exits with its exit code
instead of trying for ever.  Workers get SIGTERM if the parent itself dies (Linux).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import select
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType

import msgspec

from relaycore.config import Settings

log = logging.getLogger("pulsar_relay.workers")

STOP_TIMEOUT = 25.0  # after a forwarded stop: drain (2 s), uvicorn's grace (5 s), app shutdown
RESTART_DELAY = 0.5
MAX_RESTART_DELAY = 30.0
QUICK_DEATH = 60.0  # a worker dying within this of its start is dying again: the delay doubles
MAX_FAILED_STARTS = 5  # restarts in a row that never served before the parent gives up
BACKLOG = 4096  # each worker's accept queue, as uvicorn_config's backlog
_STOPS = (signal.SIGTERM, signal.SIGINT)
_BLOCKED = {*_STOPS, signal.SIGCHLD}

# Runs in the forked worker: serve worker ``index`` on ``sockets``, calling ``ready()`` once serving.
ServeWorker = Callable[[int, list[socket.socket], Callable[[], None]], None]


def worker_settings(settings: Settings, index: int) -> Settings:
    """Worker ``index``'s settings: a gateway id and a metrics port of its own, the same every time
    that worker starts."""
    return msgspec.structs.replace(
        settings,
        gateway_id=f"{settings.effective_gateway_id}-w{index}",
        metrics_port=settings.metrics_port + index,
    )


def listen(host: str, port: int, *, reuse_port: bool = True) -> list[socket.socket]:
    """Listening sockets on every address ``host`` resolves to (as uvicorn binds a host name)."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, address in dict.fromkeys((info[0], info[4]) for info in infos):
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(BACKLOG)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


@dataclass
class Slot:
    """One worker's place: the process in it now, and its history of deaths."""

    index: int
    pid: int = 0
    ready_fd: int = -1  # the worker writes one byte here once it serves
    ready: bool = False
    ever_ready: bool = False
    started_at: float = 0.0
    restart_at: float | None = None
    quick_deaths: int = 0
    failed_starts: int = 0


def _describe(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
        return f"was killed by signal {-code}"
    return f"exited with code {code}"


class Supervisor:
    def __init__(self, count: int, host: str, port: int, serve: ServeWorker) -> None:
        self.slots = [Slot(i) for i in range(count)]
        self.host, self.port, self.serve = host, port, serve
        self.stopping = False
        self.deadline = 0.0
        self.fatal: int | None = None
        self.codes: list[int] = []  # exit codes of the workers stopped on request
        self._signals: list[int] = []
        self._wake_r = self._wake_w = -1

    # --- the parent ----------------------------------------------------------------------------
    def run(self) -> int:
        try:  # a port already taken, by anyone (our own workers included), fails here, once
            for sock in listen(self.host, self.port, reuse_port=False):
                sock.close()
        except OSError as exc:
            print(f"pulsar-relay: cannot listen on {self.host}:{self.port}: {exc}", file=sys.stderr)
            return 1
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        previous = {sig: signal.getsignal(sig) for sig in _BLOCKED}
        old_wakeup = signal.set_wakeup_fd(self._wake_w)
        for sig in _STOPS:
            signal.signal(sig, self._on_stop)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # only wakes the loop (the wake-up fd)
        try:
            log.info("starting %d workers on http://%s:%d", len(self.slots), self.host, self.port)
            for slot in self.slots:
                self._start(slot)
            return self._loop()
        finally:
            self._kill_all()
            signal.set_wakeup_fd(old_wakeup)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            os.close(self._wake_r)
            os.close(self._wake_w)

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        self._signals.append(signum)

    def _loop(self) -> int:
        while True:
            self._reap()
            now = time.monotonic()
            if self.fatal is not None and not self.stopping:
                self._stop(signal.SIGTERM, now)
            while self._signals:
                self._stop(self._signals.pop(0), now)
            live = [s for s in self.slots if s.pid]
            if self.stopping and not live:
                if self.fatal is not None:
                    return self.fatal
                return 0 if all(code == 0 for code in self.codes) else 1
            if self.stopping and now >= self.deadline:
                pids = [s.pid for s in live]
                log.error("workers %s did not stop within %g s: killing them", pids, STOP_TIMEOUT)
                self._kill_all()
                return 1
            waits = [self.deadline - now] if self.stopping else []
            for slot in self.slots:
                if slot.restart_at is not None and not self.stopping:
                    if slot.restart_at <= now:
                        self._start(slot)
                    else:
                        waits.append(slot.restart_at - now)
            self._wait(min([1.0, *waits]))

    def _wait(self, timeout: float) -> None:
        fds = [self._wake_r, *(s.ready_fd for s in self.slots if s.ready_fd >= 0)]
        readable, _, _ = select.select(fds, [], [], max(0.0, timeout))
        for fd in readable:
            if fd == self._wake_r:
                with contextlib.suppress(BlockingIOError):
                    while os.read(fd, 512):
                        pass
                continue
            slot = next(s for s in self.slots if s.ready_fd == fd)
            if os.read(fd, 1):
                slot.ready = slot.ever_ready = True
                slot.failed_starts = 0
                log.info("worker %d (pid %d) is serving", slot.index, slot.pid)
            os.close(fd)  # said ready, or closed its end (it is exiting: _reap hears of it)
            slot.ready_fd = -1

    def _stop(self, sig: int, now: float) -> None:
        if not self.stopping:
            self.stopping, self.deadline = True, now + STOP_TIMEOUT
            log.info("stopping %d workers (%s)", len(self.slots), signal.Signals(sig).name)
        for slot in self.slots:  # a second signal is passed on too: the workers then stop at once
            slot.restart_at = None
            if slot.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(slot.pid, sig)

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            slot = next((s for s in self.slots if s.pid == pid), None)
            if slot is not None:
                self._exited(slot, os.waitstatus_to_exitcode(status))

    def _exited(self, slot: Slot, code: int) -> None:
        pid, was_ready, slot.pid, slot.ready = slot.pid, slot.ready, 0, False
        if slot.ready_fd >= 0:
            os.close(slot.ready_fd)
            slot.ready_fd = -1
        if self.stopping:
            self.codes.append(code)
            if code != 0:
                log.error("worker %d (pid %d) %s while stopping", slot.index, pid, _describe(code))
            return
        now = time.monotonic()
        if not was_ready:
            slot.failed_starts += 1
            if not slot.ever_ready or slot.failed_starts >= MAX_FAILED_STARTS:
                log.error(
                    "worker %d (pid %d) %s before it served (%d start(s) failed); stopping",
                    slot.index, pid, _describe(code), slot.failed_starts,
                )  # fmt: skip
                self.fatal = code if code > 0 else 1
                return
        slot.quick_deaths = slot.quick_deaths + 1 if now - slot.started_at < QUICK_DEATH else 0
        delay = min(MAX_RESTART_DELAY, RESTART_DELAY * 2 ** max(0, slot.quick_deaths - 1))
        log.warning("worker %d (pid %d) %s; restarting it in %.1f s", slot.index, pid, _describe(code), delay)
        slot.restart_at = now + delay

    def _kill_all(self) -> None:
        for slot in self.slots:
            if slot.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(slot.pid, signal.SIGKILL)
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(slot.pid, 0)
                slot.pid = 0

    def _start(self, slot: Slot) -> None:
        slot.restart_at = None
        try:
            sockets = listen(self.host, self.port)
        except OSError as exc:
            log.error("worker %d cannot listen on %s:%d: %s", slot.index, self.host, self.port, exc)
            self.fatal = 1
            return
        ready_r, ready_w = os.pipe()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        parent = os.getpid()
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _BLOCKED)
        try:
            pid = os.fork()
            if pid == 0:  # the worker; never returns
                os.close(ready_r)
                self._become_worker(slot.index, sockets, ready_w, blocked, parent)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        os.close(ready_w)
        for sock in sockets:  # the worker's alone: a worker that dies takes its sockets with it
            sock.close()
        slot.pid, slot.ready_fd, slot.ready, slot.started_at = pid, ready_r, False, time.monotonic()
        log.info("started worker %d (pid %d)", slot.index, pid)

    # --- a worker ------------------------------------------------------------------------------
    def _become_worker(
        self, index: int, sockets: list[socket.socket], ready_w: int, mask: set[int], parent: int
    ) -> None:
        code = 1
        try:
            signal.set_wakeup_fd(-1)
            for fd in (self._wake_r, self._wake_w, *(s.ready_fd for s in self.slots if s.ready_fd >= 0)):
                os.close(fd)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            for sig in _STOPS:  # until the server's own handlers take over: stop before serving
                signal.signal(sig, _exit_quietly)
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            _die_with(parent)

            def ready() -> None:
                os.write(ready_w, b"1")
                os.close(ready_w)

            self.serve(index, sockets, ready)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            with contextlib.suppress(Exception):
                logging.shutdown()
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)


def _exit_quietly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def _die_with(parent: int) -> None:
    """Have the kernel send this worker SIGTERM when its parent dies (Linux's PR_SET_PDEATHSIG),
    so a parent killed outright leaves no worker serving on its own."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # 1: PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it died before that took effect
        raise SystemExit(0)


def supervise(count: int, host: str, port: int, serve: ServeWorker) -> int:
    """Serve with ``count`` workers until a signal stops them; the process's exit code."""
    return Supervisor(count, host, port, serve).run()
