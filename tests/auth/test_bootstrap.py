"""The first admin (CONTRACT decision 14): created or repaired from PULSAR_BOOTSTRAP_ADMIN_* at
start-up, and by hand with ``pulsar-relay users create``."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx

from auth.app import create_app
from auth.passwords import Passwords
from auth.users import ensure_user
from relaycore.config import Settings
from relaycore.store.valkey_backend import ValkeyBackend
from tests.auth.conftest import FAST_HASHING, bearer
from tests.conftest import TEST_SECRET
from tests.support.serve import running

ROOT = Path(__file__).resolve().parents[2]


async def _login(url: str, username: str, password: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url) as client:
        return await client.post("/auth/login", data={"username": username, "password": password})


def _boot(settings_factory: Callable[..., Settings], password: str, email: str = "") -> Settings:
    return settings_factory(
        bootstrap_admin_username="root",
        bootstrap_admin_password=password,
        bootstrap_admin_email=email,
        **FAST_HASHING,
    )


async def test_bootstrap_admin_is_created(settings_factory: Callable[..., Settings]) -> None:
    """With the variables set, the admin exists at start-up with admin, read and write."""
    async with running(create_app(_boot(settings_factory, "first-password", "root@x.org"))) as url:
        r = await _login(url, "root", "first-password")
        assert r.status_code == 200
        async with httpx.AsyncClient(base_url=url) as client:
            me = (await client.get("/auth/me", headers=bearer(r.json()["access_token"]))).json()
        assert me["permissions"] == ["admin", "read", "write"]
        assert me["email"] == "root@x.org"


async def test_bootstrap_admin_is_repaired_on_restart(settings_factory: Callable[..., Settings]) -> None:
    """A restart with a new password updates it, restores the permissions and reactivates the
    account, keeping its user id."""
    async with running(create_app(_boot(settings_factory, "first-password"))) as url:
        token = (await _login(url, "root", "first-password")).json()["access_token"]
        async with httpx.AsyncClient(base_url=url) as client:
            me = (await client.get("/auth/me", headers=bearer(token))).json()
            await client.post(
                "/auth/register", json={"username": "other", "password": "password123"}, headers=bearer(token)
            )
            other_token = (
                await client.post("/auth/login", data={"username": "other", "password": "password123"})
            ).json()
    backend = ValkeyBackend(_boot(settings_factory, "x" * 8))
    try:
        user = await backend.users.get(me["user_id"])
        assert user is not None
        user.permissions = ["read"]
        user.is_active = False
        await backend.users.save(user)
    finally:
        await backend.close()
    async with running(create_app(_boot(settings_factory, "second-password"))) as url:
        assert (await _login(url, "root", "first-password")).status_code == 401
        r = await _login(url, "root", "second-password")
        assert r.status_code == 200
        async with httpx.AsyncClient(base_url=url) as client:
            again = (await client.get("/auth/me", headers=bearer(r.json()["access_token"]))).json()
        assert again["user_id"] == me["user_id"]
        assert again["permissions"] == ["admin", "read", "write"]
        assert again["is_active"] is True
        assert other_token["token_type"] == "bearer"


async def test_no_bootstrap_without_the_variables(settings_factory: Callable[..., Settings]) -> None:
    """Without the variables no user is created."""
    async with running(create_app(settings_factory(**FAST_HASHING))) as url:
        assert (await _login(url, "admin", "admin1234")).status_code == 401
    backend = ValkeyBackend(settings_factory())
    try:
        assert await backend.users.list() == []
    finally:
        await backend.close()


async def test_ensure_user_is_safe_in_parallel(settings_factory: Callable[..., Settings]) -> None:
    """Several replicas bootstrapping the same admin at once end with one user."""
    backend = ValkeyBackend(settings_factory())
    hasher = Passwords(time_cost=1, memory_kib=64)
    try:
        results = await asyncio.gather(
            *(
                ensure_user(
                    backend,
                    username="root",
                    password="password123",
                    email=None,
                    permissions=["admin"],
                    passwords=hasher,
                )
                for _ in range(8)
            )
        )
        assert len({user.user_id for user, _ in results}) == 1
        assert sum(created for _, created in results) == 1
        assert len(await backend.users.list()) == 1
    finally:
        await backend.close()


def _cli(valkey_url: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PULSAR_VALKEY_URL": valkey_url,
        "PULSAR_JWT_SECRET_KEY": TEST_SECRET,
        "PYTHONPATH": os.pathsep.join(str(ROOT / p) for p in ("libs", "services", ".")),
    }
    return subprocess.run(
        [sys.executable, "-m", "pulsar_relay", "users", "create", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_cli_users_create(
    valkey_url: str, settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    """`pulsar-relay users create` makes a user that can log in over HTTP; a second run updates it."""
    args = [
        "--username",
        "bob",
        "--password",
        "bob-password",
        "--permission",
        "write",
        "--permission",
        "read",
    ]
    done = await asyncio.to_thread(_cli, valkey_url, tmp_path, *args, "--email", "bob@x.org")
    assert done.returncode == 0, done.stderr
    assert "created user bob" in done.stdout
    async with running(create_app(settings_factory(**FAST_HASHING))) as url:
        r = await _login(url, "bob", "bob-password")
        assert r.status_code == 200
        async with httpx.AsyncClient(base_url=url) as client:
            me = (await client.get("/auth/me", headers=bearer(r.json()["access_token"]))).json()
        assert me["permissions"] == ["write", "read"]
        assert me["email"] == "bob@x.org"
        done = await asyncio.to_thread(
            _cli, valkey_url, tmp_path, "--username", "bob", "--password", "new-password"
        )
        assert done.returncode == 0, done.stderr
        assert "updated user bob" in done.stdout
        assert (await _login(url, "bob", "bob-password")).status_code == 401
        assert (await _login(url, "bob", "new-password")).status_code == 200


async def test_cli_reports_configuration_errors(valkey_url: str, tmp_path: Path) -> None:
    """A bad setting stops the CLI with exit status 2 and a message naming it."""
    (tmp_path / "config.yaml").write_text("storage:\n  backend: floppy\n")
    done = await asyncio.to_thread(
        _cli, valkey_url, tmp_path, "--username", "bob", "--password", "bob-password"
    )
    assert done.returncode == 2
    assert "storage.backend" in done.stderr
