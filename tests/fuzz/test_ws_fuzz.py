"""Property: no WebSocket frame (any JSON, any frame type with wrong fields, raw text, binary and
invalid UTF-8, deep nesting) closes the connection or crashes the gateway; each refusal is an error
frame with a documented code and a message, and the socket keeps answering ``ping``."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.sync.client import ClientConnection, connect

from tests.fuzz.conftest import SEEDED, Target
from tests.fuzz.strategies import JSON, NOT_UTF8, TOPIC_LIKE, LogWatch, nested

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "120"))
ERROR_CODES = {"SUBSCRIPTION_ERROR", "UNKNOWN_MESSAGE_TYPE", "PROCESSING_ERROR", "ACCESS_REVOKED"}
SERVER_TYPES = {"subscribed", "unsubscribed", "pong", "ping", "error", "message"}

FRAME_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "type": st.sampled_from(["subscribe", "unsubscribe", "ping", "ack", "publish", "", "SUBSCRIBE"]),
    "topics": st.lists(TOPIC_LIKE, max_size=5),
    "since": st.dictionaries(
        TOPIC_LIKE, st.one_of(st.sampled_from(["0-0", "1-1", "x", "99999999999999999999-0"]), JSON)
    ),
    "client_id": st.text(max_size=300),
    "resume": st.booleans(),
    "offset": JSON,
    "message_id": st.sampled_from(["0-0", "1-1", "-", "1-", "abc"]),
    "topic": TOPIC_LIKE,
}
SHAPED = st.fixed_dictionaries({}, optional={k: st.one_of(v, JSON) for k, v in FRAME_FIELDS.items()})
# Deep, but under ws_max_message_bytes (64 KiB): bigger frames are closed with 1009 by design.
DEEP = st.builds(nested, st.integers(min_value=50, max_value=8000), st.sampled_from(["list", "object"]))
FRAMES = st.one_of(
    SHAPED.map(json.dumps),
    JSON.map(json.dumps),
    st.text(max_size=200),
    st.binary(max_size=200),
    NOT_UTF8,
    DEEP,
    DEEP.map(lambda d: b'{"type": "subscribe", "topics": ' + d + b"}"),
)


@pytest.fixture(scope="module")
def socket(target: Target) -> Iterator[ClientConnection]:
    url = target.url.replace("http://", "ws://") + f"/ws?token={target.user_token}"
    # No keepalive pings: the client's background thread draws their payloads from `random`,
    # which hypothesis reports (as an error) when it happens while an input is being generated.
    with connect(url, open_timeout=10, max_size=None, ping_interval=None) as ws:
        yield ws


def drain_until_pong(ws: ClientConnection) -> list[dict[str, Any]]:
    """Send a ping and read everything up to its pong (bounded by the receive timeout)."""
    ws.send(json.dumps({"type": "ping"}))
    seen = []
    for _ in range(10_000):
        frame = json.loads(ws.recv(timeout=10))
        if frame.get("type") == "pong":
            return seen
        seen.append(frame)
    raise AssertionError("no pong")


def test_frames_never_close_or_crash(target: Target, socket: ClientConnection) -> None:
    """Random frames on one socket: only documented frames come back, errors carry a code and a
    message, the socket stays open, and the gateway logs no traceback."""
    logs = LogWatch(target.proc)
    logs.new_text()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(frame=FRAMES)
    def run(frame: str | bytes) -> None:
        socket.send(frame)
        for reply in drain_until_pong(socket):
            assert reply.get("type") in SERVER_TYPES, reply
            if reply["type"] == "error":
                assert reply["code"] in ERROR_CODES and reply["message"], reply
                assert "Traceback" not in reply["message"], reply
            if reply["type"] == "message":
                assert reply["topic"] == SEEDED or reply["topic"], reply

    run()
    logs.assert_no_crash()
