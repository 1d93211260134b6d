"""Pushpin (Debian ``pushpin``), the GRIP proxy, as a peer: its runner and services (condure for
client connections, pushpin-proxy, pushpin-handler, zurl for requests to the origin) on the
server core, configured from bench/peers/pushpin.conf in their own temporary directory, every
port free and on 127.0.0.1.  Clients' WebSockets reach our GRIP origin (bench/pushpin_origin.py,
a helper on the load generator's core) as WebSocket-over-HTTP; publishing is Pushpin's HTTP
publish API on the handler's control port, which fans each message out itself."""

from __future__ import annotations

import asyncio
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.machine import LOADGEN_CORE
from bench.procs import Server, free_port, repo_env

PACKAGE = "pushpin"
TEMPLATE = Path(__file__).with_name("peers") / "pushpin.conf"
SERVICES = ("pushpin", "pushpin-proxy", "pushpin-handler", "condure", "zurl")


class ProxyServer(Server):
    """The Pushpin runner; ``port`` is the clients' port, ``control_port`` the publish API's."""

    control_port = 0


def missing() -> str | None:
    """Why Pushpin cannot run here, or None when it can."""
    absent = [name for name in SERVICES if shutil.which(name) is None]
    if absent:
        return f"Pushpin is not installed ({', '.join(absent)} not found; apt-get install {PACKAGE})"
    return None


def version() -> str:
    try:
        out = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Version}", PACKAGE], capture_output=True, text=True, check=False
        )
    except OSError:
        return ""
    return out.stdout.strip()


def config(directory: str, port: int, control_port: int) -> str:
    names = {
        "@DIR@": directory,
        "@PORT@": str(port),
        "@CONTROL_PORT@": str(control_port),
        "@MAXCONN@": str(resource.getrlimit(resource.RLIMIT_NOFILE)[1]),
        "@PUSH_IN@": str(free_port()),
        "@PUSH_IN_SUB@": str(free_port()),
        "@COMMAND@": str(free_port()),
    }
    text = TEMPLATE.read_text()
    for name, value in names.items():
        text = text.replace(name, value)
    return text


def servers() -> tuple[Server, ProxyServer]:
    """The origin and the Pushpin runner, not yet started (start the origin first)."""
    origin_port = free_port()
    origin = Server(
        "pushpin-origin",
        [sys.executable, "-m", "bench.pushpin_origin", str(origin_port)],
        repo_env({}),
        origin_port,
        core=LOADGEN_CORE,
    )
    directory = tempfile.mkdtemp(prefix="bench-pushpin-")
    for sub in ("run", "log"):
        Path(directory, sub).mkdir()
    port, control_port = free_port(), free_port()
    conf = Path(directory) / "pushpin.conf"
    conf.write_text(config(directory, port, control_port))
    # Every client request goes to the origin, WebSockets as WebSocket-over-HTTP.
    (Path(directory) / "routes").write_text(f"* 127.0.0.1:{origin_port},over_http\n")
    argv = [shutil.which("pushpin") or "pushpin", "--config", str(conf), "--merge-output"]
    proxy = ProxyServer("pushpin", argv, {"PATH": "/usr/sbin:/usr/bin:/bin"}, port, cwd=directory)
    proxy.control_port = control_port
    return origin, proxy


async def wait_ready(port: int, limit: float = 30.0) -> None:
    """Wait until a WebSocket subscribes through Pushpin end to end (Pushpin, zurl, the origin and
    the handler's subscription), as the scenarios' subscribers will."""
    from bench import wsclient
    from bench.wire import PUSHPIN

    target = PUSHPIN.ws_target(["bench-ready"])
    deadline = time.monotonic() + limit
    while True:
        try:
            conn = await wsclient.subscribe(
                "127.0.0.1", port, "", ["bench-ready"], wsclient.Deliveries(), auth="none",
                path=target.path, send_subscribe=False, await_confirm=True, handshake_limit=5.0,
            )  # fmt: skip
        except (OSError, TimeoutError) as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"Pushpin on port {port} did not subscribe a WebSocket: {exc}") from exc
            await asyncio.sleep(0.1)
        else:
            conn.close()
            return
