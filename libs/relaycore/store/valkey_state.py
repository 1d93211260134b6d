"""Small shared state in Valkey: gateway registry, WebSocket ack positions, rate-limit counters,
the sign-in failure throttle, and the cache-invalidation channel."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from typing import cast

import msgspec
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ClusterError, RedisClusterException
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from relaycore import ids
from relaycore.keys import Keys
from relaycore.models import now_ms
from relaycore.store._guard import guard_methods
from relaycore.store._scripts import load
from relaycore.store.base import Admission
from relaycore.store.replies import text
from relaycore.valkey import Client

log = logging.getLogger(__name__)
# A cluster failing over or resharding: the channel's node is gone or unknown for a while.
# (redis-py raises KeyError for a slot missing from its map.)
_CLUSTER_HEALING = (ClusterError, RedisClusterException, KeyError)
_counts = msgspec.json.Decoder(dict[str, int])
ACK_TTL_MS = 7 * 24 * 3600 * 1000  # an unused client_id's positions are forgotten after a week


@guard_methods
class ValkeyGateways:
    def __init__(self, client: Client, keys: Keys, expiry: float) -> None:
        self._r: Client = client
        self._k = keys
        self._expiry = expiry

    async def heartbeat(self, gateway_id: str, stats: dict[str, int], topic_counts: dict[str, int]) -> None:
        key = self._k.gateway_stats(gateway_id)
        # Two keys in two hash slots: the registry entry first, then the counters atomically.
        await self._r.zadd(self._k.gateways, {gateway_id: now_ms()})
        async with self._r.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.hset(
                key,
                mapping={"stats": msgspec.json.encode(stats), "topics": msgspec.json.encode(topic_counts)},
            )
            pipe.pexpire(key, int(self._expiry * 1000))
            await pipe.execute()

    async def live(self) -> dict[str, int]:
        # withscores: (member, score) pairs, which redis-py's return type does not say
        rows = cast(
            "list[tuple[bytes, float]]", await self._r.zrange(self._k.gateways, 0, -1, withscores=True)
        )
        return {text(g): int(score) for g, score in rows}

    async def forget(self, gateway_id: str) -> None:
        await self._r.zrem(self._k.gateways, gateway_id)
        await self._r.delete(self._k.gateway_stats(gateway_id))

    async def stats(self) -> list[tuple[str, dict[str, int], dict[str, int]]]:
        cutoff = now_ms() - int(self._expiry * 1000)
        gateways = [g for g, seen in (await self.live()).items() if seen >= cutoff]
        async with self._r.pipeline(transaction=False) as pipe:
            for g in gateways:
                pipe.hmget(self._k.gateway_stats(g), "stats", "topics")
            rows = await pipe.execute()
        return [
            (g, _counts.decode(s) if s else {}, _counts.decode(t) if t else {})
            for g, (s, t) in zip(gateways, rows, strict=True)
        ]


@guard_methods
class ValkeyAcks:
    def __init__(self, client: Client, keys: Keys) -> None:
        self._r: Client = client
        self._k = keys
        self._script = load(client, "ack")

    async def record(self, user_id: str, client_id: str, topic: str, message_id: str) -> None:
        ms, seq = ids.require(message_id, ["message_id"])
        await self._script(
            keys=[self._k.acks(user_id, client_id)],
            args=[topic, str(ms), str(seq), message_id, str(ACK_TTL_MS)],
        )

    async def positions(self, user_id: str, client_id: str) -> dict[str, str]:
        raw = await self._r.hgetall(self._k.acks(user_id, client_id))
        return {text(k): text(v) for k, v in raw.items()}


@guard_methods
class ValkeyCounters:
    def __init__(self, client: Client, keys: Keys) -> None:
        self._r: Client = client
        self._k = keys

    async def hit(self, key: str, window: float) -> tuple[int, float]:
        full = self._k.rate_limit("login", key)
        async with self._r.pipeline(transaction=True) as pipe:
            pipe.incr(full)
            pipe.pexpire(full, int(window * 1000), nx=True)
            pipe.pttl(full)
            count, _, ttl = await pipe.execute()
        return int(count), max(ttl, 0) / 1000

    async def clear(self, key: str) -> None:
        await self._r.delete(self._k.rate_limit("login", key))


@guard_methods
class ValkeyThrottle:
    def __init__(self, client: Client, keys: Keys) -> None:
        self._r: Client = client
        self._k = keys
        self._admit = load(client, "throttle_admit")
        self._release = load(client, "throttle_release")

    def _pairs(self, keys: Sequence[str]) -> list[str]:
        return [k for key in keys for k in (self._k.failures(key), self._k.in_flight(key))]

    async def admit(
        self, keys: Sequence[str], limits: Sequence[int], *, hold: float
    ) -> tuple[Admission, float]:
        verdict, ms = await self._admit(keys=self._pairs(keys), args=[*limits, max(1, int(hold * 1000))])
        kind: Admission = verdict.decode()
        return kind, max(0, int(ms)) / 1000

    async def release(self, keys: Sequence[str], *, failed: bool, window: float) -> None:
        await self._release(keys=self._pairs(keys), args=["1" if failed else "0", max(1, int(window * 1000))])

    async def failures(self, key: str) -> int:
        return int(await self._r.get(self._k.failures(key)) or 0)

    async def clear(self, key: str) -> None:
        await self._r.delete(self._k.failures(key))


class ValkeyBus:
    def __init__(self, client: Client, keys: Keys) -> None:
        self._r: Client = client
        self._channel = keys.invalidate_channel
        self.connected = False

    async def publish(self, event: str) -> None:
        await self._r.publish(self._channel, event)

    async def listen(self) -> AsyncIterator[str | None]:
        """Yields events; after any disconnect it reconnects with backoff and yields None first."""
        delay = 0.05
        while True:
            pubsub = None
            try:
                if isinstance(self._r, RedisCluster):
                    await self._r.initialize()  # its pubsub needs the slot map (no-op once known)
                pubsub = self._r.pubsub(ignore_subscribe_messages=True)
                await pubsub.subscribe(self._channel)
                delay = 0.05
                self.connected = True
                yield None  # (re)subscribed: whatever was missed meanwhile is unknown
                while True:
                    msg = await pubsub.get_message(timeout=30.0)
                    if msg is not None and msg["type"] == "message":
                        yield msg["data"].decode()
            except (RedisConnectionError, RedisTimeoutError, OSError, *_CLUSTER_HEALING) as exc:
                self.connected = False
                log.warning("invalidation channel lost (%s); reconnecting", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
            finally:
                self.connected = False
                try:
                    if pubsub is not None:
                        await pubsub.aclose()
                except Exception:
                    pass
