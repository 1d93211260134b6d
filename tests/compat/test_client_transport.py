"""The real ``pulsar-relay-client`` 0.2.2 ``RelayTransport`` (what Pulsar and Galaxy run) against
the relay, all-in-one and split: login with username/password, publish with Idempotency-Key
retries, bulk publish, and long-poll with a cursor file that survives a client restart."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.compat.faultproxy import ResponseDroppingProxy, header_values
from tests.compat.relay import ADMIN_PASSWORD, ADMIN_USERNAME, DEPLOYMENTS, Api, Relay, bearer

# The real client is a dev dependency (pyproject [dev]: pulsar-relay-client==0.2.2).
pytest.importorskip("pulsar_relay_client", minversion="0.2.2")
from pulsar_relay_client import RelayTransport

# The real client against the all-in-one process and against the split stack behind HAProxy.
pytestmark = pytest.mark.parametrize("relay", DEPLOYMENTS, indirect=True)

STREAM_ID = re.compile(r"^\d+-\d+$")


class RecordingSession(requests.Session):
    """A real requests session that remembers the headers of every request it sent."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[str, str, dict[str, str]]] = []
        self.hooks["response"].append(self._record)

    def _record(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        req = response.request
        headers = {k: v if isinstance(v, str) else v.decode() for k, v in req.headers.items()}
        self.sent.append((str(req.method), str(req.url), headers))


def transport(url: str, **kw: Any) -> RelayTransport:
    # The client sleeps between retries; the test has no reason to.
    return RelayTransport(url, username=ADMIN_USERNAME, password=ADMIN_PASSWORD, sleep=lambda _s: None, **kw)


@pytest.fixture
def client(relay: Relay) -> Iterator[RelayTransport]:
    t = transport(relay.url)
    yield t
    t.close()


def test_post_message_sends_an_idempotency_key_and_gets_the_stored_id(relay: Relay, api: Api) -> None:
    """post_message logs in by form, sends a 32-hex Idempotency-Key and gets 201 with a stream id."""
    session = RecordingSession()
    t = RelayTransport(relay.url, username=ADMIN_USERNAME, password=ADMIN_PASSWORD, session=session)
    try:
        result = t.post_message("compat_single", {"job_id": "1"}, ttl=60, metadata={"k": "v"})
    finally:
        t.close()
    assert STREAM_ID.match(result["message_id"]) and result["topic"] == "compat_single"
    assert result["timestamp"].endswith("Z")
    [(method, url, headers)] = session.sent
    assert (method, url) == ("POST", f"{relay.url}/api/v1/messages")
    assert re.fullmatch(r"[0-9a-f]{32}", headers["Idempotency-Key"])
    stored = api.history(api.login(), "compat_single")
    assert [(m["message_id"], m["payload"], m["metadata"]) for m in stored] == [
        (result["message_id"], {"job_id": "1"}, {"k": "v"})
    ]


def test_post_message_retried_after_a_lost_response_is_stored_once(relay: Relay, api: Api) -> None:
    """The relay stores a publish, the answer is lost, the client retries with the same key: one message."""
    proxy = ResponseDroppingProxy(relay.port, b"POST /api/v1/messages ").start()
    t = transport(proxy.url)
    try:
        result = t.post_message("compat_retry", {"job_id": "r1"})
    finally:
        t.close()
        proxy.close()
    assert proxy.dropped == 1
    keys = header_values(proxy.requests, b"POST /api/v1/messages ", b"Idempotency-Key")
    assert len(keys) == 2 and keys[0] == keys[1], keys
    stored = api.history(api.login(), "compat_retry")
    assert [m["message_id"] for m in stored] == [result["message_id"]]


def test_post_bulk_messages_retried_after_a_lost_response_is_stored_once(relay: Relay, api: Api) -> None:
    """A bulk publish whose 207 is lost and retried under the same key stores each message once."""
    proxy = ResponseDroppingProxy(relay.port, b"POST /api/v1/messages/bulk ").start()
    t = transport(proxy.url)
    try:
        result = t.post_bulk_messages([{"topic": "compat_bulk_retry", "payload": {"n": n}} for n in range(3)])
    finally:
        t.close()
        proxy.close()
    assert proxy.dropped == 1
    keys = header_values(proxy.requests, b"POST /api/v1/messages/bulk ", b"Idempotency-Key")
    assert len(keys) == 2 and keys[0] == keys[1], keys
    assert result["summary"] == {"total": 3, "accepted": 3, "rejected": 0}
    stored = api.history(api.login(), "compat_bulk_retry")
    assert [m["payload"] for m in stored] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert [m["message_id"] for m in stored] == [r["message_id"] for r in result["results"]]


def test_same_idempotency_key_twice_returns_the_first_answer_and_stores_once(api: Api) -> None:
    """What the client relies on, shown directly: a repeated key gets the original status and body."""
    token = api.login()
    headers = {**bearer(token), "Idempotency-Key": "0123456789abcdef0123456789abcdef"}
    body = {"topic": "compat_dedupe", "payload": {"job_id": "d"}}
    first = api.http.post("/api/v1/messages", headers=headers, json=body)
    second = api.http.post("/api/v1/messages", headers=headers, json=body)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert len(api.history(token, "compat_dedupe")) == 1


def test_post_bulk_messages_returns_207_with_results_in_order(client: RelayTransport, api: Api) -> None:
    """post_bulk_messages accepts the 207 answer: one accepted result per message, in input order."""
    messages: list[dict[str, Any]] = [
        {"topic": "compat_bulk_a", "payload": {"n": 1}},
        {"topic": "compat_bulk_b", "payload": {"n": 2}, "metadata": {"m": "x"}},
        {"topic": "compat_bulk_a", "payload": {"n": 3}, "ttl": 600},
    ]
    result = client.post_bulk_messages(messages)
    assert [(r["topic"], r["status"], r["error"]) for r in result["results"]] == [
        ("compat_bulk_a", "accepted", None),
        ("compat_bulk_b", "accepted", None),
        ("compat_bulk_a", "accepted", None),
    ]
    assert all(STREAM_ID.match(r["message_id"]) for r in result["results"])
    assert result["summary"] == {"total": 3, "accepted": 3, "rejected": 0}
    token = api.login()
    assert [m["payload"] for m in api.history(token, "compat_bulk_a")] == [{"n": 1}, {"n": 3}]
    assert [m["metadata"] for m in api.history(token, "compat_bulk_b")] == [{"m": "x"}]


POLL_OUTLASTS_STATS = 20.0  # seconds; a poll returns as soon as a message comes


class Poller:
    """The client's long_poll in a background thread, as Pulsar's consumer thread runs it."""

    def __init__(self, t: RelayTransport, topics: list[str], timeout: float) -> None:
        self.result: list[dict[str, Any]] | BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(t, topics, timeout), daemon=True)
        self._thread.start()

    def _run(self, t: RelayTransport, topics: list[str], timeout: float) -> None:
        try:
            self.result = t.long_poll(topics, timeout=timeout)  # type: ignore[arg-type]
        except BaseException as exc:
            self.result = exc

    def join(self) -> list[dict[str, Any]]:
        self._thread.join(70)
        assert not self._thread.is_alive(), "long_poll did not return"
        if isinstance(self.result, BaseException):
            raise self.result
        assert self.result is not None
        return self.result


