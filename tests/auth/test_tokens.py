"""Access tokens: tampered, unsigned, algorithm-switched, expired and not-yet-valid tokens are
refused with 401; asymmetric signing (EdDSA, ES256) with a JWKS that verifies what auth mints."""

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
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from auth.app import create_app
from relaycore.config import ConfigError, Settings
from relaycore.tokens import Verifier
from tests.auth.conftest import ADMIN, Auth, auth_settings, bearer
from tests.conftest import TEST_SECRET
from tests.support.serve import running


def _claims(user_id: str, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"sub": user_id, "username": "alice", "permissions": ["read"], "iat": now, "exp": now + 600}
    return base | {"jti": uuid.uuid4().hex} | changes


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hs256_by_hand(claims: dict[str, Any], key: bytes) -> str:
    """An HS256 token signed with arbitrary bytes (pyjwt refuses PEM keys as HMAC secrets)."""
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = _b64(json.dumps(claims).encode())
    sig = hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(sig)}"


async def _me(auth: Auth, token: str) -> httpx.Response:
    return await auth.client.get("/auth/me", headers=bearer(token))


async def test_a_valid_hand_made_token_is_accepted(auth: Auth) -> None:
    """Control for the cases below: the same construction with the right key works."""
    user_id, _ = await auth.user("alice")
    assert (await _me(auth, jwt.encode(_claims(user_id), TEST_SECRET, algorithm="HS256"))).status_code == 200


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(
            lambda uid: jwt.encode(_claims(uid), "another-secret-" * 4, algorithm="HS256"), id="wrong-key"
        ),
        pytest.param(lambda uid: jwt.encode(_claims(uid), "", algorithm="none"), id="alg-none"),
        pytest.param(
            lambda uid: jwt.encode(_claims(uid), ed25519.Ed25519PrivateKey.generate(), algorithm="EdDSA"),
            id="asymmetric-in-hs256-mode",
        ),
        pytest.param(
            lambda uid: jwt.encode(_claims(uid, exp=int(time.time()) - 60), TEST_SECRET, algorithm="HS256"),
            id="expired",
        ),
        pytest.param(
            lambda uid: jwt.encode(_claims(uid, iat=int(time.time()) + 600), TEST_SECRET, algorithm="HS256"),
            id="iat-in-future",
        ),
        pytest.param(
            lambda uid: jwt.encode(_claims(uid, nbf=int(time.time()) + 600), TEST_SECRET, algorithm="HS256"),
            id="nbf-in-future",
        ),
        pytest.param(
            lambda uid: jwt.encode({k: v for k, v in _claims(uid).items() if k != "exp"}, TEST_SECRET),
            id="no-exp",
        ),
        pytest.param(
            lambda uid: jwt.encode({k: v for k, v in _claims(uid).items() if k != "sub"}, TEST_SECRET),
            id="no-sub",
        ),
        pytest.param(lambda uid: "not.a.jwt", id="garbage"),
    ],
)
async def test_forged_tokens_are_refused(auth: Auth, forge: Callable[[str], str]) -> None:
    """401 "Invalid or expired token" with WWW-Authenticate: Bearer."""
    user_id, _ = await auth.user("alice")
    r = await _me(auth, forge(user_id))
    assert r.status_code == 401
    assert r.json() == {"detail": "Invalid or expired token"}
    assert r.headers["www-authenticate"] == "Bearer"


async def test_tampered_payload_is_refused(auth: Auth) -> None:
    """Swapping the payload of a genuine token (say, to claim admin) breaks its signature."""
    _, token = await auth.user("alice", ["read"])
    head, _, sig = token.split(".")
    claims = jwt.decode(token, options={"verify_signature": False}) | {"permissions": ["admin"]}
    forged = f"{head}.{_b64(json.dumps(claims).encode())}.{sig}"
    assert (await _me(auth, forged)).status_code == 401


async def test_claims_do_not_grant_permissions(auth: Auth) -> None:
    """A correctly signed token claiming admin does not make a read-only user an admin."""
    user_id, _ = await auth.user("alice", ["read"])
    token = jwt.encode(_claims(user_id, permissions=["admin"]), TEST_SECRET, algorithm="HS256")
    assert (await auth.client.get("/auth/users", headers=bearer(token))).status_code == 403


