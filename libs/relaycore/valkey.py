"""The one place a Valkey client is built from the settings.  Driver errors become ``Unavailable``.

A single server gets redis-py's asyncio ``Redis``; a Valkey Cluster (``PULSAR_VALKEY_CLUSTER_NODES``
or a ``valkey+cluster://host:port[,host:port]`` URL) gets its ``RedisCluster``, which routes each
command to the node serving its key's hash slot and follows ``MOVED``/``ASK`` redirects.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import unquote

import redis.asyncio as aredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import (
    AskError,
    ClusterError,
    MovedError,
    RedisClusterException,
    RedisError,
    ResponseError,
    SlotNotCoveredError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from relaycore.config import CLUSTER_SCHEMES, Settings, parse_seeds, split_cluster_url
from relaycore.errors import Unavailable

Client = aredis.Redis | RedisCluster


class ClusterTarget:
    """Where a cluster is and how to log in: seeds, credentials, TLS."""

    def __init__(
        self, seeds: list[tuple[str, int]], *, username: str | None, password: str | None, tls: bool
    ) -> None:
        self.seeds = seeds
        self.username = username
        self.password = password
        self.tls = tls


def cluster_target(settings: Settings) -> ClusterTarget | None:
    """The cluster the settings name, or None for a single server."""
    url = split_cluster_url(settings.valkey_url)
    if url is not None:
        scheme, userinfo, hosts = url
        user, colon, pw = userinfo.partition(":")
        username, password = (unquote(user) or None, unquote(pw)) if colon else (None, unquote(user))
        return ClusterTarget(
            parse_seeds(hosts), username=username, password=password or None, tls=CLUSTER_SCHEMES[scheme]
        )
    if settings.valkey_cluster_nodes:
        return ClusterTarget(
            parse_seeds(settings.valkey_cluster_nodes),
            username=None,
            password=settings.valkey_password or None,
            tls=settings.valkey_use_tls,
        )
    return None


def is_cluster(settings: Settings) -> bool:
    return cluster_target(settings) is not None


def url_of(settings: Settings) -> str:
    """``PULSAR_VALKEY_URL`` if set, else one built from the seed's host/port/password/TLS settings."""
    if settings.valkey_url:
        return settings.valkey_url
    scheme = "rediss" if settings.valkey_use_tls else "redis"
    return f"{scheme}://{settings.valkey_host}:{settings.valkey_port}/{settings.valkey_db}"


def _common(settings: Settings) -> dict[str, Any]:
    return {
        # Every reply is awaited this long at most, so a stalled server fails fast (503) instead
        # of holding every request for the whole stall; blocking reads (XREADGROUP BLOCK,
        # WAIT) block for less (config checks it).  A command that timed out is not retried.
        "socket_timeout": settings.valkey_command_timeout,
        "socket_connect_timeout": settings.valkey_timeout,
        "health_check_interval": 15,
        # A lost connection is retried; a timeout is not (the default Retry retries both, which
        # made every stalled command wait three timeouts).
        "retry": Retry(
            ExponentialBackoff(cap=1.0, base=0.05), retries=2, supported_errors=(RedisConnectionError,)
        ),
        "retry_on_error": [RedisConnectionError],
    }


def connect(settings: Settings, *, max_connections: int | None = None) -> Client:
    """An asyncio client with a bounded pool; no I/O happens until first use."""
    target = cluster_target(settings)
    if target is not None:
        return _connect_cluster(settings, target, max_connections)
    kwargs: dict[str, Any] = {
        "max_connections": max_connections or settings.valkey_pool_size,
        **_common(settings),
    }
    if settings.valkey_password and not settings.valkey_url:
        kwargs["password"] = settings.valkey_password
    url = url_of(settings)
    if url.startswith("rediss://") and settings.valkey_tls_ca_file:
        kwargs["ssl_ca_certs"] = settings.valkey_tls_ca_file
        kwargs["ssl_cert_reqs"] = ssl.CERT_REQUIRED
    # A burst of requests (500 long-pollers catching up at once) waits for a free connection for
    # up to valkey_timeout instead of failing with 503 the moment the pool is exhausted.
    pool = aredis.BlockingConnectionPool.from_url(url, timeout=settings.valkey_timeout, **kwargs)
    return aredis.Redis.from_pool(pool)  # the client owns (and closes) its pool


def _connect_cluster(settings: Settings, target: ClusterTarget, max_connections: int | None) -> RedisCluster:
    kwargs: dict[str, Any] = {
        "startup_nodes": [ClusterNode(host, port) for host, port in target.seeds],
        # Per node, plus one held by each partition's blocking reader (a gateway reads every
        # partition on its own connection; up to all of them may live on one node).
        "max_connections": (max_connections or settings.valkey_pool_size) + settings.fanout_partitions,
        # Partitions on healthy nodes stay usable while one node's slots fail over.
        "require_full_coverage": False,
        "username": target.username,
        "password": target.password,
        **_common(settings),
    }
    if target.tls:
        kwargs["ssl"] = True
        if settings.valkey_tls_ca_file:
            kwargs["ssl_ca_certs"] = settings.valkey_tls_ca_file
            kwargs["ssl_cert_reqs"] = "required"
    return RedisCluster(**kwargs)


