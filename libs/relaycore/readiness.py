"""Why storage is not ready, in words an operator can act on: ``/ready`` names the cause (wrong
password, untrusted certificate, unreachable, ...) instead of the exception's class name.  Reads
the chain of the error (the stores wrap driver errors in ``Unavailable``); never echoes a secret."""

from __future__ import annotations

import socket
import ssl

from redis.exceptions import AuthenticationError, AuthorizationError, NoPermissionError, ResponseError


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def storage_problem(exc: BaseException) -> str:
    """One short phrase for why the storage check failed."""
    chain = _chain(exc)
    text = " ".join(str(e) for e in chain)
    for e in chain:
        if isinstance(e, ssl.SSLCertVerificationError):
            return "Valkey's TLS certificate is not trusted (PULSAR_VALKEY_TLS_CA_FILE)"
        if isinstance(e, AuthenticationError | AuthorizationError) or (
            isinstance(e, ResponseError) and ("WRONGPASS" in str(e) or "NOAUTH" in str(e))
        ):
            return "Valkey refused the credentials (wrong user or password)"
        if isinstance(e, NoPermissionError):
            return "Valkey's ACL user lacks a permission the relay needs"
        if isinstance(e, socket.gaierror):
            return "Valkey's host name does not resolve"
        if isinstance(e, ConnectionRefusedError):
            return "Valkey is unreachable (connection refused)"
        if isinstance(e, ssl.SSLError):
            return "TLS to Valkey failed (is it serving TLS? PULSAR_VALKEY_USE_TLS)"
    if "WRONGPASS" in text or "NOAUTH" in text or "invalid username-password" in text:
        return "Valkey refused the credentials (wrong user or password)"
    if "certificate verify failed" in text:
        return "Valkey's TLS certificate is not trusted (PULSAR_VALKEY_TLS_CA_FILE)"
    if "Connection refused" in text or "Error 111" in text:
        return "Valkey is unreachable (connection refused)"
    if any(isinstance(e, TimeoutError) for e in chain) or "Timeout" in text:
        return "Valkey did not answer in time"
    if "Connection closed by server" in text or "Connection reset" in text:
        return "Valkey closed the connection (TLS expected, or a client limit?)"
    return f"Valkey is unavailable ({type(chain[-1]).__name__})"
