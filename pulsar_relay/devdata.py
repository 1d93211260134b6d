"""The project-local ``.relay-data/`` directory of ``dev`` and ``stack``: a lock (one launcher at a
time owns the Valkey data), and secrets generated once and kept in 0600 files."""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
from pathlib import Path
from typing import IO

DEFAULT_DIR = ".relay-data"
ADMIN_USERNAME = "admin"


class DataDirBusy(RuntimeError):
    """Another launcher holds the directory's lock."""


class DevData:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._lock: IO[str] | None = None

    @property
    def valkey_dir(self) -> Path:
        return self.root / "valkey"

    def acquire(self) -> DevData:
        """Take the directory for this process; two Valkeys on one AOF directory would corrupt it."""
        self.root.mkdir(parents=True, exist_ok=True)
        lock = open(self.root / "lock", "a+")  # noqa: SIM115 - held for the launcher's lifetime
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            lock.close()
            raise DataDirBusy(
                f"{self.root} is in use by {holder}; stop it first, or pass --data-dir DIR"
            ) from None
        lock.seek(0)
        lock.truncate()
        lock.write(f"pulsar-relay (pid {os.getpid()})\n")
        lock.flush()
        self._lock = lock
        return self

    def release(self) -> None:
        if self._lock is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def secret(self, name: str, nbytes: int) -> str:
        """The secret kept in ``<root>/<name>``; created (mode 0600) with a random value on first use."""
        path = self.root / name
        if path.exists():
            value = path.read_text().strip()
            if value:
                return value
        self.root.mkdir(parents=True, exist_ok=True)
        value = secrets.token_urlsafe(nbytes)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(value + "\n")
        os.chmod(path, 0o600)
        return value

    def jwt_secret(self) -> str:
        return self.secret("jwt-secret", 48)

    def admin_password(self) -> str:
        # URL-safe characters only, so the password pastes into a form-encoded curl line as-is.
        return self.secret("admin-password", 18)
