"""A Galaxy ↔ Pulsar job exchange over the relay, with the real client, as the two programs run it
(reference section 10): Galaxy posts ``job_setup_<manager>`` / ``job_kill_<manager>``, a Pulsar
consumer thread long-polls them with a float timeout and posts ``job_status_update_<manager>``,
which Galaxy long-polls.  Both sides log in as the same relay user; Pulsar restarts mid-way."""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from tests.compat.relay import DEPLOYMENTS, Api, Relay

# The real client is a dev dependency (pyproject [dev]: pulsar-relay-client==0.2.2).
pytest.importorskip("pulsar_relay_client", minversion="0.2.2")
from pulsar_relay_client import RelayTransport

# The real client against the all-in-one process and against the split stack behind HAProxy.
pytestmark = pytest.mark.parametrize("relay", DEPLOYMENTS, indirect=True)

MANAGER = "compat"
SETUP, KILL, STATUS = f"job_setup_{MANAGER}", f"job_kill_{MANAGER}", f"job_status_update_{MANAGER}"
USER, PASSWORD = "galaxy_pulsar", "galaxy-pulsar-password"


def transport(url: str, cursor_path: Path) -> RelayTransport:
    return RelayTransport(url, username=USER, password=PASSWORD, cursor_path=str(cursor_path))


class Consumer:
    """A daemon thread running ``long_poll(topics, timeout=2.0)`` in a loop, handing each message to
    ``handle``, until stopped: the shape of Pulsar's ``bind_relay`` consumer and Galaxy's status
    thread.  Exceptions are recorded (the real loops sleep and retry; a test wants to know)."""

    def __init__(self, url: str, cursor_path: Path, topics: list[str], handle: Any) -> None:
        self.transport = transport(url, cursor_path)
        self.topics = topics
        self.handle = handle
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                for message in self.transport.long_poll(self.topics, timeout=2.0):  # type: ignore[arg-type]
                    self.handle(self.transport, message)
            except Exception as exc:
                self.errors.append(exc)
                time.sleep(0.2)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        self.transport.close()
        assert not self._thread.is_alive(), "consumer did not stop"


class PulsarSide:
    """Handles job messages like Pulsar's job manager: setup → running, complete; kill → cancelled."""

    def __init__(self) -> None:
        self.handled: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def handle(self, t: RelayTransport, message: dict[str, Any]) -> None:
        job_id = message["payload"]["job_id"]
        with self.lock:
            self.handled.append((message["topic"], job_id))
        if message["topic"] == SETUP:
            t.post_message(STATUS, {"job_id": job_id, "status": "running"})
            t.post_message(STATUS, {"job_id": job_id, "status": "complete"})
        elif message["topic"] == KILL:
            t.post_message(STATUS, {"job_id": job_id, "status": "cancelled"})


class GalaxySide:
    """Caches each job's status updates, as Galaxy's per-manager status thread does."""

    def __init__(self) -> None:
        self.statuses: dict[str, list[str]] = defaultdict(list)
        self.lock = threading.Lock()

    def handle(self, _t: RelayTransport, message: dict[str, Any]) -> None:
        assert message["topic"] == STATUS
        with self.lock:
            self.statuses[message["payload"]["job_id"]].append(message["payload"]["status"])

    def count(self) -> int:
        with self.lock:
            return sum(len(v) for v in self.statuses.values())

    def wait_for(self, total: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.count() < total and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.count() >= total, f"got {self.count()} of {total} status updates: {dict(self.statuses)}"


def test_galaxy_pulsar_exchange_survives_a_pulsar_restart(
    relay: Relay, api: Api, admin_token: str, tmp_path: Path
) -> None:
    """Every job gets exactly its status updates across a consumer restart: nothing lost or duplicated."""
    api.register(admin_token, USER, PASSWORD, ["read", "write"])
    token = api.login(USER, PASSWORD)
    galaxy_out = transport(relay.url, tmp_path / "galaxy-unused-cursor.json")
    pulsar, galaxy = PulsarSide(), GalaxySide()
    pulsar_cursor = tmp_path / f"{MANAGER}-relay-cursor.json"
    status_thread = Consumer(relay.url, tmp_path / "galaxy-handler-cursor.json", [STATUS], galaxy.handle)
    consumer = Consumer(relay.url, pulsar_cursor, [SETUP, KILL], pulsar.handle)
    consumers = [status_thread, consumer]
    expected: dict[str, list[str]] = {}
    try:
        # Both consumers start at the tail, so jobs go out only once both are waiting.
        api.wait_for_pollers(token, [SETUP, KILL, STATUS])
        for n in range(1, 6):
            galaxy_out.post_message(SETUP, {"job_id": f"j{n}", "command_line": "true", "env": []})
            expected[f"j{n}"] = ["running", "complete"]
        galaxy.wait_for(10)
        galaxy_out.post_message(KILL, {"job_id": "j2"})
        expected["j2"].append("cancelled")
        galaxy.wait_for(11)

        consumer.stop()  # Pulsar goes down; Galaxy keeps submitting
        for n in range(6, 11):
            galaxy_out.post_message(SETUP, {"job_id": f"j{n}", "command_line": "true", "env": []})
            expected[f"j{n}"] = ["running", "complete"]
        galaxy_out.post_message(KILL, {"job_id": "j7"})
        expected["j7"].append("cancelled")

        consumer = Consumer(relay.url, pulsar_cursor, [SETUP, KILL], pulsar.handle)
        consumers.append(consumer)
        total = sum(len(v) for v in expected.values())
        galaxy.wait_for(total)
        # One more poll cycle on each side so a late duplicate would show up.
        time.sleep(2.5)
    finally:
        for c in consumers:
            c.stop()
        galaxy_out.close()

    assert [e for c in consumers for e in c.errors] == []
    assert Counter(pulsar.handled) == Counter(
        [(SETUP, f"j{n}") for n in range(1, 11)] + [(KILL, "j2"), (KILL, "j7")]
    )
    assert len(pulsar.handled) == 12
    assert {job: Counter(s) for job, s in galaxy.statuses.items()} == {
        job: Counter(s) for job, s in expected.items()
    }
    for job, statuses in galaxy.statuses.items():
        assert statuses.index("running") < statuses.index("complete"), (job, statuses)
