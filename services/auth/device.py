"""The RFC 8628 device authorization grant: codes handed to a device, approved or denied by a
signed-in person, exchanged once for tokens.  Transport-neutral: raises ``DeviceError`` (an OAuth
error code, answered 400 ``{"error": ...}``) and ``relaycore.errors``.

The device code is a 256-bit random secret that only its device knows; storage keeps its SHA-256.
The user code is 8 letters from RFC 8628's 20 consonants (no vowels, so no words; 20^8 ≈ 2.6e10
values), shown as ``BCDF-GHJK``; case, spaces and dashes are ignored when a person types it.
Guessing one is bounded by the verification page's rate limits (``device_verify_*``) and the
code's short life; approving still needs a signed-in person.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from collections.abc import Awaitable
from typing import Protocol

import msgspec

from auth.schemas import TokenResponse
from relaycore import metrics
from relaycore.config import Settings
from relaycore.errors import RateLimited, Unavailable
from relaycore.models import User, now_ms
from relaycore.store.base import Backend, DeviceGrant

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
USER_CODE_LENGTH = 8
CLIENT_HINT_MAX = 200
SCOPE_MAX = 200
DEVICE_CODE_MAX = 128
# A poll may arrive this much earlier than the interval before it counts as too fast: a client
# that sleeps ``interval`` between answers never polls faster, but request queues can bunch them.
POLL_SLACK_MS = 250
# The record outlives the code's lifetime by this much, so late polls hear expired_token and
# a used code is recognised as reused (invalid_grant) rather than unknown.
_RECORD_GRACE = 600.0


class Issuer(Protocol):
    """``Sessions.issue``: an access token and the first refresh token of a new session."""

    def __call__(self, user: User, *, client_hint: str | None = None) -> Awaitable[TokenResponse]: ...


class DeviceError(Exception):
    """An RFC 6749 / 8628 error answered as 400 ``{"error": code, "error_description": ...}``."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


class DeviceCodeResponse(msgspec.Struct, kw_only=True):
    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str
    expires_in: int
    interval: int


def normalise_user_code(typed: str) -> str | None:
    """The stored form of what a person typed, or None if it cannot be a user code."""
    code = "".join(ch for ch in typed.upper() if ch not in " -\t")
    if len(code) != USER_CODE_LENGTH or any(ch not in USER_CODE_ALPHABET for ch in code):
        return None
    return code


def display_user_code(code: str) -> str:
    half = USER_CODE_LENGTH // 2
    return f"{code[:half]}-{code[half:]}"


def _digest(device_code: str) -> str:
    return hashlib.sha256(device_code.encode()).hexdigest()


