"""Nobody gets in with a bad token, on any service or transport: wrong key, ``alg: none``, an
algorithm switch either way, expired, not yet valid (iat/nbf in the future), garbage."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.conftest import TEST_SECRET
from tests.reliability.harness import bearer
from tests.security.conftest import WAIT, Relay, RelayFactory


def claims(user_id: str, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "sub": user_id,
        "username": "alice",
        "permissions": ["read", "write"],
        "iat": now,
        "exp": now + 600,
    }
    return base | {"jti": uuid.uuid4().hex} | changes


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256_by_hand(body: dict[str, Any], key: bytes) -> str:
    """HS256 signed with arbitrary bytes (pyjwt refuses a PEM public key as an HMAC secret)."""
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = _b64(json.dumps(body).encode())
    sig = hmac.new(key, f"{head}.{payload}".encode(), hashlib.sha256).digest()
    return f"{head}.{payload}.{_b64(sig)}"


def unsigned(body: dict[str, Any]) -> str:
    head = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{head}.{_b64(json.dumps(body).encode())}."


FORGERIES: dict[str, Callable[[str], str]] = {
    "wrong-key": lambda uid: jwt.encode(claims(uid), "another-secret-" * 4, algorithm="HS256"),
    "alg-none": lambda uid: unsigned(claims(uid)),
    "alg-none-with-signature": lambda uid: unsigned(claims(uid)) + "c2ln",
    "eddsa-in-hs256-deployment": lambda uid: jwt.encode(
        claims(uid), ed25519.Ed25519PrivateKey.generate(), algorithm="EdDSA"
    ),
    "expired": lambda uid: jwt.encode(claims(uid, exp=int(time.time()) - 60), TEST_SECRET, algorithm="HS256"),
    "iat-in-future": lambda uid: jwt.encode(
        claims(uid, iat=int(time.time()) + 600), TEST_SECRET, algorithm="HS256"
    ),
    "nbf-in-future": lambda uid: jwt.encode(
        claims(uid, nbf=int(time.time()) + 600), TEST_SECRET, algorithm="HS256"
    ),
    "no-exp": lambda uid: jwt.encode({k: v for k, v in claims(uid).items() if k != "exp"}, TEST_SECRET),
    "garbage": lambda uid: "not.a.token",
}


async def refused_everywhere(relay: Relay, token: str) -> list[str]:
    """Every service path and the WebSocket handshake with ``token``; the ones that let it in."""
    h = bearer(token)
    calls = [
        relay.http.get("/auth/me", headers=h),
        relay.http.get("/api/v1/topics", headers=h),
        relay.http.post("/api/v1/messages", json={"topic": "tok", "payload": {}}, headers=h),
        relay.http.post("/messages/poll", json={"topics": ["tok"], "timeout": 1}, headers=h),
        relay.http.get("/api/v1/topics/tok/messages", headers=h),
        relay.http.get("/messages/poll/stats", headers=h),
    ]
    let_in = []
    for call in calls:
        r: httpx.Response = await call
        if r.status_code not in (401, 403):
            let_in.append(f"{r.request.method} {r.request.url.path} -> {r.status_code} {r.text[:100]}")
    for url in (relay.ws_url(token), relay.ws_url()):
        subprotocols = None if "token=" in url else ["bearer", f"bearer.{token}"]
        try:
            async with connect(url, open_timeout=WAIT, subprotocols=subprotocols):  # type: ignore[arg-type]
                let_in.append(f"WebSocket {url.split('?')[0]} accepted")
        except InvalidStatus as exc:
            if exc.response.status_code != 403:
                let_in.append(f"WebSocket handshake answered {exc.response.status_code}")
    return let_in


async def test_forged_and_stale_tokens_are_refused_by_every_service(relay: Relay) -> None:
    """Each forgery against auth, ingest, gateway (HTTP) and the WebSocket handshake (query and
    subprotocol): 401/403 everywhere; the same construction done right is accepted (control)."""
    user_id, good = await relay.user("alice")
    assert (
        await relay.http.get("/auth/me", headers=bearer(good))
        and not (
            await relay.http.post(
                "/api/v1/messages", json={"topic": "tok", "payload": {}}, headers=bearer(good)
            )
        ).is_error
    )
    made_right = jwt.encode(claims(user_id), TEST_SECRET, algorithm="HS256")
    assert (await relay.http.get("/auth/me", headers=bearer(made_right))).status_code == 200
    failures = {name: await refused_everywhere(relay, forge(user_id)) for name, forge in FORGERIES.items()}
    assert not any(failures.values()), failures


def _eddsa_keys(tmp: Path) -> tuple[Path, Path, bytes]:
    key = ed25519.Ed25519PrivateKey.generate()
    private = tmp / "jwt.key"
    public = tmp / "jwt.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    public.write_bytes(pem)
    return private, public, pem


async def test_hs256_tokens_are_refused_by_an_eddsa_deployment(
    relay_factory: RelayFactory, tmp_path: Path
) -> None:
    """Algorithm confusion: in EdDSA mode an HS256 token signed with the public key (or with the
    HS256 secret) is refused everywhere, while the EdDSA token auth mints works."""
    private, public, pem = _eddsa_keys(tmp_path)
    env = {
        "PULSAR_JWT_ALGORITHM": "EdDSA",
        "PULSAR_JWT_PRIVATE_KEY_FILE": str(private),
        "PULSAR_JWT_PUBLIC_KEY_FILE": str(public),
    }
    async with relay_factory(**env) as relay:
        user_id, good = await relay.user("alice")
        assert jwt.get_unverified_header(good)["alg"] == "EdDSA"
        assert (await relay.http.get("/auth/me", headers=bearer(good))).status_code == 200
        r = await relay.http.post(
            "/api/v1/messages", json={"topic": "tok", "payload": {}}, headers=bearer(good)
        )
        assert r.status_code == 201, r.text
        confused = {
            "hs256-signed-with-public-key": hs256_by_hand(claims(user_id), pem),
            "hs256-signed-with-secret": jwt.encode(claims(user_id), TEST_SECRET, algorithm="HS256"),
            "alg-none": unsigned(claims(user_id)),
            "other-eddsa-key": jwt.encode(
                claims(user_id), ed25519.Ed25519PrivateKey.generate(), algorithm="EdDSA"
            ),
        }
        failures = {name: await refused_everywhere(relay, token) for name, token in confused.items()}
        assert not any(failures.values()), failures


@pytest.mark.parametrize("header", ["Bearer", "Basic YWRtaW46YWRtaW4=", "Token abc", "Bearerabc", ""])
async def test_malformed_authorization_headers_are_401(relay: Relay, header: str) -> None:
    """Authorization headers that carry no bearer token: 401 with WWW-Authenticate, on each service."""
    for method, path in (("GET", "/auth/me"), ("POST", "/api/v1/messages"), ("GET", "/messages/poll/stats")):
        r = await relay.http.request(
            method, path, headers={"Authorization": header}, json={"topic": "t", "payload": {}}
        )
        assert r.status_code == 401, (path, r.text)
        assert r.headers.get("www-authenticate") == "Bearer"
