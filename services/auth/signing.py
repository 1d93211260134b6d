"""Access-token minting: HS256 with the shared secret, or EdDSA/ES256 with a private key that only
the auth service holds (its public half is served as a JWKS).  Every service verifies with
``relaycore.tokens.Verifier``, which reads the same key settings."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key
from jwt.algorithms import ECAlgorithm, OKPAlgorithm

from relaycore.config import ConfigError, Settings
from relaycore.models import User
from relaycore.tokens import verification_key

PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey


class Signer:
    def __init__(self, settings: Settings) -> None:
        self.algorithm = settings.jwt_algorithm
        self.ttl = settings.access_token_expire_seconds
        self.jwks: dict[str, Any] | None = None
        self._headers: dict[str, str] | None = None
        self._key: str | bytes | PrivateKey
        if self.algorithm == "HS256":
            self._key = verification_key(settings)  # dev mode: the same per-process secret
            return
        private = _load_private(settings)
        public = _load_public(settings)
        if _jwk(private.public_key()) != _jwk(public):
            raise ConfigError(
                "PULSAR_JWT_PRIVATE_KEY_FILE and PULSAR_JWT_PUBLIC_KEY_FILE do not hold the same key pair"
            )
        jwk = _jwk(public)
        kid = _thumbprint(jwk)
        self._key = private
        self._headers = {"kid": kid}
        self.jwks = {"keys": [{**jwk, "kid": kid, "alg": self.algorithm, "use": "sig"}]}

    def issue(self, user: User, *, session_id: str = "") -> str:
        """A signed access token for ``user``: sub, username, permissions, iat, exp, jti, and
        ``sid``, the sign-in session it belongs to (it stops working when that session ends)."""
        now = int(time.time())
        claims = {
            "sub": user.user_id,
            "username": user.username,
            "permissions": list(user.permissions),
            "iat": now,
            "exp": now + self.ttl,
            "jti": uuid.uuid4().hex,
        }
        if session_id:
            claims["sid"] = session_id
        return jwt.encode(claims, self._key, algorithm=self.algorithm, headers=self._headers)


def _read(path: str, setting: str) -> bytes:
    if not path:
        raise ConfigError(f"{setting} is required with an asymmetric PULSAR_JWT_ALGORITHM")
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{setting}: cannot read {path}: {exc.strerror}") from exc


def _load_private(settings: Settings) -> PrivateKey:
    pem = _read(settings.jwt_private_key_file, "PULSAR_JWT_PRIVATE_KEY_FILE")
    try:
        key = load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"PULSAR_JWT_PRIVATE_KEY_FILE is not an unencrypted PEM private key: {exc}"
        ) from exc
    _check_kind(key, settings.jwt_algorithm, "PULSAR_JWT_PRIVATE_KEY_FILE")
    assert isinstance(key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey)
    return key


def _load_public(settings: Settings) -> PublicKey:
    pem = _read(settings.jwt_public_key_file, "PULSAR_JWT_PUBLIC_KEY_FILE")
    try:
        key = load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"PULSAR_JWT_PUBLIC_KEY_FILE is not a PEM public key: {exc}") from exc
    _check_kind(key, settings.jwt_algorithm, "PULSAR_JWT_PUBLIC_KEY_FILE")
    assert isinstance(key, ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey)
    return key


def _check_kind(key: object, algorithm: str, setting: str) -> None:
    if algorithm == "EdDSA":
        ok = isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey)
        wanted = "an Ed25519 key"
    else:
        ok = isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) and isinstance(
            key.curve, ec.SECP256R1
        )
        wanted = "an EC P-256 key"
    if not ok:
        raise ConfigError(f"{setting} must hold {wanted} for PULSAR_JWT_ALGORITHM={algorithm}")


def _jwk(public: PublicKey) -> dict[str, Any]:
    if isinstance(public, ed25519.Ed25519PublicKey):
        return dict(OKPAlgorithm.to_jwk(public, as_dict=True))
    return dict(ECAlgorithm.to_jwk(public, as_dict=True))


def _thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 key thumbprint, used as ``kid``."""
    required = {"OKP": ("crv", "kty", "x"), "EC": ("crv", "kty", "x", "y")}[jwk["kty"]]
    canonical = json.dumps({k: jwk[k] for k in required}, separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
