"""bench.dispatch_cost: the gateway's own dispatch path, run small."""

from __future__ import annotations

from bench import dispatch_cost


async def test_every_subscriber_gets_every_message_written_once() -> None:
    """Ten messages to twenty subscribers, twice: 400 synchronous writes and a positive cost."""
    result = await dispatch_cost.measure(20, 10, 2)
    assert result["written"] == 400 and result["us_per_delivery"] > 0
