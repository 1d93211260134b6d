"""The session and throttle contract suites (tests/contract) against the Valkey Cluster backend:
their scripts keep every key in one hash tag, so they run in one slot."""

from __future__ import annotations

from tests.contract.test_store_sessions import *  # noqa: F403 - the same tests, the cluster's ``backend``
from tests.contract.test_store_throttle import *  # noqa: F403
