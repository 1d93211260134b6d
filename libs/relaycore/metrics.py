"""Prometheus metrics, one registry per process, named ``relay_<thing>_<unit>``."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from relaycore.loophist import LoopHistogram

REGISTRY = CollectorRegistry(auto_describe=True)

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

http_requests = Counter(
    "relay_http_requests_total",
    "HTTP requests served",
    ["service", "method", "route", "status"],
    registry=REGISTRY,
)
http_latency = LoopHistogram(
    "relay_http_request_duration_seconds",
    "HTTP request handling time",
    ["service", "route"],
    _LATENCY_BUCKETS,
    registry=REGISTRY,
)
messages_published = Counter(
    "relay_messages_published_total", "Messages accepted by ingest", ["endpoint"], registry=REGISTRY
)
publish_duplicates = Counter(
    "relay_publish_idempotent_repeats_total",
    "Publishes answered from an Idempotency-Key record",
    registry=REGISTRY,
)
publish_latency = LoopHistogram(
    "relay_publish_duration_seconds",
    "Time to store a publish request in Valkey",
    [],
    _LATENCY_BUCKETS,
    registry=REGISTRY,
)
messages_delivered = Counter(
    "relay_messages_delivered_total", "Messages handed to clients", ["transport"], registry=REGISTRY
)
delivery_latency = LoopHistogram(
    "relay_delivery_latency_seconds",
    "Publish timestamp to hand-off to a client connection",
    ["transport"],
    _LATENCY_BUCKETS,
    registry=REGISTRY,
)
messages_expired = Counter(
    "relay_messages_expired_total", "Messages not delivered because their ttl had passed", registry=REGISTRY
)
connections = Gauge("relay_connections", "Open client connections", ["transport"], registry=REGISTRY)
disconnects = Counter(
    "relay_disconnects_total", "Client connections closed by the server", ["reason"], registry=REGISTRY
)
consumer_lag = Gauge(
    "relay_consumer_group_lag",
    "Fan-out log entries not yet read or acknowledged by this gateway",
    registry=REGISTRY,
)
tail_batches = Counter("relay_tail_batches_total", "Batches read from the fan-out logs", registry=REGISTRY)
storage_errors = Counter(
    "relay_storage_errors_total", "Failed Valkey operations", ["service"], registry=REGISTRY
)
login_attempts = Counter("relay_login_attempts_total", "Login attempts", ["outcome"], registry=REGISTRY)
refreshes = Counter(
    "relay_token_refreshes_total",
    "Refresh-token rotations by outcome (ok, raced, replayed, expired, unknown, malformed)",
    ["outcome"],
    registry=REGISTRY,
)
device_flow = Counter(
    "relay_device_flow_total",
    "Device-flow (RFC 8628) events: codes issued, approved, denied; polls answered exchanged, pending,"
    " slow_down, expired, access_denied, invalid_grant; user-code lookup_failed; limited (429)",
    ["event"],
    registry=REGISTRY,
)
cache_hits = Counter(
    "relay_cache_reads_total",
    "Catch-up and history reads by where they were answered",
    ["source"],
    registry=REGISTRY,
)
cache_bytes = Gauge(
    "relay_cache_bytes", "Bytes of messages held in this gateway's hot cache", registry=REGISTRY
)


def delivered_total() -> int:
    """This process's ``relay_messages_delivered_total``, summed over transports."""
    total = 0.0
    for family in messages_delivered.collect():
        total += sum(s.value for s in family.samples if s.name.endswith("_total"))
    return int(total)


def serve_separately(host: str, port: int) -> Callable[[], None]:
    """Serve this process's metrics on a listener of their own (``metrics_port``), in a thread;
    returns what stops it."""
    server, thread = start_http_server(port, addr=host, registry=REGISTRY)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(5)

    return stop