def poll_until(t: RelayTransport, topics: list[str], count: int) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    for _ in range(20):
        got += t.long_poll(topics, timeout=2.0)  # type: ignore[arg-type]
        if len(got) >= count:
            break
    return got


def test_long_poll_cursor_file_survives_a_client_restart(relay: Relay, api: Api, tmp_path: Path) -> None:
    """Messages published while the consumer is down arrive after it restarts: none lost, none repeated."""
    topic = "compat_cursor"
    cursor_path = str(tmp_path / "manager-relay-cursor.json")
    token = api.login()
    producer = transport(relay.url)
    sent: list[str] = []

    def publish(n: int) -> None:
        sent.append(producer.post_message(topic, {"n": n})["message_id"])

    try:
        publish(0)  # before the first consumer: it starts at the tail and never sees this one
        first = transport(relay.url, cursor_path=cursor_path)
        try:
            # Long enough to outlast the deployment-wide stats' lag (gateway heartbeats, 5 s by
            # default): a poll that ended before wait_for_pollers saw it would miss what follows.
            poll = Poller(first, [topic], POLL_OUTLASTS_STATS)
            api.wait_for_pollers(token, [topic])
            publish(1)
            publish(2)
            got_first = poll.join()
            got_first += poll_until(first, [topic], 2 - len(got_first)) if len(got_first) < 2 else []
        finally:
            first.close()
        assert [m["payload"]["n"] for m in got_first] == [1, 2]
        assert json.loads(Path(cursor_path).read_text()) == {topic: sent[2]}

        for n in (3, 4, 5):  # the consumer is down
            publish(n)

        second = transport(relay.url, cursor_path=cursor_path)
        try:
            assert second.get_last_message_id(topic) == sent[2]
            got_second = second.long_poll([topic], timeout=2.0)  # type: ignore[arg-type]
            assert [m["payload"]["n"] for m in got_second] == [3, 4, 5]
            poll = Poller(second, [topic], POLL_OUTLASTS_STATS)
            api.wait_for_pollers(token, [topic])
            publish(6)
            got_second += poll.join()
        finally:
            second.close()
    finally:
        producer.close()
    received = got_first + got_second
    assert [m["message_id"] for m in received] == sent[1:]
    assert [m["payload"]["n"] for m in received] == [1, 2, 3, 4, 5, 6]
    assert all(m["topic"] == topic for m in received)
    assert json.loads(Path(cursor_path).read_text()) == {topic: sent[6]}


def test_long_poll_with_float_timeout_returns_empty_when_quiet(client: RelayTransport) -> None:
    """Pulsar passes the timeout as a float; a quiet topic answers with no messages, not an error."""
    assert client.long_poll(["compat_quiet"], timeout=1.0) == []  # type: ignore[arg-type]


def test_large_setup_payload_is_published_and_delivered_intact(relay: Relay, api: Api) -> None:
    """A ~500 KiB Galaxy job setup message (command line, env) is accepted and long-polled whole."""
    payload = {
        "job_id": "big",
        "command_line": "x" * 300_000,
        "env": [{"name": f"V{i}", "value": "é" * 100} for i in range(1000)],
    }
    producer, consumer = transport(relay.url), transport(relay.url)
    try:
        marker = producer.post_message("compat_large", {"job_id": "marker"})["message_id"]
        consumer.set_last_message_id("compat_large", marker)
        sent = producer.post_message("compat_large", payload)
        got = consumer.long_poll(["compat_large"], timeout=2.0)  # type: ignore[arg-type]
    finally:
        producer.close()
        consumer.close()
    assert [(m["message_id"], m["payload"]) for m in got] == [(sent["message_id"], payload)]