Command = tuple[str | bytes | int, ...]
_REDIRECTS = 5


async def send_pinned(client: Client, key: str, *commands: Command) -> list[Any]:
    """Send ``commands`` pipelined on one connection to the server holding ``key``, exactly once,
    and return their raw replies (an error reply is returned as its exception, not raised).

    The client's own retry would re-send a command whose reply was lost; for ``XREADGROUP >`` that
    strands the entries handed to the lost reply, and ``WAIT`` only counts the writes of its own
    connection.  Here a lost connection raises (the caller decides), and only redirections
    (``MOVED``/``ASK``: the command did not run there) are followed."""
    if isinstance(client, RedisCluster):
        return await _send_pinned_cluster(client, key, commands)
    pool: Any = client.connection_pool  # get_connection is untyped in redis-py
    conn = await pool.get_connection()
    try:
        return await exchange(conn, conn.pack_commands(commands), len(commands))
    finally:
        await pool.release(conn)


def resp(parts: list[bytes]) -> bytes:
    """One command in RESP, packed at C speed (redis-py packs each argument in Python)."""
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        out += (b"$%d\r\n" % len(part), part, b"\r\n")
    return b"".join(out)


async def send_packed(client: aredis.Redis, packed: bytes, count: int) -> list[Any]:
    """``count`` commands packed by ``resp``, written at once on one connection of a single-node
    client's pool; their replies, errors as values.  Sent once: a lost reply is not retried."""
    pool: Any = client.connection_pool  # get_connection is untyped in redis-py
    conn = await pool.get_connection()
    try:
        return await exchange(conn, packed, count)
    finally:
        await pool.release(conn)


async def exchange(conn: Any, packed: bytes | list[bytes], count: int) -> list[Any]:
    """Write ``count`` packed commands at once on ``conn`` and read their replies, errors as
    values; the connection is dropped if anything else goes wrong (a reply may be in flight)."""
    try:
        await conn.send_packed_command(packed)
        replies: list[Any] = []
        for _ in range(count):
            try:
                replies.append(await conn.read_response())
            except ResponseError as exc:
                replies.append(exc)
        return replies
    except BaseException:
        await conn.disconnect(nowait=True)  # a reply may still be on its way
        raise


async def _send_pinned_cluster(rc: RedisCluster, key: str, commands: tuple[Command, ...]) -> list[Any]:
    await rc.initialize()  # no-op once the slot map is known
    node = _node_for(rc, key)
    asking = False
    for _ in range(_REDIRECTS):
        if node is None:
            raise SlotNotCoveredError(f"no node serves the slot of {key!r}")
        conn = node.acquire_connection()
        try:
            sent = (("ASKING",), *commands) if asking else commands
            replies = await exchange(conn, conn.pack_commands(sent), len(sent))
        finally:
            node.release(conn)
        if asking:
            replies = replies[1:]
        first = replies[0]
        if isinstance(first, MovedError):
            await rc.nodes_manager.move_slot(first)
            node, asking = _node_for(rc, key), False
        elif isinstance(first, AskError):
            node, asking = rc.get_node(host=first.host, port=first.port), True
        else:
            return replies
    raise ClusterError(f"TTL exhausted: too many redirections for {key!r}")


def _node_for(rc: RedisCluster, key: str) -> Any:
    try:
        return rc.get_node_from_key(key)
    except KeyError:  # redis-py's slot map lacks the slot (not covered right now)
        raise SlotNotCoveredError(f"no node serves the slot of {key!r}") from None


# Raised while a cluster heals (failover, resharding, a node unreachable): retry later.
_TRANSIENT_CLUSTER = ("CLUSTERDOWN", "TRYAGAIN", "MASTERDOWN", "cannot be connected", "TTL exhausted")


@contextlib.asynccontextmanager
async def guarded() -> AsyncIterator[None]:
    """Turn connection-level driver failures into ``Unavailable`` (HTTP 503)."""
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
        raise Unavailable("Storage is unavailable, retry later") from exc
    except (ClusterError, SlotNotCoveredError) as exc:
        raise Unavailable("Storage cluster is not ready, retry later") from exc
    except RedisClusterException as exc:
        if any(s in str(exc) for s in _TRANSIENT_CLUSTER):
            raise Unavailable("Storage cluster is unavailable, retry later") from exc
        raise
    except RedisError as exc:
        text = str(exc)
        if any(s in text for s in ("LOADING", "BUSY", "READONLY", *_TRANSIENT_CLUSTER)):
            raise Unavailable("Storage is not ready, retry later") from exc
        raise
