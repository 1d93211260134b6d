"""ASGI app factories for a server ``pulsar-relay serve`` does not offer (``granian --factory``):
each builds one of our services from the ``PULSAR_*`` environment, as ``pulsar-relay serve`` does,
so the server comparison runs the very same app."""

from __future__ import annotations

from typing import Any

from relaycore import config as relay_config
from relaycore.logs import setup_logging


def _settings() -> relay_config.Settings:
    settings = relay_config.load()
    setup_logging(settings)
    return settings


def ingest() -> Any:
    from ingest.app import create_app

    return create_app(_settings())


def gateway() -> Any:
    from gateway.app import create_app

    return create_app(_settings())


def auth() -> Any:
    from auth.app import create_app

    return create_app(_settings())


def allinone() -> Any:
    from pulsar_relay.allinone import create_app

    return create_app(_settings())
