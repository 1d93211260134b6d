"""``pulsar-relay stack`` (``make stack``): the split deployment on one machine.  Valkey, auth, ingest
and N gateways as separate ``pulsar-relay serve`` processes on free ports, behind HAProxy running
``deploy/haproxy.cfg`` (the file compose uses) on one port.  ``Stack`` is also what the end-to-end
tests start."""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

from pulsar_relay import haproxy
from pulsar_relay.dev import display_host, login_command, secrets_env
from pulsar_relay.devdata import DevData
from pulsar_relay.localvalkey import LocalValkey, server_binary
from pulsar_relay.procs import Child, ProcessGroup, StartError, free_port, http_ok, port_is_free

# A child that exits this many times within the window is not restarted again.
RESTART_LIMIT = 5
RESTART_WINDOW = 60.0


class Stack:
    """Start with ``start()`` (or ``with Stack(...)``); ``stop()`` stops every process it started."""

    def __init__(
        self,
        *,
        data_dir: Path,
        gateways: int = 2,
        host: str = "127.0.0.1",
        port: int | None = None,
        environ: Mapping[str, str] | None = None,
        haproxy_config: Path | None = None,
        config_file: str | None = None,
        log_dir: Path | None = None,
        out: TextIO | None = None,
    ) -> None:
        if gateways < 1:
            raise ValueError("a stack needs at least one gateway")
        self.data = DevData(data_dir)
        self.gateways = gateways
        self.host = host
        self.port = port or free_port()
        self.environ = dict(os.environ if environ is None else environ)
        self.haproxy_config = haproxy.find_config(haproxy_config)
        haproxy.binary()  # fail before starting anything when HAProxy is missing
        self.config_file = config_file
        self.log_dir = log_dir
        self.group = ProcessGroup(out)
        self.services: dict[str, str] = {}
        self.admin: tuple[str, str] | None = None
        self.valkey_url = ""
        self._run_dir: Path | None = None
        self._specs: dict[str, tuple[str, dict[str, str]]] = {}
        self._any_port = port is None
        self.runtime: haproxy.Runtime | None = None
        self._haproxy_addresses: haproxy.Addresses | None = None

    @property
    def url(self) -> str:
        return f"http://{display_host(self.host)}:{self.port}"

    def _log(self, name: str) -> Path | None:
        return self.log_dir / f"{name}.log" if self.log_dir else None

    def _service(self, name: str, service: str, env: dict[str, str]) -> Child:
        self._specs[name] = (service, env)
        port = free_port()
        self.services[name] = f"http://127.0.0.1:{port}"
        config = ["--config", self.config_file] if self.config_file else []
        argv = [sys.executable, "-m", "pulsar_relay", *config, "serve", service]
        argv += ["--host", "127.0.0.1", "--port", str(port)]
        return self.group.start(Child(name, argv, env=env, log=self._log(name)))

    def start(self, timeout: float = 60.0) -> Stack:
        self.data.acquire()
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, timeout: float) -> None:
        if not port_is_free(self.port, self.host):
            raise StartError(f"port {self.port} on {self.host} is in use; pass --port P")
        env, self.admin = secrets_env(self.data, self.environ, self.config_file)
        self.valkey_url = env.get("PULSAR_VALKEY_URL", "")
        if not self.valkey_url:
            binary = server_binary()
            if binary is None:
                raise StartError(
                    "the split stack needs Valkey: install valkey-server or redis-server, or set"
                    " PULSAR_VALKEY_URL (the memory backend cannot be shared between processes)"
                )
            self.valkey_url = LocalValkey(binary, self.data.valkey_dir).start(self.group, timeout).url
        env |= {"PULSAR_STORAGE_BACKEND": "valkey", "PULSAR_VALKEY_URL": self.valkey_url}
        # Only auth creates the bootstrap admin; the others need not know its password.
        quiet = {k: v for k, v in env.items() if not k.startswith("PULSAR_BOOTSTRAP_ADMIN_")}
        children = [self._service("auth", "auth", env), self._service("ingest", "ingest", quiet)]
        for i in range(1, self.gateways + 1):
            children.append(
                self._service(f"gateway-{i}", "gateway", quiet | {"PULSAR_GATEWAY_ID": f"gateway-{i}"})
            )
        for child in children:
            self._wait_healthy(child, timeout)
        for attempt in range(3):
            try:
                self._start_haproxy(timeout)
                return
            except StartError as exc:
                if not exc.port_taken or attempt == 2:
                    raise
                # Ports are probed free, then bound by the child: a busy machine can take one between.
                self.group.discard(next(c for c in self.group.children if c.name == "haproxy"))
                if self._any_port:
                    self.port = free_port()

    def _wait_healthy(self, child: Child, timeout: float) -> None:
        for attempt in range(3):
            health = self.services[child.name] + "/health"
            try:
                self.group.wait_until(child, functools.partial(http_ok, health), timeout, health)
                return
            except StartError as exc:
                if not exc.port_taken or attempt == 2:
                    raise
                self.group.discard(child)
                child = self._service(child.name, *self._specs[child.name])

    def _start_haproxy(self, timeout: float) -> None:
        if self._run_dir is not None:
            shutil.rmtree(self._run_dir, ignore_errors=True)
        self._run_dir = Path(tempfile.mkdtemp(prefix="relay-haproxy-"))
        gateways = [
            self.services[f"gateway-{i}"].removeprefix("http://") for i in range(1, self.gateways + 1)
        ]
        addresses = haproxy.Addresses(
            bind=f"{self.host}:{self.port}",
            monitor=f"127.0.0.1:{free_port()}",
            auth=self.services["auth"].removeprefix("http://"),
            ingest=self.services["ingest"].removeprefix("http://"),
            gateways=gateways,
            runtime_socket=self._run_dir / "haproxy.sock",
        )
        env = {**os.environ, **haproxy.static_env(addresses)}
        lb = self.group.start(haproxy.child(self.haproxy_config, env, self._log("haproxy")))
        runtime = haproxy.Runtime(addresses.runtime_socket)
        self.group.wait_until(lb, addresses.runtime_socket.exists, timeout, "runtime socket")
        self._haproxy_addresses = addresses
        self._point_gateway_slots(lb, runtime, timeout)
        self.runtime = runtime
        self.group.wait_until(
            lb, lambda: runtime.all_up(["auth", "ingest", "gateway"]), timeout, "servers up"
        )
        self.group.wait_until(lb, lambda: http_ok(f"{self.url}/health"), timeout, f"{self.url}/health")

    def _point_gateway_slots(self, lb: Child, runtime: haproxy.Runtime, timeout: float) -> None:
        assert self._haproxy_addresses is not None
        self.group.wait_until(lb, self._haproxy_addresses.runtime_socket.exists, timeout, "runtime socket")
        for k, address in enumerate(self._haproxy_addresses.gateways[1:], start=2):
            runtime.set_server("gateway", f"gw{k}", address)

    def revive(self, child: Child, timeout: float = 30.0) -> None:
        """Start a child that exited again, as supervisord or compose would: the same command, so
        the same port, data and identity; HAProxy gets its gateway slots pointed again."""
        addresses = self._haproxy_addresses
        if child.name == "haproxy" and addresses is not None:
            # The new HAProxy's socket, not the one the dead process left behind.
            addresses.runtime_socket.unlink(missing_ok=True)
        self.group.respawn(child)
        if child.name == "haproxy" and self.runtime is not None:
            self._point_gateway_slots(child, self.runtime, timeout)

    def stop(self) -> None:
        self.group.stop()
        self.data.release()
        if self._run_dir is not None:
            shutil.rmtree(self._run_dir, ignore_errors=True)
            self._run_dir = None

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def describe(self) -> str:
        lines = [f"Pulsar Relay split stack on {self.url} (HAProxy, {self.haproxy_config})"]
        pids = {c.name: c.pid for c in self.group.children}
        started = f"  pid {pids['valkey']}" if "valkey" in pids else "  (not started here)"
        lines.append(f"  {'valkey':<10} {self.valkey_url}{started}")
        lines += [f"  {name:<10} {url}  pid {pids.get(name)}" for name, url in self.services.items()]
        lines.append(f"  {'haproxy':<10} {self.url}  pid {pids.get('haproxy')}")
        if self.admin is not None:
            lines.append(f"  admin: username {self.admin[0]}, password {self.admin[1]}")
            lines += ["  " + line for line in login_command(self.url, *self.admin).splitlines()]
        lines.append("Ready. Ctrl-C stops everything.")
        return "\n".join(lines)


