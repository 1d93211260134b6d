"""The federated identity and one-time record contract suite (tests/contract) against the Valkey
Cluster backend: an identity's two keys share the ``{users}`` hash tag, so its scripts run in one
slot."""

from __future__ import annotations

from tests.contract.test_store_identities import *  # noqa: F403 - the same tests, the cluster's ``backend``
