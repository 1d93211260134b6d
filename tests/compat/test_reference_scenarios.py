"""The reference's benchmark scenarios (bench/reference_scenarios.py) run against ``serve all`` and
the split stack with tiny parameters: every scenario completes with no errors and every message
delivered, so the port keeps working and the relay keeps speaking the reference benchmark's protocol."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.compat.relay import ADMIN_PASSWORD, ADMIN_USERNAME, DEPLOYMENTS, Relay

# The real client against the all-in-one process and against the split stack behind HAProxy.
pytestmark = pytest.mark.parametrize("relay", DEPLOYMENTS, indirect=True)

REPO = Path(__file__).resolve().parents[2]


def test_reference_scenarios_run_clean_with_tiny_parameters(relay: Relay, tmp_path: Path) -> None:
    """All ten scenarios (eleven results) finish without errors and with the expected operation counts."""
    out = tmp_path / "results.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.reference_scenarios",
            "--base-url",
            relay.url,
            "--username",
            ADMIN_USERNAME,
            "--password",
            ADMIN_PASSWORD,
            "--tiny",
            "--deadline",
            "30",
            "--json",
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = {r["name"]: r for r in json.loads(out.read_text())}
    assert {name: r["errors"] for name, r in results.items() if r["errors"]} == {}, done.stdout[-3000:]
    assert {name: r["operations"] for name, r in results.items()} == {
        "Message Ingestion (Single)": 4,
        "Bulk Message Ingestion (5/batch)": 10,
        "Concurrent Ingestion (concurrency=4)": 8,
        "WebSocket Subscribe (4 clients)": 4,
        "Message Delivery (E2E, 4 clients)": 12,
        "Broadcast (3 clients, 3 msgs)": 9,
        "Long Polling Basic (1s timeout)": 2,
        "Long Polling Concurrent (3 clients)": 3,
        "Long Polling Delivery (E2E, 2 clients)": 6,
        "WebSocket Delivery (comparison)": 3,
        "Long Polling Delivery (comparison)": 3,
    }
    assert "BENCHMARK SUMMARY" in done.stdout
