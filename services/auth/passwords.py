"""Password hashing with argon2id.  Hashing is CPU- and memory-heavy, so it runs in worker threads,
a few at a time; unknown users are checked against a dummy hash so a failure costs the same either way."""

from __future__ import annotations

import asyncio
import os

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from relaycore.config import Settings

PASSWORD_MIN = 8
# argon2 pre-hashes its input, but a cap keeps hashing cost and request size predictable.
PASSWORD_MAX = 1024


class Passwords:
    def __init__(self, *, time_cost: int = 3, memory_kib: int = 64 * 1024) -> None:
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib)
        # Each hash holds ``memory_kib`` while it runs: bound how many run at once.
        self._slots = asyncio.Semaphore(max(2, os.cpu_count() or 2))
        self._dummy: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Passwords:
        return cls(time_cost=settings.password_hash_time_cost, memory_kib=settings.password_hash_memory_kib)

    async def hash(self, password: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, hashed: str | None, password: str) -> bool:
        """True if ``password`` matches ``hashed``.  With no usable hash (unknown user, or a user
        without a password) a dummy hash is checked instead and the answer is False."""
        if not hashed:
            await self._check(await self._dummy_hash(), password)
            return False
        return await self._check(hashed, password)

    def needs_rehash(self, hashed: str) -> bool:
        try:
            return self._hasher.check_needs_rehash(hashed)
        except (InvalidHashError, ValueError):
            return True

    async def prepare(self) -> None:
        """Make the dummy hash now, so the first unknown-user login costs what every other one does."""
        await self._dummy_hash()

    async def _dummy_hash(self) -> str:
        if self._dummy is None:
            self._dummy = await self.hash(os.urandom(16).hex())
        return self._dummy

    async def _check(self, hashed: str, password: str) -> bool:
        async with self._slots:
            return await asyncio.to_thread(self._verify_sync, hashed, password)

    def _verify_sync(self, hashed: str, password: str) -> bool:
        try:
            return self._hasher.verify(hashed, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
