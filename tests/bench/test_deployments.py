"""A benchmark deployment of ours cleans up after itself, as the peers' do (tests/bench/test_peers.py)."""

from __future__ import annotations

import os

import pytest

from bench.systems import deploy

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def _exists(paths: list[str]) -> list[str]:
    return [p for p in paths if os.path.exists(p)]


async def test_stopping_ours_removes_its_processes_directories(valkey_url: str) -> None:
    """Each of ours' server processes runs in a temporary directory that stopping removes."""
    dep = await deploy("ours", "gateway", valkey_url)
    try:
        dirs = list(dep.scratch)
        assert len(dirs) == len(dep.processes) == 3 and _exists(dirs) == dirs
    finally:
        dep.stop()
    assert _exists(dirs) == []
    assert all(p.proc is not None and p.proc.poll() is not None for p in dep.processes)
