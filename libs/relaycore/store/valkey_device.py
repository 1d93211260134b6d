"""Browser sign-in sessions and RFC 8628 device grants in Valkey, under the ``{auth}`` hash tag
(a grant and its user code share a slot).  Every key carries a TTL: nothing here outlives its use."""

from __future__ import annotations

from redis.typing import EncodableT, FieldT

from relaycore.keys import Keys
from relaycore.store._guard import guard_methods
from relaycore.store._scripts import load
from relaycore.store.base import DeviceGrant, PollOutcome
from relaycore.store.replies import text
from relaycore.valkey import Client


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


@guard_methods
class ValkeyWebSessions:
    def __init__(self, client: Client, keys: Keys) -> None:
        self._r: Client = client
        self._k = keys

    async def create(self, key: str, owner: str, ttl: float) -> None:
        await self._r.set(self._k.web_session(key), owner, px=_ms(ttl))

    async def owner(self, key: str) -> str | None:
        raw = await self._r.get(self._k.web_session(key))
        return None if raw is None else text(raw)

    async def delete(self, key: str) -> None:
        await self._r.delete(self._k.web_session(key))


def _fields(grant: DeviceGrant) -> dict[FieldT, EncodableT]:
    return {
        "user_code": grant.user_code,
        "client_hint": grant.client_hint,
        "scope": grant.scope,
        "pair": "1" if grant.pair else "0",
        "expires_ms": str(grant.expires_ms),
        "interval": str(grant.interval),
        "status": grant.status,
        "user_id": grant.user_id,
        "last_poll_ms": str(grant.last_poll_ms),
    }


def _grant(flat: list[bytes] | dict[bytes, bytes] | dict[bytes | str, bytes | str]) -> DeviceGrant | None:
    if isinstance(flat, list):
        flat = dict(zip(flat[::2], flat[1::2], strict=True))
    if not flat:
        return None
    f = {text(k): text(v) for k, v in flat.items()}
    return DeviceGrant(
        user_code=f["user_code"],
        client_hint=f["client_hint"],
        scope=f["scope"],
        pair=f["pair"] == "1",
        expires_ms=int(f["expires_ms"]),
        interval=int(f["interval"]),
        status=f["status"],  # type: ignore[arg-type]  # written only by this module and its scripts
        user_id=f["user_id"],
        last_poll_ms=int(f["last_poll_ms"]),
    )


@guard_methods
class ValkeyDeviceGrants:
    def __init__(self, client: Client, keys: Keys) -> None:
        self._r: Client = client
        self._k = keys
        self._poll = load(client, "device_poll")
        self._decide = load(client, "device_decide")

    async def create(self, device_key: str, grant: DeviceGrant, ttl: float) -> bool:
        # Claim the user code first: a grant is never stored under a code another grant holds.
        if not await self._r.set(self._k.user_code(grant.user_code), device_key, px=_ms(ttl), nx=True):
            return False
        key = self._k.device_grant(device_key)
        async with self._r.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=_fields(grant))
            pipe.pexpire(key, _ms(ttl))
            await pipe.execute()
        return True

    async def by_user_code(self, user_code: str) -> tuple[str, DeviceGrant] | None:
        device_key = await self._r.get(self._k.user_code(user_code))
        if device_key is None:
            return None
        grant = _grant(await self._r.hgetall(self._k.device_grant(text(device_key))))
        return None if grant is None else (text(device_key), grant)

    async def decide(self, device_key: str, user_id: str, approve: bool, now_ms: int) -> DeviceGrant | None:
        status = "approved" if approve else "denied"
        reply = await self._decide(
            keys=[self._k.device_grant(device_key)], args=[user_id, status, str(now_ms)]
        )
        return None if reply is None else _grant(reply)

    async def poll(
        self, device_key: str, now_ms: int, slack_ms: int
    ) -> tuple[PollOutcome, DeviceGrant | None]:
        reply = await self._poll(keys=[self._k.device_grant(device_key)], args=[str(now_ms), str(slack_ms)])
        outcome: PollOutcome = reply[0].decode()
        return outcome, _grant(reply[1:])
