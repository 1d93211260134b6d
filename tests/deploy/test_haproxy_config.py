"""deploy/haproxy.cfg is one file for compose and for the native stack: HAProxy itself accepts it
in both forms, the stack and compose use the same file, and its timeouts suit long-polls and
WebSockets."""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
import ssl
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pulsar_relay import haproxy
from pulsar_relay.procs import Child, ProcessGroup, free_port

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
    """HAProxy accepts the compose form; its only warnings are service names only Docker's DNS resolves."""
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
    """A 60 s long-poll fits the client/server timeouts and idle WebSocket tunnels outlive the pings."""
    t = timeouts()
    assert t["server"] >= 65 and t["client"] >= 65
    assert t["tunnel"] >= 600


def self_signed(path: Path) -> Path:
    """A PEM with a certificate for 127.0.0.1 and its key, as HAProxy's `crt` wants it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "relay.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.write_bytes(pem)
    return path


def test_tls_listener_answers_in_the_services_error_shape(tmp_path: Path) -> None:
    """With RELAY_TLS_CERT HAProxy serves TLS, and its 503 is the services' {"detail": ...} JSON."""
    dead = [f"127.0.0.1:{free_port()}" for _ in range(4)]
    tls_port = free_port()
    addresses = haproxy.Addresses(
        bind=f"127.0.0.1:{free_port()}",
        monitor=f"127.0.0.1:{free_port()}",
        auth=dead[0],
        ingest=dead[1],
        gateways=dead[2:],
        runtime_socket=tmp_path / "haproxy.sock",
    )
    env = haproxy.static_env(addresses) | {
        "RELAY_TLS_CERT": str(self_signed(tmp_path / "relay.pem")),
        "RELAY_TLS_BIND": f"127.0.0.1:{tls_port}",
    }
    assert check(env).returncode == 0
    group = ProcessGroup()
    lb: Child = group.start(haproxy.child(CONFIG, {**os.environ, **env}, tmp_path / "haproxy.log"))
    try:
        context = ssl.create_default_context(cafile=str(tmp_path / "relay.pem"))
        # HAProxy retries the dead servers (about a second apart) before it answers 503.
        with httpx.Client(verify=context, timeout=60) as client:

            def answered() -> bool:
                try:
                    client.get(f"https://127.0.0.1:{tls_port}/health")
                except httpx.TransportError:
                    return False
                return True

            group.wait_until(lb, answered, 30, "TLS listener")
            r = client.get(f"https://127.0.0.1:{tls_port}/api/v1/messages")
        assert r.status_code == 503
        assert r.headers["content-type"] == "application/json"
        assert r.json() == {"detail": "Service unavailable, retry later"}
    finally:
        group.stop()
