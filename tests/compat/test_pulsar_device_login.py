"""Pulsar 0.16 signing in to the relay with its own code (pulsar-galaxy-lib 0.16.0 from PyPI):
``pulsar-config --login-only`` runs the device flow, a person approves it at the verification
page, the credentials file it writes drives ``bind_relay.build_relay_transport``; and
``pulsar-config --register-with-galaxy`` (``galaxy_byoc.register_with_galaxy``) hands the paired
second refresh token to a stand-in for Galaxy's registration endpoint, with which Galaxy's
``RelayClientManager`` then talks to the relay.  Against ``serve all`` and the split stack."""

from __future__ import annotations

import json
import os
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.compat.device import PulsarConfig, approve, login_only
from tests.compat.relay import DEPLOYMENTS, Api, Relay, bearer

pytest.importorskip("pulsar.messaging.bind_relay")
from pulsar.client.manager import RelayClientManager
from pulsar.messaging.bind_relay import build_relay_transport

pytestmark = pytest.mark.parametrize("relay", DEPLOYMENTS, indirect=True)

USER, PASSWORD = "pulsar_host", "pulsar-host-password"


@pytest.fixture
def relay_extra_env() -> dict[str, str]:
    """Devices may poll every second (the client waits ``interval`` between polls)."""
    return {"PULSAR_DEVICE_POLL_INTERVAL": "1"}


@pytest.fixture
def user_token(api: Api, admin_token: str) -> str:
    api.register(admin_token, USER, PASSWORD, ["read", "write"])
    return api.login(USER, PASSWORD)


def _workdir(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.mkdir(mode=0o700)
    return path


def _poll_once(transport: Any, topics: list[str], into: list[Any]) -> threading.Thread:
    """One long-poll in a thread, as Pulsar's consumer thread and Galaxy's status thread run."""

    def run() -> None:
        into.extend(transport.long_poll(topics, timeout=15))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_login_only_credentials_drive_pulsars_transport(
    relay: Relay, api: Api, user_token: str, tmp_path: Path
) -> None:
    """pulsar-config --login-only, approved over HTTP, writes a 0600 credentials file whose refresh
    token build_relay_transport uses to publish and long-poll, rotating it in the file."""
    home = _workdir(tmp_path, "pulsar")
    cli = login_only(relay.url, home)
    try:
        link, code = cli.banner()
        assert link == f"{relay.url}/auth/device?user_code={code}"
        assert "Device approved" in approve(link, USER, PASSWORD)
        assert cli.wait() == 0, cli.output
    finally:
        cli.stop()
    assert "relay credentials written" in cli.output
    path = home / "relay_credentials.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    creds = json.loads(path.read_text())
    assert creds["relay_url"] == relay.url and creds["refresh_token"]
    me = api.http.get("/auth/me", headers=bearer(creds["access_token"]))
    assert me.status_code == 200 and me.json()["username"] == USER

    manager = SimpleNamespace(name="dev1", persistence_directory=str(_workdir(tmp_path, "state")))
    conf = {"message_queue_credentials_file": str(path)}
    transport = build_relay_transport(manager, relay.url, conf)
    try:
        transport.post_message("job_status_update_dev1", {"job_id": "1", "status": "running"})
        rotated = json.loads(path.read_text())["refresh_token"]
        assert rotated != creds["refresh_token"]  # the client rotated it and wrote it back
        api.create_topic(user_token, "job_setup_dev1")
        got: list[Any] = []
        poll = _poll_once(transport, ["job_setup_dev1"], got)
        api.wait_for_pollers(user_token, ["job_setup_dev1"])
        api.publish(user_token, "job_setup_dev1", {"job_id": "2", "command": "true"})
        poll.join(20)
        assert [m["payload"]["job_id"] for m in got] == ["2"]
    finally:
        transport.close()
    assert [m["payload"] for m in api.history(user_token, "job_status_update_dev1")] == [
        {"job_id": "1", "status": "running"}
    ]
    # A restarted Pulsar (a new transport) picks up the rotated token from the file.
    again = build_relay_transport(manager, relay.url, conf)
    try:
        again.post_message("job_status_update_dev1", {"job_id": "1", "status": "complete"})
    finally:
        again.close()
    assert len(api.history(user_token, "job_status_update_dev1")) == 2


def test_login_scaffolds_app_yml_pointing_at_the_credentials(
    relay: Relay, api: Api, user_token: str, tmp_path: Path
) -> None:
    """pulsar-config --login scaffolds app.yml with message_queue_credentials_file, then signs in."""
    home = _workdir(tmp_path, "pulsar")
    cli = PulsarConfig("--login", "--relay-url", relay.url, "--directory", str(home))
    try:
        link, _ = cli.banner()
        approve(link, USER, PASSWORD)
        assert cli.wait() == 0, cli.output
    finally:
        cli.stop()
    app = (home / "app.yml").read_text()
    path = home / "relay_credentials.json"
    assert f'message_queue_credentials_file: "{path}"' in app and f'message_queue_url: "{relay.url}"' in app
    assert json.loads(path.read_text())["refresh_token"]


def test_denied_login_writes_nothing(relay: Relay, api: Api, user_token: str, tmp_path: Path) -> None:
    """A person pressing Deny makes pulsar-config fail with 'denied' and write no credentials."""
    home = _workdir(tmp_path, "pulsar")
    cli = login_only(relay.url, home)
    try:
        link, _ = cli.banner()
        approve(link, USER, PASSWORD, allow=False)
        assert cli.wait() == 1, cli.output
    finally:
        cli.stop()
    assert "denied" in cli.output
    assert not (home / "relay_credentials.json").exists()


class GalaxyStandIn:
    """Galaxy's ``POST /api/compute_resources/registrations/complete`` on a real socket: checks
    the one-shot bootstrap token, keeps the refresh token it is handed, names the manager."""

    BOOTSTRAP = "one-shot-bootstrap-token"
    MANAGER = "byoc_4f2a"

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                ok = self.path == "/api/compute_resources/registrations/complete" and (
                    body.get("bootstrap_token") == stand_in.BOOTSTRAP
                )
                if ok:
                    stand_in.received.append(body)
                answer = json.dumps({"manager_name": stand_in.MANAGER} if ok else {"err_msg": "no"}).encode()
                self.send_response(200 if ok else 403)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)


