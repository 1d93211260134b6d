"""The design at a scale this machine cannot run: a model, calibrated with costs measured by
``bench/scaling.py``, of what Valkey and every gateway do at G gateways and C connections.

Every gateway reads every partition log, whatever its clients subscribe to: R published messages/s
become R x G log entries read per second (the read amplification).  Each gateway then spends CPU
per entry it reads (decode, cache, hub lookup) and per delivery it makes (frame bytes written to
one socket).  Valkey spends CPU per publish (the script) and per entry handed to each gateway.
Memory per gateway is its connections plus its hot cache.  HAProxy, where its costs are given
(``bench/haproxy_cost.py``), spends CPU per proxied publish and per frame it relays to a
subscriber, and memory per proxied connection: deployment-wide totals, since it is as many
threads and instances as the operator runs.  ``docs/SCALING.md`` explains the
formulas and what each setting changes; ``bench/scaling.py`` prints this table into BENCHMARKS.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Costs:
    """Measured unit costs (CPU seconds, KiB), from the scaling run on this machine."""

    valkey_per_publish: float  # Valkey CPU per published message (publish script)
    valkey_per_entry_read: float  # Valkey CPU per fan-out entry handed to one gateway
    gateway_per_entry: float  # gateway CPU per fan-out entry read (whether or not delivered)
    gateway_per_delivery: float  # gateway CPU per message written to one connection
    kib_per_connection: float  # gateway memory per idle WebSocket
    # HAProxy (bench/haproxy_cost.py); None leaves it out of the projection.
    haproxy_per_request: float | None = None  # HAProxy CPU per proxied single publish
    haproxy_per_frame: float | None = None  # HAProxy CPU per WebSocket frame relayed to a client
    haproxy_kib_per_connection: float | None = None  # HAProxy memory per idle proxied WebSocket


@dataclass(frozen=True)
class Load:
    publish_rate: float  # messages/s, deployment-wide
    fanout: float  # deliveries per message (subscribers of its topic), deployment-wide average
    gateways: int = 100
    connections: int = 1_000_000
    primaries: int = 1  # Valkey processes sharing the partitions (1 = single server)
    partitions: int = 16
    entry_bytes: int = 400  # one fan-out log entry on the wire (payload + fields + framing)
    cache_mib: float = 200.0  # a gateway's hot cache at its limits (topics x messages x size)


def project(load: Load, costs: Costs) -> dict[str, Any]:
    """Per-process utilisation (1.0 = one busy core) and where the first limit is."""
    r, g = load.publish_rate, load.gateways
    reads = r * g  # fan-out entries read per second, all gateways together
    deliveries = r * load.fanout
    valkey_total = r * costs.valkey_per_publish + reads * costs.valkey_per_entry_read
    # Partitions land on primaries in whole units: the busiest primary has ceil(P/N) of them.
    share = -(-load.partitions // min(load.primaries, load.partitions)) / load.partitions
    valkey_busiest = valkey_total * share
    gateway = r * costs.gateway_per_entry + deliveries / g * costs.gateway_per_delivery
    conns = load.connections / g
    memory_mib = conns * costs.kib_per_connection / 1024 + load.cache_mib
    egress_mb = reads * load.entry_bytes / 1e6 * share
    limits = {
        "Valkey CPU (busiest primary)": valkey_busiest,
        "gateway CPU": gateway,
    }
    bottleneck = max(limits, key=lambda k: limits[k])
    # Every publish request and every delivery (one frame each) passes HAProxy.
    haproxy: dict[str, float] = {}
    if costs.haproxy_per_request is not None and costs.haproxy_per_frame is not None:
        haproxy["haproxy_cores_total"] = r * costs.haproxy_per_request + deliveries * costs.haproxy_per_frame
    if costs.haproxy_kib_per_connection is not None:
        haproxy["haproxy_memory_gib_total"] = load.connections * costs.haproxy_kib_per_connection / 1024**2
    return {
        **haproxy,
        "log_reads_per_s": reads,
        "deliveries_per_gateway_per_s": deliveries / g,
        "valkey_cores_total": valkey_total,
        "valkey_cores_busiest": valkey_busiest,
        "valkey_egress_mb_per_s_busiest": egress_mb,
        "gateway_cores_each": gateway,
        "gateway_memory_mib_each": memory_mib,
        "connections_per_gateway": conns,
        "bottleneck": bottleneck if limits[bottleneck] >= 0.7 else "none below 70 % of a core",
    }


# What the table shows: (publish rate, fan-out, primaries) at 100 gateways and 1M connections.
SCENARIOS: tuple[tuple[float, float, int], ...] = (
    (1_000, 100, 1),
    (10_000, 100, 1),
    (10_000, 100, 6),
    (50_000, 20, 6),
    (50_000, 20, 16),
)


def table(costs: Costs) -> str:
    """The projection; with HAProxy's costs, two columns more (its deployment-wide totals)."""
    with_haproxy = costs.haproxy_per_frame is not None and costs.haproxy_kib_per_connection is not None
    extra = " | HAProxy cores (total) | HAProxy GiB (total)" if with_haproxy else ""
    head = (
        "| publish msg/s | fan-out | Valkey primaries | log entries read/s | Valkey cores (busiest primary)"
        " | Valkey egress MB/s (busiest) | gateway cores each | deliveries/s each | gateway MiB each"
        f"{extra} | first limit |"
    )
    rows = [head, "|" + "---|" * (12 if with_haproxy else 10)]
    for rate, fanout, primaries in SCENARIOS:
        p = project(Load(rate, fanout, primaries=primaries), costs)
        cells = (
            f" | {p['haproxy_cores_total']:.2f} | {p['haproxy_memory_gib_total']:.1f}" if with_haproxy else ""
        )
        rows.append(
            f"| {rate:,.0f} | {fanout:,.0f} | {primaries} | {p['log_reads_per_s']:,.0f}"
            f" | {p['valkey_cores_busiest']:.2f} | {p['valkey_egress_mb_per_s_busiest']:,.0f}"
            f" | {p['gateway_cores_each']:.2f} | {p['deliveries_per_gateway_per_s']:,.0f}"
            f" | {p['gateway_memory_mib_each']:,.0f}{cells} | {p['bottleneck']} |"
        )
    return "\n".join(rows)
