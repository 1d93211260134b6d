"""The WebSocket protocol's vocabulary: client frames, server frames, error codes and close codes
(``docs/CLOSE_CODES.md`` explains each one).  Pure: no I/O, no framework.

Client frames are decoded in two steps: a tiny head struct names the type (``subscribe`` when it
is absent, as in the reference), then that type's own decoder checks the fields.
"""

from __future__ import annotations

from typing import Annotated, Final

import msgspec

from relaycore.models import StoredMessage, iso_z, to_frame, utcnow

# --- error frame codes (the socket stays open) -------------------------------------------------
SUBSCRIPTION_ERROR: Final = "SUBSCRIPTION_ERROR"  # subscribe refused: validation, access, storage
UNKNOWN_MESSAGE_TYPE: Final = "UNKNOWN_MESSAGE_TYPE"  # a frame whose type we do not know
PROCESSING_ERROR: Final = "PROCESSING_ERROR"  # not JSON, or fields of the wrong shape
ACCESS_REVOKED: Final = "ACCESS_REVOKED"  # read access to a subscribed topic was taken away


class Close(msgspec.Struct, frozen=True):
    """A server-initiated close: code, reason text, and whether a client should reconnect."""

    code: int
    reason: str
    reconnect: bool


# --- close codes -------------------------------------------------------------------------------
GOING_AWAY: Final = Close(1001, "Server shutting down", True)
INTERNAL_ERROR: Final = Close(1011, "Internal error", True)
TOKEN_EXPIRED: Final = Close(4001, "Token expired", True)
TOKEN_REVOKED: Final = Close(4002, "Token revoked", True)  # its sign-in session ended
ACCESS_LOST: Final = Close(4003, "Access revoked", False)
SLOW_CONSUMER: Final = Close(4008, "Slow consumer", True)

# Handshake rejections happen before accept, so clients see an HTTP 403 (reference texts).
POLICY_VIOLATION: Final = 1008
BAD_TOKEN: Final = Close(POLICY_VIOLATION, "Invalid or expired token", False)
MISSING_TOKEN: Final = Close(POLICY_VIOLATION, "Missing token", False)
NO_USER: Final = Close(POLICY_VIOLATION, "User not found or inactive", False)
REVOKED: Final = Close(POLICY_VIOLATION, "Token has been revoked", False)
NO_READ: Final = Close(POLICY_VIOLATION, "Permission denied: read permission required", False)
HANDSHAKE_UNAVAILABLE: Final = Close(1011, "Storage is unavailable, retry later", True)

CLOSES: Final = (GOING_AWAY, INTERNAL_ERROR, TOKEN_EXPIRED, TOKEN_REVOKED, ACCESS_LOST, SLOW_CONSUMER)

# --- client -> server --------------------------------------------------------------------------
ClientId = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]


class Subscribe(msgspec.Struct, frozen=True, kw_only=True):
    topics: list[str]
    client_id: ClientId | None = None
    since: dict[str, str] | None = None  # per-topic exclusive position to replay after
    resume: bool = False  # replay after the positions this client_id acknowledged
    offset: str | None = None  # accepted and ignored, as in the reference


class Unsubscribe(msgspec.Struct, frozen=True, kw_only=True):
    topics: list[str]


class Ping(msgspec.Struct, frozen=True, kw_only=True):
    pass


class Ack(msgspec.Struct, frozen=True, kw_only=True):
    message_id: str
    topic: str | None = None


ClientFrame = Subscribe | Unsubscribe | Ping | Ack


class FrameError(Exception):
    """A client frame we cannot act on; becomes an ``error`` frame, never a close."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class _Head(msgspec.Struct):
    type: str = "subscribe"


# msgspec raises UnicodeDecodeError (binary frames that are not UTF-8) and RecursionError (deep
# nesting) besides its own errors; all of them are the client's mistake, not ours.
_UNDECODABLE = (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError)
_head = msgspec.json.Decoder(_Head)
_decoders: dict[str, msgspec.json.Decoder[ClientFrame]] = {
    "subscribe": msgspec.json.Decoder(Subscribe),
    "unsubscribe": msgspec.json.Decoder(Unsubscribe),
    "ping": msgspec.json.Decoder(Ping),
    "ack": msgspec.json.Decoder(Ack),
}


def decode(data: str | bytes) -> ClientFrame:
    """One client frame, or ``FrameError`` saying what is wrong with it."""
    try:
        kind = _head.decode(data).type
    except _UNDECODABLE as exc:
        raise FrameError(PROCESSING_ERROR, f"Invalid frame: {exc}") from None
    decoder = _decoders.get(kind)
    if decoder is None:
        raise FrameError(UNKNOWN_MESSAGE_TYPE, f"Unknown message type: {kind}")
    try:
        return decoder.decode(data)
    except _UNDECODABLE as exc:
        # The reference answers every refused subscribe with SUBSCRIPTION_ERROR.
        code = SUBSCRIPTION_ERROR if kind == "subscribe" else PROCESSING_ERROR
        raise FrameError(code, f"Invalid {kind} frame: {exc}") from None


# --- server -> client --------------------------------------------------------------------------
class Subscribed(msgspec.Struct, tag_field="type", tag="subscribed", kw_only=True):
    topics: list[str]
    session_id: str
    timestamp: str


class Unsubscribed(msgspec.Struct, tag_field="type", tag="unsubscribed", kw_only=True):
    topics: list[str]
    timestamp: str


class Pong(msgspec.Struct, tag_field="type", tag="pong", kw_only=True):
    timestamp: str


class ServerPing(msgspec.Struct, tag_field="type", tag="ping", kw_only=True):
    timestamp: str


class Error(msgspec.Struct, tag_field="type", tag="error", kw_only=True, omit_defaults=False):
    code: str
    message: str
    details: None = None


ServerFrame = Subscribed | Unsubscribed | Pong | ServerPing | Error

_encoder = msgspec.json.Encoder()


def encode(frame: ServerFrame) -> str:
    return _encoder.encode(frame).decode()


def message_frame(m: StoredMessage) -> str:
    """A message as its ``type: "message"`` frame text; the payload is spliced in, not re-parsed."""
    return _encoder.encode(to_frame(m)).decode()


def now() -> str:
    return iso_z(utcnow())


def error(code: str, message: str) -> str:
    return encode(Error(code=code, message=message))
