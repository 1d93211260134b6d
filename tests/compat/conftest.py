"""Fixtures for the drop-in compatibility suite: a relay started as an operator starts it, with a
bootstrap admin, on the session's real Valkey.  ``relay`` is the all-in-one process unless a
module parametrizes it indirectly with ``"stack"``: the split deployment (auth, ingest, two
gateways behind HAProxy running deploy/haproxy.cfg) from ``pulsar_relay.stack``."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.compat.relay import Api, Relay, relay_env
from tests.support.serve import RelayProcess


class StackRelay:
    """The split stack seen through its one public origin (HAProxy)."""

    def __init__(self, valkey_url: str, workdir: Path, extra_env: dict[str, str] | None = None) -> None:
        from pulsar_relay.stack import Stack

        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True)
        self.stack = Stack(
            data_dir=workdir / "data",
            gateways=2,
            environ={**os.environ, **relay_env(valkey_url, **(extra_env or {}))},
            log_dir=self.logs,
        )

    @property
    def url(self) -> str:
        return self.stack.url

    @property
    def port(self) -> int:
        return self.stack.port

    def output(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in sorted(self.logs.glob("*.log")))


def start_stack(valkey_url: str, tmp_path: Path, extra_env: dict[str, str] | None = None) -> StackRelay:
    """Start the stack; once more if a port it picked was taken meanwhile (its free ports are
    probed, then bound by the child, so a busy machine can race it)."""
    for attempt in (1, 2):
        stack = StackRelay(valkey_url, tmp_path / f"stack-{attempt}", extra_env)
        try:
            stack.stack.start()
            return stack
        except Exception as exc:
            if attempt == 2 or "Address already in use" not in str(exc):
                raise
    raise AssertionError("unreachable")


@pytest.fixture
def relay_extra_env() -> dict[str, str]:
    """More ``PULSAR_*`` settings for the relay; a module overrides this fixture to set some."""
    return {}


@pytest.fixture
def relay(
    request: pytest.FixtureRequest, valkey_url: str, tmp_path: Path, relay_extra_env: dict[str, str]
) -> Iterator[Relay]:
    """``pulsar-relay serve all`` (or the split stack) on free ports over the flushed session Valkey."""
    if getattr(request, "param", "all") == "stack":
        try:
            import pulsar_relay.stack  # noqa: F401
        except ImportError:
            pytest.skip("pulsar_relay.stack is not there yet")
        if shutil.which("haproxy") is None:
            pytest.skip("the split stack needs haproxy (make stack installs it)")
        stack = start_stack(valkey_url, tmp_path, relay_extra_env)
        try:
            yield stack
        finally:
            stack.stack.stop()
        return
    proc = RelayProcess("all", relay_env(valkey_url, **relay_extra_env))
    try:
        proc.start()
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def api(relay: Relay) -> Iterator[Api]:
    client = Api(relay.url)
    yield client
    client.close()


@pytest.fixture
def admin_token(api: Api) -> str:
    return api.login()
