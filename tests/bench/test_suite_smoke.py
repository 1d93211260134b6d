"""Smoke test of ``python -m bench.suite``: every scenario, tiny, against ``serve all``, so the
benchmark cannot rot.  It asserts that each scenario ran and delivered, never how fast."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench import report
from bench.docs_sections import latency_text, reference13_text, results_text, setup_text
from bench.plot import latency_plot
from bench.procs import REPO, repo_env

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench-suite")
    argv = [
        sys.executable, "-m", "bench.suite", "--tiny", "--rounds", "1", "--systems", "ours",
        "--deployment", "all", "--nice", "0", "--no-docs", "--out", str(out),
    ]  # fmt: skip
    proc = subprocess.run(argv, cwd=REPO, env=repo_env({}), capture_output=True, text=True, timeout=800)
    files = sorted(out.glob("suite-*.json"))
    assert files, f"no results written:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    info: dict[str, Any] = json.loads(files[-1].read_text())
    info["_returncode"], info["_stderr"] = proc.returncode, proc.stderr[-4000:]
    return info


def _only(info: dict[str, Any], scenario: int) -> dict[str, Any]:
    results = info["raw"][str(scenario)]["ours"]
    assert len(results) == 1
    result: dict[str, Any] = results[0]
    assert "error" not in result, result
    return result


def test_suite_exits_cleanly(run: dict[str, Any]) -> None:
    """The whole tiny run finishes with exit status 0 and records every scenario."""
    assert run["_returncode"] == 0, run["_stderr"]
    assert sorted(run["raw"]) == [str(n) for n in range(1, 9)]


@pytest.mark.parametrize("scenario", [1, 2, 3])
def test_publish_scenarios_publish(run: dict[str, Any], scenario: int) -> None:
    """Scenarios 1-3 complete requests without errors."""
    result = _only(run, scenario)
    assert result["requests"] > 0 and result["errors"] == 0


@pytest.mark.parametrize("scenario", [4, 5])
def test_websocket_scenarios_deliver_everything(run: dict[str, Any], scenario: int) -> None:
    """Scenarios 4 and 5 deliver every published message to every subscriber."""
    result = _only(run, scenario)
    assert result["burst"]["delivered"] == result["burst"]["expected"] > 0
    steps = result.get("steps") or [result["reference_load"]]
    assert all(s["delivered"] == s["expected"] > 0 for s in steps)


def test_long_poll_scenario_delivers(run: dict[str, Any]) -> None:
    """Scenario 6's pollers receive every message published while they loop."""
    result = _only(run, 6)
    assert result["steady"]["delivered"] == result["steady"]["expected"] > 0


def test_idle_connections_are_held_and_alive(run: dict[str, Any]) -> None:
    """Scenario 7 holds its target of idle sockets, measures memory, and they still receive."""
    result = _only(run, 7)
    assert result["held"] == result["target"] == result["alive"]
    assert result["kib_per_connection"] is not None


def test_reference_scenarios_run(run: dict[str, Any]) -> None:
    """Scenario 8 runs the reference's own scenarios to completion."""
    result = _only(run, 8)
    assert result.get("skipped") or (result["returncode"] == 0 and result["results"])


def test_report_renders(run: dict[str, Any], tmp_path: Path) -> None:
    """The summary, every docs section and the plot render from a run's raw results."""
    summary = report.summarize(run)
    assert "ours" in report.table_text(summary)
    pytest.importorskip("matplotlib", reason="the plot needs matplotlib (the bench extra)")
    assert latency_plot(run["raw"], tmp_path / "plot.png")
    for text in (
        setup_text(run, summary),
        results_text(summary),
        latency_text(run, tmp_path / "plot.png"),
        reference13_text(summary),
    ):
        assert text.strip()
