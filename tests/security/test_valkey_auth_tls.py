"""The relay works end to end against a Valkey that wants a password (URL form and the seed's
host/port/password settings) and against one that only speaks TLS (``rediss://`` with a CA file),
refuses to trust a server certificate it cannot verify, and never logs the Valkey password."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.reliability.harness import ADMIN, Services, bearer, full_log
from tests.security.conftest import WAIT, recv
from tests.support.valkey import ValkeyServer, free_port, server_binary

PASSWORD = "valkey-pass-" + "q" * 20


async def end_to_end(url: str) -> None:
    """Log in, subscribe, publish, receive it live, poll it, page it: the whole relay works."""
    from websockets.asyncio.client import connect

    async with httpx.AsyncClient(base_url=url, timeout=WAIT) as http:
        r = await http.post("/auth/login", data={"username": ADMIN[0], "password": ADMIN[1]})
        assert r.status_code == 200, r.text
        token = r.json()["access_token"]
        assert (await http.get("/ready")).json()["ready"] is True
        async with connect(url.replace("http://", "ws://") + f"/ws?token={token}", open_timeout=WAIT) as ws:
            await ws.send(json.dumps({"type": "subscribe", "topics": ["secure"]}))
            assert (await recv(ws))["type"] == "subscribed"
            r = await http.post(
                "/api/v1/messages", json={"topic": "secure", "payload": {"ok": 1}}, headers=bearer(token)
            )
            assert r.status_code == 201, r.text
            frame = await recv(ws)
            assert frame["type"] == "message" and frame["payload"] == {"ok": 1}
        r = await http.post(
            "/messages/poll", json={"topics": ["secure"], "since": {"secure": "0-0"}}, headers=bearer(token)
        )
        assert [m["payload"] for m in r.json()["messages"]] == [{"ok": 1}]
        r = await http.get("/api/v1/topics/secure/messages", headers=bearer(token))
        assert r.status_code == 200 and r.json()["total"] == 1


@pytest.fixture
def protected_valkey() -> Iterator[ValkeyServer]:
    if server_binary() is None:
        pytest.skip("no valkey-server or redis-server on PATH")
    server = ValkeyServer().start()
    client = redis.Redis(port=server.port)
    client.config_set("requirepass", PASSWORD)
    client.close()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.mark.parametrize("form", ["url", "seed-settings"])
async def test_valkey_with_a_password(protected_valkey: ValkeyServer, form: str) -> None:
    """requirepass: ``redis://:<password>@host`` and PULSAR_VALKEY_HOST/PORT/PASSWORD both work end
    to end; the password never appears in the relay's logs (DEBUG), even after Valkey goes away."""
    port = protected_valkey.port
    if form == "url":
        env = {"PULSAR_VALKEY_URL": f"redis://:{PASSWORD}@127.0.0.1:{port}/0"}
    else:
        env = {
            "PULSAR_VALKEY_URL": "",
            "PULSAR_VALKEY_HOST": "127.0.0.1",
            "PULSAR_VALKEY_PORT": str(port),
            "PULSAR_VALKEY_PASSWORD": PASSWORD,
        }
    procs = Services("", PULSAR_LOG_LEVEL="DEBUG", **env)
    try:
        proc = await procs.start("all")
        await end_to_end(proc.url)
        protected_valkey.kill()
        async with httpx.AsyncClient(base_url=proc.url, timeout=WAIT) as http:
            assert (await http.get("/ready")).status_code == 503
        await asyncio.sleep(0.5)  # reconnect attempts get logged meanwhile
        assert PASSWORD not in full_log(proc)
    finally:
        procs.stop()


async def test_a_wrong_valkey_password_is_not_ready(protected_valkey: ValkeyServer) -> None:
    """With the wrong password the process stays up and /ready says why (503, "refused the credentials")."""
    procs = Services(f"redis://:wrong-password@127.0.0.1:{protected_valkey.port}/0")
    procs.extra = {"PULSAR_BOOTSTRAP_ADMIN_USERNAME": "", "PULSAR_BOOTSTRAP_ADMIN_PASSWORD": ""}
    try:
        proc = await procs.start("ingest")
        async with httpx.AsyncClient(base_url=proc.url, timeout=WAIT) as http:
            r = await http.get("/ready")
            assert r.status_code == 503 and r.json()["ready"] is False, r.text
            assert r.json()["checks"]["storage"] == (
                "error: Valkey refused the credentials (wrong user or password)"
            ), r.text
    finally:
        procs.stop()


def _certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 signed by it: (ca.pem, server.pem, server.key)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "relay test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


@pytest.fixture
def tls_valkey(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A TLS-only server (no plain port): (TLS port, CA file)."""
    binary = server_binary()
    if binary is None:
        pytest.skip("no valkey-server or redis-server on PATH")
    ca, cert, key = _certificates(tmp_path)
    port = free_port()
    args = [
        binary,
        "--port",
        "0",
        "--tls-port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--dir",
        str(tmp_path),
    ]
    args += ["--tls-cert-file", str(cert), "--tls-key-file", str(key), "--tls-ca-cert-file", str(ca)]
    args += ["--tls-auth-clients", "no", "--logfile", str(tmp_path / "server.log")]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = redis.Redis(
            host="127.0.0.1", port=port, ssl=True, ssl_ca_certs=str(ca), socket_connect_timeout=0.5
        )
        for _ in range(200):
            try:
                if client.ping():
                    break
            except redis.ConnectionError:
                if proc.poll() is not None:
                    raise RuntimeError((tmp_path / "server.log").read_text()) from None
                subprocess.run(["sleep", "0.05"], check=True)
        client.close()
        yield port, ca
    finally:
        proc.terminate()
        proc.wait(10)


async def test_valkey_over_tls_with_a_ca_file(tls_valkey: tuple[int, Path]) -> None:
    """``rediss://`` + PULSAR_VALKEY_TLS_CA_FILE against a TLS-only server: everything works."""
    port, ca = tls_valkey
    procs = Services(f"rediss://127.0.0.1:{port}/0", PULSAR_VALKEY_TLS_CA_FILE=str(ca))
    try:
        proc = await procs.start("all")
        await end_to_end(proc.url)
    finally:
        procs.stop()


async def test_valkey_tls_certificate_not_signed_by_the_trusted_ca_is_refused(
    tls_valkey: tuple[int, Path], tmp_path: Path
) -> None:
    """A CA file that did not sign the server's certificate: the relay does not talk to it (/ready
    503 naming the untrusted certificate), rather than falling back to an unverified connection."""
    port, _ = tls_valkey
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    other_ca, _, _ = _certificates(other_dir)
    procs = Services(f"rediss://127.0.0.1:{port}/0", PULSAR_VALKEY_TLS_CA_FILE=str(other_ca))
    procs.extra |= {"PULSAR_BOOTSTRAP_ADMIN_USERNAME": "", "PULSAR_BOOTSTRAP_ADMIN_PASSWORD": ""}
    try:
        proc = await procs.start("ingest")
        async with httpx.AsyncClient(base_url=proc.url, timeout=WAIT) as http:
            r = await http.get("/ready")
            assert r.status_code == 503, r.text
            assert r.json()["checks"]["storage"] == (
                "error: Valkey's TLS certificate is not trusted (PULSAR_VALKEY_TLS_CA_FILE)"
            ), r.text
    finally:
        procs.stop()
