"""Login rate limiting (CONTRACT decision 12): per client address and per username, counted in
fixed windows in the shared store so every auth replica sees the same counts.

Each attempt is counted before the password is checked, so parallel guesses cannot slip past the
limit; a successful login clears its username's count, so the username limit in effect counts
failures.  The address limit counts every attempt from that address.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from ipaddress import ip_address

from relaycore.config import Settings, trusted_networks
from relaycore.errors import RateLimited
from relaycore.store.base import Counter

_MAX_ADDRESS = 64  # longest textual IPv6 address with zone, with room to spare


class LoginLimiter:
    def __init__(self, counters: Counter, settings: Settings) -> None:
        self._counters = counters
        self._limit = settings.login_rate_limit_attempts  # 0: off
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

    async def attempt(self, address: str, username: str) -> None:
        """Count one login attempt; ``RateLimited`` if the address or the username is over its limit."""
        if not self._limit:
            return
        results = await asyncio.gather(
            self._counters.hit(f"addr:{address}", self._window),
            self._counters.hit(f"user:{username}", self._window),
        )
        over = [reset for count, reset in results if count > self._limit]
        if over:
            retry = max(1, math.ceil(max(over)))
            raise RateLimited(f"Too many login attempts, retry in {retry} seconds", retry)

    async def succeeded(self, username: str) -> None:
        if self._limit:
            await self._counters.clear(f"user:{username}")
