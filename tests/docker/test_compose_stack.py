"""deploy/compose.yaml in a real Docker engine with `--scale gateway=3`: every path routed through
HAProxy as pulsar_relay.routing says, clients spread over the gateways, a gateway SIGKILLed
mid-stream and a rolling restart of the gateways under load with every follower getting every
message exactly once, and scaling 3 -> 5 -> 2 with HAProxy following."""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets
import shutil
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.deploy.test_routing_table import ROUTES, expected
from tests.docker import engine
from tests.e2e.walkthrough import bearer, login, walkthrough
from tests.reliability.clients import (
    PollFollower,
    Producer,
    WsFollower,
    differences,
    sort_ids,
    stop_all,
    wait_caught_up,
)
from tests.support.valkey import free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
ADMIN = ("admin", secrets.token_urlsafe(12))


def compose_command() -> list[str]:
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    found = shutil.which("docker-compose")
    if found is None:
        pytest.skip("no Compose CLI (docker compose or docker-compose)")
    return [found]


class ComposeStack:
    """One compose project from deploy/compose.yaml (plus tests/docker/compose.test.yaml)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.project = f"relaytest{uuid.uuid4().hex[:8]}"
        self.port = free_port()
        self.env = os.environ | env | {"PULSAR_HTTP_ADDR": "127.0.0.1", "PULSAR_HTTP_PORT": str(self.port)}
        self.command = [
            *compose_command(),
            "-p",
            self.project,
            "-f",
            str(ROOT / "deploy" / "compose.yaml"),
            "-f",
            str(ROOT / "tests" / "docker" / "compose.test.yaml"),
        ]
        self.url = f"http://127.0.0.1:{self.port}"

    def compose(self, *args: str, timeout: float = 300) -> str:
        result = subprocess.run(
            [*self.command, *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        assert result.returncode == 0, f"compose {' '.join(args)}: {result.stdout}{result.stderr}"
        return result.stdout

    def containers(self, service: str) -> list[str]:
        out = engine.docker(
            "ps",
            "-q",
            "--filter",
            f"label=com.docker.compose.project={self.project}",
            "--filter",
            f"label=com.docker.compose.service={service}",
        ).stdout
        return sorted(out.split())

    def scale(self, gateways: int) -> None:
        self.compose("up", "-d", "--no-build", "--no-recreate", "--scale", f"gateway={gateways}")

    def logs(self) -> str:
        try:
            return self.compose("logs", "--no-color", "--tail", "40", timeout=60)[-6000:]
        except AssertionError as exc:
            return str(exc)

    def down(self) -> None:
        subprocess.run(
            [*self.command, "down", "-v", "--remove-orphans", "-t", "5"],
            env=self.env,
            capture_output=True,
            timeout=300,
        )


def gateway_routes(url: str, requests: int) -> set[str]:
    """The gateway servers HAProxy sent ``requests`` consecutive gateway requests to."""
    with httpx.Client(base_url=url, timeout=10) as client:
        return {client.get("/messages/poll/stats").headers.get("X-Relay-Route", "") for _ in range(requests)}


def wait_for_gateways(url: str, count: int, within: float = 90) -> set[str]:
    """Waits until HAProxy spreads over exactly ``count`` gateway servers (DNS + health checks)."""
    deadline = time.monotonic() + within
    routes: set[str] = set()
    while time.monotonic() < deadline:
        try:
            routes = gateway_routes(url, 4 * count + 4)
        except httpx.TransportError:
            routes = set()
        settled = len(routes) == count and all(r.startswith("gateway/") for r in routes)
        # Stable: the same set twice in a row (a removed replica's slot has gone for good).
        if settled and gateway_routes(url, 4 * count + 4) == routes:
            return routes
        time.sleep(1)
    raise AssertionError(f"HAProxy did not settle on {count} gateways within {within}s: {routes}")


@pytest.fixture(scope="module")
def stack(docker_engine: None) -> Iterator[ComposeStack]:
    images = {
        "PULSAR_RELAY_IMAGE": engine.RELAY_IMAGE if engine.image_exists(engine.RELAY_IMAGE) else None,
        "PULSAR_VALKEY_IMAGE": engine.first_image(engine.VALKEY_IMAGES),
        "PULSAR_HAPROXY_IMAGE": engine.first_image(engine.HAPROXY_IMAGES),
    }
    missing = [name for name, image in images.items() if image is None]
    if missing:
        pytest.skip(f"images not built ({', '.join(missing)}): `make test-docker` builds them")
    s = ComposeStack(
        {name: str(image) for name, image in images.items()}
        | {
            "PULSAR_JWT_SECRET_KEY": secrets.token_urlsafe(48),
            "PULSAR_BOOTSTRAP_ADMIN_USERNAME": ADMIN[0],
            "PULSAR_BOOTSTRAP_ADMIN_PASSWORD": ADMIN[1],
            "PULSAR_LOG_LEVEL": "WARNING",
            "PULSAR_LOG_JSON": "false",
            # Under this machine's hard open-file limit (20,000), which dockerd passes on.
            "RELAY_NOFILE": "16384",
            "RELAY_MAXCONN": "8000",
        }
    )
    try:
        s.compose("up", "-d", "--no-build", "--scale", "gateway=3", timeout=600)
        wait_for_gateways(s.url, 3)
        yield s
    finally:
        s.down()


async def admin_token(url: str) -> str:
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        return await login(http, *ADMIN)


async def create_topics(url: str, token: str, topics: list[str]) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=30, headers=bearer(token)) as http:
        for topic in topics:
            r = await http.post("/api/v1/topics", json={"topic_name": topic, "is_public": False})
            assert r.status_code == 201, r.text


def test_every_path_is_routed_as_the_routing_table_says(stack: ComposeStack) -> None:
    """Through compose's HAProxy each route reaches the service pulsar_relay.routing names."""
    wrong = []
    with httpx.Client(base_url=stack.url, timeout=10) as client:
        for method, target in ROUTES:
            route = str(client.request(method, target).headers.get("X-Relay-Route", ""))
            if route.split("/", 1)[0] != expected(method, target):
                wrong.append(f"{method} {target} -> {route or 'no backend'}")
    assert not wrong, wrong


