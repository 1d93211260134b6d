"""The memory backend's federated identities and one-time records (see ``store.base``)."""

from __future__ import annotations

import time


class MemoryIdentities:
    def __init__(self) -> None:
        self._owner: dict[tuple[str, str], str] = {}

    async def link(self, issuer: str, subject: str, user_id: str) -> str:
        return self._owner.setdefault((issuer, subject), user_id)

    async def find(self, issuer: str, subject: str) -> str | None:
        return self._owner.get((issuer, subject))

    async def of_user(self, user_id: str) -> list[tuple[str, str]]:
        return sorted(ident for ident, owner in self._owner.items() if owner == user_id)

    async def unlink(self, issuer: str, subject: str, user_id: str) -> bool:
        if self._owner.get((issuer, subject)) != user_id:
            return False
        del self._owner[(issuer, subject)]
        return True

    async def forget_user(self, user_id: str) -> None:
        for ident in [i for i, owner in self._owner.items() if owner == user_id]:
            del self._owner[ident]


class MemoryOnce:
    def __init__(self) -> None:
        self._records: dict[tuple[str, str], tuple[float, bytes]] = {}

    async def put(self, purpose: str, ident: str, value: bytes, ttl: float) -> None:
        now = time.monotonic()
        for key in [k for k, (end, _) in self._records.items() if end <= now]:
            del self._records[key]
        self._records[(purpose, ident)] = (now + ttl, value)

    async def take(self, purpose: str, ident: str) -> bytes | None:
        found = self._records.pop((purpose, ident), None)
        if found is None or found[0] <= time.monotonic():
            return None
        return found[1]
