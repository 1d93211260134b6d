"""Client frame decoding and server frame encoding, with no socket at all."""

from __future__ import annotations

import json

import pytest

from gateway import protocol
from gateway.protocol import Ack, FrameError, Ping, Subscribe, Unsubscribe
from relaycore.models import StoredMessage


def test_subscribe_without_type_defaults_to_subscribe() -> None:
    """The reference treats a frame without ``type`` as a subscribe."""
    assert protocol.decode('{"topics": ["a"]}') == Subscribe(topics=["a"])


def test_subscribe_fields_are_decoded() -> None:
    """client_id, since, resume and the ignored offset all decode."""
    frame = protocol.decode(
        '{"type":"subscribe","topics":["a","b"],"client_id":"c1","since":{"a":"1-0"},"resume":true,"offset":"last"}'
    )
    assert frame == Subscribe(
        topics=["a", "b"], client_id="c1", since={"a": "1-0"}, resume=True, offset="last"
    )


def test_other_frames_decode() -> None:
    """unsubscribe, ping and ack (with and without topic) decode to their structs."""
    assert protocol.decode('{"type":"unsubscribe","topics":["a"]}') == Unsubscribe(topics=["a"])
    assert protocol.decode('{"type":"ping"}') == Ping()
    assert protocol.decode('{"type":"ack","message_id":"1-0"}') == Ack(message_id="1-0")
    assert protocol.decode(b'{"type":"ack","message_id":"1-0","topic":"t"}') == Ack(
        message_id="1-0", topic="t"
    )


def test_extra_fields_are_ignored() -> None:
    """Unknown fields do not make a frame invalid (clients may send more than we read)."""
    assert protocol.decode('{"type":"ping","extra":1}') == Ping()


@pytest.mark.parametrize(
    ("data", "code"),
    [
        ("not json", protocol.PROCESSING_ERROR),
        ("[1, 2]", protocol.PROCESSING_ERROR),
        ('{"type": 5}', protocol.PROCESSING_ERROR),
        ('{"type":"ack"}', protocol.PROCESSING_ERROR),
        ('{"type":"unsubscribe","topics":"a"}', protocol.PROCESSING_ERROR),
        ('{"type":"subscribe","topics":"a"}', protocol.SUBSCRIPTION_ERROR),
        ('{"type":"subscribe","topics":["a"],"client_id":""}', protocol.SUBSCRIPTION_ERROR),
        ('{"type":"subscribe","topics":["a"],"since":{"a":1}}', protocol.SUBSCRIPTION_ERROR),
        ('{"type":"launch"}', protocol.UNKNOWN_MESSAGE_TYPE),
    ],
)
def test_bad_frames_raise_with_a_stable_code(data: str, code: str) -> None:
    """Every undecodable frame becomes a FrameError carrying the documented code."""
    with pytest.raises(FrameError) as exc:
        protocol.decode(data)
    assert exc.value.code == code


def test_unknown_type_message_names_the_type() -> None:
    """The reference's text: "Unknown message type: <t>"."""
    with pytest.raises(FrameError, match=r"^Unknown message type: launch$"):
        protocol.decode('{"type":"launch"}')


def test_server_frames_encode_with_their_type() -> None:
    """Server frames carry their type tag; error frames always carry details: null."""
    assert json.loads(protocol.encode(protocol.Pong(timestamp="t"))) == {"type": "pong", "timestamp": "t"}
    assert json.loads(protocol.error("X", "y")) == {
        "type": "error",
        "code": "X",
        "message": "y",
        "details": None,
    }
    sub = json.loads(protocol.encode(protocol.Subscribed(topics=["a"], session_id="sess_1", timestamp="t")))
    assert sub == {"type": "subscribed", "topics": ["a"], "session_id": "sess_1", "timestamp": "t"}


def test_message_frame_splices_payload_and_defaults_metadata() -> None:
    """A message frame embeds the stored payload as JSON and metadata {} when there is none."""
    m = StoredMessage(message_id="5-1", topic="t", payload=b'{"a":[1,2]}', timestamp="2025-01-01T00:00:00Z")
    assert json.loads(protocol.message_frame(m)) == {
        "type": "message",
        "message_id": "5-1",
        "topic": "t",
        "payload": {"a": [1, 2]},
        "timestamp": "2025-01-01T00:00:00Z",
        "metadata": {},
    }


def test_close_codes_are_distinct_and_documented() -> None:
    """Each server close code is unique, and docs/CLOSE_CODES.md lists every one of them."""
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "CLOSE_CODES.md").read_text()
    codes = [c.code for c in protocol.CLOSES]
    assert len(set(codes)) == len(codes)
    for close in (*protocol.CLOSES, protocol.BAD_TOKEN):
        assert f"`{close.code}`" in doc and close.reason in doc
    for code in (
        protocol.SUBSCRIPTION_ERROR,
        protocol.UNKNOWN_MESSAGE_TYPE,
        protocol.PROCESSING_ERROR,
        protocol.ACCESS_REVOKED,
    ):
        assert f"`{code}`" in doc
