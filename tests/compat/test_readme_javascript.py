"""The seed README's two JavaScript clients, run verbatim in Node (built-in fetch; the ``ws``
package as WebSocket) against the all-in-one relay: only the token literal and the host/port
are substituted, and a harness around the code stops it once the expected messages arrived."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.compat import readme
from tests.compat.node import NodeExample
from tests.compat.relay import Api, Relay

WEBSOCKET_EXAMPLE, POLL_EXAMPLE = readme.javascript_examples()


@pytest.fixture
def consumer(api: Api, admin_token: str) -> str:
    """A read-only user who may read both README topics: 'notifications' is public, 'alerts' granted."""
    api.create_topic(admin_token, "notifications", is_public=True)
    api.create_topic(admin_token, "alerts")
    api.register(admin_token, "consumer1", "consumer1-password", ["read"])
    api.grant(admin_token, "alerts", "consumer1")
    return api.login("consumer1", "consumer1-password")


def test_readme_examples_are_the_websocket_then_the_poll_client() -> None:
    """Extraction finds the two README JavaScript blocks, in order."""
    assert "new WebSocket(`ws://localhost:8080/ws?token=${token}`)" in WEBSOCKET_EXAMPLE
    assert "'http://localhost:8080/messages/poll'" in POLL_EXAMPLE


def test_readme_websocket_example_subscribes_receives_and_acks(
    relay: Relay, api: Api, admin_token: str, consumer: str, tmp_path: Path
) -> None:
    """The browser example subscribes without a client_id, gets both messages, and its acks raise no error."""
    code = readme.js_for_relay(WEBSOCKET_EXAMPLE, relay.port, consumer)
    node = NodeExample(code, tmp_path, expect_received=2)
    try:
        subscribed = node.wait_for("Subscribed to:")
        assert subscribed["args"][1] == ["notifications", "alerts"]
        session = node.wait_for("Session ID:")
        assert isinstance(session["args"][1], str) and session["args"][1]
        api.publish(admin_token, "notifications", {"user_id": 123, "message": "Hello, World!"})
        api.publish(admin_token, "alerts", {"level": "high"})
        exit_code = node.finish()
    finally:
        node.close()
    assert node.received() == [{"user_id": 123, "message": "Hello, World!"}, {"level": "high"}]
    assert node.errors() == [], node.errors()
    assert exit_code == 0, node.seen


def test_readme_long_poll_example_receives_each_message_once(
    relay: Relay, api: Api, admin_token: str, consumer: str, tmp_path: Path
) -> None:
    """The fetch example's since-tracking loop gets every message exactly once across both topics."""
    code = readme.js_for_relay(POLL_EXAMPLE, relay.port, consumer)
    node = NodeExample(code, tmp_path, expect_received=3)
    try:
        # Its first poll sends since={} (no cursor yet), so it waits for new messages only.
        api.wait_for_pollers(consumer, ["notifications", "alerts"])
        api.publish(admin_token, "notifications", {"n": 1})
        first = node.wait_for("Received:")
        assert first["args"][1] == {"n": 1}
        # Now since={notifications: id}: 'alerts' replays from its start, 'notifications' after id.
        api.publish(admin_token, "alerts", {"n": 2})
        api.publish(admin_token, "notifications", {"n": 3})
        exit_code = node.finish()
    finally:
        node.close()
    assert sorted(p["n"] for p in node.received()) == [1, 2, 3]
    assert node.errors() == [], node.errors()
    assert exit_code == 0, node.seen
