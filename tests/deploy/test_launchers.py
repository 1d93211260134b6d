"""The `pulsar-relay stack` and `pulsar-relay dev` commands as a person runs them: stack prints
where everything is, scales gateways with one option and Ctrl-C (or the launcher dying) stops every
process; dev falls back to memory loudly, honours PULSAR_VALKEY_URL and refuses what it cannot do."""

from __future__ import annotations

import os
import re
import secrets
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
def test_stack_restarts_a_dead_child_and_the_rest_keep_serving(tmp_path: Path) -> None:
    """A SIGKILLed gateway (then HAProxy) is started again on its port while the rest serve: the
    "a gateway crashed" runbook can be tried on `make stack`; Ctrl-C still stops everything."""
    require_tools(haproxy=True)
    stack = StackCommand(tmp_path, "--gateways", "2")
    try:
        printed = stack.ready()
        pids = stack.pids()
        found = re.search(r"gateway-1\s+(http://127\.0\.0\.1:\d+)\s+pid (\d+)", printed)
        assert found, printed
        gateway_url, gateway_pid = found.group(1), int(found.group(2))
        base = f"http://127.0.0.1:{stack.port}"
        os.kill(gateway_pid, signal.SIGKILL)
        with httpx.Client(base_url=base, timeout=10) as http:
            # The other gateway, auth and ingest answer while gateway-1 is down or restarting.
            for _ in range(10):
                assert http.get("/health").status_code == 200
                assert http.post("/messages/poll", json={}).status_code == 401
            wait_for(lambda: _answers(gateway_url + "/health"), "gateway-1 back on its port", within=60)
            wait_for(
                lambda: (
                    {http.get("/messages/poll/stats").headers["X-Relay-Route"] for _ in range(6)}
                    == {"gateway/gw1", "gateway/gw2"}
                ),
                "HAProxy routes to both gateways again",
                within=30,
            )
            haproxy_pid = pids[-1]
            os.kill(haproxy_pid, signal.SIGKILL)
            wait_for(lambda: _answers(base + "/health"), "HAProxy back on the stack's port", within=60)
            routes = {http.get("/messages/poll/stats").headers["X-Relay-Route"] for _ in range(6)}
            assert routes == {"gateway/gw1", "gateway/gw2"}, "the restarted HAProxy serves both slots"
        assert stack.proc.poll() is None, stack.err.read_text()[-3000:]
        err = stack.err.read_text()
        assert "gateway-1 exited (code -9); restarting it" in err, err[-3000:]
        assert "haproxy exited (code -9); restarting it" in err, err[-3000:]
        stack.proc.send_signal(signal.SIGINT)
        assert stack.proc.wait(60) == 0, stack.err.read_text()[-3000:]
        assert [p for p in pids if not gone(p)] == []
        assert not _answers(gateway_url + "/health"), "the restarted gateway stopped with the stack"
    finally:
        stack.kill()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


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
    secret = "from-the-config-file-" + secrets.token_urlsafe(32)
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


@pytest.mark.parametrize("target", ["run", "stack"])
def test_make_run_and_stack_take_a_port(target: str) -> None:
    """`make run PORT=9123` and `make stack PORT=9123` pass the port to the command."""
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        ["make", "-n", "-C", str(root), target, "PORT=9123", "GATEWAYS=3"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    command = next(line for line in result.stdout.splitlines() if "bin/pulsar-relay " in line)
    assert "--port 9123" in command, result.stdout
    if target == "stack":
        assert "--gateways 3" in command, result.stdout
