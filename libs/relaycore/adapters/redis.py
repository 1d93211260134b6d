"""redis-py past its documented client API: pipelined round trips on one connection that redis-py's
``Redis``/``Pipeline`` cannot express (sent exactly once, replies and error replies as values,
pinned to the node that holds a key), and the error code of an error reply.

The hot paths use these because redis-py's own packing and retrying were measured as the largest
costs of a batched publish and a fan-out acknowledgement (see ``relaycore.store.valkey_batch``), and
its retry would re-send a command whose reply was lost.  Everything here that redis-py does not
promise to keep is named in ``INTERNALS``; ``tests/contract/test_adapters.py`` fails with the name
when a release changes one.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import AskError, ClusterError, MovedError, ResponseError, SlotNotCoveredError
from redis.exceptions import TimeoutError as RedisTimeoutError

# What this module relies on beyond redis-py's documented API, and what breaks without it.
INTERNALS = {
    "ConnectionPool.get_connection()": "called with no command name (5.3+): one connection per batch",
    "ConnectionPool.release(connection)": "returns the batch's connection",
    "AbstractConnection.pack_commands(commands)": "packs a pinned pipeline",
    "AbstractConnection.send_packed_command(packed)": "writes a batch in one system call",
    "AbstractConnection.read_response()": "reads one reply, raising ResponseError for an error reply",
    "AbstractConnection.disconnect(nowait=True)": "drops a connection whose reply may be in flight",
    "AbstractConnection.socket_timeout": "a round trip's deadline; None during it",
    "ClusterNode.acquire_connection()": "a connection to the node holding a key",
    "ClusterNode.release(connection)": "returns it",
    "RedisCluster.nodes_manager.move_slot(MovedError)": "follows a MOVED redirect of a pinned pipeline",
    "RedisCluster.get_node_from_key(key)": "raises KeyError while no node serves the key's slot",
}

Command = tuple[str | bytes | int, ...]
_REDIRECTS = 5


async def send_pinned(client: aredis.Redis | RedisCluster, key: str, *commands: Command) -> list[Any]:
    """Send ``commands`` pipelined on one connection to the server holding ``key``, exactly once,
    and return their raw replies (an error reply is returned as its exception, not raised).

    The client's own retry would re-send a command whose reply was lost; for ``XREADGROUP >`` that
    strands the entries handed to the lost reply, and ``WAIT`` only counts the writes of its own
    connection.  Here a lost connection raises (the caller decides), and only redirections
    (``MOVED``/``ASK``: the command did not run there) are followed."""
    if isinstance(client, RedisCluster):
        return await _send_pinned_cluster(client, key, commands)
    pool = client.connection_pool
    conn = await _checkout(pool)
    try:
        return await exchange(conn, conn.pack_commands(commands), len(commands))
    finally:
        await pool.release(conn)


async def send_packed(client: aredis.Redis, packed: bytes, count: int) -> list[Any]:
    """``count`` commands packed by ``relaycore.valkey.resp``, written at once on one connection of
    a single-node client's pool; their replies, errors as values.  Sent once: a lost reply is not
    retried."""
    pool = client.connection_pool
    conn = await _checkout(pool)
    try:
        return await exchange(conn, packed, count)
    finally:
        await pool.release(conn)


async def _checkout(pool: aredis.ConnectionPool) -> AbstractConnection:
    conn: AbstractConnection = await pool.get_connection()  # type: ignore[no-untyped-call]
    return conn


async def exchange(conn: AbstractConnection, packed: bytes | list[bytes], count: int) -> list[Any]:
    """Write ``count`` packed commands at once on ``conn`` and read their replies, errors as
    values; the connection is dropped if anything else goes wrong (a reply may be in flight).

    The whole round trip has one deadline, the connection's ``socket_timeout``, raising redis-py's
    ``TimeoutError`` as its own would.  With the timeout left on the connection, redis-py wraps
    the write in ``asyncio.wait_for`` (a task per write on Python 3.11) and each reply in a timeout
    of its own: about a tenth of ingest's CPU per publish (``bench.publish``)."""
    deadline = conn.socket_timeout
    conn.socket_timeout = None  # the connection is ours alone until it goes back to the pool
    try:
        async with asyncio.timeout(deadline):
            await conn.send_packed_command(packed)
            replies: list[Any] = []
            for _ in range(count):
                try:
                    replies.append(await conn.read_response())
                except ResponseError as exc:
                    replies.append(exc)
            return replies
    except TimeoutError:  # asyncio.timeout's: the deadline passed
        await conn.disconnect(nowait=True)
        raise RedisTimeoutError(f"no reply within {deadline}s") from None
    except BaseException:
        await conn.disconnect(nowait=True)  # a reply may still be on its way
        raise
    finally:
        conn.socket_timeout = deadline


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


def _node_for(rc: RedisCluster, key: str) -> ClusterNode | None:
    try:
        return rc.get_node_from_key(key)
    except KeyError:  # redis-py's slot map lacks the slot (not covered right now)
        raise SlotNotCoveredError(f"no node serves the slot of {key!r}") from None


def error_code(exc: ResponseError) -> str:
    """The error reply's code (``NOGROUP``, ``BUSY``, ...): the protocol's kind of error, its first
    word.  redis-py turns some codes into exception classes (``NoScriptError``, ``ReadOnlyError``,
    ...; catch those by type) and leaves the rest as ``ResponseError`` with the code in front."""
    first = str(exc).split(" ", 1)[0]
    return first if first.isupper() else ""