async def test_jwks_is_404_in_hs256_mode(auth: Auth) -> None:
    """With a shared secret there is no public key to publish."""
    assert (await auth.client.get("/auth/jwks.json")).status_code == 404


# --- asymmetric mode


def _write_pair(
    tmp_path: Path, private: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
) -> tuple[str, str]:
    priv = tmp_path / "jwt.key"
    pub = tmp_path / "jwt.pub"
    priv.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    pub.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return str(priv), str(pub)


KEYS: dict[str, Callable[[], ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey]] = {
    "EdDSA": ed25519.Ed25519PrivateKey.generate,
    "ES256": lambda: ec.generate_private_key(ec.SECP256R1()),
}


@pytest.mark.parametrize("algorithm", ["EdDSA", "ES256"])
async def test_asymmetric_signing_with_jwks(
    settings_factory: Callable[..., Settings], tmp_path: Path, algorithm: str
) -> None:
    """Auth signs with the private key; the JWKS key and a verifier holding only the public key
    both verify the token; an HS256 token made with the public key as secret is refused."""
    key = KEYS[algorithm]()
    priv, pub = _write_pair(tmp_path, key)
    pub_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    settings = auth_settings(
        settings_factory, jwt_algorithm=algorithm, jwt_private_key_file=priv, jwt_public_key_file=pub
    )
    async with running(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as client:
        r = await client.post("/auth/login", data={"username": ADMIN[0], "password": ADMIN[1]})
        assert r.status_code == 200
        token = r.json()["access_token"]
        header = jwt.get_unverified_header(token)
        assert header["alg"] == algorithm
        r = await client.get("/auth/jwks.json")
        assert r.status_code == 200
        (key,) = r.json()["keys"]
        assert key["kid"] == header["kid"]
        assert key["alg"] == algorithm
        assert "d" not in key  # public half only
        claims = jwt.decode(token, jwt.PyJWK(key).key, algorithms=[algorithm])
        assert claims["username"] == ADMIN[0]
        verify_only = Settings(jwt_algorithm=settings.jwt_algorithm, jwt_public_key_file=pub)
        assert Verifier(verify_only).verify(token).sub == claims["sub"]
        assert (await client.get("/auth/me", headers=bearer(token))).status_code == 200
        confused = _hs256_by_hand(claims, pub_pem)
        r = await client.get("/auth/me", headers=bearer(confused))
        assert r.status_code == 401
        hs = jwt.encode(claims, TEST_SECRET, algorithm="HS256")
        assert (await client.get("/auth/me", headers=bearer(hs))).status_code == 401


def test_asymmetric_key_problems_stop_start_up(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    """Missing private key, mismatched pair, wrong key type: ConfigError naming the setting."""
    priv, pub = _write_pair(tmp_path, ed25519.Ed25519PrivateKey.generate())
    other = tmp_path / "other"
    other.mkdir()
    other_priv, other_pub = _write_pair(other, ec.generate_private_key(ec.SECP256R1()))
    cases = [
        ({"jwt_public_key_file": pub}, "PULSAR_JWT_PRIVATE_KEY_FILE"),
        (
            {"jwt_private_key_file": priv, "jwt_public_key_file": str(tmp_path / "missing.pub")},
            "PUBLIC_KEY_FILE",
        ),
        ({"jwt_private_key_file": other_priv, "jwt_public_key_file": pub}, "Ed25519"),
        ({"jwt_private_key_file": priv, "jwt_public_key_file": other_pub}, "Ed25519"),
        ({"jwt_private_key_file": pub, "jwt_public_key_file": pub}, "PULSAR_JWT_PRIVATE_KEY_FILE"),
    ]
    for files, needle in cases:
        settings = settings_factory(jwt_algorithm="EdDSA", **files)
        with pytest.raises((ConfigError, ValueError, OSError)) as info:
            create_app(settings)
        assert needle in str(info.value), (files, info.value)
    second = ed25519.Ed25519PrivateKey.generate()
    third = tmp_path / "third"
    third.mkdir()
    _, mismatched_pub = _write_pair(third, second)
    with pytest.raises(ConfigError, match="same key pair"):
        create_app(
            settings_factory(
                jwt_algorithm="EdDSA", jwt_private_key_file=priv, jwt_public_key_file=mismatched_pub
            )
        )
