"""How the settings select cluster mode: seeds or a valkey+cluster:// URL, credentials and TLS,
and the errors that name a bad value.  No server is needed."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis.asyncio.cluster import RedisCluster

from relaycore.config import ConfigError, load
from relaycore.valkey import cluster_target, connect

ENV = {"PULSAR_JWT_SECRET_KEY": "DAkWdyBHkPHOwO_db_CVUhvXkcHlKxkaexcnfdZU"}


@pytest.fixture(autouse=True)
def empty_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No stray config.yaml is picked up."""
    monkeypatch.chdir(tmp_path)


def test_single_server_by_default() -> None:
    """Without a cluster setting the relay talks to one server."""
    assert cluster_target(load(ENV)) is None
    assert cluster_target(load(ENV | {"PULSAR_VALKEY_URL": "redis://h:1/0"})) is None


def test_seed_list_with_password_and_tls() -> None:
    """PULSAR_VALKEY_CLUSTER_NODES names the seeds; the password and TLS settings apply to them."""
    s = load(
        ENV
        | {
            "PULSAR_VALKEY_CLUSTER_NODES": "10.0.0.1:7000, 10.0.0.2:7001,node3",
            "PULSAR_VALKEY_PASSWORD": "pw",
            "PULSAR_VALKEY_USE_TLS": "true",
        }
    )
    t = cluster_target(s)
    assert t is not None
    assert t.seeds == [("10.0.0.1", 7000), ("10.0.0.2", 7001), ("node3", 6379)]
    assert (t.username, t.password, t.tls) == (None, "pw", True)


@pytest.mark.parametrize(
    ("url", "user", "password", "tls"),
    [
        ("valkey+cluster://a:1,b:2", None, None, False),
        ("valkey+cluster://:s%40cret@a:1,b:2/0", None, "s@cret", False),
        ("valkeys+cluster://relay:pw@a:1,b:2", "relay", "pw", True),
        ("rediss+cluster://a:1,b:2?ssl_cert_reqs=required", None, None, True),
    ],
)
def test_cluster_url(url: str, user: str | None, password: str | None, tls: bool) -> None:
    """A valkey+cluster:// URL lists the seeds and carries credentials; the 's' form means TLS."""
    t = cluster_target(load(ENV | {"PULSAR_VALKEY_URL": url}))
    assert t is not None
    assert t.seeds == [("a", 1), ("b", 2)]
    assert (t.username, t.password, t.tls) == (user, password, tls)


async def test_cluster_settings_build_the_cluster_client() -> None:
    """Cluster mode builds redis-py's RedisCluster (no I/O until first use)."""
    client = connect(load(ENV | {"PULSAR_VALKEY_URL": "valkey+cluster://127.0.0.1:1"}))
    try:
        assert isinstance(client, RedisCluster)
    finally:
        await client.aclose()


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"PULSAR_VALKEY_CLUSTER_NODES": "host:notaport"}, "PULSAR_VALKEY_CLUSTER_NODES"),
        ({"PULSAR_VALKEY_URL": "valkey+cluster://"}, "PULSAR_VALKEY_URL"),
        ({"PULSAR_VALKEY_URL": "mongo+cluster://a:1"}, "PULSAR_VALKEY_URL"),
        ({"PULSAR_VALKEY_CLUSTER_NODES": "a:1", "PULSAR_VALKEY_URL": "redis://b:2/0"}, "both set"),
        ({"PULSAR_VALKEY_CLUSTER_NODES": "a:1", "PULSAR_VALKEY_DB": "3"}, "PULSAR_VALKEY_DB"),
        ({"PULSAR_PUBLISH_WAIT_REPLICAS": "-1"}, "PULSAR_PUBLISH_WAIT_REPLICAS"),
        (
            {"PULSAR_PUBLISH_WAIT_REPLICAS": "1", "PULSAR_PUBLISH_WAIT_TIMEOUT": "0"},
            "PULSAR_PUBLISH_WAIT_TIMEOUT",
        ),
    ],
)
def test_bad_cluster_settings_stop_start_up(env: dict[str, str], names: str) -> None:
    """A malformed seed list, URL or combination stops start-up with an error naming it."""
    with pytest.raises(ConfigError, match=names):
        load(ENV | env)
