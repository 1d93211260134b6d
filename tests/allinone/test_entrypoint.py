"""deploy/allinone/entrypoint.sh: refuses to start without PULSAR_JWT_SECRET_KEY (and on any setting
the relay would refuse) before it starts anything, and decides whether the bundled Valkey runs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.allinone.container import entrypoint, tool_path, valkey_binary
from tests.e2e.launch import child_env

SECRET = "kLNXY79yhftbGGcs4-pk1PO3qTG9oXHxgKqGS7DzjpfSrw1C"
PRINT_AUTOSTART = ("sh", "-c", 'printf %s "$RELAY_VALKEY_AUTOSTART"')


def base_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The image's environment on this machine, with no relay settings of the caller's."""
    return (
        child_env(
            PATH=tool_path(tmp_path),
            RELAY_VALKEY_SERVER=valkey_binary(),
            RELAY_VALKEY_DIR=str(tmp_path / "var-lib-valkey"),
            RELAY_RUN_DIR=str(tmp_path / "run"),
        )
        | extra
    )


def test_refuses_to_start_without_the_secret(tmp_path: Path) -> None:
    """No PULSAR_JWT_SECRET_KEY: exit 64 with a message naming it, and nothing started or created."""
    marker = tmp_path / "started"
    result = entrypoint(base_env(tmp_path), "touch", str(marker), cwd=tmp_path)
    assert result.returncode == 64, result
    assert "PULSAR_JWT_SECRET_KEY is not set" in result.stderr
    assert "secrets.token_urlsafe" in result.stderr, "the message says how to make one"
    assert not marker.exists()
    assert not (tmp_path / "var-lib-valkey").exists() and not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PULSAR_JWT_SECRET_KEY": ""}, "PULSAR_JWT_SECRET_KEY is not set"),
        ({"PULSAR_JWT_SECRET_KEY": "short"}, "PULSAR_JWT_SECRET_KEY is too weak"),
        ({"PULSAR_LOG_LEVEL": "LOUD"}, "PULSAR_LOG_LEVEL must be one of"),
        ({"PULSAR_BOOTSTRAP_ADMIN_USERNAME": "admin"}, "must be set together"),
        ({"PULSAR_JWT_ALGORITHM": "EdDSA", "PULSAR_JWT_SECRET_KEY": ""}, "PULSAR_JWT_PUBLIC_KEY_FILE"),
        ({"PULSAR_VALKEY_PASSWORD": "pw"}, "are for an external Valkey"),
        ({"RELAY_BUNDLED_VALKEY": "maybe"}, "RELAY_BUNDLED_VALKEY must be auto, yes or no"),
        ({"RELAY_VALKEY_SERVER": "no-such-valkey-server"}, "is not on PATH"),
    ],
)
def test_refuses_settings_the_relay_or_the_bundled_valkey_cannot_run_with(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    """Each refused setting: exit 64 with the reason, and the command never runs."""
    marker = tmp_path / "started"
    result = entrypoint(
        base_env(tmp_path, **({"PULSAR_JWT_SECRET_KEY": SECRET} | env)), "touch", str(marker), cwd=tmp_path
    )
    assert result.returncode == 64, result
    assert message in result.stderr, result.stderr
    assert not marker.exists()


@pytest.mark.parametrize(
    ("env", "bundled"),
    [
        ({}, "true"),
        ({"PULSAR_VALKEY_HOST": "localhost", "PULSAR_VALKEY_PORT": "6380"}, "true"),
        ({"PULSAR_VALKEY_HOST": "valkey.internal"}, "false"),
        ({"PULSAR_VALKEY_HOST": "valkey.internal", "PULSAR_VALKEY_PASSWORD": "pw"}, "false"),
        ({"PULSAR_VALKEY_URL": "redis://valkey.internal:6379/0"}, "false"),
        ({"PULSAR_STORAGE_BACKEND": "memory"}, "false"),
        ({"RELAY_BUNDLED_VALKEY": "no"}, "false"),
        ({"RELAY_BUNDLED_VALKEY": "yes", "PULSAR_VALKEY_URL": "redis://127.0.0.1:6379/0"}, "true"),
    ],
)
def test_bundled_valkey_runs_unless_the_relay_is_pointed_elsewhere(
    tmp_path: Path, env: dict[str, str], bundled: str
) -> None:
    """RELAY_VALKEY_AUTOSTART (supervisord's autostart for Valkey) follows the storage settings."""
    result = entrypoint(
        base_env(tmp_path, **({"PULSAR_JWT_SECRET_KEY": SECRET} | env)), *PRINT_AUTOSTART, cwd=tmp_path
    )
    assert result.returncode == 0, result
    assert result.stdout == bundled
    assert (tmp_path / "var-lib-valkey").is_dir() == (bundled == "true")


def test_without_a_command_it_execs_supervisord_with_the_config_beside_it(tmp_path: Path) -> None:
    """No arguments: the entrypoint becomes `supervisord -c <its directory>/supervisord.conf`."""
    # A stand-in supervisord first on PATH, which only reports how it was called.
    stub = tmp_path / "stub" / "supervisord"
    stub.parent.mkdir()
    stub.write_text('#!/bin/sh\nprintf "%s " "$@"\n')
    stub.chmod(0o755)
    env = base_env(tmp_path, PULSAR_JWT_SECRET_KEY=SECRET)
    env["PATH"] = f"{stub.parent}{os.pathsep}{env['PATH']}"
    result = entrypoint(env, cwd=tmp_path)
    assert result.returncode == 0, result
    conf = Path(__file__).resolve().parents[2] / "deploy" / "allinone" / "supervisord.conf"
    assert result.stdout.split() == ["-c", str(conf)]
