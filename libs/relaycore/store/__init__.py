"""Storage: interfaces in ``base``, Valkey implementation in ``valkey_*``, memory in ``memory``."""

from __future__ import annotations

from relaycore.config import Settings
from relaycore.store.base import Backend


def open_backend(settings: Settings) -> Backend:
    """The backend ``settings.storage_backend`` names; connects lazily.  The memory backend is one
    per process, so services mounted together in one process share it."""
    if settings.storage_backend == "memory":
        from relaycore.store.memory import shared_backend

        return shared_backend(settings)
    from relaycore.store.valkey_backend import ValkeyBackend

    return ValkeyBackend(settings)
