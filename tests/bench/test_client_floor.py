"""bench.client_floor: a small real run (relay process, real sockets, both clients)."""

from __future__ import annotations

import pytest

from bench import client_floor


def test_client_floor_prints_one_row_per_round(capsys: pytest.CaptureFixture[str]) -> None:
    """Two rounds of five requests each print a table with two rows of positive medians."""
    assert client_floor.main(["--requests", "5", "--rounds", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [line for line in lines if line.startswith("| ") and line[2].isdigit()]
    assert len(rows) == 2
    assert all(float(cell) > 0 for row in rows for cell in row.strip("| ").split(" | ")[1:])
