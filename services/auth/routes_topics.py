"""``/api/v1/topics*`` except the message history (the gateway serves that): topics and read
grants (reference §2, §3.2, §6; CONTRACT decisions 1-3)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from auth.routes_http import caller, decode, json_body, service
from auth.schemas import TopicCreate, TopicPermissionGrant, TopicUpdate
from auth.topics import public, viewed_by
from relaycore.web import JSON


async def create_topic(request: Request) -> Response:
    body = await json_body(request)
    user = await caller(request, "write")
    data = decode(body, TopicCreate)
    topic = await service(request).topics.create(user, data)
    return JSON(public(topic, show_grants=True), 201)


async def list_topics(request: Request) -> Response:
    user = await caller(request)
    topics = await service(request).topics.visible(user)
    return JSON([viewed_by(t, user) for t in topics])


async def topic_stats(request: Request) -> Response:
    await caller(request, "admin")
    return JSON(await service(request).topics.stats())


async def get_topic(request: Request) -> Response:
    user = await caller(request)
    topic = await service(request).topics.readable(user, request.path_params["name"])
    return JSON(viewed_by(topic, user))


async def update_topic(request: Request) -> Response:
    body = await json_body(request)
    user = await caller(request)
    data = decode(body, TopicUpdate)
    topic = await service(request).topics.update(user, request.path_params["name"], data)
    return JSON(public(topic, show_grants=True))


async def delete_topic(request: Request) -> Response:
    user = await caller(request)
    await service(request).topics.delete(user, request.path_params["name"])
    return Response(status_code=204)


async def grant(request: Request) -> Response:
    body = await json_body(request)
    user = await caller(request)
    data = decode(body, TopicPermissionGrant)
    permission = await service(request).topics.grant(user, request.path_params["name"], data)
    return JSON(permission, 201)


async def list_grants(request: Request) -> Response:
    user = await caller(request)
    return JSON(await service(request).topics.grants(user, request.path_params["name"]))


async def revoke(request: Request) -> Response:
    user = await caller(request)
    p = request.path_params
    await service(request).topics.revoke(user, p["name"], p["user_id"])
    return Response(status_code=204)


routes = [
    Route("/api/v1/topics", create_topic, methods=["POST"]),
    Route("/api/v1/topics", list_topics, methods=["GET"]),
    # Before "/{name}", so a topic named "stats" cannot shadow it (the seed's bug).
    Route("/api/v1/topics/stats", topic_stats, methods=["GET"]),
    Route("/api/v1/topics/{name}", get_topic, methods=["GET"]),
    Route("/api/v1/topics/{name}", update_topic, methods=["PUT"]),
    Route("/api/v1/topics/{name}", delete_topic, methods=["DELETE"]),
    Route("/api/v1/topics/{name}/permissions", grant, methods=["POST"]),
    Route("/api/v1/topics/{name}/permissions", list_grants, methods=["GET"]),
    Route("/api/v1/topics/{name}/permissions/{user_id}", revoke, methods=["DELETE"]),
]
