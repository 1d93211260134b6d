"""The one-container image's supervisor configuration, run natively: supervisord starts Valkey and
``pulsar-relay serve all`` from deploy/allinone, the seed README's walkthrough passes against it,
a SIGKILLed relay is restarted with nothing lost, SIGTERM stops every process, and the data volume
carries everything into the next start."""

from __future__ import annotations

import secrets
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import redis

from relaycore.keys import Keys
from tests.allinone.container import OneContainer, alive
from tests.e2e.walkthrough import bearer, login, walkthrough

pytestmark = pytest.mark.slow

SECRET = secrets.token_urlsafe(48)
ADMIN = ("admin", secrets.token_urlsafe(12))


def admin_env() -> dict[str, str]:
    return {
        "PULSAR_JWT_SECRET_KEY": SECRET,
        "PULSAR_BOOTSTRAP_ADMIN_USERNAME": ADMIN[0],
        "PULSAR_BOOTSTRAP_ADMIN_PASSWORD": ADMIN[1],
        "PULSAR_LOG_LEVEL": "WARNING",
    }


async def publish_some(base_url: str, topic: str, count: int) -> list[str]:
    """Creates ``topic`` as the admin and publishes ``count`` messages; their ids, oldest first."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        admin = bearer(await login(http, *ADMIN))
        r = await http.post("/api/v1/topics", json={"topic_name": topic, "is_public": False}, headers=admin)
        assert r.status_code == 201, r.text
        ids = []
        for n in range(count):
            r = await http.post("/api/v1/messages", json={"topic": topic, "payload": {"n": n}}, headers=admin)
            assert r.status_code == 201, r.text
            ids.append(r.json()["message_id"])
        return ids


async def still_there(base_url: str, topic: str, ids: list[str], user: tuple[str, str]) -> None:
    """``user`` and the admin log in; history and a long-poll since the first id return ``ids``."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        await login(http, *user)
        admin = bearer(await login(http, *ADMIN))
        r = await http.get(f"/api/v1/topics/{topic}/messages", params={"order": "asc"}, headers=admin)
        assert r.status_code == 200, r.text
        assert [m["message_id"] for m in r.json()["messages"]] == ids
        r = await http.post(
            "/messages/poll", json={"topics": [topic], "since": {topic: ids[0]}, "timeout": 5}, headers=admin
        )
        assert r.status_code == 200, r.text
        assert [m["message_id"] for m in r.json()["messages"]] == ids[1:]


async def test_walkthrough_then_relay_killed_restarted_without_loss_then_clean_stop(tmp_path: Path) -> None:
    """Walkthrough passes; a SIGKILLed relay returns with users and messages; SIGTERM ends every process."""
    volume = tmp_path / "var-lib-valkey"
    box = OneContainer(tmp_path, volume, **admin_env())
    try:
        box.start()
        assert box.states() == {"relay": "RUNNING", "valkey": "RUNNING"}, box.states()
        suffix = await walkthrough(box.url, ADMIN)
        topic = f"durable-{suffix}"
        ids = await publish_some(box.url, topic, 3)
        producer = (f"producer-{suffix}", "secure-password")

        valkey_pid, relay_pid = box.pid("valkey"), box.pid("relay")
        new_relay = box.kill("relay")
        assert new_relay != relay_pid
        assert box.pid("valkey") == valkey_pid, "killing the relay must not touch Valkey"
        await still_there(box.url, topic, ids, producer)

        children = {box.pid("valkey"), box.pid("relay")}
        assert box.stop() == 0, box.output()
        assert not [pid for pid in children | {relay_pid} if alive(pid)], box.output()
        # Each exited by itself on SIGTERM, not killed when its stopwaitsecs ran out.
        for program in ("relay", "valkey"):
            assert f"stopped: {program} (exit status 0)" in box.output(), box.output()
        assert (volume / "appendonlydir").is_dir()
    finally:
        box.close()

    # `docker stop` then `docker start`: new processes, the same volume.
    again = OneContainer(tmp_path, volume, **admin_env())
    try:
        again.start()
        await still_there(again.url, topic, ids, producer)
        assert again.stop() == 0, again.output()
    finally:
        again.close()


@pytest.mark.parametrize("how", ["url", "host-port"])
async def test_external_valkey_keeps_the_bundled_one_off(tmp_path: Path, valkey_url: str, how: str) -> None:
    """Pointed at another Valkey (by URL, or HOST/PORT and RELAY_BUNDLED_VALKEY=no) only the relay runs."""
    external = urlsplit(valkey_url)
    assert external.port is not None
    if how == "url":
        env = {"PULSAR_VALKEY_URL": valkey_url}
    else:
        env = {
            "PULSAR_VALKEY_HOST": str(external.hostname),
            "PULSAR_VALKEY_PORT": str(external.port),
            "RELAY_BUNDLED_VALKEY": "no",
        }
    volume = tmp_path / "var-lib-valkey"
    box = OneContainer(tmp_path, volume, **admin_env(), **env)
    try:
        box.start()
        assert box.states() == {"relay": "RUNNING", "valkey": "STOPPED"}, box.states()
        async with httpx.AsyncClient(base_url=box.url, timeout=30) as http:
            me = await http.get("/auth/me", headers=bearer(await login(http, *ADMIN)))
            assert me.json()["username"] == ADMIN[0], me.text
        assert box.stop() == 0, box.output()
    finally:
        box.close()
    assert not volume.exists(), "the bundled Valkey's volume was used"
    client = redis.Redis.from_url(valkey_url, decode_responses=True)
    try:
        # The bootstrap admin was written to the external Valkey.
        assert client.hexists(Keys().usernames(), ADMIN[0])
    finally:
        client.close()
