"""Smoke test of ``python -m bench.haproxy_cost --tiny``: real Valkey, relay processes and HAProxy on
the shipped config, so the benchmark cannot rot.  It asserts that each figure is measured, never
how large it is."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.docs_sections import PAGE
from bench.procs import REPO, repo_env

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(300),
    pytest.mark.skipif(
        shutil.which("haproxy") is None and not Path("/usr/sbin/haproxy").exists(),
        reason="haproxy is not installed (apt-get install haproxy)",
    ),
]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("haproxy-cost") / "raw.json"
    page_before = PAGE.read_bytes() if PAGE.exists() else None
    argv = [sys.executable, "-m", "bench.haproxy_cost", "--tiny", "--no-write", "--json", str(out)]
    proc = subprocess.run(argv, cwd=REPO, env=repo_env({}), capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-4000:]
    raw: dict[str, Any] = json.loads(out.read_text())
    raw["_stdout"] = proc.stdout
    raw["_page_unchanged"] = (PAGE.read_bytes() if PAGE.exists() else None) == page_before
    return raw


def test_idle_sockets_cost_memory(run: dict[str, Any]) -> None:
    """Every idle socket is held through HAProxy and its RSS per socket is a positive figure."""
    idle = run["results"]["idle"]
    assert idle["sockets"] == run["info"]["params"]["sockets"]
    assert idle["kib_per_socket"] > 0


def test_frames_are_delivered_and_cost_cpu(run: dict[str, Any]) -> None:
    """Every message of the frame step arrives through HAProxy, with positive CPU per frame."""
    frames = run["results"]["frames"]
    assert frames["delivered"] == frames["expected"] > 0
    assert frames["frames"] > 0 and frames["haproxy_us_per_frame"] > 0


def test_proxied_publishes_cost_cpu(run: dict[str, Any]) -> None:
    """Publishes through HAProxy succeed without errors, with positive CPU per request."""
    publish = run["results"]["publish"]
    assert publish["requests"] > 0 and publish["errors"] == 0
    assert publish["haproxy_us_per_request"] > 0


def test_no_write_prints_and_leaves_docs_alone(run: dict[str, Any]) -> None:
    """--no-write prints the section's table and leaves docs/BENCHMARKS.md untouched."""
    assert "| HAProxy CPU per delivered WebSocket frame |" in run["_stdout"]
    assert run["_page_unchanged"]