async def test_walkthrough_with_websockets_spread_over_three_gateways(stack: ComposeStack) -> None:
    """The README walkthrough passes through HAProxy; its WebSockets land on different gateways."""

    async def spread(sockets: list[ClientConnection]) -> None:
        routes = [ws.response.headers["X-Relay-Route"] for ws in sockets if ws.response is not None]
        assert all(r.startswith("gateway/") for r in routes), routes
        assert len(set(routes)) == len(sockets), f"WebSockets share a gateway: {routes}"

    await walkthrough(stack.url, ADMIN, spread=spread)
    # Six more sockets at once: leastconn puts two on each of the three gateways.
    token = await admin_token(stack.url)
    ws_url = stack.url.replace("http://", "ws://") + f"/ws?token={token}"
    sockets = [await connect(ws_url).__aenter__() for _ in range(6)]
    try:
        routes = [ws.response.headers["X-Relay-Route"] for ws in sockets if ws.response is not None]
        counts = sorted(routes.count(r) for r in set(routes))
        assert counts == [2, 2, 2], routes
    finally:
        for ws in sockets:
            await ws.close()


Chaos = Callable[[Callable[[], int]], Awaitable[None]]


async def run_under_load(
    stack: ComposeStack, topics: list[str], chaos: Chaos, at_least: int
) -> list[WsFollower | PollFollower]:
    """Followers (WebSocket with since, WebSocket with client_id + resume, long-poll) through
    HAProxy while two producers publish and ``chaos`` acts on the gateways; then every follower
    has exactly the acknowledged ids of every topic, in order, once each."""
    token = await admin_token(stack.url)
    await create_topics(stack.url, token, topics)
    urls = [stack.url]
    followers: list[WsFollower | PollFollower] = [
        *(WsFollower(f"ws-{n}", urls, token, topics) for n in range(4)),
        PollFollower("poll-a", urls, token, topics),
        PollFollower("poll-b", urls, token, topics),
    ]
    resumer = WsFollower("ws-resume", urls, token, topics, client_id=f"resumer-{uuid.uuid4().hex[:6]}")
    stop = asyncio.Event()
    readers = [asyncio.create_task(f.run(stop)) for f in [*followers, resumer]]
    producers = [Producer(stack.url, token), Producer(stack.url, token)]
    done = asyncio.Event()
    counter = itertools.count()

    def total() -> int:
        return sum(p.total for p in producers)

    async def produce(p: Producer) -> None:
        while not (done.is_set() and total() >= at_least):
            batch = [(topics[n % len(topics)], {"n": n}) for n in itertools.islice(counter, 10)]
            await p.bulk(batch)
            await asyncio.sleep(0.01)

    async def act() -> None:
        try:
            await chaos(total)
        finally:
            done.set()

    try:
        await asyncio.gather(act(), *(produce(p) for p in producers))
        acked = {t: sort_ids([m for p in producers for m in p.acked.get(t, [])]) for t in topics}
        await wait_caught_up([*followers, resumer], {t: ids[-1] for t, ids in acked.items()})
    finally:
        await stop_all(stop, readers)
        for p in producers:
            await p.aclose()
    problems = [d for f in followers for d in differences(f, acked)]
    assert not problems, "\n".join(problems) + "\n" + stack.logs()
    deduped = {t: list(dict.fromkeys(v)) for t, v in resumer.received.items()}
    assert deduped == acked, differences(resumer, acked)
    assert not resumer.problems, resumer.problems
    assert sum(map(len, acked.values())) >= at_least
    return [*followers, resumer]


