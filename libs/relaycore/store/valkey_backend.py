"""All Valkey-backed stores behind one object, sharing one client."""

from __future__ import annotations

from relaycore.config import Settings
from relaycore.keys import Keys
from relaycore.store.valkey_device import ValkeyDeviceGrants, ValkeyWebSessions
from relaycore.store.valkey_fanout import ValkeyFanout
from relaycore.store.valkey_identity import ValkeyIdentities, ValkeyOnce
from relaycore.store.valkey_messages import ValkeyMessages
from relaycore.store.valkey_sessions import ValkeySessions
from relaycore.store.valkey_state import ValkeyAcks, ValkeyBus, ValkeyCounters, ValkeyGateways, ValkeyThrottle
from relaycore.store.valkey_topics import ValkeyTopics
from relaycore.store.valkey_users import ValkeyUsers
from relaycore.valkey import Client, connect, guarded


class ValkeyBackend:
    def __init__(self, settings: Settings, client: Client | None = None) -> None:
        self.client = client or connect(settings)
        keys = Keys(settings.key_prefix, settings.fanout_partitions)
        self.keys = keys
        self.users = ValkeyUsers(self.client, keys)
        self.topics = ValkeyTopics(self.client, keys)
        self.messages = ValkeyMessages(self.client, keys, settings)
        self.fanout = ValkeyFanout(self.client, keys)
        self.gateways = ValkeyGateways(self.client, keys, settings.gateway_expiry)
        self.acks = ValkeyAcks(self.client, keys)
        self.counters = ValkeyCounters(self.client, keys)
        self.bus = ValkeyBus(self.client, keys)
        self.sessions = ValkeySessions(self.client, keys)
        self.throttle = ValkeyThrottle(self.client, keys)
        self.web_sessions = ValkeyWebSessions(self.client, keys)
        self.device_grants = ValkeyDeviceGrants(self.client, keys)
        self.identities = ValkeyIdentities(self.client, keys)
        self.once = ValkeyOnce(self.client, keys)

    async def ping(self) -> None:
        async with guarded():
            await self.client.ping()

    async def close(self) -> None:
        await self.client.aclose()
