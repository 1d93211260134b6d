"""Topic names placed on chosen fan-out partitions, so a test knows which hash slot (and which
cluster node) each topic's keys live on."""

from __future__ import annotations

from redis.crc import key_slot

from relaycore.keys import Keys, partition_of


def one_per_partition(partitions: int, prefix: str = "topic") -> list[str]:
    """A topic name for each partition 0..partitions-1, in partition order."""
    found: dict[int, str] = {}
    n = 0
    while len(found) < partitions:
        name = f"{prefix}-{n}"
        found.setdefault(partition_of(name, partitions), name)
        n += 1
    return [found[p] for p in range(partitions)]


def slot_of(topic: str, keys: Keys) -> int:
    """The hash slot holding every key of ``topic`` (its partition's slot)."""
    return int(key_slot(keys.log_for(topic).encode()))
