"""Users in Valkey hashes under the ``{users}`` hash tag; usernames claimed atomically."""

from __future__ import annotations

import msgspec

from relaycore.errors import Conflict
from relaycore.keys import Keys
from relaycore.models import User
from relaycore.store._guard import guard_methods
from relaycore.store._scripts import load
from relaycore.store.replies import text
from relaycore.valkey import Client

_perms = msgspec.json.Decoder(list[str])


def _encode(user: User) -> dict[str, str]:
    fields = {
        "user_id": user.user_id,
        "username": user.username,
        "hashed_password": user.hashed_password,
        "permissions": msgspec.json.encode(user.permissions).decode(),
        "is_active": "1" if user.is_active else "0",
        "created_at": user.created_at,
    }
    if user.email is not None:
        fields["email"] = user.email
    return fields


def _decode(fields: dict[bytes, bytes] | dict[bytes | str, bytes | str]) -> User | None:
    if not fields:
        return None
    f = {text(k): text(v) for k, v in fields.items()}
    return User(
        user_id=f["user_id"],
        username=f["username"],
        email=f.get("email"),
        hashed_password=f.get("hashed_password", ""),
        permissions=_perms.decode(f.get("permissions", "[]")),  # type: ignore[arg-type]
        is_active=f.get("is_active", "1") == "1",
        created_at=f.get("created_at", ""),
    )


@guard_methods
class ValkeyUsers:
    def __init__(self, client: Client, keys: Keys) -> None:
        self._r: Client = client
        self._k = keys
        self._create = load(client, "create_user")
        self._save = load(client, "save_user")  # a script, not WATCH/MULTI: the same on a cluster

    async def create(self, user: User) -> None:
        flat = [x for kv in _encode(user).items() for x in kv]
        ok = await self._create(
            keys=[self._k.usernames(), self._k.user(user.user_id)], args=[user.username, user.user_id, *flat]
        )
        if not ok:
            raise Conflict(f"Username '{user.username}' already exists")

    async def get(self, user_id: str) -> User | None:
        return _decode(await self._r.hgetall(self._k.user(user_id)))

    async def get_by_name(self, username: str) -> User | None:
        user_id = await self._r.hget(self._k.usernames(), username)
        return None if user_id is None else await self.get(text(user_id))

    async def list(self) -> list[User]:
        ids = await self._r.hvals(self._k.usernames())
        async with self._r.pipeline(transaction=False) as pipe:
            for user_id in ids:
                pipe.hgetall(self._k.user(text(user_id)))
            rows = await pipe.execute()
        users = [u for u in map(_decode, rows) if u is not None]
        return sorted(users, key=lambda u: (u.created_at, u.username))

    async def save(self, user: User) -> bool:
        flat = [x for kv in _encode(user).items() for x in kv]
        key = self._k.user(user.user_id)
        return bool(await self._save(keys=[key], args=["1" if user.email is None else "0", *flat]))

    async def delete(self, user_id: str) -> bool:
        user = await self.get(user_id)
        if user is None:
            return False
        async with self._r.pipeline(transaction=True) as pipe:
            pipe.delete(self._k.user(user_id))
            pipe.hdel(self._k.usernames(), user.username)
            await pipe.execute()
        return True
