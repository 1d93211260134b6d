"""Access-token verification.  Holds no signing key: only the auth service mints tokens
(``auth.signing``); every service verifies with ``Verifier``."""

from __future__ import annotations

import secrets
from pathlib import Path

import jwt
import msgspec

from relaycore.config import Settings
from relaycore.errors import Unauthenticated

LEEWAY_SECONDS = 5  # clock skew tolerated between services


class Claims(msgspec.Struct, frozen=True, kw_only=True):
    sub: str
    username: str
    permissions: list[str]
    iat: int
    exp: int
    jti: str = ""
    sid: str = ""  # the sign-in session; "" for tokens minted before sessions existed


_DEV_SECRET = secrets.token_urlsafe(48)


def verification_key(settings: Settings) -> str | bytes:
    """The HS256 secret or the PEM public key; a per-process random secret in development mode."""
    if settings.jwt_algorithm == "HS256":
        return settings.jwt_secret_key or _DEV_SECRET
    if not settings.jwt_public_key_file:
        raise ValueError(
            f"PULSAR_JWT_PUBLIC_KEY_FILE is required with PULSAR_JWT_ALGORITHM={settings.jwt_algorithm}"
        )
    return Path(settings.jwt_public_key_file).read_bytes()


class Verifier:
    def __init__(self, settings: Settings) -> None:
        self._key = verification_key(settings)
        # Exactly one algorithm is accepted: no "none", no HS/RS confusion.
        self._algorithms = [settings.jwt_algorithm]

    def verify(self, token: str) -> Claims:
        """Claims of a well-signed, unexpired token; ``Unauthenticated`` otherwise."""
        try:
            raw = jwt.decode(
                token,
                self._key,
                algorithms=self._algorithms,
                leeway=LEEWAY_SECONDS,
                options={"require": ["sub", "exp", "iat"]},
            )
            return msgspec.convert(raw, Claims)
        except (jwt.PyJWTError, msgspec.ValidationError, ValueError) as exc:
            raise Unauthenticated("Invalid or expired token") from exc
