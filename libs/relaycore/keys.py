"""Every Valkey key name, and nothing else.  The only module that spells a key.

Layout (``relay`` is ``settings.key_prefix``; ``{tN}`` is partition N's hash tag)::

    relay:{users}:user:<user_id>          hash    user record
    relay:{users}:names                   hash    username -> user_id (HSETNX = atomic claim)
    relay:{sessions}:s:<session_id>       hash    a refresh-token session (user, hint, times, secret hash)
    relay:{sessions}:s:<session_id>:old   list    its replaced secret hashes, newest first (capped)
    relay:{sessions}:u:<user_id>          set     the user's session ids (pruned lazily)
    relay:{users}:identities              hash    JSON [issuer, subject] -> user_id (OIDC identities)
    relay:{users}:identities:<user_id>    set     that user's [issuer, subject] entries
    relay:once:<purpose>:<id>             string  a one-time record (an OIDC sign-in's state), TTL
    relay:{tN}:topic:<name>               hash    topic record (owner_id, is_public, ...)
    relay:{tN}:grants:<name>              set     user ids granted read access
    relay:{tN}:stream:<name>              stream  the topic's messages (history, since, paging)
    relay:{tN}:log                        stream  partition N's fan-out log, tailed by gateways
    relay:{tN}:topics                     set     topic names in partition N
    relay:{tN}:owned:<user_id>            set     names of topics in partition N owned by the user
    relay:{tN}:granted:<user_id>          set     names of topics in partition N granted to the user
    relay:idem:<user_id>:<key>            string  a publish result kept for Idempotency-Key repeats
    relay:{tN}:idem:<user_id>:<key>       string  the same on a Valkey Cluster (in the partition's slot)
    relay:{acks}:ack:<user_id>:<client>   hash    topic -> newest acknowledged message id
    relay:gateways                        zset    gateway id -> last heartbeat (ms)
    relay:gw:<gateway_id>:stats           hash    that gateway's connection / waiter counts
    relay:ratelimit:<scope>:<who>         string  attempt counter (device codes)
    relay:{login}:f:<scope>:<who>         string  failed sign-in attempts in the current window
    relay:{login}:p:<scope>:<who>         string  sign-in attempts in flight
    relay:{auth}:web:<sha256>             string  a browser sign-in session -> user id (with TTL)
    relay:{auth}:device:<sha256>          hash    a device-flow grant, by its device code's hash
    relay:{auth}:usercode:<CODE>          string  user code -> device-code hash (with TTL)
    relay:invalidate                      pubsub  "user:<id>" / "topic:<name>" / "session:<id>" invalidations

Every key a publish touches shares its partition's hash tag, so the publish script runs in one
slot on a Valkey Cluster.  Tags are chosen so partitions spread evenly over the 16384 slots.
"""

from __future__ import annotations

import zlib
from functools import cache

from redis.crc import key_slot

SLOTS = 16384


def partition_of(topic: str, partitions: int) -> int:
    """Stable topic -> partition map (CRC32 of the UTF-8 name)."""
    return zlib.crc32(topic.encode()) % partitions


@cache
def partition_tags(partitions: int) -> tuple[str, ...]:
    """One hash tag per partition, each landing in its own equal share of the slot space."""
    tags: list[str] = []
    for i in range(partitions):
        lo, hi = i * SLOTS // partitions, (i + 1) * SLOTS // partitions
        n = 0
        while True:
            tag = f"t{i}.{n}" if n else f"t{i}"
            if lo <= key_slot(f"{{{tag}}}".encode()) < hi:
                tags.append(tag)
                break
            n += 1
    return tuple(tags)


class Keys:
    """Key builder bound to a prefix and a partition count."""

    def __init__(self, prefix: str = "relay", partitions: int = 16) -> None:
        self.prefix = prefix
        self.partitions = partitions
        self._tags = partition_tags(partitions)
        self.invalidate_channel = f"{prefix}:invalidate"
        self.gateways = f"{prefix}:gateways"

    # --- users
    def user(self, user_id: str) -> str:
        return f"{self.prefix}:{{users}}:user:{user_id}"

    def usernames(self) -> str:
        return f"{self.prefix}:{{users}}:names"

    # --- sign-in sessions (one hash tag: the rotation script touches a session's two keys)
    def session(self, session_id: str) -> str:
        return f"{self.prefix}:{{sessions}}:s:{session_id}"

    def session_old(self, session_id: str) -> str:
        return f"{self.prefix}:{{sessions}}:s:{session_id}:old"

    def user_sessions(self, user_id: str) -> str:
        return f"{self.prefix}:{{sessions}}:u:{user_id}"

    def identities(self) -> str:
        return f"{self.prefix}:{{users}}:identities"

    def user_identities(self, user_id: str) -> str:
        return f"{self.prefix}:{{users}}:identities:{user_id}"

    # --- partitions
    def partition(self, topic: str) -> int:
        return partition_of(topic, self.partitions)

    def _p(self, topic: str) -> str:
        return f"{self.prefix}:{{{self._tags[self.partition(topic)]}}}"

    def _n(self, partition: int) -> str:
        return f"{self.prefix}:{{{self._tags[partition]}}}"

    def topic(self, name: str) -> str:
        return f"{self._p(name)}:topic:{name}"

    def grants(self, name: str) -> str:
        return f"{self._p(name)}:grants:{name}"

    def stream(self, name: str) -> str:
        return f"{self._p(name)}:stream:{name}"

    def log(self, partition: int) -> str:
        return f"{self._n(partition)}:log"

    def log_for(self, topic: str) -> str:
        return self.log(self.partition(topic))

    def topic_index(self, partition: int) -> str:
        return f"{self._n(partition)}:topics"

    def owned(self, partition: int, user_id: str) -> str:
        return f"{self._n(partition)}:owned:{user_id}"

    def granted(self, partition: int, user_id: str) -> str:
        return f"{self._n(partition)}:granted:{user_id}"

    def idempotency(self, topic: str, user_id: str, key: str) -> str:
        return f"{self._p(topic)}:idem:{user_id}:{key}"

    def user_idempotency(self, user_id: str, key: str) -> str:
        return f"{self.prefix}:idem:{user_id}:{key}"

    # --- gateway state
    def acks(self, user_id: str, client_id: str) -> str:
        return f"{self.prefix}:{{acks}}:ack:{user_id}:{client_id}"

    def gateway_stats(self, gateway_id: str) -> str:
        return f"{self.prefix}:gw:{gateway_id}:stats"

    def gateway_group(self, gateway_id: str) -> str:
        return f"gw:{gateway_id}"

    # --- browser sessions and the device flow (one hash tag: a grant and its user code together)
    def web_session(self, digest: str) -> str:
        return f"{self.prefix}:{{auth}}:web:{digest}"

    def device_grant(self, digest: str) -> str:
        return f"{self.prefix}:{{auth}}:device:{digest}"

    def user_code(self, code: str) -> str:
        return f"{self.prefix}:{{auth}}:usercode:{code}"

    # --- misc
    def once(self, purpose: str, ident: str) -> str:
        return f"{self.prefix}:once:{purpose}:{ident}"

    def failures(self, key: str) -> str:
        return f"{self.prefix}:{{login}}:f:{key}"

    def in_flight(self, key: str) -> str:
        return f"{self.prefix}:{{login}}:p:{key}"

    def rate_limit(self, scope: str, who: str) -> str:
        return f"{self.prefix}:ratelimit:{scope}:{who}"
