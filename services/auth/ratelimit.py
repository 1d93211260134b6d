"""Throttling of guessable sign-ins (CONTRACT decision 12), shared by every auth replica.

Only FAILED attempts count: a host that starts fifty clients at once logs in fifty times and is
never refused.  Guessing is throttled per client address and per (username, address): past the
limit, that address (or pair) gets 429 until the window ends.  A username's failures from all
addresses never refuse anyone, so a stranger cannot lock its owner out; past
``login_slowdown_after`` they only make every attempt on it wait ``login_slowdown_delay``.

An attempt is admitted before the password is checked and is "in flight" until its outcome is
known: when the failures counted plus the attempts in flight reach a limit, further attempts wait
for those in flight instead of being checked, so parallel guesses cannot pass a limit together
(and parallel correct logins only queue briefly, never fail).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Sequence
from ipaddress import ip_address

from relaycore.config import Settings, trusted_networks
from relaycore.errors import BadRequest, RateLimited, Unauthenticated
from relaycore.store.base import Throttle

_MAX_ADDRESS = 64  # longest textual IPv6 address with zone, with room to spare
QUEUE_WAIT = 10.0  # longest an attempt waits for others in flight before it is refused
_HOLD = 60.0  # an attempt in flight is forgotten after this if its process died meanwhile
_POLL = 0.02


class LoginLimiter:
    def __init__(self, throttle: Throttle, settings: Settings) -> None:
        self._throttle = throttle
        self._per_address = settings.login_rate_limit_attempts  # 0: every login limit off
        self._per_pair = settings.login_rate_limit_user_address
        self._slow_after = settings.login_slowdown_after
        self._slow_delay = settings.login_slowdown_delay
        self._per_address_refresh = settings.refresh_rate_limit_failures
        self._window = settings.login_rate_limit_window
        self._trusted = trusted_networks(settings.forwarded_allow_ips)

    def client_address(self, peer: str | None, forwarded_for: Sequence[str]) -> str:
        """The peer's address, or, when the peer is a trusted proxy, the nearest untrusted address
        in its X-Forwarded-For chain."""
        address = peer or "unknown"
        if not forwarded_for or not self._is_trusted(address):
            return address
        chain = [hop.strip() for header in forwarded_for for hop in header.split(",") if hop.strip()]
        for hop in reversed(chain):
            address = hop[:_MAX_ADDRESS]
            if not self._is_trusted(address):
                break
        return address

    def _is_trusted(self, address: str) -> bool:
        if self._trusted is None:
            return True
        try:
            ip = ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._trusted)

    @contextlib.asynccontextmanager
    async def login(self, address: str, username: str) -> AsyncIterator[None]:
        """Around one password check: 429 if the address or the (username, address) pair is over
        its limit; waits first while the username is being guessed at.  The check counts as a
        failure if ``Unauthenticated`` leaves the block."""
        if not self._per_address:
            yield
            return
        keys = [f"addr:{address}", f"pair:{username}:{address}"]
        limits = [self._per_address, self._per_pair or self._per_address]
        async with self._attempt(keys, limits, "login", also_failed=[f"user:{username}"]):
            if self._slow_after and await self._throttle.failures(f"user:{username}") >= self._slow_after:
                await asyncio.sleep(self._slow_delay)
            yield

    async def succeeded(self, address: str, username: str) -> None:
        """A right password clears its pair's failures (the address's stay: they may be others')."""
        if self._per_address:
            await self._throttle.clear(f"pair:{username}:{address}")

    @contextlib.asynccontextmanager
    async def refresh(self, address: str) -> AsyncIterator[None]:
        """Around one refresh or revoke: 429 once an address's failures reach the limit; a
        failure is ``Unauthenticated`` or ``BadRequest`` leaving the block."""
        if not self._per_address_refresh:
            yield
            return
        async with self._attempt(
            [f"refresh:{address}"], [self._per_address_refresh], "refresh", also_failed=[]
        ):
            yield

    @contextlib.asynccontextmanager
    async def _attempt(
        self, keys: Sequence[str], limits: Sequence[int], what: str, *, also_failed: Sequence[str]
    ) -> AsyncIterator[None]:
        deadline = time.monotonic() + QUEUE_WAIT
        while True:
            verdict, reset = await self._throttle.admit(keys, limits, hold=_HOLD)
            if verdict == "go":
                break
            if verdict == "refuse" or time.monotonic() >= deadline:
                retry = max(1, math.ceil(reset))
                raise RateLimited(f"Too many failed {what} attempts, retry in {retry} seconds", retry)
            await asyncio.sleep(_POLL)
        failed = False
        try:
            yield
        except (Unauthenticated, BadRequest):
            failed = True
            raise
        finally:
            await self._throttle.release(keys, failed=failed, window=self._window)
            if failed and also_failed:
                await self._throttle.release(also_failed, failed=True, window=self._window)
