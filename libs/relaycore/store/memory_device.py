"""Browser sign-in sessions and RFC 8628 device grants in one process's memory, with the Valkey
stores' semantics (``valkey_device.py``): TTLs, user codes claimed once, polls and decisions
atomic (each is one step of the event loop here)."""

from __future__ import annotations

import time

from relaycore.store.base import DeviceGrant, PollOutcome


def _copy(grant: DeviceGrant) -> DeviceGrant:
    return DeviceGrant(**{f: getattr(grant, f) for f in grant.__struct_fields__})


class _Expiring:
    """A dict whose entries vanish ``ttl`` seconds after they were written."""

    def __init__(self) -> None:
        self._data: dict[str, tuple[float, object]] = {}

    def put(self, key: str, value: object, ttl: float) -> None:
        self._sweep()
        self._data[key] = (time.monotonic() + ttl, value)

    def get(self, key: str) -> object | None:
        hit = self._data.get(key)
        if hit is None or hit[0] <= time.monotonic():
            return None
        return hit[1]

    def pop(self, key: str) -> None:
        self._data.pop(key, None)

    def _sweep(self) -> None:
        now = time.monotonic()
        for key in [k for k, (end, _) in self._data.items() if end <= now]:
            del self._data[key]


class MemoryWebSessions:
    def __init__(self) -> None:
        self._sessions = _Expiring()

    async def create(self, key: str, owner: str, ttl: float) -> None:
        self._sessions.put(key, owner, ttl)

    async def owner(self, key: str) -> str | None:
        found = self._sessions.get(key)
        return found if isinstance(found, str) else None

    async def delete(self, key: str) -> None:
        self._sessions.pop(key)


class MemoryDeviceGrants:
    def __init__(self) -> None:
        self._grants = _Expiring()
        self._codes = _Expiring()

    def _get(self, device_key: str) -> DeviceGrant | None:
        found = self._grants.get(device_key)
        return found if isinstance(found, DeviceGrant) else None

    async def create(self, device_key: str, grant: DeviceGrant, ttl: float) -> bool:
        if self._codes.get(grant.user_code) is not None:
            return False
        self._codes.put(grant.user_code, device_key, ttl)
        self._grants.put(device_key, _copy(grant), ttl)
        return True

    async def by_user_code(self, user_code: str) -> tuple[str, DeviceGrant] | None:
        device_key = self._codes.get(user_code)
        if not isinstance(device_key, str):
            return None
        grant = self._get(device_key)
        return None if grant is None else (device_key, _copy(grant))

    async def decide(self, device_key: str, user_id: str, approve: bool, now_ms: int) -> DeviceGrant | None:
        grant = self._get(device_key)
        if grant is None or grant.status != "pending" or now_ms >= grant.expires_ms:
            return None
        grant.status = "approved" if approve else "denied"
        grant.user_id = user_id
        return _copy(grant)

    async def poll(
        self, device_key: str, now_ms: int, slack_ms: int
    ) -> tuple[PollOutcome, DeviceGrant | None]:
        grant = self._get(device_key)
        if grant is None:
            return "unknown", None
        outcome: PollOutcome = grant.status
        if grant.status != "used":
            if now_ms >= grant.expires_ms:
                outcome = "expired"
            elif grant.last_poll_ms and now_ms - grant.last_poll_ms < grant.interval * 1000 - slack_ms:
                grant.interval += 5
                grant.last_poll_ms = now_ms
                outcome = "slow_down"
            else:
                grant.last_poll_ms = now_ms
                if grant.status == "approved":
                    grant.status = "used"
        return outcome, _copy(grant)
