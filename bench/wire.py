"""How the load generator speaks to each system: the publish request, whether a request may
carry many messages, where a WebSocket subscribes and how it knows it is subscribed.  Ours and
the reference share one wire (the reference's API); nchan and Pushpin each have their own.

Every wire puts the same payload in front of its subscribers (``load.payload_json``: ``sent_at``
stamped when the request is built, a sequence number and 64 bytes of padding), so one receiver
and one latency definition serve every system."""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from bench import load
from bench.httpclient import HttpConnection, json_headers


@dataclass(frozen=True)
class WsTarget:
    """Where one WebSocket subscriber connects and what it does after the upgrade."""

    path: str
    send_subscribe: bool  # send our ``subscribe`` frame
    await_confirm: bool  # wait for a ``subscribed`` frame before counting it as subscribed


class Wire:
    """Ours and the reference: ``POST /api/v1/messages`` (and ``/bulk``), ``/ws`` with frames."""

    name = "relay"
    publish_ok: frozenset[int] = frozenset({200, 201})
    bulk_ok: frozenset[int] = frozenset({207})
    bulk_max = 100  # messages one publish request may carry (1: no bulk publishing)
    longpoll = True
    accounts = True  # has users, logins and per-user topics
    ws_auth = "subprotocol"

    def publish(self, conn: HttpConnection, topic: str, seq: int, token: str) -> bytes:
        return conn.build("POST", "/api/v1/messages", load.message_json(topic, seq), json_headers(token))

    def bulk(self, conn: HttpConnection, topics: list[str], first: int, size: int, token: str) -> bytes:
        body = load.bulk_json(topics, first, size)
        return conn.build("POST", "/api/v1/messages/bulk", body, json_headers(token))

    def ws_target(self, topics: list[str]) -> WsTarget:
        return WsTarget("/ws", send_subscribe=True, await_confirm=True)


class NchanWire(Wire):
    """nchan's publisher and subscriber locations (bench/peers/nchan.conf): ``POST /pub/<channel>``
    with the payload as the body, ``GET /sub/<channel>`` upgraded to a WebSocket (subscribed once
    upgraded), ``GET /poll/<channel>`` for long-polling.  No bulk publishing, no accounts."""

    name = "nchan"
    publish_ok = frozenset({201, 202})  # 201: someone was subscribed, 202: stored for later
    bulk_max = 1
    accounts = False
    ws_auth = "none"
    _headers = {"Content-Type": "application/json"}

    def publish(self, conn: HttpConnection, topic: str, seq: int, token: str) -> bytes:
        return conn.build("POST", f"/pub/{topic}", load.payload_json(seq), self._headers)

    def ws_target(self, topics: list[str]) -> WsTarget:
        if len(topics) != 1:
            raise ValueError("an nchan subscriber location serves one channel here")
        return WsTarget(f"/sub/{topics[0]}", send_subscribe=False, await_confirm=False)


class PushpinWire(Wire):
    """Pushpin: its HTTP publish API (``POST /publish/`` on the handler's control port, up to 100
    items per request), WebSockets at ``/ws/<channel>`` subscribed by our GRIP origin
    (bench/pushpin_origin.py), which confirms with a ``subscribed`` frame.  Long-polling through
    Pushpin needs an origin that stores messages to answer ``since``, so it is not offered."""

    name = "pushpin"
    publish_ok = frozenset({200})
    bulk_ok = frozenset({200})
    longpoll = False
    accounts = False
    ws_auth = "none"
    _headers = {"Content-Type": "application/json"}

    @staticmethod
    def _item(topic: str, seq: int) -> dict[str, object]:
        content = load.payload_json(seq).decode()
        return {"channel": topic, "formats": {"ws-message": {"content": content}}}

    def publish(self, conn: HttpConnection, topic: str, seq: int, token: str) -> bytes:
        body = msgspec.json.encode({"items": [self._item(topic, seq)]})
        return conn.build("POST", "/publish/", body, self._headers)

    def bulk(self, conn: HttpConnection, topics: list[str], first: int, size: int, token: str) -> bytes:
        items = [self._item(topics[(first + k) % len(topics)], first + k) for k in range(size)]
        return conn.build("POST", "/publish/", msgspec.json.encode({"items": items}), self._headers)

    def ws_target(self, topics: list[str]) -> WsTarget:
        return WsTarget("/ws/" + ",".join(topics), send_subscribe=False, await_confirm=True)


RELAY = Wire()
NCHAN = NchanWire()
PUSHPIN = PushpinWire()
