"""The partitioned fan-out logs, read by each gateway through its own consumer group.

On a single server one ``XREADGROUP`` covers every partition.  A Valkey Cluster refuses a command
whose keys lie in different hash slots (``CROSSSLOT``), even on one node, and every partition has a
slot of its own; there each read names one partition (``read_sets``) and the gateway runs one
blocking reader per partition.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import redis.asyncio as aredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

from relaycore.adapters.redis import error_code, send_packed, send_pinned
from relaycore.errors import Unavailable
from relaycore.keys import Keys
from relaycore.models import StoredMessage
from relaycore.store import replies
from relaycore.store._guard import guard_methods
from relaycore.store.entries import decode
from relaycore.valkey import Client, resp

log = logging.getLogger(__name__)
# Most entries counted one by one when Valkey cannot say how far behind a group is.
_LAG_COUNT_CAP = 1000


@guard_methods
class ValkeyFanout:
    def __init__(self, client: Client, keys: Keys) -> None:
        self._r: Client = client
        self._k = keys
        self.partitions = keys.partitions
        self._cluster = isinstance(client, RedisCluster)
        # The single server, to which acknowledgements go packed by hand; None on a cluster.
        self._single = client if isinstance(client, aredis.Redis) else None

    def read_sets(self) -> list[list[int]]:
        every = list(range(self.partitions))
        return [[p] for p in every] if self._cluster else [every]

    async def join(self, group: str, partitions: Sequence[int] | None = None) -> dict[int, str]:
        positions: dict[int, str] = {}
        for p in range(self.partitions) if partitions is None else partitions:
            log = self._k.log(p)
            try:
                await self._r.xgroup_create(log, group, id="$", mkstream=True)
            except ResponseError as exc:
                if error_code(exc) != "BUSYGROUP":  # the group exists already
                    raise
            for info in await self._r.xinfo_groups(log):
                if info["name"].decode() == group:
                    positions[p] = info["last-delivered-id"].decode()
        return positions

    async def read(
        self,
        group: str,
        *,
        count: int,
        block: float,
        pending: bool = False,
        partitions: Sequence[int] | None = None,
    ) -> list[tuple[int, list[StoredMessage]]]:
        chosen = range(self.partitions) if partitions is None else partitions
        if self._cluster and len(chosen) > 1:
            # One read per slot, all run to their end (a read abandoned in flight would strand the
            # entries it was handed in the pending list): returns within ``block``.
            parts = await asyncio.gather(
                *(self.read(group, count=count, block=block, pending=pending, partitions=[p]) for p in chosen)
            )
            return [batch for part in parts for batch in part]
        index = {self._k.log(p).encode(): p for p in chosen}
        logs = [k.decode() for k in index]
        args: list[str | int] = ["XREADGROUP", "GROUP", group, group, "COUNT", count]
        if not pending:
            args += ["BLOCK", max(1, int(block * 1000))]
        args += ["STREAMS", *logs, *(["0" if pending else ">"] * len(logs))]
        try:
            [reply] = await send_pinned(self._r, logs[0], tuple(args))
            if isinstance(reply, ResponseError):
                raise reply
        except ResponseError as exc:
            if error_code(exc) == "NOGROUP":
                # Removed by a peer that took this gateway for dead.  The caller must join again,
                # knowing that the entries written meanwhile were skipped.
                raise Unavailable(f"consumer group {group!r} is gone; join again") from exc
            if error_code(exc) == "UNBLOCKED":
                # The log left this node while we waited on it (a cluster slot was resharded; the
                # group moved with it): join again, which finds it where it is now.
                raise Unavailable(f"{logs[0]} moved to another node; join again") from exc
            raise
        out: list[tuple[int, list[StoredMessage]]] = []
        for stream, entries in reply.items() if isinstance(reply, dict) else reply or []:  # RESP3 | 2
            p = index[stream]
            msgs: list[StoredMessage] = []
            skip: list[bytes] = []  # trimmed from the log meanwhile, or not written by publish
            for entry_id, fields in entries:
                try:
                    msgs.append(decode(entry_id, dict(zip(fields[::2], fields[1::2], strict=True))))
                except (TypeError, KeyError, ValueError):
                    if fields:
                        log.warning("skipping malformed fan-out entry %s in %s", entry_id, stream)
                    skip.append(entry_id)
            if skip:  # acknowledged, or it would come back from the pending list forever
                await self._r.xack(self._k.log(p), group, *skip)
            if msgs:
                out.append((p, msgs))
        return out

    async def ack(self, group: str, by_partition: Mapping[int, Sequence[str]]) -> None:
        wanted = [(self._k.log(p), some) for p, some in by_partition.items() if some]
        if not wanted:
            return
        if self._single is None:  # a slot per partition: one command each, all in flight at once
            await asyncio.gather(*(self._r.xack(log, group, *some) for log, some in wanted))
            return
        # One write for every partition, packed here (redis-py's packing of thousands of ids was
        # most of an acknowledgement's cost).
        name = group.encode()
        packed = b"".join(
            resp([b"XACK", log.encode(), name, *(i.encode() for i in some)]) for log, some in wanted
        )
        for reply in await send_packed(self._single, packed, len(wanted)):
            if isinstance(reply, Exception):
                raise reply

    async def lag(self, group: str) -> int:
        total = 0
        for p in range(self.partitions):
            try:
                groups = await self._r.xinfo_groups(self._k.log(p))
            except ResponseError:
                # Not created yet (or created just now, after XINFO looked): nothing to lag behind
                # this beat; the next one counts it.
                continue
            for info in groups:
                if info["name"].decode() == group:
                    total += await self._behind(p, info) + int(info.get("pending") or 0)
        return total

    async def _behind(self, partition: int, info: dict[Any, Any]) -> int:
        """Entries of one log the group has not read.  XINFO's lag field is derived from a read
        counter that a failover (or a group moved by id) leaves inexact, so a group that has read
        up to the log's last entry is 0 behind whatever the field says, and otherwise the entries
        after the last-delivered id are counted."""
        lag = info.get("lag")
        if lag is not None and int(lag) == 0:
            return 0
        log = self._k.log(partition)
        last = info.get("last-delivered-id")
        last = last.decode() if isinstance(last, bytes) else str(last)
        newest = (await self._r.xinfo_stream(log)).get("last-generated-id")
        newest = newest.decode() if isinstance(newest, bytes) else str(newest)
        if newest == last:
            return 0
        # Count what follows the last-delivered id, up to a cap; beyond it the field (if any) is
        # as good a figure as any for "far behind".
        counted = len(replies.entries(await self._r.xrange(log, min=f"({last}", count=_LAG_COUNT_CAP)))
        return max(counted, int(lag or 0)) if counted >= _LAG_COUNT_CAP else counted

    async def appended(self) -> int:
        async with self._r.pipeline(transaction=False) as pipe:
            for p in range(self.partitions):
                pipe.xinfo_stream(self._k.log(p))
            replies = await pipe.execute(raise_on_error=False)
        total = 0
        for info in replies:
            if isinstance(info, ResponseError):
                if "no such key" not in str(info):
                    raise info
                continue  # nothing published to this partition yet
            total += int(info.get("entries-added") or 0)
        return total

    async def drop(self, group: str) -> None:
        for p in range(self.partitions):
            try:
                await self._r.xgroup_destroy(self._k.log(p), group)
            except ResponseError:
                pass  # log does not exist
