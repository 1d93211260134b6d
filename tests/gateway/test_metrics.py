"""The gateway's Prometheus metrics move when it works."""

from __future__ import annotations

from tests.gateway.conftest import Relay, messages, publish_direct


def value(text: str, sample: str) -> float:
    """The value of one exported sample, e.g. ``relay_connections{transport="websocket"}``."""
    for line in text.splitlines():
        name, _, number = line.rpartition(" ")
        if name == sample:
            return float(number)
    raise AssertionError(f"{sample} not exported")


async def test_delivery_connection_and_lag_metrics(relay: Relay) -> None:
    """Deliveries, delivery latency, open connections and the consumer-group lag are exported."""
    alice, token = await relay.user("alice")
    ws = await relay.subscribe(token, ["m"])
    await publish_direct(relay.backend, alice, "m", 3)
    await messages(ws, 3)
    text = (await relay.http.get(relay.gateway + "/metrics")).text
    assert value(text, 'relay_messages_delivered_total{transport="websocket"}') >= 3
    assert value(text, 'relay_delivery_latency_seconds_count{transport="websocket"}') >= 3
    assert value(text, 'relay_connections{transport="websocket"}') >= 1
    assert value(text, "relay_consumer_group_lag") >= 0
