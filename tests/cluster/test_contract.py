"""The storage contract suite (tests/contract) against the Valkey Cluster backend."""

from __future__ import annotations

from tests.contract.test_store_messages import *  # noqa: F403 - the same tests, the cluster's ``backend``
