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


def _read(path: str, setting: str) -> tuple[bytes | None, str | None]:
    try:
        return Path(path).read_bytes(), None
    except OSError as exc:
        return None, f"{setting}: cannot read {path}: {exc.strerror or exc}"


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


def problem(algorithm: str, public_file: str, private_file: str) -> str | None:
    """The first problem with the key files for ``algorithm`` (EdDSA or ES256), or None."""
    if not public_file:
        return (
            f"{PUBLIC} is required with PULSAR_JWT_ALGORITHM={algorithm}"
            " (a PEM public key; the auth service also needs PULSAR_JWT_PRIVATE_KEY_FILE)"
        )
    pem, error = _read(public_file, PUBLIC)
    if pem is None:
        return error
    try:
        public = load_pem_public_key(pem)
    except (ValueError, TypeError):
        if b"PRIVATE KEY-----" in pem:
            return f"{PUBLIC}: {public_file} holds a private key; give the public key here"
        return f"{PUBLIC}: {public_file} is not a PEM public key"
    if wanted := _kind(public, algorithm):
        return f"{PUBLIC}: {public_file} holds {_describe(public)}; {algorithm} needs {wanted}"
    if not private_file:
        return None
    pem, error = _read(private_file, PRIVATE)
    if pem is None:
        return error
    try:
        private = load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        return f"{PRIVATE}: {private_file} is not an unencrypted PEM private key"
    if wanted := _kind(private, algorithm):
        return f"{PRIVATE}: {private_file} holds {_describe(private)}; {algorithm} needs {wanted}"
    spki = (Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    if private.public_key().public_bytes(*spki) != public.public_bytes(*spki):
        return f"{PRIVATE} and {PUBLIC} do not hold the same key pair"
    return None
