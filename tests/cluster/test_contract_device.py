"""The device-grant and web-session storage contract (tests/contract/test_store_device.py) against
the Valkey Cluster backend: a grant and its user code share the ``{auth}`` slot, and the poll and
decision scripts run there."""

from __future__ import annotations

from tests.contract.test_store_device import *  # noqa: F403 - the same tests, the cluster's ``backend``