class DeviceFlow:
    def __init__(self, backend: Backend, settings: Settings, issue: Issuer) -> None:
        self._backend = backend
        self._issue = issue
        self.lifetime = settings.device_code_lifetime
        self.interval = settings.device_poll_interval
        self._per_address = settings.device_verify_rate_limit_attempts
        self._total = settings.device_verify_rate_limit_total
        self._window = settings.device_verify_rate_limit_window
        self._codes_per_address = settings.device_code_rate_limit

    # --- the device's side

    async def limit_codes(self, address: str) -> None:
        """Count one device-code request; ``RateLimited`` past ``device_code_rate_limit``."""
        await self._limit([(f"device-code:{address}", self._codes_per_address)], "device-code requests")

    async def start(
        self, *, client_hint: str, scope: str, pair: bool, verification_uri: str
    ) -> DeviceCodeResponse:
        for _ in range(5):
            device_code = secrets.token_urlsafe(32)
            user_code = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(USER_CODE_LENGTH))
            grant = DeviceGrant(
                user_code=user_code,
                client_hint=client_hint,
                scope=scope,
                pair=pair,
                expires_ms=now_ms() + int(self.lifetime * 1000),
                interval=self.interval,
            )
            if await self._backend.device_grants.create(
                _digest(device_code), grant, self.lifetime + _RECORD_GRACE
            ):
                metrics.device_flow.labels("issued").inc()
                shown = display_user_code(user_code)
                return DeviceCodeResponse(
                    device_code=device_code,
                    user_code=shown,
                    verification_uri=verification_uri,
                    verification_uri_complete=f"{verification_uri}?user_code={shown}",
                    expires_in=math.ceil(self.lifetime),
                    interval=self.interval,
                )
        # Five collisions in a row mean the code space is nearly full: something is very wrong.
        raise Unavailable("Could not allocate a user code; retry later")

    async def exchange(self, device_code: str) -> TokenResponse:
        """Tokens for an approved device code, exactly once; ``DeviceError`` otherwise."""
        if not device_code or len(device_code) > DEVICE_CODE_MAX or not device_code.isascii():
            metrics.device_flow.labels("invalid_grant").inc()
            raise DeviceError("invalid_grant", "Unknown device_code")
        outcome, grant = await self._backend.device_grants.poll(_digest(device_code), now_ms(), POLL_SLACK_MS)
        error, description = _POLL_ERRORS[outcome]
        metrics.device_flow.labels("exchanged" if outcome == "approved" else _EVENT.get(error, error)).inc()
        if outcome == "approved" and grant is not None:
            user = await self._backend.users.get(grant.user_id)
            if user is None or not user.is_active:
                raise DeviceError("access_denied", "The approving user is no longer active")
            return await self._tokens(user, grant)
        raise DeviceError(error, description)

    async def _tokens(self, user: User, grant: DeviceGrant) -> TokenResponse:
        primary = await self._issue(user, client_hint=grant.client_hint)
        if not grant.pair:
            return primary
        # A second, independent session: the device hands its refresh token to another party
        # (Galaxy), and each side rotates its own chain without disturbing the other.
        secondary = await self._issue(user, client_hint=f"{grant.client_hint} (paired)")
        return msgspec.structs.replace(primary, refresh_token_secondary=secondary.refresh_token)

    # --- the person's side (the verification page)

    async def limit(self, address: str) -> None:
        """Count one user-code look-up; ``RateLimited`` past the per-address or overall limit."""
        checks = [(f"device-addr:{address}", self._per_address), ("device-all", self._total)]
        await self._limit(checks, "user-code attempts")

    async def _limit(self, checks: list[tuple[str, int]], what: str) -> None:
        for key, limit in checks:
            if not limit:
                continue
            count, reset = await self._backend.counters.hit(key, self._window)
            if count > limit:
                metrics.device_flow.labels("limited").inc()
                retry = max(1, math.ceil(reset))
                raise RateLimited(f"Too many {what}, retry in {retry} seconds", retry)

    async def find(self, typed: str) -> tuple[str, DeviceGrant] | None:
        """The pending, unexpired grant a typed user code names (after ``limit``), else None."""
        code = normalise_user_code(typed)
        if code is None:
            metrics.device_flow.labels("lookup_failed").inc()
            return None
        found = await self._backend.device_grants.by_user_code(code)
        if found is None or found[1].status != "pending" or now_ms() >= found[1].expires_ms:
            metrics.device_flow.labels("lookup_failed").inc()
            return None
        return found

    async def decide(self, device_key: str, user: User, *, approve: bool) -> bool:
        """Approve or deny; False if the grant was no longer pending (decided, used or expired)."""
        decided = await self._backend.device_grants.decide(device_key, user.user_id, approve, now_ms())
        if decided is not None:
            metrics.device_flow.labels("approved" if approve else "denied").inc()
        return decided is not None


_EVENT = {"authorization_pending": "pending", "expired_token": "expired"}
_POLL_ERRORS: dict[str, tuple[str, str]] = {
    "unknown": ("invalid_grant", "Unknown device_code"),
    "used": ("invalid_grant", "This device_code was already exchanged"),
    "expired": ("expired_token", "The device_code has expired; start again"),
    "slow_down": ("slow_down", "Polling too fast; wait the interval (raised by 5 seconds)"),
    "pending": ("authorization_pending", "Not yet approved"),
    "denied": ("access_denied", "The sign-in was denied"),
    "approved": ("invalid_grant", "Unknown device_code"),  # approved but its record vanished
}
