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
    ClusterError,
    ReadOnlyError,
    RedisClusterException,
    ResponseError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from relaycore.adapters.redis import error_code
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


def resp(parts: list[bytes]) -> bytes:
    """One command in RESP, packed at C speed (redis-py packs each argument in Python)."""
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        out += (b"$%d\r\n" % len(part), part, b"\r\n")
    return b"".join(out)


_NOT_NOW = frozenset({"BUSY", "LOADING", "READONLY", "CLUSTERDOWN", "MASTERDOWN", "TRYAGAIN"})


@contextlib.asynccontextmanager
async def guarded() -> AsyncIterator[None]:
    """Turn driver failures that mean "not now" into ``Unavailable`` (HTTP 503), by exception type:
    connection loss and timeouts, a server loading its data (``LOADING``) or read-only (a replica
    after failover), a cluster healing (``CLUSTERDOWN``, ``MASTERDOWN``, ``TRYAGAIN``, a slot not
    served, too many redirections, no seed reachable) and a server busy with a script (``BUSY``)."""
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError, OSError) as exc:  # LOADING is a ConnectionError
        raise Unavailable("Storage is unavailable, retry later") from exc
    except (ClusterError, SlotNotCoveredError) as exc:  # CLUSTERDOWN, MASTERDOWN, TTL exhausted
        raise Unavailable("Storage cluster is not ready, retry later") from exc
    except RedisClusterException as exc:
        # "cannot be connected": raised from the connection error of the last seed tried.
        if isinstance(exc.__cause__, RedisConnectionError | RedisTimeoutError | OSError):
            raise Unavailable("Storage cluster is unavailable, retry later") from exc
        raise
    except (ReadOnlyError, TryAgainError) as exc:
        raise Unavailable("Storage is not ready, retry later") from exc
    except ResponseError as exc:
        # The same conditions where this redis-py release has no exception class for the code.
        if error_code(exc) in _NOT_NOW:
            raise Unavailable("Storage is not ready, retry later") from exc
        raise
