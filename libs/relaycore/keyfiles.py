"""The key files of an asymmetric ``jwt_algorithm``, checked at start-up by every service: a file
that is missing, not PEM, a key of the other algorithm, or the private key where the public one
belongs would otherwise start a service that answers 401 to every token.  Each problem is one line
naming the setting."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
    load_pem_public_key,
)

PUBLIC = "PULSAR_JWT_PUBLIC_KEY_FILE"
PRIVATE = "PULSAR_JWT_PRIVATE_KEY_FILE"


def _read(path: str, setting: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise KeyFileError(f"{setting}: cannot read {path}: {exc.strerror or exc}") from None


def _kind(key: object, algorithm: str) -> str | None:
    """What is wrong with the key's type for ``algorithm``, or None."""
    if algorithm == "EdDSA":
        if isinstance(key, ed25519.Ed25519PublicKey | ed25519.Ed25519PrivateKey):
            return None
        return "an Ed25519 key"
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) and isinstance(
        key.curve, ec.SECP256R1
    ):
        return None
    return "an EC P-256 key"


def _describe(key: object) -> str:
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        return f"an EC {key.curve.name} key"
    return f"a {type(key).__name__.removeprefix('_').replace('PublicKey', '').replace('PrivateKey', '')} key"


PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey
PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey


class KeyFileError(ValueError):
    """One line naming the setting and what is wrong with its file."""


def problem(algorithm: str, public_file: str, private_file: str) -> str | None:
    """The first problem with the key files for ``algorithm`` (EdDSA or ES256), or None."""
    try:
        load(algorithm, public_file, private_file)
    except KeyFileError as exc:
        return str(exc)
    return None


def load(algorithm: str, public_file: str, private_file: str) -> tuple[PublicKey, PrivateKey | None]:
    """The public key for ``algorithm`` and, when ``private_file`` is set, the private key of the
    same pair; KeyFileError for the first problem."""
    if not public_file:
        raise KeyFileError(
            f"{PUBLIC} is required with PULSAR_JWT_ALGORITHM={algorithm}"
            " (a PEM public key; the auth service also needs PULSAR_JWT_PRIVATE_KEY_FILE)"
        )
    pem = _read(public_file, PUBLIC)
    try:
        public = load_pem_public_key(pem)
    except (ValueError, TypeError):
        if b"PRIVATE KEY-----" in pem:
            raise KeyFileError(
                f"{PUBLIC}: {public_file} holds a private key; give the public key here"
            ) from None
        raise KeyFileError(f"{PUBLIC}: {public_file} is not a PEM public key") from None
    if wanted := _kind(public, algorithm):
        raise KeyFileError(f"{PUBLIC}: {public_file} holds {_describe(public)}; {algorithm} needs {wanted}")
    assert isinstance(public, ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey)
    if not private_file:
        return public, None
    pem = _read(private_file, PRIVATE)
    try:
        private = load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise KeyFileError(f"{PRIVATE}: {private_file} is not an unencrypted PEM private key") from None
    if wanted := _kind(private, algorithm):
        raise KeyFileError(
            f"{PRIVATE}: {private_file} holds {_describe(private)}; {algorithm} needs {wanted}"
        )
    assert isinstance(private, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey)
    spki = (Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    if private.public_key().public_bytes(*spki) != public.public_bytes(*spki):
        raise KeyFileError(f"{PRIVATE} and {PUBLIC} do not hold the same key pair")
    return public, private
