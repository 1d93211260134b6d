"""The one-container image (deploy/Dockerfile, target allinone) in a real Docker engine: healthy
within its start period, the seed walkthrough on its published port, data kept across
`docker stop`/`start` and `docker kill -s KILL`/`start`, `docker stop` done inside Docker's default
10 s with Valkey's final save, and no start without PULSAR_JWT_SECRET_KEY."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.allinone.test_supervised import ADMIN, admin_env, publish_some, still_there
from tests.docker import engine
from tests.e2e.walkthrough import bearer, login, walkthrough

pytestmark = pytest.mark.slow

START_PERIOD = 60  # the image's HEALTHCHECK --start-period


@pytest.fixture
def volume(allinone_image: str) -> Iterator[str]:
    name = f"relay-test-{uuid.uuid4().hex[:10]}"
    engine.docker("volume", "create", "--label", engine.LABEL, name)
    yield name
    engine.docker("volume", "rm", "-f", name, check=False)


def run(image: str, volume: str, env: dict[str, str]) -> str:
    """Starts the image detached with the volume, published on a free loopback port; its id."""
    name = f"relay-test-{uuid.uuid4().hex[:10]}"
    args = ["run", "-d", "--name", name, "--label", engine.LABEL, "-p", "127.0.0.1::8080"]
    args += ["-v", f"{volume}:/var/lib/valkey"]
    for key, value in env.items():
        args += ["-e", f"{key}={value}"]
    engine.docker(*args, image)
    return name


def aof_written(container: str, within: float = 30) -> None:
    """Waits until the bundled Valkey has written its AOF buffer to the file: with appendfsync
    everysec it may hold acknowledged writes back while a background fsync runs (up to 2 s), and
    only what is written survives a SIGKILL of the container."""
    cli = "$(command -v valkey-cli || command -v redis-cli) info persistence"
    deadline = time.monotonic() + within
    while "aof_buffer_length:0" not in engine.docker("exec", container, "sh", "-c", cli).stdout:
        assert time.monotonic() < deadline, "the AOF buffer was not written"
        time.sleep(0.1)


def test_refuses_to_start_without_the_secret(allinone_image: str) -> None:
    """No PULSAR_JWT_SECRET_KEY: the container exits 64 at once, naming the variable."""
    name = f"relay-test-{uuid.uuid4().hex[:10]}"
    result = engine.docker(
        "run", "--name", name, "--label", engine.LABEL, allinone_image, check=False, timeout=60
    )
    try:
        assert result.returncode == 64, result.stdout + result.stderr
        assert "PULSAR_JWT_SECRET_KEY is not set" in result.stderr
        assert engine.inspect(name)["State"]["ExitCode"] == 64
    finally:
        engine.docker("rm", "-f", "-v", name, check=False)


async def test_healthy_walkthrough_and_data_across_stop_and_kill(allinone_image: str, volume: str) -> None:
    """Healthy within the start period; the walkthrough passes on the published port; users and
    messages survive docker stop/start and docker kill -s KILL/start; docker stop takes under 10 s,
    exits 0 (not killed) and Valkey saves its final snapshot."""
    container = run(allinone_image, volume, admin_env())
    try:
        took = await asyncio.to_thread(engine.wait_healthy, container, START_PERIOD)
        url = f"http://127.0.0.1:{engine.host_port(container)}"
        suffix = await walkthrough(url, ADMIN)
        topic = f"kept-{suffix}"
        ids = await publish_some(url, topic, 5)
        producer = (f"producer-{suffix}", "secure-password")

        started = time.monotonic()
        engine.docker("stop", container, timeout=60)
        stopped_in = time.monotonic() - started
        state = engine.inspect(container)["State"]
        output = engine.logs(container)
        assert stopped_in < 10, f"docker stop took {stopped_in:.1f}s\n{output[-3000:]}"
        assert state["ExitCode"] == 0, output[-3000:]
        assert "DB saved on disk" in output, output[-3000:]

        engine.docker("start", container)
        await asyncio.to_thread(engine.wait_healthy, container, START_PERIOD)
        url = f"http://127.0.0.1:{engine.host_port(container)}"
        await still_there(url, topic, ids, producer)

        more = await publish_some(url, f"{topic}-after", 3)
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            token = await login(http, *ADMIN)
        await asyncio.to_thread(aof_written, container)
        engine.docker("kill", "-s", "KILL", container)
        assert engine.inspect(container)["State"]["ExitCode"] == 137
        engine.docker("start", container)
        await asyncio.to_thread(engine.wait_healthy, container, START_PERIOD)
        url = f"http://127.0.0.1:{engine.host_port(container)}"
        # The token from before both restarts still works (same secret, same user) and both
        # topics' histories are whole.  No new logins: auth limits them per client address.
        async with httpx.AsyncClient(base_url=url, timeout=30, headers=bearer(token)) as http:
            for name, expected in ((topic, ids), (f"{topic}-after", more)):
                r = await http.get(f"/api/v1/topics/{name}/messages", params={"order": "asc"})
                assert r.status_code == 200, r.text
                assert [m["message_id"] for m in r.json()["messages"]] == expected
        print(f"\nallinone: healthy after {took:.1f}s, docker stop {stopped_in:.1f}s")
    finally:
        engine.docker("rm", "-f", "-v", container, check=False)


def test_secret_is_checked_before_anything_starts_even_with_a_volume(
    allinone_image: str, volume: str
) -> None:
    """A weak secret is refused by the entrypoint (rc 64) and nothing is written to the volume."""
    container = run(allinone_image, volume, {"PULSAR_JWT_SECRET_KEY": "short"})
    try:
        deadline = time.monotonic() + 60
        while engine.inspect(container)["State"]["Running"]:
            assert time.monotonic() < deadline, engine.logs(container)
            time.sleep(0.2)
        assert engine.inspect(container)["State"]["ExitCode"] == 64, engine.logs(container)
        assert "PULSAR_JWT_SECRET_KEY" in engine.logs(container)
    finally:
        engine.docker("rm", "-f", "-v", container, check=False)
