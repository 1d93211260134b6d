"""The one place a Valkey client is built from the settings.  Driver errors become ``Unavailable``."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from relaycore.config import Settings
from relaycore.errors import Unavailable

Client = aredis.Redis


def url_of(settings: Settings) -> str:
    """``PULSAR_VALKEY_URL`` if set, else one built from the seed's host/port/password/TLS settings."""
    if settings.valkey_url:
        return settings.valkey_url
    scheme = "rediss" if settings.valkey_use_tls else "redis"
    return f"{scheme}://{settings.valkey_host}:{settings.valkey_port}/{settings.valkey_db}"


def connect(settings: Settings, *, max_connections: int | None = None) -> Client:
    """An asyncio client with a bounded pool; no I/O happens until first use."""
    kwargs: dict[str, Any] = {
        "max_connections": max_connections or settings.valkey_pool_size,
        "socket_timeout": None,  # blocking reads (XREADGROUP BLOCK) set their own limits
        "socket_connect_timeout": settings.valkey_timeout,
        "health_check_interval": 15,
        "retry": Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=2),
        "retry_on_error": [RedisConnectionError],
    }
    if settings.valkey_password and not settings.valkey_url:
        kwargs["password"] = settings.valkey_password
    url = url_of(settings)
    if url.startswith("rediss://") and settings.valkey_tls_ca_file:
        kwargs["ssl_ca_certs"] = settings.valkey_tls_ca_file
        kwargs["ssl_cert_reqs"] = ssl.CERT_REQUIRED
    pool = aredis.ConnectionPool.from_url(url, **kwargs)
    return aredis.Redis.from_pool(pool)  # the client owns (and closes) its pool


@contextlib.asynccontextmanager
async def guarded() -> AsyncIterator[None]:
    """Turn connection-level driver failures into ``Unavailable`` (HTTP 503)."""
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
        raise Unavailable("Storage is unavailable, retry later") from exc
    except RedisError as exc:
        if "LOADING" in str(exc) or "BUSY" in str(exc) or "READONLY" in str(exc):
            raise Unavailable("Storage is not ready, retry later") from exc
        raise