async def until(condition: Callable[[], bool], within: float = 120) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        await asyncio.sleep(0.05)


async def test_gateway_sigkilled_mid_stream_loses_and_duplicates_nothing(stack: ComposeStack) -> None:
    """One of three gateways gets SIGKILL while messages flow: every follower reconnects through
    HAProxy and ends with every acknowledged message exactly once."""
    topics = [f"kill-{uuid.uuid4().hex[:6]}-{n}" for n in range(3)]

    async def chaos(total: Callable[[], int]) -> None:
        await until(lambda: total() >= 300)
        victim = stack.containers("gateway")[0]
        await asyncio.to_thread(engine.docker, "kill", "-s", "KILL", victim)
        mark = total()
        await until(lambda: total() >= mark + 600)

    followers = await run_under_load(stack, topics, chaos, at_least=1500)
    assert any(f.reconnects > 0 for f in followers), "no follower was on the killed gateway"
    # The killed replica is back (restart: unless-stopped) or replaced: three gateways serve again.
    stack.scale(3)
    await asyncio.to_thread(wait_for_gateways, stack.url, 3)


async def test_rolling_restart_of_the_gateways_under_load(stack: ComposeStack) -> None:
    """docker restart of each gateway in turn (SIGTERM, then start, waiting for health) while
    messages flow: nothing lost, nothing repeated."""
    topics = [f"roll-{uuid.uuid4().hex[:6]}-{n}" for n in range(3)]

    async def chaos(total: Callable[[], int]) -> None:
        await until(lambda: total() >= 200)
        for gateway in stack.containers("gateway"):
            await asyncio.to_thread(engine.docker, "restart", "-t", "10", gateway)
            await asyncio.to_thread(engine.wait_healthy, gateway, 60)
            await until(lambda mark=total(): total() >= mark + 200)

    followers = await run_under_load(stack, topics, chaos, at_least=1000)
    sockets = [f for f in followers if isinstance(f, WsFollower)]
    assert all(f.reconnects > 0 for f in sockets), "every WebSocket lived through its gateway's restart"


def test_scaling_three_to_five_to_two_is_followed_by_haproxy(stack: ComposeStack) -> None:
    """--scale gateway=5 adds two servers to HAProxy's rotation; --scale gateway=2 leaves two."""
    stack.scale(5)
    assert len(stack.containers("gateway")) == 5
    wait_for_gateways(stack.url, 5)
    stack.scale(2)
    assert len(stack.containers("gateway")) == 2
    routes = wait_for_gateways(stack.url, 2)
    with httpx.Client(base_url=stack.url, timeout=10) as client:
        answers = [client.get("/messages/poll/stats") for _ in range(10)]
    assert all(a.status_code in (200, 401) for a in answers), [a.status_code for a in answers]
    assert {a.headers["X-Relay-Route"] for a in answers} <= routes
