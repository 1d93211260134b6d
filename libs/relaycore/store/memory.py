"""The memory backend: every store interface in one process's memory, with the Valkey backend's
semantics (same id format, same atomicity, same consumer groups).  Used when no Valkey is
available to ``pulsar-relay serve all``, and by fast unit tests.  Nothing survives a restart.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections import OrderedDict, defaultdict
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import msgspec

from relaycore import ids
from relaycore.config import Settings
from relaycore.errors import Conflict, Forbidden, Unavailable
from relaycore.ids import StreamId
from relaycore.keys import partition_of
from relaycore.models import NewMessage, StoredMessage, Topic, User, now_ms
from relaycore.store import fingerprint
from relaycore.store.base import Admission, PublishKind, PublishResult, Rotation, SessionRecord
from relaycore.store.entries import unexpired
from relaycore.store.memory_device import MemoryDeviceGrants, MemoryWebSessions
from relaycore.store.memory_identity import MemoryIdentities, MemoryOnce
from relaycore.store.valkey_messages import denied_detail


class _Stream:
    """An append-only sequence of (id, message), trimmed from the front."""

    def __init__(self) -> None:
        self.ids: list[StreamId] = []
        self.items: list[StoredMessage] = []
        self.last: StreamId = ids.ZERO
        self.added = 0  # entries ever added, as Valkey's XINFO STREAM entries-added

    def next_id(self) -> StreamId:
        ms = now_ms()
        return (ms, 0) if ms > self.last[0] else (self.last[0], self.last[1] + 1)

    def add(self, sid: StreamId, msg: StoredMessage) -> None:
        self.ids.append(sid)
        self.items.append(msg)
        self.last = sid
        self.added += 1

    def trim(self, maxlen: int, min_id: StreamId | None = None, *, slack: bool = False) -> None:
        """Drop the oldest entries beyond ``maxlen`` and before ``min_id``.  With ``slack`` (like
        Valkey's ``MAXLEN ~``) only once the excess reaches 1/8 of ``maxlen``, so that trimming a
        long list from the front stays cheap per append."""
        cut = max(0, len(self.ids) - maxlen)
        if slack and cut < max(1, maxlen // 8):
            cut = 0
        if min_id is not None:
            cut = max(cut, bisect.bisect_left(self.ids, min_id))
        if cut:
            del self.ids[:cut]
            del self.items[:cut]

    def after(self, sid: StreamId | None) -> int:
        return 0 if sid is None else bisect.bisect_right(self.ids, sid)


@dataclass
class _Group:
    delivered: StreamId
    pending: dict[StreamId, StoredMessage] = field(default_factory=dict)


class MemoryUsers:
    def __init__(self) -> None:
        self._by_id: dict[str, User] = {}
        self._names: dict[str, str] = {}

    async def create(self, user: User) -> None:
        if user.username in self._names:
            raise Conflict(f"Username '{user.username}' already exists")
        self._names[user.username] = user.user_id
        self._by_id[user.user_id] = _copy(user)

    async def get(self, user_id: str) -> User | None:
        u = self._by_id.get(user_id)
        return None if u is None else _copy(u)

    async def get_by_name(self, username: str) -> User | None:
        uid = self._names.get(username)
        return None if uid is None else await self.get(uid)

    async def list(self) -> list[User]:
        return sorted((_copy(u) for u in self._by_id.values()), key=lambda u: (u.created_at, u.username))

    async def save(self, user: User) -> bool:
        if user.user_id not in self._by_id:
            return False
        self._by_id[user.user_id] = _copy(user)
        return True

    async def delete(self, user_id: str) -> bool:
        user = self._by_id.pop(user_id, None)
        if user is None:
            return False
        self._names.pop(user.username, None)
        return True


def _copy(user: User) -> User:
    return User(
        **{f: getattr(user, f) for f in User.__struct_fields__} | {"permissions": list(user.permissions)}
    )


class MemoryBus:
    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[str | None]] = set()
        self.connected = True

    async def publish(self, event: str) -> None:
        for q in self._queues:
            q.put_nowait(event)

    async def listen(self) -> AsyncIterator[str | None]:
        q: asyncio.Queue[str | None] = asyncio.Queue()
        self._queues.add(q)
        try:
            yield None
            while True:
                yield await q.get()
        finally:
            self._queues.discard(q)


class MemoryData:
    """Topics, streams and logs share one structure, as they share one script in Valkey."""

    def __init__(self, settings: Settings, bus: MemoryBus) -> None:
        self.settings = settings
        self.bus = bus
        self.topics: dict[str, Topic] = {}
        self.streams: dict[str, _Stream] = defaultdict(_Stream)
        self.logs = [_Stream() for _ in range(settings.fanout_partitions)]
        self.groups: list[dict[str, _Group]] = [{} for _ in range(settings.fanout_partitions)]
        self.idem: OrderedDict[tuple[str, str], tuple[float, PublishResult, str]] = OrderedDict()
        self.log_event = asyncio.Event()


class MemoryTopics:
    def __init__(self, data: MemoryData) -> None:
        self._d = data

    async def create(self, topic: Topic) -> None:
        if topic.topic_name in self._d.topics:
            raise Conflict(f"Topic '{topic.topic_name}' already exists")
        self._d.topics[topic.topic_name] = Topic(**{f: getattr(topic, f) for f in Topic.__struct_fields__})
        await self._d.bus.publish(f"topic:{topic.topic_name}")

    async def get(self, name: str) -> Topic | None:
        t = self._d.topics.get(name)
        if t is None:
            return None
        return Topic(
            **{f: getattr(t, f) for f in Topic.__struct_fields__}
            | {"allowed_user_ids": sorted(t.allowed_user_ids)}
        )

    async def update(self, name: str, *, is_public: bool | None, description: str | None) -> Topic | None:
        t = self._d.topics.get(name)
        if t is None:
            return None
        if is_public is not None:
            t.is_public = is_public
        if description is not None:
            t.description = description
        await self._d.bus.publish(f"topic:{name}")
        return await self.get(name)

    async def delete(self, name: str) -> bool:
        if self._d.topics.pop(name, None) is None:
            return False
        self._d.streams.pop(name, None)
        await self._d.bus.publish(f"topic:{name}")
        return True

    async def grant(self, name: str, user_id: str) -> bool:
        t = self._d.topics.get(name)
        if t is None or user_id in t.allowed_user_ids:
            return False
        t.allowed_user_ids.append(user_id)
        await self._d.bus.publish(f"topic:{name}")
        return True

    async def revoke(self, name: str, user_id: str) -> bool:
        t = self._d.topics.get(name)
        if t is None or user_id not in t.allowed_user_ids:
            return False
        t.allowed_user_ids.remove(user_id)
        await self._d.bus.publish(f"topic:{name}")
        return True

    async def names_for(self, user_id: str) -> tuple[list[str], list[str]]:
        owned = sorted(n for n, t in self._d.topics.items() if t.owner_id == user_id)
        granted = sorted(n for n, t in self._d.topics.items() if user_id in t.allowed_user_ids)
        return owned, granted

    async def all_names(self) -> list[str]:
        return sorted(self._d.topics)

    async def forget_user(self, user_id: str) -> None:
        for name in (await self.names_for(user_id))[1]:
            await self.revoke(name, user_id)


class MemoryMessages:
    def __init__(self, data: MemoryData) -> None:
        self._d = data

    async def publish(
        self,
        messages: Sequence[NewMessage],
        *,
        user: User,
        kind: PublishKind,
        idempotency_key: str | None,
        idempotency_ttl: float,
        topic_ids: Sequence[str],
    ) -> PublishResult:
        d = self._d
        now = time.monotonic()
        idem = None if idempotency_key is None else (user.user_id, idempotency_key)
        digest = "" if idempotency_key is None else fingerprint.of(kind, messages)
        if idem is not None:
            assert idempotency_key is not None
            _forget_expired(d.idem, now)
            if idem in d.idem and d.idem[idem][0] > now:
                _, first, first_digest = d.idem[idem]
                fingerprint.require_same(first_digest, digest, idempotency_key)
                return PublishResult(
                    kind=first.kind,
                    message_ids=first.message_ids,
                    topics=first.topics,
                    timestamps=first.timestamps,
                    duplicate=True,
                )
        denied = [
            m.topic for m in messages if (t := d.topics.get(m.topic)) is not None and not t.can_write(user)
        ]
        if denied:
            raise Forbidden(denied_detail(denied, kind))
        for m, tid in zip(messages, topic_ids, strict=True):
            if m.topic not in d.topics:
                d.topics[m.topic] = Topic(
                    topic_id=tid,
                    topic_name=m.topic,
                    owner_id=user.user_id,
                    description=f"Auto-created topic by {user.username}",
                    created_at=m.timestamp,
                )
                await d.bus.publish(f"topic:{m.topic}")
        retention_ms = int(d.settings.persistent_tier_retention * 1000)
        min_id = (now_ms() - retention_ms, 0) if retention_ms > 0 else None
        out: list[str] = []
        for m in messages:
            p = partition_of(m.topic, d.settings.fanout_partitions)
            log = d.logs[p]
            sid = log.next_id()
            stored = StoredMessage(
                message_id=ids.fmt(sid),
                topic=m.topic,
                payload=m.payload,
                timestamp=m.timestamp,
                metadata=m.metadata,
                expires_at_ms=m.expires_at_ms,
            )
            log.add(sid, stored)
            log.trim(d.settings.fanout_log_maxlen, slack=True)
            stream = d.streams[m.topic]
            stream.add(sid, stored)
            stream.trim(d.settings.max_messages_per_topic, min_id)
            out.append(stored.message_id)
        d.log_event.set()
        d.log_event = asyncio.Event()
        result = PublishResult(
            kind=kind,
            message_ids=out,
            topics=[m.topic for m in messages],
            timestamps=[m.timestamp for m in messages],
        )
        if idem is not None:
            d.idem[idem] = (now + idempotency_ttl, result, digest)
        return result

    async def read_after(self, topic: str, after: StreamId | None, limit: int) -> list[StoredMessage]:
        s = self._d.streams.get(topic)
        if s is None:
            return []
        now = now_ms()
        return unexpired(s.items[s.after(after) :], now, limit)

    async def read_before(self, topic: str, before: StreamId | None, limit: int) -> list[StoredMessage]:
        s = self._d.streams.get(topic)
        if s is None:
            return []
        end = len(s.ids) if before is None else bisect.bisect_left(s.ids, before)
        now = now_ms()
        return unexpired(reversed(s.items[:end]), now, limit)

    async def last_id(self, topic: str, upto: StreamId | None = None) -> str | None:
        s = self._d.streams.get(topic)
        if not s:
            return None
        end = len(s.ids) if upto is None else bisect.bisect_right(s.ids, upto)
        return s.items[end - 1].message_id if end else None

    async def length(self, topic: str) -> int:
        s = self._d.streams.get(topic)
        return len(s.ids) if s else 0


def _forget_expired(
    records: OrderedDict[tuple[str, str], tuple[float, PublishResult, str]], now: float
) -> None:
    """Drop expired idempotency records from the oldest end: records are inserted in time order,
    so this is amortised O(1) per publish instead of a scan of every live record."""
    while records:
        oldest = next(iter(records))
        if records[oldest][0] > now:
            return
        records.popitem(last=False)


class MemoryFanout:
    def __init__(self, data: MemoryData) -> None:
        self._d = data
        self.partitions = data.settings.fanout_partitions

    def read_sets(self) -> list[list[int]]:
        return [list(range(self.partitions))]

    async def join(self, group: str, partitions: Sequence[int] | None = None) -> dict[int, str]:
        chosen = range(self.partitions) if partitions is None else partitions
        for p in chosen:
            self._d.groups[p].setdefault(group, _Group(delivered=self._d.logs[p].last))
        return {p: ids.fmt(self._d.groups[p][group].delivered) for p in chosen}

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
        if pending:
            return [
                (p, [g[group].pending[k] for k in sorted(g[group].pending)][:count])
                for p, g in ((p, self._d.groups[p]) for p in chosen)
                if group in g and g[group].pending
            ]
        out = self._take(group, count, chosen)
        if not out and block > 0:
            try:
                await asyncio.wait_for(self._d.log_event.wait(), block)
            except TimeoutError:
                return []
            out = self._take(group, count, chosen)
        return out

    def _take(self, group: str, count: int, chosen: Sequence[int]) -> list[tuple[int, list[StoredMessage]]]:
        out = []
        for p in chosen:
            log = self._d.logs[p]
            g = self._d.groups[p].get(group)
            if g is None:  # dropped by a peer, as in Valkey: the caller must join again
                raise Unavailable(f"consumer group {group!r} is gone; join again")
            start = log.after(g.delivered)
            batch = log.items[start : start + count]
            if batch:
                for sid, m in zip(log.ids[start : start + count], batch, strict=True):
                    g.pending[sid] = m
                g.delivered = log.ids[start + len(batch) - 1]
                out.append((p, batch))
        return out

    async def ack(self, group: str, by_partition: Mapping[int, Sequence[str]]) -> None:
        for partition, ids_ in by_partition.items():
            g = self._d.groups[partition].get(group)
            if g is not None:
                for i in ids_:
                    g.pending.pop(ids.require(i, ["id"]), None)

    async def lag(self, group: str) -> int:
        total = 0
        for p, log in enumerate(self._d.logs):
            g = self._d.groups[p].get(group)
            if g is not None:
                total += len(log.ids) - log.after(g.delivered) + len(g.pending)
        return total

    async def drop(self, group: str) -> None:
        for groups in self._d.groups:
            groups.pop(group, None)

    async def appended(self) -> int:
        return sum(log.added for log in self._d.logs)


class MemoryGateways:
    def __init__(self, expiry: float) -> None:
        self._seen: dict[str, int] = {}
        self._stats: dict[str, tuple[dict[str, int], dict[str, int]]] = {}
        self._expiry_ms = int(expiry * 1000)

    async def heartbeat(self, gateway_id: str, stats: dict[str, int], topic_counts: dict[str, int]) -> None:
        self._seen[gateway_id] = now_ms()
        self._stats[gateway_id] = (dict(stats), dict(topic_counts))

    async def live(self) -> dict[str, int]:
        return dict(self._seen)

    async def forget(self, gateway_id: str) -> None:
        self._seen.pop(gateway_id, None)
        self._stats.pop(gateway_id, None)

    async def stats(self) -> list[tuple[str, dict[str, int], dict[str, int]]]:
        cutoff = now_ms() - self._expiry_ms
        return [(g, *self._stats[g]) for g, seen in self._seen.items() if seen >= cutoff and g in self._stats]


class MemoryAcks:
    def __init__(self) -> None:
        self._pos: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)

    async def record(self, user_id: str, client_id: str, topic: str, message_id: str) -> None:
        new = ids.require(message_id, ["message_id"])
        cur = self._pos[(user_id, client_id)].get(topic)
        if cur is None or new > ids.require(cur, ["message_id"]):
            self._pos[(user_id, client_id)][topic] = message_id

    async def positions(self, user_id: str, client_id: str) -> dict[str, str]:
        return dict(self._pos.get((user_id, client_id), {}))


class MemoryCounters:
    def __init__(self) -> None:
        self._windows: dict[str, tuple[float, int]] = {}

    async def hit(self, key: str, window: float) -> tuple[int, float]:
        now = time.monotonic()
        end, count = self._windows.get(key, (0.0, 0))
        if end <= now:
            end, count = now + window, 0
        self._windows[key] = (end, count + 1)
        return count + 1, end - now

    async def clear(self, key: str) -> None:
        self._windows.pop(key, None)


class MemoryThrottle:
    """The Valkey throttle's semantics in one process (nothing here awaits, so it is atomic)."""

    def __init__(self) -> None:
        self._failed: dict[str, tuple[float, int]] = {}  # key -> (window end, count)
        self._flying: dict[str, tuple[float, int]] = {}  # key -> (forget at, count)

    @staticmethod
    def _get(table: dict[str, tuple[float, int]], key: str) -> tuple[float, int]:
        end, count = table.get(key, (0.0, 0))
        return (end, count) if end > time.monotonic() else (0.0, 0)

    async def admit(
        self, keys: Sequence[str], limits: Sequence[int], *, hold: float
    ) -> tuple[Admission, float]:
        wait = False
        for key, limit in zip(keys, limits, strict=True):
            end, failed = self._get(self._failed, key)
            _, flying = self._get(self._flying, key)
            if failed >= limit:
                return "refuse", max(0.0, end - time.monotonic())
            wait = wait or failed + flying >= limit
        if wait:
            return "wait", 0.0
        for key in keys:
            _, flying = self._get(self._flying, key)
            self._flying[key] = (time.monotonic() + hold, flying + 1)
        return "go", 0.0

    async def release(self, keys: Sequence[str], *, failed: bool, window: float) -> None:
        now = time.monotonic()
        for key in keys:
            end, flying = self._get(self._flying, key)
            if flying > 0:
                self._flying[key] = (end, flying - 1)
            if failed:
                f_end, count = self._get(self._failed, key)
                self._failed[key] = (f_end or now + window, count + 1)

    async def failures(self, key: str) -> int:
        return self._get(self._failed, key)[1]

    async def clear(self, key: str) -> None:
        self._failed.pop(key, None)


@dataclass
class _Session:
    record: SessionRecord
    secret: str
    deadline: float  # monotonic: idle expiry
    old: list[str] = field(default_factory=list)  # replaced hashes, newest first
    rotated_at: int | None = None


class MemorySessions:
    """Refresh-token sessions with the Valkey store's semantics; rotation is atomic because it
    never awaits."""

    def __init__(self) -> None:
        self._s: dict[str, _Session] = {}

    def _live(self, session_id: str) -> _Session | None:
        s = self._s.get(session_id)
        if s is not None and s.deadline <= time.monotonic():
            del self._s[session_id]
            return None
        return s

    async def create(self, record: SessionRecord, secret_hash: str, *, idle: float) -> None:
        ttl = min(idle, (record.expires_at - record.issued_at) / 1000)
        self._s[record.session_id] = _Session(record, secret_hash, time.monotonic() + ttl)

    async def rotate(
        self, session_id: str, presented: str, new: str, *, now_ms: int, idle: float, grace: float, keep: int
    ) -> Rotation:
        s = self._live(session_id)
        if s is None:
            return Rotation(outcome="unknown")
        user_id = s.record.user_id
        if now_ms >= s.record.expires_at:
            del self._s[session_id]
            return Rotation(outcome="expired", user_id=user_id)
        if s.secret == presented:
            s.old = [presented, *s.old][: max(1, keep)]
            s.secret = new
            s.rotated_at = now_ms
            s.record = msgspec.structs.replace(s.record, last_used_at=now_ms)
            s.deadline = time.monotonic() + min(idle, (s.record.expires_at - now_ms) / 1000)
            return Rotation(outcome="ok", user_id=user_id)
        if presented not in s.old:
            return Rotation(outcome="unknown")
        if s.old[0] == presented and s.rotated_at is not None and now_ms - s.rotated_at < grace * 1000:
            return Rotation(outcome="raced", user_id=user_id)
        del self._s[session_id]
        return Rotation(outcome="replayed", user_id=user_id)

    async def matches(self, session_id: str, secret_hash: str) -> Literal["current", "old"] | None:
        s = self._live(session_id)
        if s is None:
            return None
        if s.secret == secret_hash:
            return "current"
        return "old" if secret_hash in s.old else None

    async def get(self, session_id: str) -> SessionRecord | None:
        s = self._live(session_id)
        return None if s is None else s.record

    async def remaining(self, session_id: str) -> float | None:
        s = self._live(session_id)
        return None if s is None else s.deadline - time.monotonic()

    async def for_user(self, user_id: str) -> list[SessionRecord]:
        live = [s.record for sid in list(self._s) if (s := self._live(sid)) and s.record.user_id == user_id]
        return sorted(live, key=lambda r: (r.issued_at, r.session_id))

    async def count(self, user_id: str) -> int:
        return sum(1 for s in self._s.values() if s.record.user_id == user_id)

    async def delete(self, session_id: str) -> bool:
        return self._s.pop(session_id, None) is not None


class MemoryBackend:
    def __init__(self, settings: Settings) -> None:
        self.bus = MemoryBus()
        data = MemoryData(settings, self.bus)
        self.users = MemoryUsers()
        self.topics = MemoryTopics(data)
        self.messages = MemoryMessages(data)
        self.fanout = MemoryFanout(data)
        self.gateways = MemoryGateways(settings.gateway_expiry)
        self.acks = MemoryAcks()
        self.counters = MemoryCounters()
        self.sessions = MemorySessions()
        self.throttle = MemoryThrottle()
        self.web_sessions = MemoryWebSessions()
        self.device_grants = MemoryDeviceGrants()
        self.identities = MemoryIdentities()
        self.once = MemoryOnce()

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None


_shared: dict[int, MemoryBackend] = {}


def shared_backend(settings: Settings) -> MemoryBackend:
    """One memory backend per process (per partition count), so co-mounted services share it."""
    return _shared.setdefault(settings.fanout_partitions, MemoryBackend(settings))
