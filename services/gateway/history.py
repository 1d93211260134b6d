"""``GET /api/v1/topics/{name}/messages``: one page of a topic's history (reference section 3.4),
cache first when the cache provably holds the page.  ``next_cursor`` is null once nothing more
exists in that direction (one extra message is read to know).  A page also stops at
``answer_max_bytes`` (``next_cursor`` then continues after it), and at most ``answers_at_once``
pages and poll catch-ups are read and built at once per gateway."""

from __future__ import annotations

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from gateway.node import Node
from relaycore import ids
from relaycore.errors import BadRequest, Forbidden, InvalidInput, NotFound
from relaycore.models import MessageOut, to_out
from relaycore.web import JSON, current_user

DEFAULT_LIMIT = 10
MAX_LIMIT = 100


class Page(msgspec.Struct, kw_only=True, omit_defaults=False):
    messages: list[MessageOut]
    total: int
    limit: int
    order: str
    cursor: str | None
    next_cursor: str | None


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    try:
        return int(raw)
    except ValueError:
        raise InvalidInput.single(
            ["query", "limit"],
            "Input should be a valid integer, unable to parse string as an integer",
            raw,
            "int_parsing",
        ) from None


async def history_endpoint(request: Request) -> Response:
    user = await current_user(request)
    node: Node = request.app.state.gateway
    name = request.path_params["name"]
    limit = _limit(request.query_params.get("limit"))
    order = request.query_params.get("order", "desc")
    cursor = request.query_params.get("cursor")
    position = None if cursor is None else ids.require(cursor, ["query", "cursor"])
    access = await node.authorizer.read_access(user, [name], messages=True)
    if access.missing:
        raise NotFound(f"Topic '{name}' not found")
    if access.forbidden:
        raise Forbidden(f"Access denied to topic '{name}'")
    if order not in ("asc", "desc"):
        raise BadRequest("Order must be 'asc' or 'desc'")
    if limit < 1:
        raise BadRequest("Limit must be at least 1")
    limit = min(limit, MAX_LIMIT)
    async with node.answering():
        found, cut = await node.replay.page(
            name, position, limit + 1, ascending=order == "asc", budget=node.settings.answer_max_bytes
        )
        page = found[:limit]
        more = cut or len(found) > limit
        return JSON(
            Page(
                messages=[to_out(m) for m in page],
                total=len(page),
                limit=limit,
                order=order,
                cursor=cursor,
                next_cursor=page[-1].message_id if more and page else None,
            )
        )
