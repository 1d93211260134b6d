"""The real ``pulsar-relay-client`` (tests/compat/test_client_transport.py, unchanged) against
``pulsar-relay serve all`` (and the split stack where haproxy exists) on the Valkey Cluster: the
compat suite's fixtures start the relay on ``valkey_url``, which here is the cluster's URL."""

from __future__ import annotations

from tests.compat.conftest import api, relay, relay_extra_env
from tests.compat.test_client_transport import *  # noqa: F403 - the same tests, on the cluster

__all__ = ["api", "relay", "relay_extra_env"]
