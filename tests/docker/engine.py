"""The Docker CLI for the container tests: run a command, read a container's state, wait for its
health check, and which images `make test-docker` built (deploy/build-images.sh)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from typing import Any

# The relay's images (deploy/build-images.sh) and, for compose, the third-party images or their
# Debian-made stand-ins, in the order they are preferred.
RELAY_IMAGE = "pulsar-relay:latest"
ALLINONE_IMAGE = "pulsar-relay:allinone"
VALKEY_IMAGES = ("valkey/valkey:8-alpine", "pulsar-relay-offline/valkey")
HAPROXY_IMAGES = ("haproxy:3.0-alpine", "pulsar-relay-offline/haproxy")
# Every container, volume and network a test makes carries this label (or project name prefix).
LABEL = "org.pulsar-relay.test=1"


def docker(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(
            f"docker {' '.join(args)} -> {result.returncode}\n{result.stdout}{result.stderr}"
        )
    return result


def engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return docker("info", check=False, timeout=30).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def image_exists(name: str) -> bool:
    return docker("image", "inspect", name, check=False).returncode == 0


def first_image(names: tuple[str, ...]) -> str | None:
    return next((n for n in names if image_exists(n)), None)


def inspect(container: str) -> dict[str, Any]:
    data = json.loads(docker("inspect", container).stdout)
    return dict(data[0])


def health(container: str) -> str:
    state = inspect(container)["State"]
    return str(state.get("Health", {}).get("Status", "none")) if state["Running"] else "exited"


def wait_healthy(container: str, within: float) -> float:
    """Seconds until the health check passed; fails if it did not within ``within``."""
    started = time.monotonic()
    while (status := health(container)) != "healthy":
        elapsed = time.monotonic() - started
        assert status != "exited", docker("logs", container, check=False).stderr[-3000:]
        assert elapsed < within, f"{container} is {status} after {elapsed:.0f}s"
        time.sleep(0.5)
    return time.monotonic() - started


def host_port(container: str, port: int = 8080) -> int:
    """The loopback port Docker published ``port`` on (``-p 127.0.0.1::port``)."""
    out = docker("port", container, f"{port}/tcp").stdout.split()
    return int(out[0].rsplit(":", 1)[1])


def logs(container: str) -> str:
    result = docker("logs", container, check=False)
    return result.stdout + result.stderr