@pytest.fixture
def galaxy() -> Iterator[GalaxyStandIn]:
    stand_in = GalaxyStandIn()
    yield stand_in
    stand_in.close()


def test_register_with_galaxy_pairs_pulsar_and_galaxy(
    relay: Relay, api: Api, user_token: str, galaxy: GalaxyStandIn, tmp_path: Path
) -> None:
    """pulsar-config --register-with-galaxy: the primary refresh token stays in Pulsar's file, the
    secondary reaches Galaxy, and Pulsar (build_relay_transport) and Galaxy (RelayClientManager
    with relay_refresh_token) exchange job messages over the relay, each rotating its own chain."""
    home = _workdir(tmp_path, "pulsar")
    cli = PulsarConfig(
        "--register-with-galaxy",
        galaxy.url,
        "--galaxy-token",
        galaxy.BOOTSTRAP,
        "--relay-url",
        relay.url,
        "--directory",
        str(home),
    )
    try:
        link, _ = cli.banner()
        page = approve(link, USER, PASSWORD)
        assert "Device approved" in page
        assert cli.wait() == 0, cli.output
    finally:
        cli.stop()
    [handed] = galaxy.received
    assert handed["relay_url"] == relay.url
    secondary = handed["refresh_token"]
    primary = json.loads((home / "relay_credentials.json").read_text())["refresh_token"]
    assert primary and secondary and primary != secondary
    assert secondary not in (home / "relay_credentials.json").read_text()
    assert f"managers:\n  {galaxy.MANAGER}: {{}}" in (home / "app.yml").read_text()

    name = galaxy.MANAGER
    manager = SimpleNamespace(name=name, persistence_directory=str(_workdir(tmp_path, "state")))
    pulsar = build_relay_transport(
        manager, relay.url, {"message_queue_credentials_file": str(home / "relay_credentials.json")}
    )
    rotations: list[dict[str, Any]] = []
    galaxy_side = RelayClientManager(
        relay_url=relay.url,
        relay_refresh_token=secondary,
        manager=name,
        on_refresh_token_rotated=rotations.append,
    )
    try:
        token = galaxy_side.get_relay_access_token()
        assert token and api.http.get("/auth/me", headers=bearer(token)).json()["username"] == USER
        assert rotations and rotations[-1]["refresh_token"] != secondary  # Galaxy's chain rotated

        api.create_topic(user_token, f"job_setup_{name}")
        setups: list[Any] = []
        poll = _poll_once(pulsar, [f"job_setup_{name}"], setups)
        api.wait_for_pollers(user_token, [f"job_setup_{name}"])
        galaxy_side.relay_transport.post_message(f"job_setup_{name}", {"job_id": "42", "setup": True})
        poll.join(20)
        assert [m["payload"]["job_id"] for m in setups] == ["42"]

        api.create_topic(user_token, f"job_status_update_{name}")
        statuses: list[Any] = []
        poll = _poll_once(galaxy_side.relay_transport, [f"job_status_update_{name}"], statuses)
        api.wait_for_pollers(user_token, [f"job_status_update_{name}"])
        pulsar.post_message(f"job_status_update_{name}", {"job_id": "42", "status": "complete"})
        poll.join(20)
        assert [m["payload"]["status"] for m in statuses] == ["complete"]
    finally:
        pulsar.close()
        galaxy_side.relay_transport.close()
