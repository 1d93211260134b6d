"""Access-token minting: HS256 with the shared secret, or EdDSA/ES256 with a private key that only
the auth service holds (its public half is served as a JWKS).  Every service verifies with
``relaycore.tokens.Verifier``, which reads the same key settings."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ed25519
from jwt.algorithms import ECAlgorithm, OKPAlgorithm

from relaycore import keyfiles
from relaycore.config import ConfigError, Settings
from relaycore.models import User
from relaycore.tokens import verification_key


class Signer:
    def __init__(self, settings: Settings) -> None:
        self.algorithm = settings.jwt_algorithm
        self.ttl = settings.access_token_expire_seconds
        self.jwks: dict[str, Any] | None = None
        self._headers: dict[str, str] | None = None
        self._key: str | bytes | keyfiles.PrivateKey
        if self.algorithm == "HS256":
            self._key = verification_key(settings)  # dev mode: the same per-process secret
            return
        try:
            public, private = keyfiles.load(
                self.algorithm, settings.jwt_public_key_file, settings.jwt_private_key_file
            )
        except keyfiles.KeyFileError as exc:
            raise ConfigError(str(exc)) from None
        if private is None:
            raise ConfigError(
                f"{keyfiles.PRIVATE} is required to sign with PULSAR_JWT_ALGORITHM={self.algorithm}"
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


def _jwk(public: keyfiles.PublicKey) -> dict[str, Any]:
    if isinstance(public, ed25519.Ed25519PublicKey):
        return dict(OKPAlgorithm.to_jwk(public, as_dict=True))
    return dict(ECAlgorithm.to_jwk(public, as_dict=True))


def _thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 key thumbprint, used as ``kid``."""
    required = {"OKP": ("crv", "kty", "x"), "EC": ("crv", "kty", "x", "y")}[jwk["kty"]]
    canonical = json.dumps({k: jwk[k] for k in required}, separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
