"""The publish endpoints are served by bare ASGI handlers in front of Starlette: their answers
(status, headers in order, body) are those of the same endpoints reached through Starlette's
middleware and router, including 401/403/413/408/422 and idempotent repeats; every other request
falls through to Starlette; metrics and request ids are kept."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
import pytest
from starlette.applications import Starlette

import ingest.app
from relaycore.bare_routes import ASGIApp, BareRoutes, Receive, Scope, Send
from relaycore.context import Context
from tests.conftest import make_settings
from tests.support.identity import make_user
from tests.support.serve import running

VOLATILE = {b"date", b"server", b"x-request-id", b"location"}  # location names the port


def through_starlette(app: Starlette) -> ASGIApp:
    """``app`` without its bare routes in front: every request takes the Starlette chain.  Its
    lifespan is left to the server running ``app`` itself (they share one context)."""
    bare = app.middleware_stack
    assert isinstance(bare, BareRoutes)

    async def serve(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        scope["app"] = app
        await bare.fallback(scope, receive, send)

    return serve


class Pair:
    """The same ingest app served twice: ``fast`` as built, ``slow`` through Starlette only."""

    def __init__(self, fast: str, slow: str, ctx: Context) -> None:
        self.fast, self.slow, self.ctx = fast, slow, ctx
        self.token = ""

    async def both(self, method: str, path: str, **kw: Any) -> tuple[httpx.Response, httpx.Response]:
        out = []
        for base in (self.fast, self.slow):
            async with httpx.AsyncClient(base_url=base, timeout=30) as c:
                out.append(await c.request(method, path, **kw))
        return out[0], out[1]


@pytest.fixture
async def pair(valkey_url: str) -> AsyncIterator[Pair]:
    settings = make_settings(valkey_url, max_body_bytes=1000, read_timeout=0.5)
    ctx = Context(settings)
    app = ingest.app.create_app(settings, ctx)
    async with contextlib.AsyncExitStack() as stack:
        fast = await stack.enter_async_context(running(app))
        slow = await stack.enter_async_context(running(through_starlette(app)))
        yield Pair(fast, slow, ctx)


def shape(r: httpx.Response) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Status, headers in order (volatile values blanked), body."""
    headers = [(k.lower(), b"" if k.lower() in VOLATILE else v) for k, v in r.headers.raw]
    return r.status_code, headers, r.content


def big(size: int) -> bytes:
    return msgspec.json.encode({"topic": "t", "payload": {"pad": "x" * size}})


async def test_error_answers_match_the_starlette_route(pair: Pair) -> None:
    """401 (no token, bad token), 403 (no write permission), 400/422 (bad JSON, bad UTF-8, no body,
    bad topic, bad Idempotency-Key, bad bulk) and 413 (announced and chunked) are the same bytes."""
    _, writer = await make_user(pair.ctx.backend, "writer", ["read", "write"])
    _, reader = await make_user(pair.ctx.backend, "reader", ["read"])
    ok = {"topic": "t", "payload": {}}
    w = {"Authorization": f"Bearer {writer}"}

    async def chunked() -> AsyncIterator[bytes]:
        for i in range(0, 3000, 500):
            yield big(3000)[i : i + 500]

    cases: list[tuple[str, dict[str, Any]]] = [
        ("/api/v1/messages", {"json": ok}),
        ("/api/v1/messages", {"json": ok, "headers": {"Authorization": "Bearer nope"}}),
        ("/api/v1/messages", {"json": ok, "headers": {"Authorization": f"Bearer {reader}"}}),
        ("/api/v1/messages", {"content": b'{"topic": ', "headers": w}),
        ("/api/v1/messages", {"content": b'{"topic": "\xff"}', "headers": w}),
        ("/api/v1/messages", {"content": b"", "headers": w}),
        ("/api/v1/messages", {"json": {"topic": "a b", "payload": 1}, "headers": w}),
        ("/api/v1/messages", {"json": ok, "headers": {**w, "Idempotency-Key": ""}}),
        ("/api/v1/messages/bulk", {"json": {"messages": []}, "headers": w}),
        ("/api/v1/messages/bulk", {"json": ok, "headers": w}),
        ("/api/v1/messages", {"content": big(2000), "headers": w}),
        ("/api/v1/messages/bulk", {"content": big(2000), "headers": w}),
    ]  # fmt: skip
    for path, kw in cases:
        fast, slow = await pair.both("POST", path, **kw)
        assert fast.status_code >= 400, (path, kw, fast.text)
        assert shape(fast) == shape(slow), (path, kw)
    for base in (pair.fast, pair.slow):  # a streamed body has no Content-Length to refuse early
        async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {writer}"}) as c:
            r = await c.post("/api/v1/messages", content=chunked())
            assert (r.status_code, r.json()) == (413, {"detail": "Request body exceeds 1000 bytes"})
    assert await pair.ctx.backend.messages.length("t") == 0


