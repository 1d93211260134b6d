"""deploy/haproxy.cfg is one file for compose and for the native stack: HAProxy itself accepts it
in both forms, the stack and compose use the same file, and its timeouts suit long-polls and
WebSockets."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from pulsar_relay import haproxy

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "deploy" / "haproxy.cfg"
SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def check(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    try:
        binary = haproxy.binary()
    except haproxy.HAProxyError as exc:
        pytest.skip(str(exc))
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("RELAY_", "AUTH_", "INGEST_", "GATEWAY_"))
    }
    return subprocess.run(
        [binary, "-c", "-f", str(CONFIG)], env=clean | env, capture_output=True, text=True, timeout=30
    )


def test_compose_form_is_valid() -> None:
    """With no variables set (compose), HAProxy accepts the file; its only warnings are about the
    service names that Docker's DNS would resolve and this machine cannot."""
    result = check({})
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "[WARNING]" in line]
    assert warnings, "expected unresolvable compose service names outside Docker"
    assert all("could not resolve address" in w for w in warnings), warnings


def test_native_form_is_valid_without_warnings(tmp_path: Path) -> None:
    """With the variables `pulsar-relay stack` sets, HAProxy accepts the file without a warning."""
    addresses = haproxy.Addresses(
        bind="127.0.0.1:18080",
        monitor="127.0.0.1:18405",
        auth="127.0.0.1:18081",
        ingest="127.0.0.1:18082",
        gateways=["127.0.0.1:18083", "127.0.0.1:18084", "127.0.0.1:18085"],
        runtime_socket=tmp_path / "haproxy.sock",
    )
    result = check(haproxy.static_env(addresses))
    assert result.returncode == 0, result.stderr
    assert "[WARNING]" not in result.stderr and "[ALERT]" not in result.stderr, result.stderr


def test_stack_and_compose_use_the_same_file() -> None:
    """The native stack runs deploy/haproxy.cfg, and compose mounts that very file into HAProxy."""
    assert haproxy.find_config() == CONFIG
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    mounts = compose["services"]["haproxy"]["volumes"]
    assert "./haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" in mounts


def timeouts() -> dict[str, float]:
    found: dict[str, float] = {}
    for m in re.finditer(r"^\s*timeout\s+([\w-]+)\s+(\d+)(ms|s|m|h|d)\s*$", CONFIG.read_text(), re.MULTILINE):
        found.setdefault(m[1], int(m[2]) * SECONDS[m[3]])
    return found


def test_timeouts_suit_long_polls_and_websockets() -> None:
    """A 60 s long-poll fits in the client and server timeouts; an idle WebSocket tunnel lives far
    longer than the gateway's 20 s ping interval."""
    t = timeouts()
    assert t["server"] >= 65 and t["client"] >= 65
    assert t["tunnel"] >= 600