def run(
    *,
    gateways: int,
    host: str,
    port: int,
    data_dir: Path,
    haproxy_config: Path | None,
    config_file: str | None,
    out: TextIO = sys.stdout,
) -> int:
    """The CLI: start, print where everything is, copy the children's output until Ctrl-C/SIGTERM,
    then stop everything.  A child that dies is started again (same port, data and identity) and
    the rest keep serving; one that dies RESTART_LIMIT times within RESTART_WINDOW seconds stops
    the stack, as supervisord gives up on a program that keeps failing."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    stack = Stack(
        data_dir=data_dir,
        gateways=gateways,
        host=host,
        port=port,
        haproxy_config=haproxy_config,
        config_file=config_file,
    )
    try:
        stack.start()
        out.write(stack.describe() + "\n")
        out.flush()
        deaths: dict[str, list[float]] = {}
        while True:
            stack.group.pump(0.5)
            dead = stack.group.dead()
            if dead is None:
                continue
            code = dead.proc.returncode if dead.proc else None
            now = time.monotonic()
            recent = [t for t in deaths.get(dead.name, []) if now - t < RESTART_WINDOW] + [now]
            deaths[dead.name] = recent
            if len(recent) >= RESTART_LIMIT:
                print(
                    f"pulsar-relay stack: {dead.name} exited (code {code}) {len(recent)} times in"
                    f" {RESTART_WINDOW:.0f}s; stopping the stack",
                    file=sys.stderr,
                )
                return 1
            print(f"pulsar-relay stack: {dead.name} exited (code {code}); restarting it", file=sys.stderr)
            with contextlib.suppress(StartError):  # died again while starting: counted next round
                stack.revive(dead)
    except KeyboardInterrupt:
        return 0
    finally:
        stack.stop()
