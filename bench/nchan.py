"""nginx with the nchan module (Debian ``libnginx-mod-nchan``), the fastest peer a user could pick
instead: one worker process on the server core, configured from bench/peers/nchan.conf in its own
temporary directory, with Redis storage (its own Redis with AOF on, started by bench/systems.py:
the like-for-like) or memory storage (for information)."""

from __future__ import annotations

import http.client
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

from bench.procs import Server, free_port

PACKAGE = "libnginx-mod-nchan"
MODULE = Path("/usr/lib/nginx/modules/ngx_nchan_module.so")
TEMPLATE = Path(__file__).with_name("peers") / "nchan.conf"
STORAGES = ("redis", "memory")


def nginx() -> str | None:
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


def missing() -> str | None:
    """Why nchan cannot run here, or None when it can."""
    if nginx() is None or not MODULE.exists():
        return f"nginx with the nchan module is not installed (apt-get install {PACKAGE})"
    return None


def version() -> str:
    """The Debian package version (``1:1.3.6+dfsg-2``), or "" when dpkg does not know it."""
    try:
        out = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Version}", PACKAGE], capture_output=True, text=True, check=False
        )
    except OSError:
        return ""
    return out.stdout.strip()


def config(port: int, directory: str, storage: str, valkey_url: str) -> str:
    """nginx.conf for one instance: ``storage`` is "redis" (at ``valkey_url``) or "memory"."""
    if storage not in STORAGES:
        raise ValueError(f"unknown nchan storage {storage!r}; choose from {STORAGES}")
    upstream, pass_ = "", "# storage: nginx shared memory"
    if storage == "redis":
        url = urlparse(valkey_url)
        target = f"redis://{url.hostname or '127.0.0.1'}:{url.port or 6379}{url.path or ''}"
        upstream = f'    upstream bench_redis {{\n        nchan_redis_server "{target}";\n    }}\n'
        # In each location: nchan 1.3.6 ignores it at server level (messages stayed in memory).
        pass_ = "nchan_redis_pass bench_redis;"
    names = {
        "@MODULE@": str(MODULE),
        "@NOFILE@": str(resource.getrlimit(resource.RLIMIT_NOFILE)[1]),
        "@DIR@": directory,
        "@PORT@": str(port),
        "@UPSTREAM@": upstream,
        "@STORAGE@": pass_,
    }
    text = TEMPLATE.read_text()
    for name, value in names.items():
        text = text.replace(name, value)
    return text


def server(storage: str, valkey_url: str) -> Server:
    """An nginx master and its one worker, not yet started; its directory holds config and logs."""
    port = free_port()
    directory = tempfile.mkdtemp(prefix=f"bench-nchan-{storage}-")
    conf = Path(directory) / "nginx.conf"
    conf.write_text(config(port, directory, storage, valkey_url))
    binary = nginx() or "nginx"
    argv = [binary, "-p", directory, "-e", "stderr", "-c", str(conf)]
    return Server(f"nchan-{storage}", argv, {"PATH": "/usr/sbin:/usr/bin:/bin"}, port, cwd=directory)


def wait_ready(port: int, timeout: float = 30.0) -> None:
    """Wait until nchan answers for its storage: with Redis it connects after nginx is up, and
    answers 503 until then.  A channel's status (``GET`` on the publisher location) is 404 or 200
    once storage is reachable."""
    deadline = time.monotonic() + timeout
    status = 0
    while time.monotonic() < deadline:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            conn.request("GET", "/pub/bench-ready")
            status = conn.getresponse().status
        except OSError:
            status = 0
        finally:
            conn.close()
        if status in (200, 404):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nchan on port {port} did not reach its storage in {timeout}s (last status {status})")
