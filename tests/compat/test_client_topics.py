"""The real client's ``HttpRelayClient`` (Galaxy BYOC) against the relay (all-in-one and split):
``create_or_verify_topic`` ownership checks and ``fetch_messages`` paging."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from tests.compat.relay import DEPLOYMENTS, Api, Relay, bearer

# The real client is a dev dependency (pyproject [dev]: pulsar-relay-client==0.2.2).
pytest.importorskip("pulsar_relay_client", minversion="0.2.2")
from pulsar_relay_client import (
    HttpRelayClient,
    RefreshTokenRejectedError,
    RelayClientError,
    TopicOwnershipConflictError,
)

# The real client against the all-in-one process and against the split stack behind HAProxy.
pytestmark = pytest.mark.parametrize("relay", DEPLOYMENTS, indirect=True)


@pytest.fixture
def topics_client(relay: Relay) -> Iterator[HttpRelayClient]:
    session = requests.Session()
    yield HttpRelayClient(relay.url, session=session)
    session.close()


def test_create_or_verify_topic_creates_then_accepts_own_topic(
    topics_client: HttpRelayClient, api: Api, admin_token: str
) -> None:
    """A new name is created (201); the same caller again is a no-op (409 → whoami → owner matches)."""
    token = api.user(admin_token, "byoc_galaxy", ["read", "write"])
    for name in ("job_setup_byoc_1_lab", "job_kill_byoc_1_lab", "job_status_update_byoc_1_lab"):
        topics_client.create_or_verify_topic(token, name)
        topics_client.create_or_verify_topic(token, name)
        me = topics_client.whoami(token)
        topic = api.http.get(f"/api/v1/topics/{name}", headers=bearer(token)).json()
        assert topic["owner_id"] == me["user_id"]
    again = api.http.post("/api/v1/topics", headers=bearer(token), json={"topic_name": "job_kill_byoc_1_lab"})
    assert again.status_code == 409
    assert again.json() == {"detail": "Topic 'job_kill_byoc_1_lab' already exists"}


def test_create_or_verify_topic_accepts_a_topic_auto_created_by_publishing(
    topics_client: HttpRelayClient, api: Api, admin_token: str
) -> None:
    """A topic the caller created by its first publish counts as its own."""
    token = api.user(admin_token, "publisher", ["read", "write"])
    api.publish(token, "pulsar_capabilities_lab", {"schema_version": 1})
    topics_client.create_or_verify_topic(token, "pulsar_capabilities_lab")


def test_create_or_verify_topic_refuses_someone_elses_topic(
    topics_client: HttpRelayClient, api: Api, admin_token: str
) -> None:
    """Another user's name raises TopicOwnershipConflictError (private: 403; public: owner differs)."""
    alice = api.user(admin_token, "alice", ["read", "write"])
    mallory = api.user(admin_token, "mallory", ["read", "write"])
    topics_client.create_or_verify_topic(alice, "job_setup_alice")
    api.create_topic(alice, "job_kill_alice", is_public=True)
    with pytest.raises(TopicOwnershipConflictError):
        topics_client.create_or_verify_topic(mallory, "job_setup_alice")
    with pytest.raises(TopicOwnershipConflictError):
        topics_client.create_or_verify_topic(mallory, "job_kill_alice")


def test_fetch_messages_limit_one_desc_is_the_newest(
    topics_client: HttpRelayClient, api: Api, admin_token: str
) -> None:
    """Galaxy reads the latest capabilities snapshot with limit=1, order=desc."""
    ids = [api.publish(admin_token, "pulsar_capabilities_m", {"published_at": n}) for n in range(4)]
    page = topics_client.fetch_messages(admin_token, "pulsar_capabilities_m", limit=1, order="desc")
    assert [m["message_id"] for m in page["messages"]] == [ids[-1]]
    assert page["messages"][0]["payload"] == {"published_at": 3}
    assert page["messages"][0]["topic"] == "pulsar_capabilities_m"
    assert page["messages"][0]["metadata"] == {}
    assert (page["total"], page["limit"], page["order"], page["cursor"], page["next_cursor"]) == (
        1,
        1,
        "desc",
        None,
        ids[-1],
    )


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_fetch_messages_pages_until_next_cursor_is_null(
    topics_client: HttpRelayClient, api: Api, admin_token: str, order: str
) -> None:
    """Paging with cursor = next_cursor sees each message once, in order, and ends on next_cursor
    null (issue 4: null when nothing more exists); the cursor is echoed and total is the page size."""
    ids = [api.publish(admin_token, "compat_pages", {"n": n}) for n in range(5)]
    expected = ids if order == "asc" else ids[::-1]
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(6):
        page = topics_client.fetch_messages(admin_token, "compat_pages", limit=2, order=order, cursor=cursor)
        assert (page["order"], page["limit"], page["cursor"]) == (order, 2, cursor)
        assert page["total"] == len(page["messages"])
        seen += [m["message_id"] for m in page["messages"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == expected


def test_fetch_messages_next_cursor_is_null_only_when_nothing_more_exists(
    topics_client: HttpRelayClient, api: Api, admin_token: str
) -> None:
    """next_cursor is the page's last id while more messages exist beyond it, and null on the page
    that ends the topic (a deliberate difference from the reference: docs/MIGRATING.md)."""
    ids = [api.publish(admin_token, "compat_short", {"n": n}) for n in range(5)]
    page = topics_client.fetch_messages(admin_token, "compat_short")
    assert [m["message_id"] for m in page["messages"]] == ids[::-1]
    assert (page["total"], page["limit"], page["next_cursor"]) == (5, 10, None)
    middle = topics_client.fetch_messages(admin_token, "compat_short", limit=2, order="asc", cursor=ids[0])
    assert [m["message_id"] for m in middle["messages"]] == ids[1:3]
    assert middle["next_cursor"] == ids[2]
    last = topics_client.fetch_messages(admin_token, "compat_short", limit=2, order="asc", cursor=ids[2])
    assert [m["message_id"] for m in last["messages"]] == ids[3:]
    assert last["next_cursor"] is None


def test_fetch_messages_errors_map_to_client_exceptions(
    topics_client: HttpRelayClient, admin_token: str
) -> None:
    """An unknown topic (404) is a RelayClientError; a bad token (401) is RefreshTokenRejectedError."""
    with pytest.raises(RelayClientError) as missing:
        topics_client.fetch_messages(admin_token, "no_such_topic")
    assert "HTTP 404" in str(missing.value)
    with pytest.raises(RefreshTokenRejectedError):
        topics_client.fetch_messages("not-a-jwt", "no_such_topic")
