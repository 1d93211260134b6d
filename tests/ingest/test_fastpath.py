"""The publish endpoints are served by bare ASGI handlers in front of Starlette (and only there: the
app has no Starlette routes for them): their answers (status, headers in order, body) are those of
the same endpoints served as Starlette routes through ``RelayMiddleware`` and the exception
handlers, including 401/403/405/413/408/422/503/500 and idempotent repeats, because both paths run
``relaycore.http_pipeline``; every other request falls through to Starlette; metrics and request ids
are kept."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import ingest.app
from ingest.endpoints import PublishEndpoint
from ingest.routes import publish_endpoints
from relaycore import errors
from relaycore.bare_routes import ASGIApp, BareRoutes
from relaycore.context import Context
from relaycore.http_pipeline import Receive, Reply, Scope, Send, bearer_token
from relaycore.web import service_app
from tests.conftest import make_settings
from tests.support.identity import make_user
from tests.support.serve import running

VOLATILE = {b"date", b"server", b"x-request-id", b"location"}  # location names the port


def _as_route(path: str, endpoint: PublishEndpoint) -> Route:
    """A publish endpoint as an ordinary Starlette route (the test's seam: the product has none)."""

    async def handle(request: Request) -> Response:
        status, out, repeat = await endpoint(
            await request.body(),
            bearer_token(dict(request.scope["headers"])),
            request.headers.get("idempotency-key"),
        )
        replayed = {"idempotent-replayed": "true"} if repeat else None
        return Response(out, status, replayed, media_type="application/json")

    return Route(path, handle, methods=["POST"])


def without_lifespan(app: ASGIApp) -> ASGIApp:
    """``app`` with its lifespan left to the server running the ingest app (they share a context)."""

    async def serve(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        await app(scope, receive, send)

    return serve


def through_starlette(ctx: Context) -> ASGIApp:
    """The publish endpoints as Starlette routes behind RelayMiddleware: the non-hot path."""
    routes = [_as_route(path, e) for path, e in publish_endpoints(ctx).items()]
    return without_lifespan(service_app("ingest", ctx.settings, ctx, routes))


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
        assert isinstance(app.middleware_stack, BareRoutes)
        slow = await stack.enter_async_context(running(through_starlette(ctx)))
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


async def test_other_methods_and_paths_answer_as_starlette(pair: Pair) -> None:
    """GET or PUT on a publish path (405 with Allow) and the ops routes answer as Starlette's router
    does; a trailing slash falls through to Starlette, which has no publish route to redirect to."""
    for method, path in (("GET", "/api/v1/messages"), ("PUT", "/api/v1/messages/bulk")):
        fast, slow = await pair.both(method, path, follow_redirects=False)
        assert fast.status_code == 405 and fast.headers["allow"] == "POST"
        assert shape(fast) == shape(slow), (method, path)
    async with httpx.AsyncClient(base_url=pair.fast) as c:
        r = await c.post("/api/v1/messages/", json={}, follow_redirects=False)
        assert (r.status_code, r.json()) == (404, {"detail": "Not Found"})
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


RAISED: dict[str, Exception] = {
    "unauthenticated": errors.Unauthenticated("Token expired"),
    "rate-limited": errors.RateLimited("Too many attempts", 7),
    "invalid": errors.InvalidInput.single(["body", "topic"], "Topic is not valid", "a b"),
    "unavailable": errors.Unavailable("Storage is unavailable, retry later"),
    "valkey-down": RedisConnectionError("connection refused"),
    "bug": RuntimeError("a bug"),
}


async def test_a_hot_and_a_framework_route_share_request_ids_limits_and_error_bodies(valkey_url: str) -> None:
    """One app, one bare route and one Starlette route raising the same errors: the same status,
    headers in order and body (401, 422, 429, 503 twice; 500's body), the same early 413, the same echoed
    request id: both come from relaycore.http_pipeline."""
    settings = make_settings(valkey_url, max_body_bytes=1000, read_timeout=0.5)

    async def bare_raise(body: bytes, headers: dict[bytes, bytes]) -> Reply:  # type: ignore[return]
        raise RAISED[headers[b"x-raise"].decode()]

    async def starlette_raise(request: Request) -> Response:
        await request.body()
        raise RAISED[request.headers["x-raise"]]

    app = service_app("ingest", settings, None, [Route("/framework", starlette_raise, methods=["POST"])])
    ingest.app.serve_in_front(app, {("POST", "/hot"): bare_raise}, service="ingest")
    async with running(app) as base, httpx.AsyncClient(base_url=base) as c:
        for name in RAISED:
            answers = [
                await c.post(path, content=b"{}", headers={"x-raise": name, "x-request-id": f"id-{name}"})
                for path in ("/hot", "/framework")
            ]
            assert answers[0].status_code >= 400 and answers[0].headers["x-request-id"] == f"id-{name}"
            if name == "bug":  # Starlette answers a crash outside its middleware: no request id there
                assert (answers[0].status_code, answers[0].content) == (500, answers[1].content)
                continue
            assert shape(answers[0]) == shape(answers[1]), name
        big_answers = [await c.post(path, content=b"x" * 2000) for path in ("/hot", "/framework")]
        assert big_answers[0].status_code == 413
        assert shape(big_answers[0]) == shape(big_answers[1])
