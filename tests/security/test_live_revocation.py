"""Taking access away takes effect on connections already open: a deleted or deactivated user, or
one that lost ``read``, has its WebSocket closed with 4003 and its long-poll in flight refused; a
revoked grant drops that subscription (``ACCESS_REVOKED``) and refuses the poll; a token that
expires on an open socket closes it with 4001 (docs/CLOSE_CODES.md)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import httpx
import jwt
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.conftest import TEST_SECRET
from tests.reliability.harness import bearer
from tests.security.conftest import WAIT, Relay, recv
from tests.security.test_tokens import claims


async def close_code(relay: Relay, ws: object) -> int | None:
    """Read until the server closes the socket; the close code it sent."""
    try:
        async with asyncio.timeout(WAIT):
            while True:
                await ws.recv()  # type: ignore[attr-defined]
    except ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd else None


Revoke = Callable[[Relay, str], Awaitable[httpx.Response]]
REVOCATIONS: dict[str, Revoke] = {
    "deactivated": lambda relay, uid: relay.http.patch(
        f"/auth/users/{uid}", json={"is_active": False}, headers=bearer(relay.admin)
    ),
    "deleted": lambda relay, uid: relay.http.delete(f"/auth/users/{uid}", headers=bearer(relay.admin)),
    "read-permission-removed": lambda relay, uid: relay.http.patch(
        f"/auth/users/{uid}", json={"permissions": ["write"]}, headers=bearer(relay.admin)
    ),
}


@pytest.mark.parametrize("how", list(REVOCATIONS))
async def test_user_losing_access_is_cut_off_everywhere(relay: Relay, how: str) -> None:
    """The live WebSocket closes with 4003, the long-poll in flight answers 401/403 and carries no
    message published after the change, and new requests and handshakes are refused."""
    _, owner = await relay.user("owner")
    r = await relay.http.post(
        "/api/v1/topics", json={"topic_name": "news", "is_public": True}, headers=bearer(owner)
    )
    assert r.status_code == 201, r.text
    uid, token = await relay.user("reader", ("read",))
    ws = await relay.subscribe(token, ["news"])
    poll = asyncio.create_task(
        relay.http.post("/messages/poll", json={"topics": ["news"], "timeout": 8}, headers=bearer(token))
    )
    await asyncio.sleep(0.3)  # let the poll register; its outcome is asserted, not its timing
    r = await REVOCATIONS[how](relay, uid)
    assert r.status_code in (200, 204), r.text
    assert await close_code(relay, ws) == 4003
    published = await relay.http.post(
        "/api/v1/messages", json={"topic": "news", "payload": {"after": how}}, headers=bearer(owner)
    )
    assert published.status_code == 201
    answer = await poll
    assert answer.status_code in (401, 403), f"poll in flight after the user was {how}: {answer.text}"
    assert "after" not in answer.text
    history = await relay.http.get("/api/v1/topics/news/messages", headers=bearer(token))
    # History asks only for authentication, as the reference does (it checks no global permission);
    # whether a user without `read` may page a public topic is left to the contract (see report).
    assert history.status_code in (401, 403) or how == "read-permission-removed", history.text
    with pytest.raises(InvalidStatus) as refused:
        await relay.websocket(token)
    assert refused.value.response.status_code == 403


async def test_revoked_grant_drops_the_subscription_and_refuses_the_poll(relay: Relay) -> None:
    """Owner revokes a reader's grant on a private topic: the subscription ends with ACCESS_REVOKED
    (the socket stays open for its other topics), a poll in flight is refused, history is 403."""
    _, owner = await relay.user("owner")
    uid, token = await relay.user("reader", ("read",))
    for name, public in (("private-t", False), ("public-t", True)):
        r = await relay.http.post(
            "/api/v1/topics", json={"topic_name": name, "is_public": public}, headers=bearer(owner)
        )
        assert r.status_code == 201, r.text
    r = await relay.http.post(
        "/api/v1/topics/private-t/permissions", json={"user_id": uid}, headers=bearer(owner)
    )
    assert r.status_code in (200, 201), r.text
    ws = await relay.subscribe(token, ["private-t", "public-t"])
    poll = asyncio.create_task(
        relay.http.post("/messages/poll", json={"topics": ["private-t"], "timeout": 8}, headers=bearer(token))
    )
    await asyncio.sleep(0.3)
    r = await relay.http.delete(f"/api/v1/topics/private-t/permissions/{uid}", headers=bearer(owner))
    assert r.status_code in (200, 204), r.text
    frame = await recv(ws)
    assert frame["type"] == "error" and frame["code"] == "ACCESS_REVOKED", frame
    for topic in ("private-t", "public-t"):
        r = await relay.http.post(
            "/api/v1/messages", json={"topic": topic, "payload": {"t": topic}}, headers=bearer(owner)
        )
        assert r.status_code == 201
    live = await recv(ws)
    assert live["type"] == "message" and live["topic"] == "public-t", live
    answer = await poll
    assert answer.status_code == 403 and "private-t" not in json.dumps(answer.json().get("messages", [])), (
        answer.text
    )
    assert (
        await relay.http.get("/api/v1/topics/private-t/messages", headers=bearer(token))
    ).status_code == 403


async def test_token_expiring_on_an_open_socket_closes_it_with_4001(relay: Relay) -> None:
    """A token valid for a few more seconds: the socket works, then closes with 4001 at expiry."""
    uid, _ = await relay.user("brief")
    import time

    token = jwt.encode(
        claims(uid, username="brief", permissions=["read"], exp=int(time.time()) + 5), TEST_SECRET
    )
    ws = await relay.subscribe(token, ["ticks"])
    assert await close_code(relay, ws) == 4001
