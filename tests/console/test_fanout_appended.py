"""``FanoutLog.appended``, the deployment-wide publish counter behind the console's publish rate,
on both backends: it counts every appended message and does not shrink when the logs are trimmed."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from relaycore.keys import Keys
from relaycore.models import NewMessage, User, iso_z, utcnow
from relaycore.store.base import Backend
from relaycore.store.memory import MemoryBackend
from relaycore.store.valkey_backend import ValkeyBackend
from tests.conftest import make_settings

ALICE = User(user_id="u-alice", username="alice", permissions=["read", "write"])
MAXLEN = 16


@pytest.fixture(params=["memory", "valkey"])
async def small_logs(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    """Each backend, empty, with fan-out logs trimmed to a few entries."""
    if request.param == "memory":
        yield MemoryBackend(make_settings(fanout_log_maxlen=MAXLEN))
        return
    backend = ValkeyBackend(make_settings(request.getfixturevalue("valkey_url"), fanout_log_maxlen=MAXLEN))
    yield backend
    await backend.close()


async def publish(backend: Backend, topic: str, count: int) -> None:
    messages = [
        NewMessage(topic=topic, payload=b'{"n":%d}' % n, timestamp=iso_z(utcnow())) for n in range(count)
    ]
    await backend.messages.publish(
        messages,
        user=ALICE,
        kind="bulk",
        idempotency_key=None,
        idempotency_ttl=600,
        topic_ids=[uuid.uuid4().hex for _ in messages],
    )


async def test_appended_counts_every_publish_across_partitions(small_logs: Backend) -> None:
    """Zero on an empty store, then one per message, whichever partition its topic maps to."""
    assert await small_logs.fanout.appended() == 0
    for n in range(6):
        await publish(small_logs, f"topic-{n}", 2)
    assert await small_logs.fanout.appended() == 12


async def test_appended_survives_trimming(small_logs: Backend) -> None:
    """A log trimmed to its maximum length still counts what was trimmed away."""
    for _ in range(10):
        await publish(small_logs, "busy", 50)
    assert await small_logs.fanout.appended() == 500
    assert await small_logs.messages.length("busy") == 500
    if isinstance(small_logs, ValkeyBackend):  # the log itself really was trimmed
        settings = make_settings()
        keys = Keys(settings.key_prefix, settings.fanout_partitions)
        assert await small_logs.client.xlen(keys.log_for("busy")) < 500
