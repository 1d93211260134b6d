"""The long-poll transport: ``POST /messages/poll`` (reference section 4, CONTRACT decision 7) and
``GET /messages/poll/stats`` (the whole deployment, from every gateway's heartbeat)."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from gateway.node import Node
from gateway.poll import poll
from relaycore import bare_routes, http_pipeline, ids, jsonbody, names
from relaycore.errors import InvalidInput
from relaycore.ids import StreamId
from relaycore.web import JSON, current_user

MIN_TIMEOUT = 1.0
MAX_TIMEOUT = 60.0


class PollRequest(msgspec.Struct, kw_only=True):
    topics: list[str]
    since: dict[str, str] | None = None
    timeout: float = 30.0  # int or float seconds; clamped, not refused


_decoder = msgspec.json.Decoder(PollRequest)
_encoder = msgspec.json.Encoder()


def _node(request: Request) -> Node:
    node: Node = request.app.state.gateway
    return node


def _validate(req: PollRequest, max_topics: int) -> tuple[list[str], dict[str, StreamId]]:
    if not req.topics:
        raise InvalidInput.single(["body", "topics"], "List should have at least 1 item", [], "too_short")
    if len(req.topics) > max_topics:
        raise InvalidInput.single(
            ["body", "topics"], f"List should have at most {max_topics} items", None, "too_long"
        )
    for i, t in enumerate(req.topics):
        if problem := names.topic_problem(t):
            raise InvalidInput.single(["body", "topics", i], problem, t)
    topics = list(dict.fromkeys(req.topics))
    given = req.since or {}
    return topics, {t: ids.require(given[t], ["body", "since", t]) for t in topics if t in given}


class PollEndpoint:
    """``POST /messages/poll``, transport-neutral: raw body and bearer token in, the answer's JSON
    out; failures are raised as ``RelayError``s.  The gateway serves it in front of Starlette
    (``relaycore.bare_routes``), as ingest serves publishes: a poll is answered as often as a
    message is delivered to it."""

    def __init__(self, node: Node) -> None:
        self._node = node

    async def __call__(self, body: bytes, token: str | None) -> bytes:
        node = self._node
        compact = jsonbody.compact(body)  # not-JSON fails before authentication
        user = await node.authorizer.authenticate(token)
        node.authorizer.require(user, "read")
        req = jsonbody.decode(compact, _decoder)
        topics, since = _validate(req, node.settings.poll_max_topics)
        timeout = min(MAX_TIMEOUT, max(MIN_TIMEOUT, req.timeout))
        sign_in = node.authorizer.claims(token or "").sid  # verified (and cached) above
        # Any non-empty since asks for catch-up, even one naming none of the topics (reference).
        answer = await poll(node, user, topics, since, timeout, catch_up=bool(req.since), sign_in=sign_in)
        return _encoder.encode(answer)

    def bare(self) -> bare_routes.Handler:
        async def handle(body: bytes, headers: Mapping[bytes, bytes]) -> http_pipeline.Reply:
            return 200, await self(body, http_pipeline.bearer_token(headers)), []

        return handle


async def stats_endpoint(request: Request) -> Response:
    return JSON(await _node(request).deployment_stats(await current_user(request)))
