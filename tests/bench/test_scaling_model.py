"""The scaling model's HAProxy terms (bench/scaling_model.py): pure arithmetic, no processes."""

from __future__ import annotations

import dataclasses

import pytest

from bench.scaling_model import Costs, Load, project, table

BASE = Costs(
    valkey_per_publish=12.6e-6,
    valkey_per_entry_read=2.8e-6,
    gateway_per_entry=8.0e-6,
    gateway_per_delivery=16e-6,
    kib_per_connection=27.1,
)
WITH_HAPROXY = dataclasses.replace(
    BASE, haproxy_per_request=45.3e-6, haproxy_per_frame=13.2e-6, haproxy_kib_per_connection=5.7
)


def test_haproxy_totals_count_every_publish_frame_and_connection() -> None:
    """HAProxy cores = R x per request + R x F x per frame; memory = C x KiB per connection."""
    p = project(Load(10_000, 100), WITH_HAPROXY)
    assert p["haproxy_cores_total"] == pytest.approx(10_000 * 45.3e-6 + 1_000_000 * 13.2e-6)
    assert p["haproxy_memory_gib_total"] == pytest.approx(1_000_000 * 5.7 / 1024**2)


def test_table_without_haproxy_costs_keeps_its_columns() -> None:
    """Without HAProxy's costs (bench.scaling's run) the table keeps its 10 columns; with them, 12."""
    assert "HAProxy" not in table(BASE)
    assert table(BASE).splitlines()[1] == "|" + "---|" * 10
    assert table(WITH_HAPROXY).splitlines()[1] == "|" + "---|" * 12
    assert "| 13.65 | 5.4 |" in table(WITH_HAPROXY)
