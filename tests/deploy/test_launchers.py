"""The `pulsar-relay stack` and `pulsar-relay dev` commands as a person runs them: stack prints
where everything is, scales gateways with one option and Ctrl-C (or the launcher dying) stops every
process; dev falls back to memory loudly, honours PULSAR_VALKEY_URL and refuses what it cannot do."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import jwt
import pytest

from tests.e2e.launch import DevProcess, child_env, require_tools
from tests.e2e.walkthrough import login
from tests.support.valkey import free_port


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return bool(re.search(r"^State:\s+Z", state, re.MULTILINE))  # a zombie has exited


def wait_for(predicate, what: str, within: float = 30) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, f"not within {within}s: {what}"
        time.sleep(0.05)


class StackCommand:
    def __init__(self, workdir: Path, *args: str) -> None:
        self.port = free_port()
        self.out = workdir / "stack.out"
        self.err = workdir / "stack.err"
        argv = [sys.executable, "-m", "pulsar_relay", "stack", "--port", str(self.port), *args]
        argv += ["--data-dir", str(workdir / "data")]
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen(argv, env=child_env(), stdout=out, stderr=err)

    def ready(self) -> str:
        def printed() -> bool:
            assert self.proc.poll() is None, self.err.read_text()[-3000:]
            return "Ready." in self.out.read_text()

        wait_for(printed, "stack printed Ready.", within=90)
        return self.out.read_text()

    def pids(self) -> list[int]:
        return [int(p) for p in re.findall(r"pid (\d+)", self.out.read_text())]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


@pytest.mark.slow
def test_stack_command_scales_gateways_and_ctrl_c_stops_all(tmp_path: Path) -> None:
    """`stack --gateways 3` spreads over three gateways and Ctrl-C stops every process it started."""
    require_tools(haproxy=True)
    stack = StackCommand(tmp_path, "--gateways", "3")
    try:
        printed = stack.ready()
        pids = stack.pids()
        assert len(pids) == 1 + 2 + 3 + 1, printed  # valkey, auth, ingest, gateways, haproxy
        base = f"http://127.0.0.1:{stack.port}"
        assert f"on {base}" in printed and "username=admin&password=" in printed
        with httpx.Client(base_url=base) as http:
            assert http.get("/ready").json()["ready"] is True
            routes = {http.get("/messages/poll/stats").headers["X-Relay-Route"] for _ in range(9)}
        assert routes == {"gateway/gw1", "gateway/gw2", "gateway/gw3"}
        stack.proc.send_signal(signal.SIGINT)
        assert stack.proc.wait(60) == 0, stack.err.read_text()[-3000:]
        assert [p for p in pids if not gone(p)] == []
    finally:
        stack.kill()


@pytest.mark.slow
def test_stack_children_die_with_a_killed_launcher(tmp_path: Path) -> None:
    """A SIGKILLed launcher's children still stop: nothing keeps the Valkey data or the ports."""
    require_tools(haproxy=True)
    stack = StackCommand(tmp_path, "--gateways", "1")
    try:
        stack.ready()
        pids = stack.pids()
    finally:
        stack.kill()
    wait_for(lambda: all(gone(p) for p in pids), "children of a killed launcher stopped")


def test_dev_without_a_server_binary_uses_memory_loudly_and_locks_its_data_dir(tmp_path: Path) -> None:
    """Without a server binary dev warns it runs in memory and still logs in; a second dev is refused."""
    empty = tmp_path / "bin"
    empty.mkdir()
    dev = DevProcess(tmp_path, child_env(PATH=str(empty)))
    try:
        dev.start()
        assert "IN-MEMORY" in dev.err.read_text()
        assert "IN-MEMORY backend" in dev.stdout()
        with httpx.Client(base_url=dev.url) as http:
            r = http.post(
                "/auth/login", data=dict(zip(("username", "password"), dev.credentials(), strict=True))
            )
            assert r.status_code == 200, r.text
        second = subprocess.run(
            [sys.executable, "-m", "pulsar_relay", "dev", "--port", str(free_port())],
            cwd=tmp_path,
            env=child_env(PATH=str(empty)),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 2 and "in use" in second.stderr, second.stderr
        assert dev.interrupt() == 0, dev.output()
    finally:
        dev.kill()


async def test_dev_uses_the_given_valkey_secret_and_admin(tmp_path: Path, valkey_url: str) -> None:
    """dev keeps what the user set (Valkey URL in env; secret and admin in config.yaml): nothing generated."""
    secret = "from-the-config-file-" + "x" * 32
    (tmp_path / "config.yaml").write_text(
        f"jwt_secret_key: {secret}\nbootstrap_admin_username: root\nbootstrap_admin_password: root-password\n"
    )
    dev = DevProcess(tmp_path, child_env(PULSAR_VALKEY_URL=valkey_url))
    try:
        dev.start()
        assert "from your settings" in dev.stdout() and valkey_url in dev.stdout()
        assert "root (from your settings)" in dev.stdout() and "password=" not in dev.stdout()
        data = tmp_path / ".relay-data"
        assert not (data / "valkey").exists() and not (data / "jwt-secret").exists()
        assert not (data / "admin-password").exists()
        async with httpx.AsyncClient(base_url=dev.url) as http:
            token = await login(http, "root", "root-password")
        assert jwt.decode(token, secret, algorithms=["HS256"])["username"] == "root"
        assert dev.interrupt() == 0, dev.output()
    finally:
        dev.kill()


def test_dev_refuses_a_busy_port(tmp_path: Path) -> None:
    """dev says the port is taken (exit 2) instead of starting Valkey and failing later."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "pulsar_relay", "dev", "--port", str(port)],
            cwd=tmp_path,
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2 and "in use" in result.stderr, result.stderr
    assert not (tmp_path / ".relay-data").exists()
    assert os.listdir(tmp_path) == []


def test_stack_refuses_a_busy_port(tmp_path: Path) -> None:
    """stack says the port is taken (exit 2) before starting any process."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pulsar_relay",
                "stack",
                "--port",
                str(port),
                "--data-dir",
                str(tmp_path / "d"),
            ],
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2 and "in use" in result.stderr, result.stderr
    assert not (tmp_path / "d" / "valkey").exists()