async def raw_exchange(base: str, request: bytes) -> bytes:
    """Send ``request`` (a head and part of its body) and read until the server closes or answers."""
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        length = int(re.search(rb"content-length: (\d+)", head.lower()).group(1))  # type: ignore[union-attr]
        return head + await asyncio.wait_for(reader.readexactly(length), 10)
    finally:
        writer.close()
        await writer.wait_closed()


async def test_a_body_not_sent_within_read_timeout_is_408_as_through_starlette(pair: Pair) -> None:
    """A head announcing 100 bytes, then 10 bytes and silence: 408 with the same JSON detail."""
    _, writer = await make_user(pair.ctx.backend, "writer", ["read", "write"])
    request = (
        b"POST /api/v1/messages HTTP/1.1\r\nHost: relay\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + writer.encode() + b"\r\nX-Request-Id: slow-1\r\n"
        b"Content-Length: 100\r\n\r\n" + b'{"topic": '
    )
    answers = [await raw_exchange(base, request) for base in (pair.fast, pair.slow)]
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 408")
        assert b"x-request-id: slow-1\r\n" in answer
        assert answer.endswith(b'{"detail":"Request body not received within 0.5 seconds"}')
    strip = [re.sub(rb"date: [^\r]*\r\n", b"", a) for a in answers]
    assert strip[0] == strip[1]


async def test_publishes_and_repeats_match_the_starlette_route(pair: Pair) -> None:
    """201, 207 and an Idempotency-Key repeat (with idempotent-replayed) have the same status,
    headers in the same order, and body shape; the repeat's body is the first answer's."""
    _, writer = await make_user(pair.ctx.backend, "writer", ["read", "write"])
    auth = {"Authorization": f"Bearer {writer}"}
    single = {"topic": "t", "payload": {"a": 1}}
    bulk = {"messages": [single, {"topic": "u", "payload": {}}]}
    for path, body in (("/api/v1/messages", single), ("/api/v1/messages/bulk", bulk)):
        fast, slow = await pair.both("POST", path, json=body, headers=auth)
        assert fast.status_code in (201, 207)
        assert shape(fast)[:2] == shape(slow)[:2]
        assert fast.json().keys() == slow.json().keys()
    firsts = []
    for base in (pair.fast, pair.slow):
        async with httpx.AsyncClient(base_url=base, headers=auth) as c:
            key = {"Idempotency-Key": f"k-{base}"}
            first = await c.post("/api/v1/messages", json=single, headers=key)
            again = await c.post("/api/v1/messages", json=single, headers=key)
            assert again.json() == first.json() and again.status_code == 201
            assert again.headers["idempotent-replayed"] == "true"
            firsts.append(again)
    assert shape(firsts[0])[:2] == shape(firsts[1])[:2]


async def test_other_methods_and_paths_fall_through_to_starlette(pair: Pair) -> None:
    """GET on a publish path (405), a trailing slash, and the ops routes answer as Starlette does."""
    for method, path in (
        ("GET", "/api/v1/messages"),
        ("PUT", "/api/v1/messages/bulk"),
        ("POST", "/api/v1/messages/"),
    ):
        fast, slow = await pair.both(method, path, follow_redirects=False)
        assert shape(fast) == shape(slow), (method, path)
    fast, slow = await pair.both("GET", "/health")
    assert fast.status_code == slow.status_code == 200


async def test_request_ids_and_metrics_are_kept(pair: Pair) -> None:
    """A given X-Request-Id is echoed, a missing one is made up (32 hex digits, fresh each time),
    and each publish is counted under its route path and status."""
    _, writer = await make_user(pair.ctx.backend, "writer", ["read", "write"])
    async with httpx.AsyncClient(base_url=pair.fast, headers={"Authorization": f"Bearer {writer}"}) as c:
        given = await c.post(
            "/api/v1/messages", json={"topic": "t", "payload": {}}, headers={"X-Request-Id": "abc"}
        )
        assert given.headers["x-request-id"] == "abc"
        made = [
            (await c.post("/api/v1/messages/bulk", content=b"{")).headers["x-request-id"] for _ in range(2)
        ]
        assert all(re.fullmatch(r"[0-9a-f]{32}", m) for m in made) and made[0] != made[1]
        text = (await c.get("/metrics")).text
    for route, status in (("/api/v1/messages", "201"), ("/api/v1/messages/bulk", "422")):
        assert re.search(
            rf'relay_http_requests_total\{{method="POST",route="{route}",'
            rf'service="ingest",status="{status}"\}} [1-9]',
            text,
        ), (route, status)
    assert 'relay_http_request_duration_seconds_count{route="/api/v1/messages",service="ingest"}' in text
