"""deploy/compose.yaml, checked by a real Compose implementation without a Docker engine:
`docker compose config` (the v2 plugin) when present, else Debian's `docker-compose config` (v1),
which both validate the file against the compose schema and interpolate the environment."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "compose.yaml"
SECRET = "IKEMh0iOO_GWCWAv9drqjw70Ze9_NU9ReCcBgteWpMWcDZQI"
RELAY_SERVICES = ("auth", "ingest", "gateway")


def compose_cli() -> list[str]:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.skip("no Compose CLI: apt-get install docker-compose (or the docker compose plugin)")


def config(*extra_files: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PULSAR_", "COMPOSE_", "GATEWAY_"))}
    files = [arg for f in (COMPOSE, *extra_files) for arg in ("-f", str(f))]
    return subprocess.run(
        [*compose_cli(), *files, "config"],
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


@pytest.fixture(scope="module")
def resolved() -> dict[str, Any]:
    result = config(PULSAR_JWT_SECRET_KEY=SECRET)
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = yaml.safe_load(result.stdout)
    return data


def test_valid_and_has_the_five_services(resolved: dict[str, Any]) -> None:
    """Compose accepts the file: Valkey, auth, ingest, gateway and HAProxy."""
    assert set(resolved["services"]) == {"valkey", *RELAY_SERVICES, "haproxy"}


def test_jwt_secret_is_required() -> None:
    """Without PULSAR_JWT_SECRET_KEY Compose refuses the file and says what to set."""
    result = config()
    assert result.returncode != 0
    assert "PULSAR_JWT_SECRET_KEY" in result.stderr or "set it" in result.stderr, result.stderr


def test_every_service_has_a_healthcheck_and_restart_policy(resolved: dict[str, Any]) -> None:
    """Each container is health-checked and restarted when it dies."""
    for name, service in resolved["services"].items():
        assert service.get("healthcheck", {}).get("test"), name
        assert service.get("restart") == "unless-stopped", name


def test_relay_services_share_one_image_and_get_their_settings_from_env(resolved: dict[str, Any]) -> None:
    """auth, ingest and gateway run one image's services target by command, with settings from env."""
    images = {resolved["services"][s]["image"] for s in RELAY_SERVICES}
    assert len(images) == 1
    for name in RELAY_SERVICES:
        service = resolved["services"][name]
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
        assert service["build"]["target"] == "services"
        assert service["command"][:3] == ["pulsar-relay", "serve", name]
        env = service["environment"]
        assert env["PULSAR_JWT_SECRET_KEY"] == SECRET
        assert env["PULSAR_VALKEY_URL"] == "redis://valkey:6379/0"
        assert service["depends_on"]["valkey"]["condition"] == "service_healthy"


def test_gateway_scales(resolved: dict[str, Any]) -> None:
    """The gateway scales: no host port, no container name, no fixed gateway id (hostname instead)."""
    gateway = resolved["services"]["gateway"]
    assert "ports" not in gateway and "container_name" not in gateway
    assert "PULSAR_GATEWAY_ID" not in gateway["environment"]


def test_valkey_keeps_an_aof_volume(resolved: dict[str, Any]) -> None:
    """Valkey runs deploy/valkey.conf (AOF on) with its data on a named volume."""
    valkey = resolved["services"]["valkey"]
    assert valkey["image"].startswith("valkey/valkey:")
    mounts = [m if isinstance(m, str) else f"{m['source']}:{m['target']}" for m in valkey["volumes"]]
    assert any(m.startswith("valkey-data:/data") for m in mounts), mounts
    assert any(m.endswith("valkey.conf:/usr/local/etc/valkey/valkey.conf:ro") for m in mounts), mounts
    assert "valkey-data" in resolved["volumes"]
    assert "appendonly yes" in (ROOT / "deploy" / "valkey.conf").read_text()


def port_of(port: dict[str, Any] | str) -> tuple[str, str, str]:
    """(host address, published, target) from Compose v2's long form or v1's "addr:pub:target"."""
    if isinstance(port, str):
        host_ip, published, target = port.split(":")
        return host_ip, published, target.split("/")[0]
    return str(port.get("host_ip", "0.0.0.0")), str(port["published"]), str(port["target"])


def test_haproxy_is_the_only_published_port(resolved: dict[str, Any]) -> None:
    """Clients reach the relay only through HAProxy on 8080 (PULSAR_HTTP_PORT changes the host side)."""
    published = {name: s["ports"] for name, s in resolved["services"].items() if s.get("ports")}
    assert list(published) == ["haproxy"]
    (port,) = published["haproxy"]
    host_ip, published_port, target = port_of(port)
    assert (published_port, target) == ("8080", "8080")
    assert host_ip == "0.0.0.0"
    assert config(PULSAR_JWT_SECRET_KEY=SECRET, PULSAR_HTTP_PORT="9090").stdout.count("9090") >= 1
    # PULSAR_HTTP_ADDR publishes on one address only (the container tests use loopback).
    assert "127.0.0.1" in config(PULSAR_JWT_SECRET_KEY=SECRET, PULSAR_HTTP_ADDR="127.0.0.1").stdout


def test_tls_override_adds_a_tls_listener(tmp_path: Path) -> None:
    """compose.tls.yaml mounts certificates, sets RELAY_TLS_CERT, publishes 443, and needs its dir."""
    tls = ROOT / "deploy" / "compose.tls.yaml"
    result = config(tls, PULSAR_JWT_SECRET_KEY=SECRET, PULSAR_TLS_CERT_DIR=str(tmp_path))
    assert result.returncode == 0, result.stderr
    lb = yaml.safe_load(result.stdout)["services"]["haproxy"]
    assert lb["environment"]["RELAY_TLS_CERT"] == "/usr/local/etc/haproxy/certs/"
    assert {port_of(p)[1:] for p in lb["ports"]} == {
        ("8080", "8080"),
        ("443", "8443"),
    }
    assert any(str(tmp_path) in str(v) for v in lb["volumes"])
    assert config(tls, PULSAR_JWT_SECRET_KEY=SECRET).returncode != 0


def test_auth_believes_x_forwarded_for_from_haproxy_only(resolved: dict[str, Any]) -> None:
    """auth trusts X-Forwarded-For from HAProxy's fixed address on the project network, not "*"."""
    import ipaddress

    services = resolved["services"]
    trusted = services["auth"]["environment"]["PULSAR_FORWARDED_ALLOW_IPS"]
    haproxy_addr = services["haproxy"]["networks"]["default"]["ipv4_address"]
    assert trusted == haproxy_addr != "*"
    subnet = resolved["networks"]["default"]["ipam"]["config"][0]["subnet"]
    assert ipaddress.ip_address(haproxy_addr) in ipaddress.ip_network(subnet)
    moved = yaml.safe_load(
        config(
            PULSAR_JWT_SECRET_KEY=SECRET, RELAY_SUBNET="10.99.0.0/24", RELAY_HAPROXY_ADDR="10.99.0.9"
        ).stdout
    )["services"]
    assert moved["auth"]["environment"]["PULSAR_FORWARDED_ALLOW_IPS"] == "10.99.0.9"
