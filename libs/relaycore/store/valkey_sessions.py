"""Refresh-token sessions in Valkey under the ``{sessions}`` hash tag: one hash per session, a
capped list of its replaced secret hashes, and a per-user index pruned as it is read.  Rotation
is one Lua script, so exactly one of several concurrent refreshes wins, across processes."""

from __future__ import annotations

import math
from typing import Literal

from redis.typing import EncodableT, FieldT

from relaycore.keys import Keys
from relaycore.store._guard import guard_methods
from relaycore.store._scripts import load
from relaycore.store.base import RotateOutcome, Rotation, SessionRecord
from relaycore.store.replies import text
from relaycore.valkey import Client

_FIELDS = ("user_id", "client_hint", "issued_at", "expires_at", "last_used_at")
_OUTCOMES: frozenset[str] = frozenset({"ok", "unknown", "expired", "raced", "replayed"})


def _decode(session_id: str, values: list[bytes | str | None]) -> SessionRecord | None:
    user_id, hint, issued, expires, used = (None if v is None else text(v) for v in values)
    if user_id is None or issued is None or expires is None:
        return None
    return SessionRecord(
        session_id=session_id,
        user_id=user_id,
        client_hint=hint or None,
        issued_at=int(issued),
        expires_at=int(expires),
        last_used_at=int(used) if used else None,
    )


@guard_methods
class ValkeySessions:
    def __init__(self, client: Client, keys: Keys) -> None:
        self._r: Client = client
        self._k = keys
        self._rotate = load(client, "rotate_session")

    async def create(self, record: SessionRecord, secret_hash: str, *, idle: float) -> None:
        key = self._k.session(record.session_id)
        ttl = max(1, min(int(idle * 1000), record.expires_at - record.issued_at))
        fields: dict[FieldT, EncodableT] = {
            "user_id": record.user_id,
            "client_hint": record.client_hint or "",
            "issued_at": record.issued_at,
            "expires_at": record.expires_at,
            "secret": secret_hash,
        }
        async with self._r.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=fields)
            pipe.pexpire(key, ttl)
            pipe.sadd(self._k.user_sessions(record.user_id), record.session_id)
            await pipe.execute()

    async def rotate(
        self, session_id: str, presented: str, new: str, *, now_ms: int, idle: float, grace: float, keep: int
    ) -> Rotation:
        outcome, user_id = await self._rotate(
            keys=[self._k.session(session_id), self._k.session_old(session_id)],
            args=[presented, new, now_ms, int(idle * 1000), int(grace * 1000), max(1, keep)],
        )
        name = outcome.decode()
        assert name in _OUTCOMES, name
        kind: RotateOutcome = name
        return Rotation(outcome=kind, user_id=user_id.decode() or None)

    async def matches(self, session_id: str, secret_hash: str) -> Literal["current", "old"] | None:
        async with self._r.pipeline(transaction=False) as pipe:
            pipe.hget(self._k.session(session_id), "secret")
            pipe.lpos(self._k.session_old(session_id), secret_hash)
            current, position = await pipe.execute()
        if current is None:
            return None
        if text(current) == secret_hash:
            return "current"
        return "old" if position is not None else None

    async def get(self, session_id: str) -> SessionRecord | None:
        return _decode(session_id, await self._r.hmget(self._k.session(session_id), _FIELDS))

    async def remaining(self, session_id: str) -> float | None:
        ms = int(await self._r.pttl(self._k.session(session_id)))
        if ms == -2:  # no such key
            return None
        return math.inf if ms == -1 else ms / 1000  # every session key is created with a TTL

    async def for_user(self, user_id: str) -> list[SessionRecord]:
        index = self._k.user_sessions(user_id)
        ids = sorted(text(m) for m in await self._r.smembers(index))
        async with self._r.pipeline(transaction=False) as pipe:
            for session_id in ids:
                pipe.hmget(self._k.session(session_id), _FIELDS)
            rows = await pipe.execute()
        records = [_decode(sid, row) for sid, row in zip(ids, rows, strict=True)]
        gone = [sid for sid, rec in zip(ids, records, strict=True) if rec is None or rec.user_id != user_id]
        if gone:
            await self._r.srem(index, *gone)
        live = [r for r in records if r is not None and r.user_id == user_id]
        return sorted(live, key=lambda r: (r.issued_at, r.session_id))

    async def count(self, user_id: str) -> int:
        return int(await self._r.scard(self._k.user_sessions(user_id)))

    async def delete(self, session_id: str) -> bool:
        user_id = await self._r.hget(self._k.session(session_id), "user_id")
        removed = await self._r.delete(self._k.session(session_id), self._k.session_old(session_id))
        if user_id is not None:
            await self._r.srem(self._k.user_sessions(text(user_id)), session_id)
        return bool(removed)
