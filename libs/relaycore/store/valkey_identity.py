"""Federated identities and one-time records in Valkey (see ``store.base``).

An identity is the field ``["<issuer>","<subject>"]`` (JSON, so no character is special) of one hash under
the ``{users}`` hash tag, with a per-user set beside it, so a script can change both at once on a
Valkey Cluster too.  One-time records are plain strings with a TTL, taken with GETDEL."""

from __future__ import annotations

import msgspec

from relaycore.keys import Keys
from relaycore.store._guard import guard_methods
from relaycore.store._scripts import load
from relaycore.store.replies import raw, text
from relaycore.valkey import Client


def _field(issuer: str, subject: str) -> str:
    return msgspec.json.encode([issuer, subject]).decode()


def _split(field: bytes | str) -> tuple[str, str]:
    issuer, subject = msgspec.json.decode(raw(field), type=tuple[str, str])
    return issuer, subject


@guard_methods
class ValkeyIdentities:
    def __init__(self, client: Client, keys: Keys) -> None:
        self._r: Client = client
        self._k = keys
        self._link = load(client, "link_identity")
        self._unlink = load(client, "unlink_identity")

    async def link(self, issuer: str, subject: str, user_id: str) -> str:
        owner = await self._link(
            keys=[self._k.identities(), self._k.user_identities(user_id)],
            args=[_field(issuer, subject), user_id],
        )
        return owner.decode() if isinstance(owner, bytes) else str(owner)

    async def find(self, issuer: str, subject: str) -> str | None:
        owner = await self._r.hget(self._k.identities(), _field(issuer, subject))
        return None if owner is None else text(owner)

    async def of_user(self, user_id: str) -> list[tuple[str, str]]:
        return sorted(map(_split, await self._r.smembers(self._k.user_identities(user_id))))

    async def unlink(self, issuer: str, subject: str, user_id: str) -> bool:
        done = await self._unlink(
            keys=[self._k.identities(), self._k.user_identities(user_id)],
            args=[_field(issuer, subject), user_id],
        )
        return bool(done)

    async def forget_user(self, user_id: str) -> None:
        for issuer, subject in await self.of_user(user_id):
            await self.unlink(issuer, subject, user_id)
        await self._r.delete(self._k.user_identities(user_id))


@guard_methods
class ValkeyOnce:
    def __init__(self, client: Client, keys: Keys) -> None:
        self._r: Client = client
        self._k = keys

    async def put(self, purpose: str, ident: str, value: bytes, ttl: float) -> None:
        await self._r.set(self._k.once(purpose, ident), value, px=max(1, int(ttl * 1000)))

    async def take(self, purpose: str, ident: str) -> bytes | None:
        value = await self._r.getdel(self._k.once(purpose, ident))
        return None if value is None else raw(value)
