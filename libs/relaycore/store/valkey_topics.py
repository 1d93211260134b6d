"""Topics, grants and per-user topic indexes in Valkey; every key of a topic shares its
partition's hash tag, so each change is one atomic script."""

from __future__ import annotations

from relaycore.errors import Conflict
from relaycore.keys import Keys
from relaycore.models import Topic
from relaycore.store._guard import guard_methods
from relaycore.store._scripts import load
from relaycore.valkey import Client


def _decode(raw: dict[bytes, bytes], grants: set[bytes]) -> Topic | None:
    if not raw or b"owner_id" not in raw:
        return None
    f = {k.decode(): v.decode() for k, v in raw.items()}
    return Topic(
        topic_id=f.get("topic_id", ""),
        topic_name=f["topic_name"],
        owner_id=f["owner_id"],
        is_public=f.get("is_public") == "1",
        description=f.get("description") or None,
        created_at=f.get("created_at", ""),
        allowed_user_ids=sorted(g.decode() for g in grants),
    )


@guard_methods
class ValkeyTopics:
    def __init__(self, client: Client, keys: Keys) -> None:
        self._r: Client = client
        self._k = keys
        self._create = load(client, "create_topic")
        self._delete = load(client, "delete_topic")
        self._grant = load(client, "grant")
        self._update = load(client, "update_topic")  # a script, not WATCH/MULTI: the same on a cluster

    def _partition_prefix(self, name: str) -> str:
        return self._k.topic(name).rsplit(":topic:", 1)[0]

    async def create(self, topic: Topic) -> None:
        p = self._k.partition(topic.topic_name)
        ok = await self._create(
            keys=[self._k.topic(topic.topic_name), self._k.owned(p, topic.owner_id), self._k.topic_index(p)],
            args=[
                topic.topic_name,
                topic.topic_id,
                topic.owner_id,
                "1" if topic.is_public else "0",
                topic.description or "",
                topic.created_at,
                self._k.invalidate_channel,
            ],
        )
        if not ok:
            raise Conflict(f"Topic '{topic.topic_name}' already exists")

    async def get(self, name: str) -> Topic | None:
        async with self._r.pipeline(transaction=False) as pipe:
            pipe.hgetall(self._k.topic(name))
            pipe.smembers(self._k.grants(name))
            raw, grants = await pipe.execute()
        return _decode(raw, grants)

    async def update(self, name: str, *, is_public: bool | None, description: str | None) -> Topic | None:
        fields: list[str] = []
        if is_public is not None:
            fields += ["is_public", "1" if is_public else "0"]
        if description is not None:
            fields += ["description", description]
        found = await self._update(
            keys=[self._k.topic(name)], args=[name, self._k.invalidate_channel, *fields]
        )
        if not found:
            return None
        return await self.get(name)

    async def delete(self, name: str) -> bool:
        p = self._k.partition(name)
        done = await self._delete(
            keys=[self._k.topic(name), self._k.stream(name), self._k.grants(name), self._k.topic_index(p)],
            args=[name, self._partition_prefix(name), self._k.invalidate_channel],
        )
        return bool(done)

    async def _change_grant(self, name: str, user_id: str, grant: bool) -> bool:
        p = self._k.partition(name)
        changed = await self._grant(
            keys=[self._k.topic(name), self._k.grants(name), self._k.granted(p, user_id)],
            args=[name, user_id, "1" if grant else "0", self._k.invalidate_channel],
        )
        return bool(changed == 1)

    async def grant(self, name: str, user_id: str) -> bool:
        return await self._change_grant(name, user_id, True)

    async def revoke(self, name: str, user_id: str) -> bool:
        return await self._change_grant(name, user_id, False)

    async def names_for(self, user_id: str) -> tuple[list[str], list[str]]:
        n = self._k.partitions
        async with self._r.pipeline(transaction=False) as pipe:
            for p in range(n):
                pipe.smembers(self._k.owned(p, user_id))
            for p in range(n):
                pipe.smembers(self._k.granted(p, user_id))
            rows = await pipe.execute()
        owned = sorted(x.decode() for s in rows[:n] for x in s)
        granted = sorted(x.decode() for s in rows[n:] for x in s)
        return owned, granted

    async def all_names(self) -> list[str]:
        async with self._r.pipeline(transaction=False) as pipe:
            for p in range(self._k.partitions):
                pipe.smembers(self._k.topic_index(p))
            rows = await pipe.execute()
        return sorted(x.decode() for s in rows for x in s)

    async def forget_user(self, user_id: str) -> None:
        _, granted = await self.names_for(user_id)
        for name in granted:
            await self.revoke(name, user_id)
