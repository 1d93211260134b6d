"""deploy/haproxy.cfg routes every path exactly as pulsar_relay.routing.service_for does: real
requests through HAProxy in front of the native split stack, where each answer carries the
backend that served it (X-Relay-Route, switched on by RELAY_ROUTE_HEADER in the native stack)."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import unquote

import httpx
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pulsar_relay.routing import service_for
from pulsar_relay.stack import Stack
from tests.e2e.launch import split_stack

# CONTRACT.md "One origin, three services", every route of the seed README and the reference, and
# the near misses around each rule (trailing slashes, other methods, look-alike prefixes, encoding).
ROUTES = [
    ("POST", "/auth/login"),
    ("POST", "/auth/register"),
    ("GET", "/auth/me"),
    ("GET", "/auth/users"),
    ("GET", "/auth/users/stats"),
    ("PATCH", "/auth/users/u1"),
    ("DELETE", "/auth/users/u1"),
    ("GET", "/auth/jwks.json"),
    ("POST", "/api/v1/topics"),
    ("GET", "/api/v1/topics"),
    ("GET", "/api/v1/topics/stats"),
    ("GET", "/api/v1/topics/t1"),
    ("PUT", "/api/v1/topics/t1"),
    ("DELETE", "/api/v1/topics/t1"),
    ("POST", "/api/v1/topics/t1/permissions"),
    ("GET", "/api/v1/topics/t1/permissions"),
    ("DELETE", "/api/v1/topics/t1/permissions/u1"),
    ("GET", "/api/v1/topics/t1/messages"),
    ("HEAD", "/api/v1/topics/t1/messages"),
    ("GET", "/api/v1/topics/t1/messages/"),
    ("GET", "/api/v1/topics/t1/messages?limit=1&order=desc&cursor=1-0"),
    ("GET", "/api/v1/topics/stats/messages"),
    ("POST", "/api/v1/topics/t1/messages"),
    ("DELETE", "/api/v1/topics/t1/messages"),
    ("GET", "/api/v1/topics/t1/messages/extra"),
    ("GET", "/api/v1/topics//messages"),
    ("GET", "/api/v1/topics/a%2Fb/messages"),
    ("GET", "/api/v1/topics/caf%C3%A9/messages"),
    ("GET", "/api/v1/topics/t%31/messages"),
    ("POST", "/api/v1/messages"),
    ("POST", "/api/v1/messages/bulk"),
    ("GET", "/api/v1/messages"),
    ("POST", "/api/v1/messages/"),
    ("POST", "/api/v1/messages/bulk/"),
    ("POST", "/api/v1/messages/other"),
    ("POST", "/api/v1/message%73"),
    ("GET", "/ws"),
    ("GET", "/ws?token=abc"),
    ("GET", "/ws/"),
    ("GET", "/WS"),
    ("POST", "/messages/poll"),
    ("GET", "/messages/poll/stats"),
    ("GET", "/messages/poll/"),
    ("GET", "/messages/pollx"),
    ("GET", "/messages"),
    ("GET", "/health"),
    ("GET", "/ready"),
    ("GET", "/metrics"),
    ("GET", "/"),
    ("GET", "/docs"),
]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with split_stack(tmp_path_factory.mktemp("routing"), gateways=2) as s:
        yield s


@pytest.fixture(scope="module")
def client(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url, timeout=10) as c:
        yield c


def routed_to(client: httpx.Client, method: str, target: str) -> str:
    response = client.request(method, target)
    route = str(response.headers.get("X-Relay-Route", ""))
    assert "/" in route, (
        f"{method} {target}: no backend answered ({response.status_code} {response.text[:200]})"
    )
    return route.split("/", 1)[0]


def expected(method: str, target: str) -> str:
    # The services route on the decoded path, without the query (ASGI scope["path"]).
    return service_for(method, unquote(target.split("?", 1)[0]))


@pytest.mark.parametrize(("method", "target"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_route_matches_routing_table(client: httpx.Client, method: str, target: str) -> None:
    """HAProxy sends this request to the service that routing.service_for names."""
    assert routed_to(client, method, target) == expected(method, target)


SEGMENTS = [
    "api",
    "v1",
    "topics",
    "messages",
    "bulk",
    "permissions",
    "auth",
    "ws",
    "poll",
    "stats",
    "t",
    "",
    "%2F",
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    method=st.sampled_from(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]),
    segments=st.lists(st.sampled_from(SEGMENTS), max_size=6),
)
def test_generated_paths_match_routing_table(client: httpx.Client, method: str, segments: list[str]) -> None:
    """For paths built from the routing table's own words, HAProxy and service_for agree."""
    target = "/" + "/".join(segments)
    assume(not target.startswith("//"))  # an HTTP client reads "//x" as a host, not a path
    assert routed_to(client, method, target) == expected(method, target)


def test_gateway_clients_are_spread(client: httpx.Client) -> None:
    """Requests for gateway paths are spread over both gateways (no stickiness)."""
    servers = {client.get("/messages/poll/stats").headers["X-Relay-Route"] for _ in range(6)}
    assert servers == {"gateway/gw1", "gateway/gw2"}
